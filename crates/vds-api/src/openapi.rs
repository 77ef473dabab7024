//! `GET /v1/openapi.json`: the OpenAPI 3.1 document generated from the handlers' annotations
//! and the wire types (utoipa). Every endpoint of the router is listed here; a test checks
//! the list against INTERFACE.md.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::config::*;
use crate::handlers::*;
use crate::sessions::*;
use crate::wire::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vds management API",
        description = "A software iSCSI storage array managed through the VDS hardware-provider \
                       model. Errors: `{\"error\": {\"hresult\", \"name\", \"message\"}}` with the \
                       HTTP status of the HRESULT. Enumerations are written as short names and \
                       accepted as short name, VDS constant or integer. Every request \
                       carries `Authorization: Bearer <token>` (the `api_token` of the daemon's \
                       config, or `<data-dir>/api-token`): missing or wrong answers 401 \
                       E_ACCESSDENIED; a foreign `Host` answers 403; a body that is not \
                       `application/json` answers 415."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        get_provider, reenumerate, refresh, get_version_support, get_config, put_config,
        list_subsystems, get_subsystem, patch_subsystem, set_subsystem_status,
        set_controller_statuses, get_interconnects,
        list_controllers, get_controller, set_controller_status, add_controller,
        get_controller_luns, get_lun_controllers, associate_controllers, get_load_balance,
        set_load_balance,
        list_drives, get_drive, set_drive_status, get_drive_at, add_drive, remove_drive, replace_drive,
        set_drive_flags, get_drive_extents, get_lun_plexes, get_plex, get_plex_hints, set_plex_hints, add_lun_plex, remove_plex,
        set_drive_faults,
        list_pools, create_pool, get_pool, delete_pool, get_pool_drives, get_pool_drive_extents, get_pool_luns,
        create_pool_lun, subsystem_max_lun_size, pool_max_lun_size, lun_max_extend_size,
        subsystem_maintenance, controller_maintenance, drive_maintenance, lun_maintenance,
        list_luns, list_all_luns, create_lun, get_lun, delete_lun, patch_lun, set_lun_status,
        extend_lun, shrink_lun, recover_lun, set_lun_faults, set_lun_targets,
        get_lun_identification, get_lun_hints, set_lun_hints,
        list_targets, create_target, get_target, delete_target, patch_target,
        set_shared_secret, remember_initiator_secret, get_initiators, list_target_sessions,
        list_sessions, get_lun_paths,
        list_portal_groups, create_portal_group, get_portal_group, delete_portal_group,
        add_portal_to_group, remove_portal_from_group,
        list_portals, create_portal, get_portal, patch_portal, delete_portal, set_portal_status,
        list_jobs, get_job, wait_job, cancel_job,
        events, metrics_text, openapi_json,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, EnumValue, StatusRequest,
        ConfigJson, ConfigPortalJson, ConfigTargetJson, ConfigChapJson, ConfigSecretJson,
        ConfigPortalGroupJson, ConfigLunJson, ConfigBackingJson, ConfigLunTargetJson, ConfigPlanJson, ConfigHintsJson,
        ProviderJson, SubsystemJson, ControllerJson, DriveJson, LunJson, PlexJson, BackingJson,
        LunPlexJson, ExtentJson, DriveRangeJson, PoolDriveExtentJson, PoolJson, PoolAttributesJson,
        PoolAttributesOut, CreatePoolBody, CreatePoolLunBody, SizeJson, ShrinkBody,
        TargetJson, PortalGroupJson, PortalJson, JobJson, JobOutputJson, DeletedJson, EventJson,
        CreateLunBody, BackingBody, FaultFilterBody, DelayBody, ErrorFaultBody, PatchLunBody,
        BytesBody, AddPlexBody, ReplaceDriveBody, FaultsBody, TargetsBody, CreateTargetBody, PatchTargetBody, SharedSecretBody,
        InitiatorSecretBody, AddPortalBody, CreatePortalBody, PatchPortalBody,
        PatchSubsystemBody, ControllerStatusBody, FlagsJson, MaintenanceBody, MaintenanceActionArg,
        SessionJson, ConnectionJson, KeysJson, CountersJson, PathJson, PathIdJson,
        IdentificationJson, InterconnectJson, InterconnectPortJson, StorageIdentifierJson,
        HintsBody, HintsJson, PlexHintsJson, NotAppliedJson,
        AddControllerBody, AddDriveBody, DriveFlagsBody, AssociateControllersBody, LoadBalanceRequest, LoadBalanceJson,
    )),
    tags(
        (name = "provider"), (name = "config"), (name = "subsystem"), (name = "controller"), (name = "drive"),
        (name = "lun"), (name = "target"), (name = "portal_group"), (name = "portal"),
        (name = "job"), (name = "session"), (name = "events"), (name = "metrics"),
        (name = "documentation"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme every operation requires (BEHAVIOUR §11).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token of <data-dir>/api-token (or api_token of the config file)",
                    ))
                    .build(),
            ),
        );
        if openapi.security.as_ref().is_none_or(|s| s.is_empty()) {
            openapi.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
        }
    }
}

/// The document as JSON (built once).
pub fn document() -> String {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
    .clone()
}
