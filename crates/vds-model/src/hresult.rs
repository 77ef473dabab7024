//! HRESULTs: one table generates every constant with its name, value, HTTP status and
//! description (BEHAVIOUR.md §1; values as Microsoft's VDS documentation gives them), plus `HRESULT_FROM_WIN32` with
//! the errno → Win32 mapping used to report OS errors.

use std::borrow::Cow;
use std::fmt;

/// A Windows HRESULT, stored as its unsigned 32-bit pattern (bit 31 set = failure).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hresult(pub u32);

/// The one table: `(NAME, value, description)`, plus `http N` on the rows whose HTTP status
/// is not the default of [`default_http_status`]. Standard codes first, then every VDS code of
/// the reference (383 of them), in the reference's order.
macro_rules! hresult_table {
    ($(($name:ident, $value:literal, $desc:literal $(, http $http:literal)?),)*) => {
        #[allow(missing_docs)]
        impl Hresult {
            $(
                #[doc = $desc]
                pub const $name: Hresult = Hresult($value);
            )*

            /// The HTTP status that carries this code (BEHAVIOUR.md §1): the row's `http N`,
            /// else [`default_http_status`] (also for codes outside the table, such as
            /// converted OS errors).
            pub fn http_status(self) -> u16 {
                match self.0 {
                    $($value => http_status_of_row!($value $(, $http)?),)*
                    other => default_http_status(other),
                }
            }
        }

        /// Every named code: value, name, description.
        pub const HRESULT_TABLE: &[(Hresult, &str, &str)] = &[
            $((Hresult($value), stringify!($name), $desc),)*
        ];
    };
}

/// A table row's HTTP status: its explicit `http N`, else the default for its value.
macro_rules! http_status_of_row {
    ($value:literal) => {
        default_http_status($value)
    };
    ($value:literal, $http:literal) => {
        $http
    };
}

/// The HTTP status of a code whose table row names none: success codes are 200; VDS errors
/// (facility 4) without a better fit are 409; anything else, such as converted OS errors, is
/// 500.
const fn default_http_status(value: u32) -> u16 {
    if value & 0x8000_0000 == 0 {
        200
    } else if (value >> 16) & 0x7FF == 4 {
        409
    } else {
        500
    }
}

hresult_table! {
    (S_OK, 0x00000000, "Done"),
    (S_FALSE, 0x00000001, "Done, with a negative or partial answer"),
    (E_NOTIMPL, 0x80004001, "Not implemented", http 501),
    (E_NOINTERFACE, 0x80004002, "No such interface supported"),
    (E_POINTER, 0x80004003, "Invalid pointer", http 400),
    (E_ABORT, 0x80004004, "Operation aborted"),
    (E_FAIL, 0x80004005, "Unspecified failure"),
    (E_UNEXPECTED, 0x8000FFFF, "Catastrophic failure"),
    (E_ACCESSDENIED, 0x80070005, "The caller is not authorised, or the OS refused access", http 403),
    (E_HANDLE, 0x80070006, "Invalid handle"),
    (E_OUTOFMEMORY, 0x8007000E, "A resource limit was hit", http 503),
    (E_INVALIDARG, 0x80070057, "Malformed request, a value outside its enumeration, or an UNKNOWN status", http 400),
    (VDS_E_NOT_SUPPORTED, 0x80042400, "A valid value or operation this provider or object does not implement", http 422),
    (VDS_E_INITIALIZED_FAILED, 0x80042401, "VDS or provider failed to initialize (IVdsProviderPrivate::OnLoad failure code)", http 500),
    (VDS_E_INITIALIZE_NOT_CALLED, 0x80042402, "Provider initialization method was not called (IVdsHwProvider methods)"),
    (VDS_E_ALREADY_REGISTERED, 0x80042403, "Provider already registered"),
    (VDS_E_ANOTHER_CALL_IN_PROGRESS, 0x80042404, "Another operation on the same object has not finished"),
    (VDS_E_OBJECT_NOT_FOUND, 0x80042405, "The id never named an object", http 404),
    (VDS_E_INVALID_SPACE, 0x80042406, "Invalid space"),
    (VDS_E_PARTITION_LIMIT_REACHED, 0x80042407, "Partition limit reached"),
    (VDS_E_PARTITION_NOT_EMPTY, 0x80042408, "Partition not empty"),
    (VDS_E_OPERATION_PENDING, 0x80042409, "The asynchronous operation is still running", http 200),
    (VDS_E_OPERATION_DENIED, 0x8004240A, "Operation denied"),
    (VDS_E_OBJECT_DELETED, 0x8004240B, "The id named an object that has been deleted", http 410),
    (VDS_E_CANCEL_TOO_LATE, 0x8004240C, "The operation is too far along to cancel"),
    (VDS_E_OPERATION_CANCELED, 0x8004240D, "The operation was canceled"),
    (VDS_E_CANNOT_EXTEND, 0x8004240E, "Cannot extend"),
    (VDS_E_NOT_ENOUGH_SPACE, 0x8004240F, "The drive or pool cannot hold the request", http 507),
    (VDS_E_NOT_ENOUGH_DRIVE, 0x80042410, "Not enough (free) drives in the subsystem"),
    (VDS_E_BAD_COOKIE, 0x80042411, "Bad cookie"),
    (VDS_E_NO_MEDIA, 0x80042412, "No media"),
    (VDS_E_DEVICE_IN_USE, 0x80042413, "Device in use"),
    (VDS_E_DISK_NOT_EMPTY, 0x80042414, "Disk not empty"),
    (VDS_E_INVALID_OPERATION, 0x80042415, "The operation is invalid for this object (e.g. Recover on a non-fault-tolerant LUN)"),
    (VDS_E_PATH_NOT_FOUND, 0x80042416, "Path not found"),
    (VDS_E_DISK_NOT_INITIALIZED, 0x80042417, "Disk not initialized"),
    (VDS_E_NOT_AN_UNALLOCATED_DISK, 0x80042418, "Not an unallocated disk"),
    (VDS_E_UNRECOVERABLE_ERROR, 0x80042419, "Unrecoverable error; service must shut down", http 500),
    (VDS_S_DISK_PARTIALLY_CLEANED, 0x0004241A, "Clean not complete (I/O error or canceled)"),
    (VDS_E_DMADMIN_SERVICE_CONNECTION_FAILED, 0x8004241B, "Dmadmin service connection failed"),
    (VDS_E_PROVIDER_INITIALIZATION_FAILED, 0x8004241C, "Provider failed to initialize", http 500),
    (VDS_E_OBJECT_EXISTS, 0x8004241D, "An object with that unique key exists"),
    (VDS_E_NO_DISKS_FOUND, 0x8004241E, "No disks found"),
    (VDS_E_PROVIDER_CACHE_CORRUPT, 0x8004241F, "The provider's cache disagrees with the array; call Reenumerate then Refresh", http 503),
    (VDS_E_DMADMIN_METHOD_CALL_FAILED, 0x80042420, "Dmadmin method call failed"),
    (VDS_S_PROVIDER_ERROR_LOADING_CACHE, 0x00042421, "Provider hit errors loading its cache (see event log)"),
    (VDS_E_PROVIDER_VOL_DEVICE_NAME_NOT_FOUND, 0x80042422, "Provider vol device name not found"),
    (VDS_E_PROVIDER_VOL_OPEN, 0x80042423, "Provider vol open"),
    (VDS_E_DMADMIN_CORRUPT_NOTIFICATION, 0x80042424, "Dmadmin corrupt notification"),
    (VDS_E_INCOMPATIBLE_FILE_SYSTEM, 0x80042425, "File system incompatible with operation"),
    (VDS_E_INCOMPATIBLE_MEDIA, 0x80042426, "Media incompatible with operation"),
    (VDS_E_ACCESS_DENIED, 0x80042427, "Access denied (caller must be Administrators / Backup Operators)", http 403),
    (VDS_E_MEDIA_WRITE_PROTECTED, 0x80042428, "Media write protected"),
    (VDS_E_BAD_LABEL, 0x80042429, "Bad label"),
    (VDS_E_CANT_QUICK_FORMAT, 0x8004242A, "Cant quick format"),
    (VDS_E_IO_ERROR, 0x8004242B, "The backing store failed an I/O the operation needed", http 500),
    (VDS_E_VOLUME_TOO_SMALL, 0x8004242C, "Volume too small"),
    (VDS_E_VOLUME_TOO_BIG, 0x8004242D, "Volume too big"),
    (VDS_E_CLUSTER_SIZE_TOO_SMALL, 0x8004242E, "Cluster size too small"),
    (VDS_E_CLUSTER_SIZE_TOO_BIG, 0x8004242F, "Cluster size too big"),
    (VDS_E_CLUSTER_COUNT_BEYOND_32BITS, 0x80042430, "Cluster count beyond 32bits"),
    (VDS_E_OBJECT_STATUS_FAILED, 0x80042431, "The object is FAILED and cannot do this"),
    (VDS_E_VOLUME_INCOMPLETE, 0x80042432, "Volume incomplete"),
    (VDS_E_EXTENT_SIZE_LESS_THAN_MIN, 0x80042433, "Extent size less than min"),
    (VDS_S_UPDATE_BOOTFILE_FAILED, 0x00042434, "Update bootfile failed"),
    (VDS_S_BOOT_PARTITION_NUMBER_CHANGE, 0x00042436, "Boot partition number change"),
    (VDS_E_BOOT_PARTITION_NUMBER_CHANGE, 0x80042436, "Boot partition number change"),
    (VDS_E_NO_FREE_SPACE, 0x80042437, "No free space"),
    (VDS_E_ACTIVE_PARTITION, 0x80042438, "Active partition"),
    (VDS_E_PARTITION_OF_UNKNOWN_TYPE, 0x80042439, "Partition of unknown type"),
    (VDS_E_LEGACY_VOLUME_FORMAT, 0x8004243A, "Legacy volume format"),
    (VDS_E_NON_CONTIGUOUS_DATA_PARTITIONS, 0x8004243B, "Non contiguous data partitions"),
    (VDS_E_MIGRATE_OPEN_VOLUME, 0x8004243C, "Migrate open volume"),
    (VDS_E_VOLUME_NOT_ONLINE, 0x8004243D, "Volume not online"),
    (VDS_E_VOLUME_NOT_HEALTHY, 0x8004243E, "Volume not healthy"),
    (VDS_E_VOLUME_SPANS_DISKS, 0x8004243F, "Volume spans disks"),
    (VDS_E_REQUIRES_CONTIGUOUS_DISK_SPACE, 0x80042440, "Requires contiguous disk space"),
    (VDS_E_BAD_PROVIDER_DATA, 0x80042441, "A provider returned bad data"),
    (VDS_E_PROVIDER_FAILURE, 0x80042442, "A provider failed to complete an operation", http 500),
    (VDS_S_VOLUME_COMPRESS_FAILED, 0x00042443, "Volume compress failed"),
    (VDS_E_PACK_OFFLINE, 0x80042444, "Pack offline"),
    (VDS_E_VOLUME_NOT_A_MIRROR, 0x80042445, "Volume not a mirror"),
    (VDS_E_NO_EXTENTS_FOR_VOLUME, 0x80042446, "No extents for volume"),
    (VDS_E_DISK_NOT_LOADED_TO_CACHE, 0x80042447, "Disk not loaded to cache"),
    (VDS_E_INTERNAL_ERROR, 0x80042448, "Internal VDS error (see event log)", http 500),
    (VDS_E_PROVIDER_TYPE_NOT_SUPPORTED, 0x8004244A, "Method not supported for this provider type", http 422),
    (VDS_E_DISK_NOT_ONLINE, 0x8004244B, "Disk not online"),
    (VDS_E_DISK_IN_USE_BY_VOLUME, 0x8004244C, "Disk in use by volume"),
    (VDS_S_IN_PROGRESS, 0x0004244D, "(success) operation in progress"),
    (VDS_E_ASYNC_OBJECT_FAILURE, 0x8004244E, "Failure of the async object"),
    (VDS_E_VOLUME_NOT_MOUNTED, 0x8004244F, "Volume not mounted"),
    (VDS_E_PACK_NOT_FOUND, 0x80042450, "Pack not found"),
    (VDS_E_IMPORT_SET_INCOMPLETE, 0x80042451, "Import set incomplete"),
    (VDS_E_DISK_NOT_IMPORTED, 0x80042452, "Disk not imported"),
    (VDS_E_OBJECT_OUT_OF_SYNC, 0x80042453, "Object reference may be stale"),
    (VDS_E_MISSING_DISK, 0x80042454, "Missing disk"),
    (VDS_E_DISK_PNP_REG_CORRUPT, 0x80042455, "Disk pnp reg corrupt"),
    (VDS_E_LBN_REMAP_ENABLED_FLAG, 0x80042456, "Lbn remap enabled flag"),
    (VDS_E_NO_DRIVELETTER_FLAG, 0x80042457, "No driveletter flag"),
    (VDS_E_REVERT_ON_CLOSE, 0x80042458, "Revert on close"),
    (VDS_E_REVERT_ON_CLOSE_SET, 0x80042459, "Revert on close set"),
    (VDS_S_IA64_BOOT_MIRRORED_TO_MBR, 0x0004245A, "Ia64 boot mirrored to mbr"),
    (VDS_E_IA64_BOOT_MIRRORED_TO_MBR, 0x8004245A, "Ia64 boot mirrored to mbr"),
    (VDS_S_UNABLE_TO_GET_GPT_ATTRIBUTES, 0x0004245B, "Unable to get gpt attributes"),
    (VDS_E_VOLUME_TEMPORARILY_DISMOUNTED, 0x8004245C, "Volume temporarily dismounted"),
    (VDS_E_VOLUME_PERMANENTLY_DISMOUNTED, 0x8004245D, "Volume permanently dismounted"),
    (VDS_E_VOLUME_HAS_PATH, 0x8004245E, "Volume has path"),
    (VDS_E_TIMEOUT, 0x8004245F, "Timeout", http 504),
    (VDS_E_REPAIR_VOLUMESTATE, 0x80042460, "Repair volumestate"),
    (VDS_E_LDM_TIMEOUT, 0x80042461, "Ldm timeout"),
    (VDS_E_REVERT_ON_CLOSE_MISMATCH, 0x80042462, "Revert on close mismatch"),
    (VDS_E_RETRY, 0x80042463, "Operation failed; retry"),
    (VDS_E_ONLINE_PACK_EXISTS, 0x80042464, "Online pack exists"),
    (VDS_S_EXTEND_FILE_SYSTEM_FAILED, 0x00042465, "Extend file system failed"),
    (VDS_E_EXTEND_FILE_SYSTEM_FAILED, 0x80042466, "Extend file system failed"),
    (VDS_S_MBR_BOOT_MIRRORED_TO_GPT, 0x00042467, "Mbr boot mirrored to gpt"),
    (VDS_E_MAX_USABLE_MBR, 0x80042468, "Max usable mbr"),
    (VDS_S_GPT_BOOT_MIRRORED_TO_MBR, 0x80042469, "NOTE: despite _S_ the error bit is set"),
    (VDS_E_NO_SOFTWARE_PROVIDERS_LOADED, 0x80042500, "No software providers loaded"),
    (VDS_E_DISK_NOT_MISSING, 0x80042501, "Disk not missing"),
    (VDS_E_NO_VOLUME_LAYOUT, 0x80042502, "No volume layout"),
    (VDS_E_CORRUPT_VOLUME_INFO, 0x80042503, "Corrupt volume info"),
    (VDS_E_INVALID_ENUMERATOR, 0x80042504, "Invalid enumerator"),
    (VDS_E_DRIVER_INTERNAL_ERROR, 0x80042505, "Driver internal error", http 500),
    (VDS_E_VOLUME_INVALID_NAME, 0x80042507, "Volume invalid name"),
    (VDS_S_DISK_IS_MISSING, 0x00042508, "Disk is missing"),
    (VDS_E_CORRUPT_PARTITION_INFO, 0x80042509, "Corrupt partition info"),
    (VDS_S_NONCONFORMANT_PARTITION_INFO, 0x0004250A, "Nonconformant partition info"),
    (VDS_E_CORRUPT_EXTENT_INFO, 0x8004250B, "Corrupt extent info"),
    (VDS_E_DUP_EMPTY_PACK_GUID, 0x8004250C, "Dup empty pack guid"),
    (VDS_E_DRIVER_NO_PACK_NAME, 0x8004250D, "Driver no pack name"),
    (VDS_S_SYSTEM_PARTITION, 0x0004250E, "System partition"),
    (VDS_E_BAD_PNP_MESSAGE, 0x8004250F, "Bad pnp message"),
    (VDS_E_NO_PNP_DISK_ARRIVE, 0x80042510, "No pnp disk arrive"),
    (VDS_E_NO_PNP_VOLUME_ARRIVE, 0x80042511, "No pnp volume arrive"),
    (VDS_E_NO_PNP_DISK_REMOVE, 0x80042512, "No pnp disk remove"),
    (VDS_E_NO_PNP_VOLUME_REMOVE, 0x80042513, "No pnp volume remove"),
    (VDS_E_PROVIDER_EXITING, 0x80042514, "Provider is exiting"),
    (VDS_E_EXTENT_EXCEEDS_DISK_FREE_SPACE, 0x80042515, "Extent exceeds disk free space"),
    (VDS_E_MEMBER_SIZE_INVALID, 0x80042516, "Member size invalid"),
    (VDS_S_NO_NOTIFICATION, 0x00042517, "(success) no volume arrival notification received"),
    (VDS_S_DEFAULT_PLEX_MEMBER_IDS, 0x00042518, "Default plex member ids"),
    (VDS_E_INVALID_DISK, 0x80042519, "Invalid disk"),
    (VDS_E_INVALID_PACK, 0x8004251A, "Invalid pack"),
    (VDS_E_VOLUME_ON_DISK, 0x8004251B, "Volume on disk"),
    (VDS_E_DRIVER_INVALID_PARAM, 0x8004251C, "Driver invalid param"),
    (VDS_E_TARGET_PACK_NOT_EMPTY, 0x8004251D, "Target pack not empty"),
    (VDS_E_CANNOT_SHRINK, 0x8004251E, "Cannot shrink"),
    (VDS_E_MULTIPLE_PACKS, 0x8004251F, "Multiple packs"),
    (VDS_E_PACK_ONLINE, 0x80042520, "Pack online"),
    (VDS_E_INVALID_PLEX_COUNT, 0x80042521, "Invalid plex count"),
    (VDS_E_INVALID_MEMBER_COUNT, 0x80042522, "Invalid member count"),
    (VDS_E_INVALID_PLEX_ORDER, 0x80042523, "Invalid plex order"),
    (VDS_E_INVALID_MEMBER_ORDER, 0x80042524, "Invalid member order"),
    (VDS_E_INVALID_STRIPE_SIZE, 0x80042525, "Stripe size invalid (power of 2 for striped/RAID-5; 0 otherwise)"),
    (VDS_E_INVALID_DISK_COUNT, 0x80042526, "Invalid disk count"),
    (VDS_E_INVALID_EXTENT_COUNT, 0x80042527, "Invalid extent count"),
    (VDS_E_SOURCE_IS_TARGET_PACK, 0x80042528, "Source is target pack"),
    (VDS_E_VOLUME_DISK_COUNT_MAX_EXCEEDED, 0x80042529, "Volume disk count max exceeded"),
    (VDS_E_CORRUPT_NOTIFICATION_INFO, 0x8004252A, "Corrupt notification info"),
    (VDS_E_INVALID_PLEX_GUID, 0x8004252C, "Invalid plex guid"),
    (VDS_E_DISK_NOT_FOUND_IN_PACK, 0x8004252D, "Disk not found in pack"),
    (VDS_E_DUPLICATE_DISK, 0x8004252E, "Duplicate disk"),
    (VDS_E_LAST_VALID_DISK, 0x8004252F, "Last valid disk"),
    (VDS_E_INVALID_SECTOR_SIZE, 0x80042530, "Invalid sector size"),
    (VDS_E_ONE_EXTENT_PER_DISK, 0x80042531, "One extent per disk"),
    (VDS_E_INVALID_BLOCK_SIZE, 0x80042532, "Invalid block size"),
    (VDS_E_PLEX_SIZE_INVALID, 0x80042533, "Plex size invalid"),
    (VDS_E_NO_EXTENTS_FOR_PLEX, 0x80042534, "No extents for plex"),
    (VDS_E_INVALID_PLEX_TYPE, 0x80042535, "Invalid plex type"),
    (VDS_E_INVALID_PLEX_BLOCK_SIZE, 0x80042536, "Invalid plex block size"),
    (VDS_E_NO_HEALTHY_DISKS, 0x80042537, "No healthy disks"),
    (VDS_E_CONFIG_LIMIT, 0x80042538, "Config limit"),
    (VDS_E_DISK_CONFIGURATION_CORRUPTED, 0x80042539, "Disk configuration corrupted"),
    (VDS_E_DISK_CONFIGURATION_NOT_IN_SYNC, 0x8004253A, "Disk configuration not in sync"),
    (VDS_E_DISK_CONFIGURATION_UPDATE_FAILED, 0x8004253B, "Disk configuration update failed"),
    (VDS_E_DISK_DYNAMIC, 0x8004253C, "Disk dynamic"),
    (VDS_E_DRIVER_OBJECT_NOT_FOUND, 0x8004253D, "Driver object not found"),
    (VDS_E_PARTITION_NOT_CYLINDER_ALIGNED, 0x8004253E, "Partition not cylinder aligned"),
    (VDS_E_DISK_LAYOUT_PARTITIONS_TOO_SMALL, 0x8004253F, "Disk layout partitions too small"),
    (VDS_E_DISK_IO_FAILING, 0x80042540, "Disk io failing"),
    (VDS_E_DYNAMIC_DISKS_NOT_SUPPORTED, 0x80042541, "Dynamic disks not supported"),
    (VDS_E_FAULT_TOLERANT_DISKS_NOT_SUPPORTED, 0x80042542, "Fault tolerant disks not supported"),
    (VDS_E_GPT_ATTRIBUTES_INVALID, 0x80042543, "Gpt attributes invalid"),
    (VDS_E_MEMBER_IS_HEALTHY, 0x80042544, "Member is healthy"),
    (VDS_E_MEMBER_REGENERATING, 0x80042545, "Member regenerating"),
    (VDS_E_PACK_NAME_INVALID, 0x80042546, "Pack name invalid"),
    (VDS_E_PLEX_IS_HEALTHY, 0x80042547, "Plex is healthy"),
    (VDS_E_PLEX_LAST_ACTIVE, 0x80042548, "Plex last active"),
    (VDS_E_PLEX_MISSING, 0x80042549, "Plex missing"),
    (VDS_E_MEMBER_MISSING, 0x8004254A, "Member missing"),
    (VDS_E_PLEX_REGENERATING, 0x8004254B, "Plex regenerating"),
    (VDS_E_UNEXPECTED_DISK_LAYOUT_CHANGE, 0x8004254D, "Unexpected disk layout change"),
    (VDS_E_INVALID_VOLUME_LENGTH, 0x8004254E, "Invalid volume length"),
    (VDS_E_VOLUME_LENGTH_NOT_SECTOR_SIZE_MULTIPLE, 0x8004254F, "Volume length not sector size multiple"),
    (VDS_E_VOLUME_NOT_RETAINED, 0x80042550, "Volume not retained"),
    (VDS_E_VOLUME_RETAINED, 0x80042551, "Volume retained"),
    (VDS_E_ALIGN_BEYOND_FIRST_CYLINDER, 0x80042553, "Align beyond first cylinder"),
    (VDS_E_ALIGN_NOT_SECTOR_SIZE_MULTIPLE, 0x80042554, "Align not sector size multiple"),
    (VDS_E_ALIGN_NOT_ZERO, 0x80042555, "Align not zero"),
    (VDS_E_CACHE_CORRUPT, 0x80042556, "Cache corrupt"),
    (VDS_E_CANNOT_CLEAR_VOLUME_FLAG, 0x80042557, "Cannot clear volume flag"),
    (VDS_E_DISK_BEING_CLEANED, 0x80042558, "Disk being cleaned"),
    (VDS_E_DISK_NOT_CONVERTIBLE, 0x80042559, "Disk not convertible"),
    (VDS_E_DISK_REMOVEABLE, 0x8004255A, "Disk removeable"),
    (VDS_E_DISK_REMOVEABLE_NOT_EMPTY, 0x8004255B, "Disk removeable not empty"),
    (VDS_E_DRIVE_LETTER_NOT_FREE, 0x8004255C, "Drive letter not free"),
    (VDS_E_EXTEND_MULTIPLE_DISKS_NOT_SUPPORTED, 0x8004255D, "Extend multiple disks not supported"),
    (VDS_E_INVALID_DRIVE_LETTER, 0x8004255E, "Invalid drive letter"),
    (VDS_E_INVALID_DRIVE_LETTER_COUNT, 0x8004255F, "Invalid drive letter count"),
    (VDS_E_INVALID_FS_FLAG, 0x80042560, "Invalid fs flag"),
    (VDS_E_INVALID_FS_TYPE, 0x80042561, "Invalid fs type"),
    (VDS_E_INVALID_OBJECT_TYPE, 0x80042562, "VDS_OBJECT_TYPE argument invalid"),
    (VDS_E_INVALID_PARTITION_LAYOUT, 0x80042563, "Invalid partition layout"),
    (VDS_E_INVALID_PARTITION_STYLE, 0x80042564, "Invalid partition style"),
    (VDS_E_INVALID_PARTITION_TYPE, 0x80042565, "Invalid partition type"),
    (VDS_E_INVALID_PROVIDER_CLSID, 0x80042566, "IVdsAdmin::RegisterProvider argument invalid"),
    (VDS_E_INVALID_PROVIDER_ID, 0x80042567, "IVdsAdmin argument invalid"),
    (VDS_E_INVALID_PROVIDER_NAME, 0x80042568, "IVdsAdmin argument invalid"),
    (VDS_E_INVALID_PROVIDER_TYPE, 0x80042569, "IVdsAdmin argument invalid"),
    (VDS_E_INVALID_PROVIDER_VERSION_GUID, 0x8004256A, "IVdsAdmin argument invalid"),
    (VDS_E_INVALID_PROVIDER_VERSION_STRING, 0x8004256B, "IVdsAdmin argument invalid"),
    (VDS_E_INVALID_QUERY_PROVIDER_FLAG, 0x8004256C, "VDS_QUERY_PROVIDER_FLAG invalid"),
    (VDS_E_INVALID_SERVICE_FLAG, 0x8004256D, "Invalid service flag"),
    (VDS_E_INVALID_VOLUME_FLAG, 0x8004256E, "Invalid volume flag"),
    (VDS_E_PARTITION_NOT_OEM, 0x8004256F, "Partition not oem"),
    (VDS_E_PARTITION_PROTECTED, 0x80042570, "Partition protected"),
    (VDS_E_PARTITION_STYLE_MISMATCH, 0x80042571, "Partition style mismatch"),
    (VDS_E_PROVIDER_INTERNAL_ERROR, 0x80042572, "Provider internal error", http 500),
    (VDS_E_SHRINK_SIZE_LESS_THAN_MIN, 0x80042573, "Shrink size less than min"),
    (VDS_E_SHRINK_SIZE_TOO_BIG, 0x80042574, "Shrink size too big"),
    (VDS_E_UNRECOVERABLE_PROVIDER_ERROR, 0x80042575, "Unrecoverable provider error", http 500),
    (VDS_E_VOLUME_HIDDEN, 0x80042576, "Volume hidden"),
    (VDS_S_DISMOUNT_FAILED, 0x00042577, "Dismount failed"),
    (VDS_S_REMOUNT_FAILED, 0x00042578, "Remount failed"),
    (VDS_E_FLAG_ALREADY_SET, 0x80042579, "Flag already set"),
    (VDS_S_RESYNC_NOTIFICATION_TASK_FAILED, 0x0004257A, "Resync notification task failed"),
    (VDS_E_DISTINCT_VOLUME, 0x8004257B, "Distinct volume"),
    (VDS_E_VOLUME_NOT_FOUND_IN_PACK, 0x8004257C, "Volume not found in pack"),
    (VDS_E_PARTITION_NON_DATA, 0x8004257D, "Partition non data"),
    (VDS_E_CRITICAL_PLEX, 0x8004257E, "Critical plex"),
    (VDS_E_VOLUME_SYNCHRONIZING, 0x8004257F, "Volume synchronizing"),
    (VDS_E_VOLUME_REGENERATING, 0x80042580, "Volume regenerating"),
    (VDS_S_VSS_FLUSH_AND_HOLD_WRITES, 0x00042581, "Vss flush and hold writes"),
    (VDS_S_VSS_RELEASE_WRITES, 0x00042582, "Vss release writes"),
    (VDS_S_FS_LOCK, 0x00042583, "Fs lock"),
    (VDS_E_READONLY, 0x80042584, "Readonly"),
    (VDS_E_INVALID_VOLUME_TYPE, 0x80042585, "Invalid volume type"),
    (VDS_E_BAD_BOOT_DISK, 0x80042586, "Bad boot disk"),
    (VDS_E_LOG_UPDATE, 0x80042587, "Log update"),
    (VDS_E_VOLUME_MIRRORED, 0x80042588, "Volume mirrored"),
    (VDS_E_VOLUME_SIMPLE_SPANNED, 0x80042589, "Volume simple spanned"),
    (VDS_E_NO_VALID_LOG_COPIES, 0x8004258A, "No valid log copies"),
    (VDS_S_PLEX_NOT_LOADED_TO_CACHE, 0x0004258B, "Plex not loaded to cache"),
    (VDS_E_PLEX_NOT_LOADED_TO_CACHE, 0x8004258B, "Plex not loaded to cache"),
    (VDS_E_PARTITION_MSR, 0x8004258C, "Partition msr"),
    (VDS_E_PARTITION_LDM, 0x8004258D, "Partition ldm"),
    (VDS_S_WINPE_BOOTENTRY, 0x0004258E, "Winpe bootentry"),
    (VDS_E_ALIGN_NOT_A_POWER_OF_TWO, 0x8004258F, "Align not a power of two"),
    (VDS_E_ALIGN_IS_ZERO, 0x80042590, "Align is zero"),
    (VDS_E_SHRINK_IN_PROGRESS, 0x80042591, "Shrink in progress"),
    (VDS_E_CANT_INVALIDATE_FVE, 0x80042592, "Cant invalidate fve"),
    (VDS_E_FS_NOT_DETERMINED, 0x80042593, "Fs not determined"),
    (VDS_E_DISK_NOT_OFFLINE, 0x80042595, "Disk not offline"),
    (VDS_E_FAILED_TO_ONLINE_DISK, 0x80042596, "Failed to online disk"),
    (VDS_E_FAILED_TO_OFFLINE_DISK, 0x80042597, "Failed to offline disk"),
    (VDS_E_BAD_REVISION_NUMBER, 0x80042598, "Bad revision number"),
    (VDS_E_SHRINK_USER_CANCELLED, 0x80042599, "Shrink user cancelled"),
    (VDS_E_SHRINK_DIRTY_VOLUME, 0x8004259A, "Shrink dirty volume"),
    (VDS_S_NAME_TRUNCATED, 0x00042700, "(success) name set but truncated by the subsystem"),
    (VDS_E_NAME_NOT_UNIQUE, 0x80042701, "The name (target IQN) is already used"),
    (VDS_S_STATUSES_INCOMPLETELY_SET, 0x00042702, "(success) some path statuses not set (e.g. conflicts with LB policy)"),
    (VDS_E_ADDRESSES_INCOMPLETELY_SET, 0x80042703, "Some addresses not set"),
    (VDS_E_SECURITY_INCOMPLETELY_SET, 0x80042705, "Some security settings not set"),
    (VDS_E_TARGET_SPECIFIC_NOT_SUPPORTED, 0x80042706, "Initiator service cannot hold target-specific secrets"),
    (VDS_E_INITIATOR_SPECIFIC_NOT_SUPPORTED, 0x80042707, "Target cannot hold initiator-specific secrets"),
    (VDS_E_ISCSI_LOGIN_FAILED, 0x80042708, "ISCSI login failed (docs-codes text for this row is a copy/paste of ANOTHER_CALL_IN_PROGRESS)"),
    (VDS_E_ISCSI_LOGOUT_FAILED, 0x80042709, "ISCSI logout failed"),
    (VDS_E_ISCSI_SESSION_NOT_FOUND, 0x8004270A, "No session for that target"),
    (VDS_E_ASSOCIATED_LUNS_EXIST, 0x8004270B, "The target still has LUNs"),
    (VDS_E_ASSOCIATED_PORTALS_EXIST, 0x8004270C, "The portal group still has portals"),
    (VDS_E_NO_DISCOVERY_DOMAIN, 0x8004270D, "No discovery domain"),
    (VDS_E_MULTIPLE_DISCOVERY_DOMAINS, 0x8004270E, "Multiple discovery domains"),
    (VDS_E_NO_DISK_PATHNAME, 0x8004270F, "Disk path could not be retrieved"),
    (VDS_E_ISCSI_LOGOUT_INCOMPLETE, 0x80042710, "At least one logout did not complete"),
    (VDS_E_NO_VOLUME_PATHNAME, 0x80042711, "Volume path could not be retrieved"),
    (VDS_E_PROVIDER_CACHE_OUTOFSYNC, 0x80042712, "Provider cache out of sync with driver cache"),
    (VDS_E_NO_IMPORT_TARGET, 0x80042713, "No import target set for the subsystem"),
    (VDS_S_ALREADY_EXISTS, 0x00042714, "Nothing new was created; the existing object is returned"),
    (VDS_S_PROPERTIES_INCOMPLETE, 0x00042715, "(success) only some properties could be retrieved"),
    (VDS_S_ISCSI_SESSION_NOT_FOUND_PERSISTENT_LOGIN_REMOVED, 0x00042800, "(success) no session, but persistent login(s) removed"),
    (VDS_S_ISCSI_PERSISTENT_LOGIN_MAY_NOT_BE_REMOVED, 0x00042801, "(success) persistent login may remain"),
    (VDS_S_ISCSI_LOGIN_ALREAD_EXISTS, 0x00042802, "(success) session already exists (note SDK spelling ALREAD)"),
    (VDS_E_UNABLE_TO_FIND_BOOT_DISK, 0x80042803, "Unable to find boot disk"),
    (VDS_E_INCORRECT_BOOT_VOLUME_EXTENT_INFO, 0x80042804, "Incorrect boot volume extent info"),
    (VDS_E_GET_SAN_POLICY, 0x80042805, "Get san policy"),
    (VDS_E_SET_SAN_POLICY, 0x80042806, "Set san policy"),
    (VDS_E_BOOT_DISK, 0x80042807, "Boot disk"),
    (VDS_S_DISK_MOUNT_FAILED, 0x00042808, "Disk mount failed"),
    (VDS_S_DISK_DISMOUNT_FAILED, 0x00042809, "Disk dismount failed"),
    (VDS_E_DISK_IS_OFFLINE, 0x8004280A, "Disk is offline"),
    (VDS_E_DISK_IS_READ_ONLY, 0x8004280B, "Disk is read only"),
    (VDS_E_PAGEFILE_DISK, 0x8004280C, "Pagefile disk"),
    (VDS_E_HIBERNATION_FILE_DISK, 0x8004280D, "Hibernation file disk"),
    (VDS_E_CRASHDUMP_DISK, 0x8004280E, "Crashdump disk"),
    (VDS_E_UNABLE_TO_FIND_SYSTEM_DISK, 0x8004280F, "Unable to find system disk"),
    (VDS_E_INCORRECT_SYSTEM_VOLUME_EXTENT_INFO, 0x80042810, "Incorrect system volume extent info"),
    (VDS_E_SYSTEM_DISK, 0x80042811, "System disk"),
    (VDS_E_VOLUME_SHRINK_FVE_LOCKED, 0x80042812, "Volume shrink fve locked"),
    (VDS_E_VOLUME_SHRINK_FVE_CORRUPT, 0x80042813, "Volume shrink fve corrupt"),
    (VDS_E_VOLUME_SHRINK_FVE_RECOVERY, 0x80042814, "Volume shrink fve recovery"),
    (VDS_E_VOLUME_SHRINK_FVE, 0x80042815, "Volume shrink fve"),
    (VDS_E_SHRINK_OVER_DATA, 0x80042816, "Shrink over data"),
    (VDS_E_INVALID_SHRINK_SIZE, 0x80042817, "Invalid shrink size"),
    (VDS_E_LUN_DISK_MISSING, 0x80042818, "LUN's disk is missing"),
    (VDS_E_LUN_DISK_FAILED, 0x80042819, "LUN's disk failed"),
    (VDS_E_LUN_DISK_NOT_READY, 0x8004281A, "LUN's disk not ready"),
    (VDS_E_LUN_DISK_NO_MEDIA, 0x8004281B, "LUN's disk has no media"),
    (VDS_E_LUN_NOT_READY, 0x8004281C, "LUN not ready"),
    (VDS_E_LUN_OFFLINE, 0x8004281D, "LUN offline"),
    (VDS_E_LUN_FAILED, 0x8004281E, "LUN failed"),
    (VDS_E_VOLUME_EXTEND_FVE_LOCKED, 0x8004281F, "Volume extend fve locked"),
    (VDS_E_VOLUME_EXTEND_FVE_CORRUPT, 0x80042820, "Volume extend fve corrupt"),
    (VDS_E_VOLUME_EXTEND_FVE_RECOVERY, 0x80042821, "Volume extend fve recovery"),
    (VDS_E_VOLUME_EXTEND_FVE, 0x80042822, "Volume extend fve"),
    (VDS_E_SECTOR_SIZE_ERROR, 0x80042823, "Sector size error"),
    (VDS_E_INITIATOR_ADAPTER_NOT_FOUND, 0x80042900, "Initiator adapter not found"),
    (VDS_E_TARGET_PORTAL_NOT_FOUND, 0x80042901, "Target portal not found"),
    (VDS_E_INVALID_PORT_PATH, 0x80042902, "Invalid port path"),
    (VDS_E_INVALID_ISCSI_TARGET_NAME, 0x80042903, "Invalid iSCSI target name", http 400),
    (VDS_E_SET_TUNNEL_MODE_OUTER_ADDRESS, 0x80042904, "Set tunnel mode outer address"),
    (VDS_E_ISCSI_GET_IKE_INFO, 0x80042905, "Iscsi get ike info"),
    (VDS_E_ISCSI_SET_IKE_INFO, 0x80042906, "Iscsi set ike info"),
    (VDS_E_SUBSYSTEM_ID_IS_NULL, 0x80042907, "Subsystem id is NULL"),
    (VDS_E_ISCSI_INITIATOR_NODE_NAME, 0x80042908, "Iscsi initiator node name"),
    (VDS_E_ISCSI_GROUP_PRESHARE_KEY, 0x80042909, "Iscsi group preshare key"),
    (VDS_E_ISCSI_CHAP_SECRET, 0x8004290A, "CHAP secret problem", http 400),
    (VDS_E_INVALID_IP_ADDRESS, 0x8004290B, "Invalid IP address", http 400),
    (VDS_E_REBOOT_REQUIRED, 0x8004290C, "Reboot required"),
    (VDS_E_VOLUME_GUID_PATHNAME_NOT_ALLOWED, 0x8004290D, "Volume guid pathname not allowed"),
    (VDS_E_BOOT_PAGEFILE_DRIVE_LETTER, 0x8004290E, "Boot pagefile drive letter"),
    (VDS_E_DELETE_WITH_CRITICAL, 0x8004290F, "Delete with critical"),
    (VDS_E_CLEAN_WITH_DATA, 0x80042910, "Clean with data"),
    (VDS_E_CLEAN_WITH_OEM, 0x80042911, "Clean with oem"),
    (VDS_E_CLEAN_WITH_CRITICAL, 0x80042912, "Clean with critical"),
    (VDS_E_FORMAT_CRITICAL, 0x80042913, "Format critical"),
    (VDS_E_NTFS_FORMAT_NOT_SUPPORTED, 0x80042914, "Ntfs format not supported"),
    (VDS_E_FAT32_FORMAT_NOT_SUPPORTED, 0x80042915, "Fat32 format not supported"),
    (VDS_E_FAT_FORMAT_NOT_SUPPORTED, 0x80042916, "Fat format not supported"),
    (VDS_E_FORMAT_NOT_SUPPORTED, 0x80042917, "Format not supported"),
    (VDS_E_COMPRESSION_NOT_SUPPORTED, 0x80042918, "Compression not supported"),
    (VDS_E_VDISK_NOT_OPEN, 0x80042919, "Vdisk not open"),
    (VDS_E_VDISK_INVALID_OP_STATE, 0x8004291A, "Vdisk invalid op state"),
    (VDS_E_INVALID_PATH, 0x8004291B, "Invalid path"),
    (VDS_E_INVALID_ISCSI_PATH, 0x8004291C, "Invalid iSCSI path"),
    (VDS_E_SHRINK_LUN_NOT_UNMASKED, 0x8004291D, "LUN to shrink is not unmasked to this host"),
    (VDS_E_LUN_DISK_READ_ONLY, 0x8004291E, "LUN's disk is read-only"),
    (VDS_E_LUN_UPDATE_DISK, 0x8004291F, "Disk update after LUN change failed"),
    (VDS_E_LUN_DYNAMIC, 0x80042920, "LUN is a dynamic disk"),
    (VDS_E_LUN_DYNAMIC_OFFLINE, 0x80042921, "LUN is an offline dynamic disk"),
    (VDS_E_LUN_SHRINK_GPT_HEADER, 0x80042922, "Shrink would cut the GPT backup header"),
    (VDS_E_MIRROR_NOT_SUPPORTED, 0x80042923, "Mirror not supported"),
    (VDS_E_RAID5_NOT_SUPPORTED, 0x80042924, "Raid5 not supported"),
    (VDS_E_DISK_NOT_CONVERTIBLE_SIZE, 0x80042925, "Disk not convertible size"),
    (VDS_E_OFFLINE_NOT_SUPPORTED, 0x80042926, "Offline not supported"),
    (VDS_E_VDISK_PATHNAME_INVALID, 0x80042927, "Vdisk pathname invalid"),
    (VDS_E_EXTEND_TOO_MANY_CLUSTERS, 0x80042928, "Extend too many clusters"),
    (VDS_E_EXTEND_UNKNOWN_FILESYSTEM, 0x80042929, "Extend unknown filesystem"),
    (VDS_E_SHRINK_UNKNOWN_FILESYSTEM, 0x8004292A, "Shrink unknown filesystem"),
    (VDS_E_VD_DISK_NOT_OPEN, 0x8004292B, "Vd disk not open"),
    (VDS_E_VD_DISK_IS_EXPANDING, 0x8004292C, "Vd disk is expanding"),
    (VDS_E_VD_DISK_IS_COMPACTING, 0x8004292D, "Vd disk is compacting"),
    (VDS_E_VD_DISK_IS_MERGING, 0x8004292E, "Vd disk is merging"),
    (VDS_E_VD_IS_ATTACHED, 0x8004292F, "Vd is attached"),
    (VDS_E_VD_DISK_ALREADY_OPEN, 0x80042930, "Vd disk already open"),
    (VDS_E_VD_DISK_ALREADY_EXPANDING, 0x80042931, "Vd disk already expanding"),
    (VDS_E_VD_ALREADY_COMPACTING, 0x80042932, "Vd already compacting"),
    (VDS_E_VD_ALREADY_MERGING, 0x80042933, "Vd already merging"),
    (VDS_E_VD_ALREADY_ATTACHED, 0x80042934, "Vd already attached"),
    (VDS_E_VD_ALREADY_DETACHED, 0x80042935, "Vd already detached"),
    (VDS_E_VD_NOT_ATTACHED_READONLY, 0x80042936, "Vd not attached readonly"),
    (VDS_E_VD_IS_BEING_ATTACHED, 0x80042937, "Vd is being attached"),
    (VDS_E_VD_IS_BEING_DETACHED, 0x80042938, "Vd is being detached"),
    (VDS_E_NO_POOL, 0x80042A00, "No storage pool"),
    (VDS_E_NO_POOL_CREATED, 0x80042A01, "No pool created"),
    (VDS_E_NO_MAINTENANCE_MODE, 0x80042A02, "Maintenance mode not available"),
    (VDS_E_BLOCK_CLUSTERED, 0x80042A03, "Block clustered"),
    (VDS_E_DISK_HAS_BANDS, 0x80042A04, "Disk has bands"),
    (VDS_E_INVALID_STATE, 0x80042A05, "Invalid state"),
    (VDS_E_REFS_FORMAT_NOT_SUPPORTED, 0x80042A06, "Refs format not supported"),
    (VDS_E_DELETE_WITH_BOOTBACKING, 0x80042A07, "Delete with bootbacking"),
    (VDS_E_FORMAT_WITH_BOOTBACKING, 0x80042A08, "Format with bootbacking"),
    (VDS_E_CLEAN_WITH_BOOTBACKING, 0x80042A09, "Clean with bootbacking"),
    (VDS_E_SHRINK_EXTEND_UNALIGNED, 0x80042B00, "Shrink/extend size violates device alignment"),
    (VDS_S_ACCESS_PATH_NOT_DELETED, 0x00044244, "Access path not deleted"),
}

/// Win32 error codes that errno values map to: `(code, name, description)`.
pub const WIN32_TABLE: &[(u32, &str, &str)] = &[
    (1, "ERROR_INVALID_FUNCTION", "Incorrect function"),
    (
        2,
        "ERROR_FILE_NOT_FOUND",
        "The system cannot find the file specified",
    ),
    (
        3,
        "ERROR_PATH_NOT_FOUND",
        "The system cannot find the path specified",
    ),
    (
        4,
        "ERROR_TOO_MANY_OPEN_FILES",
        "The system cannot open the file (too many open files)",
    ),
    (5, "ERROR_ACCESS_DENIED", "Access is denied"),
    (6, "ERROR_INVALID_HANDLE", "The handle is invalid"),
    (
        8,
        "ERROR_NOT_ENOUGH_MEMORY",
        "Not enough memory resources are available",
    ),
    (
        14,
        "ERROR_OUTOFMEMORY",
        "Not enough storage is available to complete this operation",
    ),
    (
        17,
        "ERROR_NOT_SAME_DEVICE",
        "The system cannot move the file to a different disk drive",
    ),
    (19, "ERROR_WRITE_PROTECT", "The media is write protected"),
    (21, "ERROR_NOT_READY", "The device is not ready"),
    (
        25,
        "ERROR_SEEK",
        "The drive cannot locate a specific area or track on the disk",
    ),
    (
        31,
        "ERROR_GEN_FAILURE",
        "A device attached to the system is not functioning",
    ),
    (38, "ERROR_HANDLE_EOF", "Reached the end of the file"),
    (50, "ERROR_NOT_SUPPORTED", "The request is not supported"),
    (
        55,
        "ERROR_DEV_NOT_EXIST",
        "The specified device does not exist",
    ),
    (80, "ERROR_FILE_EXISTS", "The file exists"),
    (87, "ERROR_INVALID_PARAMETER", "The parameter is incorrect"),
    (109, "ERROR_BROKEN_PIPE", "The pipe has been ended"),
    (
        112,
        "ERROR_DISK_FULL",
        "There is not enough space on the disk",
    ),
    (
        120,
        "ERROR_CALL_NOT_IMPLEMENTED",
        "This function is not supported on this system",
    ),
    (145, "ERROR_DIR_NOT_EMPTY", "The directory is not empty"),
    (170, "ERROR_BUSY", "The requested resource is in use"),
    (
        183,
        "ERROR_ALREADY_EXISTS",
        "Cannot create a file when that file already exists",
    ),
    (
        206,
        "ERROR_FILENAME_EXCED_RANGE",
        "The filename or extension is too long",
    ),
    (
        223,
        "ERROR_FILE_TOO_LARGE",
        "The file size exceeds the limit allowed",
    ),
    (267, "ERROR_DIRECTORY", "The directory name is invalid"),
    (
        995,
        "ERROR_OPERATION_ABORTED",
        "The I/O operation has been aborted",
    ),
    (
        1117,
        "ERROR_IO_DEVICE",
        "The request could not be performed because of an I/O device error",
    ),
    (
        1295,
        "ERROR_DISK_QUOTA_EXCEEDED",
        "The disk quota was exceeded",
    ),
    (
        1460,
        "ERROR_TIMEOUT",
        "This operation returned because the timeout period expired",
    ),
    (10004, "WSAEINTR", "A blocking operation was interrupted"),
    (
        10013,
        "WSAEACCES",
        "An attempt was made to access a socket in a way forbidden by its access permissions",
    ),
    (10022, "WSAEINVAL", "An invalid argument was supplied"),
    (10024, "WSAEMFILE", "Too many open sockets"),
    (
        10035,
        "WSAEWOULDBLOCK",
        "A non-blocking socket operation could not be completed immediately",
    ),
    (
        10038,
        "WSAENOTSOCK",
        "An operation was attempted on something that is not a socket",
    ),
    (
        10043,
        "WSAEPROTONOSUPPORT",
        "The requested protocol is not supported",
    ),
    (
        10045,
        "WSAEOPNOTSUPP",
        "The attempted operation is not supported for the type of object referenced",
    ),
    (
        10047,
        "WSAEAFNOSUPPORT",
        "An address incompatible with the requested protocol was used",
    ),
    (
        10048,
        "WSAEADDRINUSE",
        "Only one usage of each socket address is normally permitted (address in use)",
    ),
    (
        10049,
        "WSAEADDRNOTAVAIL",
        "The requested address is not valid in its context",
    ),
    (
        10050,
        "WSAENETDOWN",
        "A socket operation encountered a dead network",
    ),
    (
        10051,
        "WSAENETUNREACH",
        "A socket operation was attempted to an unreachable network",
    ),
    (
        10053,
        "WSAECONNABORTED",
        "An established connection was aborted by the software in your host machine",
    ),
    (
        10054,
        "WSAECONNRESET",
        "An existing connection was forcibly closed by the remote host",
    ),
    (10055, "WSAENOBUFS", "No buffer space available"),
    (10057, "WSAENOTCONN", "The socket is not connected"),
    (10060, "WSAETIMEDOUT", "The connection attempt timed out"),
    (
        10061,
        "WSAECONNREFUSED",
        "No connection could be made because the target machine actively refused it",
    ),
    (
        10065,
        "WSAEHOSTUNREACH",
        "A socket operation was attempted to an unreachable host",
    ),
];

/// Maps a Linux errno to the Win32 error code with the same meaning (`None` if there is none).
pub fn win32_from_errno(errno: i32) -> Option<u32> {
    let code = match errno {
        libc::EPERM | libc::EACCES => 5,
        libc::ENOENT => 2,
        libc::EINTR => 995,
        libc::EIO => 1117,
        libc::ENXIO | libc::ENODEV => 55,
        libc::EBADF => 6,
        libc::ENOMEM => 8,
        libc::EBUSY | libc::ETXTBSY => 170,
        libc::EEXIST => 183,
        libc::EXDEV => 17,
        libc::ENOTDIR | libc::EISDIR => 267,
        libc::EINVAL => 87,
        libc::ENFILE | libc::EMFILE => 4,
        libc::EFBIG => 223,
        libc::ENOSPC => 112,
        libc::ESPIPE => 25,
        libc::EROFS => 19,
        libc::EPIPE => 109,
        libc::ENAMETOOLONG => 206,
        libc::ENOSYS => 120,
        libc::ENOTEMPTY => 145,
        libc::EDQUOT => 1295,
        libc::EAGAIN => 10035,
        libc::ENOTSOCK => 10038,
        libc::EPROTONOSUPPORT => 10043,
        libc::EOPNOTSUPP => 10045,
        libc::EAFNOSUPPORT => 10047,
        libc::EADDRINUSE => 10048,
        libc::EADDRNOTAVAIL => 10049,
        libc::ENETDOWN => 10050,
        libc::ENETUNREACH => 10051,
        libc::ECONNABORTED => 10053,
        libc::ECONNRESET => 10054,
        libc::ENOBUFS => 10055,
        libc::ENOTCONN => 10057,
        libc::ETIMEDOUT => 10060,
        libc::ECONNREFUSED => 10061,
        libc::EHOSTUNREACH => 10065,
        _ => return None,
    };
    Some(code)
}

/// `FACILITY_WIN32`.
const FACILITY_WIN32: u32 = 7;

impl Hresult {
    /// `HRESULT_FROM_WIN32(code)`: 0 stays `S_OK`, anything else becomes `0x8007xxxx`.
    pub fn from_win32(code: u32) -> Hresult {
        if code as i32 <= 0 {
            Hresult(code)
        } else {
            Hresult((code & 0xFFFF) | (FACILITY_WIN32 << 16) | 0x8000_0000)
        }
    }

    /// Converts an OS error: errno → Win32 → `HRESULT_FROM_WIN32`. Errors without an errno
    /// are mapped by kind; anything unmappable is `E_FAIL`.
    pub fn from_io_error(err: &std::io::Error) -> Hresult {
        if let Some(code) = err.raw_os_error().and_then(win32_from_errno) {
            return Hresult::from_win32(code);
        }
        use std::io::ErrorKind as K;
        let code = match err.kind() {
            K::NotFound => 2,
            K::PermissionDenied => 5,
            K::AlreadyExists => 183,
            K::InvalidInput | K::InvalidData => 87,
            K::OutOfMemory => 8,
            K::Unsupported => 50,
            K::UnexpectedEof => 38,
            K::TimedOut => 1460,
            K::AddrInUse => 10048,
            K::AddrNotAvailable => 10049,
            K::ConnectionRefused => 10061,
            K::ConnectionReset => 10054,
            K::Interrupted => 995,
            _ => return Hresult::E_FAIL,
        };
        Hresult::from_win32(code)
    }

    /// The raw value.
    pub fn value(self) -> u32 {
        self.0
    }

    /// `SUCCEEDED(hr)`.
    pub fn is_success(self) -> bool {
        self.0 & 0x8000_0000 == 0
    }

    /// `FAILED(hr)`.
    pub fn is_failure(self) -> bool {
        !self.is_success()
    }

    /// Bits 16-26.
    pub fn facility(self) -> u32 {
        (self.0 >> 16) & 0x7FF
    }

    /// Bits 0-15.
    pub fn code(self) -> u32 {
        self.0 & 0xFFFF
    }

    fn entry(self) -> Option<&'static (Hresult, &'static str, &'static str)> {
        HRESULT_TABLE.iter().find(|(h, _, _)| *h == self)
    }

    fn win32_entry(self) -> Option<&'static (u32, &'static str, &'static str)> {
        if self.is_failure() && self.facility() == FACILITY_WIN32 {
            WIN32_TABLE.iter().find(|(c, _, _)| *c == self.code())
        } else {
            None
        }
    }

    /// The constant's name, `HRESULT_FROM_WIN32(NAME)` for converted OS errors, else the hex
    /// value.
    pub fn name(self) -> Cow<'static, str> {
        if let Some((_, name, _)) = self.entry() {
            return Cow::Borrowed(name);
        }
        if self.is_failure() && self.facility() == FACILITY_WIN32 {
            return match self.win32_entry() {
                Some((_, name, _)) => Cow::Owned(format!("HRESULT_FROM_WIN32({name})")),
                None => Cow::Owned(format!("HRESULT_FROM_WIN32({})", self.code())),
            };
        }
        Cow::Owned(self.hex())
    }

    /// A sentence for a person.
    pub fn description(self) -> &'static str {
        if let Some((_, _, desc)) = self.entry() {
            return desc;
        }
        if let Some((_, _, desc)) = self.win32_entry() {
            return desc;
        }
        if self.is_success() {
            "Success"
        } else {
            "Unrecognised error code"
        }
    }

    /// `0x` + 8 upper-case hex digits.
    pub fn hex(self) -> String {
        format!("0x{:08X}", self.0)
    }

    /// Looks a code up by name (`"VDS_E_OBJECT_DELETED"`), or parses `0xHHHHHHHH`.
    pub fn parse(s: &str) -> Option<Hresult> {
        let s = s.trim();
        if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            return u32::from_str_radix(hex, 16).ok().map(Hresult);
        }
        HRESULT_TABLE
            .iter()
            .find(|(_, n, _)| *n == s)
            .map(|(h, _, _)| *h)
    }
}

impl fmt::Display for Hresult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.hex())
    }
}

impl fmt::Debug for Hresult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantics_table_values_and_http() {
        let rows: &[(Hresult, u32, u16)] = &[
            (Hresult::S_OK, 0x0000_0000, 200),
            (Hresult::VDS_S_ALREADY_EXISTS, 0x0004_2714, 200),
            (Hresult::E_INVALIDARG, 0x8007_0057, 400),
            (Hresult::E_ACCESSDENIED, 0x8007_0005, 403),
            (Hresult::E_OUTOFMEMORY, 0x8007_000E, 503),
            (Hresult::VDS_E_NOT_SUPPORTED, 0x8004_2400, 422),
            (Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS, 0x8004_2404, 409),
            (Hresult::VDS_E_OBJECT_NOT_FOUND, 0x8004_2405, 404),
            (Hresult::VDS_E_OPERATION_PENDING, 0x8004_2409, 200),
            (Hresult::VDS_E_OBJECT_DELETED, 0x8004_240B, 410),
            (Hresult::VDS_E_CANCEL_TOO_LATE, 0x8004_240C, 409),
            (Hresult::VDS_E_OPERATION_CANCELED, 0x8004_240D, 409),
            (Hresult::VDS_E_INVALID_OPERATION, 0x8004_2415, 409),
            (Hresult::VDS_E_OBJECT_EXISTS, 0x8004_241D, 409),
            (Hresult::VDS_E_PROVIDER_CACHE_CORRUPT, 0x8004_241F, 503),
            (Hresult::VDS_E_IO_ERROR, 0x8004_242B, 500),
            (Hresult::VDS_E_OBJECT_STATUS_FAILED, 0x8004_2431, 409),
            (Hresult::VDS_E_NOT_ENOUGH_SPACE, 0x8004_240F, 507),
            (Hresult::VDS_E_NAME_NOT_UNIQUE, 0x8004_2701, 409),
            (Hresult::VDS_E_ASSOCIATED_LUNS_EXIST, 0x8004_270B, 409),
            (Hresult::VDS_E_ASSOCIATED_PORTALS_EXIST, 0x8004_270C, 409),
        ];
        for (h, v, http) in rows {
            assert_eq!(h.value(), *v, "{h}");
            assert_eq!(h.http_status(), *http, "{h}");
        }
    }

    /// Every row that names its own status, and the defaults for codes outside the table.
    #[test]
    fn http_status_overrides_and_defaults() {
        let rows: &[(Hresult, u16)] = &[
            (Hresult::E_NOTIMPL, 501),
            (Hresult::E_POINTER, 400),
            (Hresult::E_ACCESSDENIED, 403),
            (Hresult::E_OUTOFMEMORY, 503),
            (Hresult::E_INVALIDARG, 400),
            (Hresult::E_FAIL, 500),
            (Hresult::E_UNEXPECTED, 500),
            (Hresult::VDS_E_NOT_SUPPORTED, 422),
            (Hresult::VDS_E_INITIALIZED_FAILED, 500),
            (Hresult::VDS_E_OBJECT_NOT_FOUND, 404),
            (Hresult::VDS_E_OPERATION_PENDING, 200),
            (Hresult::VDS_E_OBJECT_DELETED, 410),
            (Hresult::VDS_E_NOT_ENOUGH_SPACE, 507),
            (Hresult::VDS_E_UNRECOVERABLE_ERROR, 500),
            (Hresult::VDS_E_PROVIDER_INITIALIZATION_FAILED, 500),
            (Hresult::VDS_E_PROVIDER_CACHE_CORRUPT, 503),
            (Hresult::VDS_E_ACCESS_DENIED, 403),
            (Hresult::VDS_E_IO_ERROR, 500),
            (Hresult::VDS_E_PROVIDER_FAILURE, 500),
            (Hresult::VDS_E_INTERNAL_ERROR, 500),
            (Hresult::VDS_E_PROVIDER_TYPE_NOT_SUPPORTED, 422),
            (Hresult::VDS_E_TIMEOUT, 504),
            (Hresult::VDS_E_DRIVER_INTERNAL_ERROR, 500),
            (Hresult::VDS_E_PROVIDER_INTERNAL_ERROR, 500),
            (Hresult::VDS_E_UNRECOVERABLE_PROVIDER_ERROR, 500),
            (Hresult::VDS_E_INVALID_ISCSI_TARGET_NAME, 400),
            (Hresult::VDS_E_ISCSI_CHAP_SECRET, 400),
            (Hresult::VDS_E_INVALID_IP_ADDRESS, 400),
            (Hresult::VDS_S_GPT_BOOT_MIRRORED_TO_MBR, 409),
            (Hresult::VDS_S_ACCESS_PATH_NOT_DELETED, 200),
            // Outside the table: the defaults.
            (Hresult(0x0004_FFFF), 200),
            (Hresult(0x8004_FFFF), 409),
            (Hresult(0x8005_0001), 500),
            (Hresult::from_win32(10048), 500),
        ];
        for (h, http) in rows {
            assert_eq!(h.http_status(), *http, "{h}");
        }
    }

    #[test]
    fn table_has_every_reference_code_once() {
        let vds = HRESULT_TABLE
            .iter()
            .filter(|(_, n, _)| n.starts_with("VDS_"))
            .count();
        assert_eq!(vds, 383);
        let mut values: Vec<u32> = HRESULT_TABLE.iter().map(|(h, _, _)| h.0).collect();
        values.sort_unstable();
        let before = values.len();
        values.dedup();
        assert_eq!(before, values.len(), "duplicate values in the table");
        assert!(HRESULT_TABLE.iter().all(|(_, _, d)| !d.is_empty()));
    }

    #[test]
    fn display_and_names() {
        assert_eq!(
            Hresult::VDS_E_OBJECT_DELETED.to_string(),
            "VDS_E_OBJECT_DELETED (0x8004240B)"
        );
        // The `_S_` code with the severity bit set is a failure, as the SDK says.
        assert!(Hresult::VDS_S_GPT_BOOT_MIRRORED_TO_MBR.is_failure());
        assert!(Hresult::VDS_S_ALREADY_EXISTS.is_success());
        assert_eq!(
            Hresult::parse("VDS_E_IO_ERROR"),
            Some(Hresult::VDS_E_IO_ERROR)
        );
        assert_eq!(Hresult::parse("0x8004242B"), Some(Hresult::VDS_E_IO_ERROR));
        assert_eq!(Hresult::parse("nope"), None);
    }

    #[test]
    fn win32_conversion() {
        assert_eq!(Hresult::from_win32(10048).value(), 0x8007_2740);
        assert_eq!(Hresult::from_win32(10049).value(), 0x8007_2741);
        assert_eq!(Hresult::from_win32(0), Hresult::S_OK);
        assert_eq!(
            Hresult::from_win32(10048).name(),
            "HRESULT_FROM_WIN32(WSAEADDRINUSE)"
        );
        assert_eq!(Hresult::from_win32(5), Hresult::E_ACCESSDENIED);
        assert_eq!(Hresult::from_win32(87), Hresult::E_INVALIDARG);
        assert_eq!(Hresult::from_win32(4242).name(), "HRESULT_FROM_WIN32(4242)");
        assert_eq!(Hresult::from_win32(10048).http_status(), 500);
    }

    #[test]
    fn errno_mapping() {
        let cases = [
            (libc::EADDRINUSE, 0x8007_2740),
            (libc::EADDRNOTAVAIL, 0x8007_2741),
            (libc::EACCES, 0x8007_0005),
            (libc::ENOENT, 0x8007_0002),
            (libc::ENOSPC, 0x8007_0070),
            (libc::EIO, 0x8007_045D),
            (libc::EEXIST, 0x8007_00B7),
            (libc::EINVAL, 0x8007_0057),
            (libc::ENOMEM, 0x8007_0008),
            (libc::ECONNREFUSED, 0x8007_274D),
        ];
        for (errno, hr) in cases {
            let e = std::io::Error::from_raw_os_error(errno);
            assert_eq!(Hresult::from_io_error(&e).value(), hr, "errno {errno}");
        }
        let e = std::io::Error::other("no errno");
        assert_eq!(Hresult::from_io_error(&e), Hresult::E_FAIL);
    }
}
