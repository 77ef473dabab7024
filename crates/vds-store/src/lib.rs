//! vds-store: the provider's persistent configuration in SQLite (bundled), WAL mode,
//! `synchronous=FULL`: a change is on stable storage when [`Store::write`] returns, so the
//! provider acknowledges only durable changes.
//!
//! Layout (schema version [`SCHEMA_VERSION`], see `MIGRATIONS`): one table per object kind
//! (subsystems, controllers, drives of either kind, named storage pools with their drives, luns with plexes and fault filters, targets with their
//! secrets, portal groups with members, portals), LUN ↔ target mappings with LUN numbers,
//! each LUN's active controllers (`lun_controllers`), persistent-reservation blobs, a key/value `meta` table and `tombstones` (deleted ids with
//! their kind) so that a deleted id answers DELETED rather than NOT_FOUND across restarts.
//!
//! The store is a plain table mapper: it checks nothing about the VDS rules (the provider
//! does) and mirrors whole objects (`put_*` replaces an object's rows).

use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

mod replica;

pub use replica::{decode_row, encode_row, row_key, Replicator, CLUSTER_VERSION_KEY, ROW_PREFIX};
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;
use vds_model::{
    AdvertisedAddress, Backing, BackingKind, Controller, ControllerStatus, Drive, DriveKind,
    DriveStatus, Extent, FaultFilterSpec, FaultOpKind, Health, Hresult, LoadBalancePolicy, Lun,
    LunHints, LunPlex, LunPlexStatus, LunPlexType, LunStatus, LunType, ObjectKind, PoolAttributes,
    Portal, PortalGroup, PortalStatus, RaidType, StoragePool, StoragePoolStatus, StoragePoolType,
    Subsystem, SubsystemStatus, Target, TransitionState,
};

/// What the message of [`StoreError::Stale`] always holds (how a caller that sees only the
/// message tells a lost race from another busy answer).
pub const STALE_MARK: &str = "another gateway changed the array first";

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 8;

/// The store's file name inside the data dir.
pub const STORE_FILE: &str = "vds.sqlite";

/// Migration `i` takes the schema from version `i` to `i + 1` (version 0 = empty file).
/// Every step runs in the one transaction that also records the new version, so a store is
/// either upgraded completely or left as it was.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the original layout.
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE subsystems (
    id TEXT PRIMARY KEY, friendly_name TEXT NOT NULL, identification TEXT NOT NULL,
    flags INTEGER NOT NULL, status INTEGER NOT NULL, health INTEGER NOT NULL,
    supported_raid_types INTEGER NOT NULL, rebuild_priority INTEGER NOT NULL,
    portal_status_settable INTEGER NOT NULL);
CREATE TABLE controllers (
    id TEXT PRIMARY KEY, subsystem TEXT NOT NULL, friendly_name TEXT NOT NULL,
    identification TEXT NOT NULL, status INTEGER NOT NULL, health INTEGER NOT NULL,
    number_of_ports INTEGER NOT NULL);
CREATE TABLE drives (
    id TEXT PRIMARY KEY, subsystem TEXT NOT NULL, friendly_name TEXT NOT NULL,
    identification TEXT NOT NULL, size_bytes INTEGER NOT NULL, flags INTEGER NOT NULL,
    status INTEGER NOT NULL, health INTEGER NOT NULL, bus_number INTEGER NOT NULL,
    slot_number INTEGER NOT NULL, path TEXT NOT NULL);
CREATE TABLE luns (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, subsystem TEXT NOT NULL, drive TEXT NOT NULL,
    friendly_name TEXT NOT NULL UNIQUE, identification TEXT NOT NULL, size_bytes INTEGER NOT NULL,
    unmasking_list TEXT NOT NULL, flags INTEGER NOT NULL, type INTEGER NOT NULL,
    status INTEGER NOT NULL, health INTEGER NOT NULL, transition_state INTEGER NOT NULL,
    rebuild_priority INTEGER NOT NULL, thin INTEGER NOT NULL, backing_kind TEXT NOT NULL,
    backing_path TEXT, block_size INTEGER NOT NULL, backing_dev INTEGER, backing_ino INTEGER,
    owns_file INTEGER NOT NULL);
CREATE TABLE lun_plexes (
    id TEXT PRIMARY KEY, lun TEXT NOT NULL, size_bytes INTEGER NOT NULL, type INTEGER NOT NULL,
    status INTEGER NOT NULL, health INTEGER NOT NULL, transition_state INTEGER NOT NULL,
    flags INTEGER NOT NULL, stripe_size INTEGER NOT NULL, rebuild_priority INTEGER NOT NULL);
CREATE INDEX lun_plexes_lun ON lun_plexes (lun);
CREATE TABLE fault_filters (lun TEXT NOT NULL, seq INTEGER NOT NULL, spec TEXT NOT NULL,
    PRIMARY KEY (lun, seq));
CREATE TABLE pr_state (lun TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE targets (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, subsystem TEXT NOT NULL,
    iscsi_name TEXT NOT NULL UNIQUE, friendly_name TEXT NOT NULL);
CREATE TABLE target_secrets (
    target TEXT NOT NULL, kind TEXT NOT NULL, initiator TEXT NOT NULL, secret BLOB NOT NULL,
    PRIMARY KEY (target, kind, initiator));
CREATE TABLE lun_targets (
    lun TEXT NOT NULL, target TEXT NOT NULL, lun_number INTEGER NOT NULL,
    PRIMARY KEY (lun, target), UNIQUE (target, lun_number));
CREATE INDEX lun_targets_target ON lun_targets (target);
CREATE TABLE portal_groups (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, target TEXT NOT NULL, tag INTEGER NOT NULL,
    UNIQUE (target, tag));
CREATE TABLE portal_group_members (
    portal_group TEXT NOT NULL, portal TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (portal_group, portal));
CREATE INDEX portal_group_members_portal ON portal_group_members (portal);
CREATE TABLE portals (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, subsystem TEXT NOT NULL, address TEXT NOT NULL,
    port INTEGER NOT NULL, status INTEGER NOT NULL, UNIQUE (address, port));
CREATE TABLE tombstones (id TEXT PRIMARY KEY, kind TEXT NOT NULL);
"#,
    // 1 -> 2: read-only LUNs. The column is last (`put_lun` inserts by position) and existing
    // LUNs stay writable.
    r#"
ALTER TABLE luns ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
"#,
    // 2 -> 3: a portal's advertised address (BEHAVIOUR.md §4). Last column, NULL (none) for
    // existing portals.
    r#"
ALTER TABLE portals ADD COLUMN advertise TEXT;
"#,
    // 3 -> 4: LUN hints (BEHAVIOUR.md §14). A LUN without a row has the default hints
    // (write-back cache on, nothing else).
    r#"
CREATE TABLE lun_hints (
    lun TEXT PRIMARY KEY, write_caching INTEGER NOT NULL, write_through INTEGER NOT NULL,
    read_back_verify INTEGER NOT NULL, optimal_read_size INTEGER NOT NULL,
    optimal_read_alignment INTEGER NOT NULL, optimal_write_size INTEGER NOT NULL,
    optimal_write_alignment INTEGER NOT NULL, rebuild_priority INTEGER NOT NULL,
    fast_crash_recovery INTEGER NOT NULL);
"#,
    // 4 -> 5: controllers as ALUA target port groups (BEHAVIOUR.md §14). Each controller gets
    // its group id (1, 2, ... in creation order); each portal the first controller of its
    // subsystem, and a controller's port count is its portals; each LUN every controller of its
    // subsystem as active (what it served before) and the default load-balance policy
    // (VDS_LBP_ROUND_ROBIN_WITH_SUBSET = 3).
    r#"
ALTER TABLE controllers ADD COLUMN port_group INTEGER NOT NULL DEFAULT 0;
UPDATE controllers SET port_group =
    (SELECT COUNT(*) FROM controllers c WHERE c.subsystem = controllers.subsystem
                                          AND c.rowid <= controllers.rowid);
ALTER TABLE portals ADD COLUMN controller TEXT NOT NULL DEFAULT '';
UPDATE portals SET controller = COALESCE(
    (SELECT c.id FROM controllers c WHERE c.subsystem = portals.subsystem
     ORDER BY c.port_group LIMIT 1), '');
UPDATE controllers SET number_of_ports =
    (SELECT COUNT(*) FROM portals p WHERE p.controller = controllers.id);
ALTER TABLE luns ADD COLUMN load_balance INTEGER NOT NULL DEFAULT 3;
CREATE TABLE lun_controllers (lun TEXT NOT NULL, controller TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (lun, controller));
INSERT INTO lun_controllers (lun, controller, seq)
    SELECT l.id, c.id, c.port_group FROM luns l JOIN controllers c ON c.subsystem = l.subsystem;
"#,
    // 5 -> 6: drives of two kinds (BEHAVIOUR.md §15). Last column; every existing drive is the
    // data dir's filesystem, a `dir` drive.
    r#"
ALTER TABLE drives ADD COLUMN kind TEXT NOT NULL DEFAULT 'dir';
"#,
    // 6 -> 7: extent-backed LUNs (BEHAVIOUR.md §15). A plex keeps its place in the LUN
    // (`seq`: plex i of the LUN's store; existing LUNs have one plex, 0); each extent says
    // which part of which column of which plex it holds, on which drive, where. The stripe
    // size is the plex's own `stripe_size`.
    r#"
ALTER TABLE lun_plexes ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE extents (
    lun TEXT NOT NULL, plex TEXT NOT NULL, col INTEGER NOT NULL, seq INTEGER NOT NULL,
    drive TEXT NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (lun, plex, col, seq));
CREATE INDEX extents_drive ON extents (drive);
"#,
    // 7 -> 8: named storage pools (BEHAVIOUR.md §15) and their drives, in order; a drive is in
    // one named pool at most. Attributes are the `VDS_POOL_ATTRIBUTES` members given (NULL:
    // not given). The primordial pool and every pool's figures are derived, never stored.
    r#"
CREATE TABLE pools (
    id TEXT PRIMARY KEY, subsystem TEXT NOT NULL, name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL, default_type INTEGER NOT NULL, raid_type INTEGER,
    thin_provisioned INTEGER, no_single_pof INTEGER, stripe_size INTEGER,
    number_of_columns INTEGER, intended_usage TEXT);
CREATE TABLE pool_drives (
    drive TEXT PRIMARY KEY, pool TEXT NOT NULL, seq INTEGER NOT NULL);
"#,
];

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file was written by a newer vds.
    #[error("the store {path} has schema version {found}, newer than the {supported} this vdsd understands; use a newer vdsd")]
    NewerSchema {
        /// The store file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// What this build writes.
        supported: i64,
    },
    /// The data dir (or its parent) is missing or unusable.
    #[error("data_dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A row that this build cannot read (hand-edited or damaged store).
    #[error("the store holds an invalid row: {0}")]
    BadRow(String),
    /// SQLite failed.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The shared configuration moved on since this store last applied it (another gateway
    /// changed the array first): nothing was written; sync and try again.
    #[error("the shared configuration is at version {found}, this gateway holds {base}: another gateway changed the array first")]
    Stale {
        /// The version this store holds.
        base: u64,
        /// The version found.
        found: u64,
    },
    /// The shared configuration could not be written: nothing was written.
    #[error("the shared configuration could not be written: {0}")]
    Replication(String),
}

impl StoreError {
    /// The HRESULT that reports it (one place for every store failure).
    pub fn hresult(&self) -> Hresult {
        match self {
            StoreError::NewerSchema { .. } => Hresult::VDS_E_BAD_REVISION_NUMBER,
            StoreError::DataDir { source, .. } => Hresult::from_io_error(source),
            StoreError::BadRow(_) => Hresult::VDS_E_BAD_PROVIDER_DATA,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => match e.code {
                // The disk holding the store is full: an OS condition, converted as BEHAVIOUR
                // §1 converts errno values (ENOSPC -> ERROR_DISK_FULL 112 -> 0x80070070), not
                // the pool-capacity answer VDS_E_NOT_ENOUGH_SPACE.
                rusqlite::ErrorCode::DiskFull => Hresult::from_win32(112),
                rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::PermissionDenied => {
                    Hresult::E_ACCESSDENIED
                }
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS
                }
                rusqlite::ErrorCode::SystemIoFailure => Hresult::VDS_E_IO_ERROR,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt => {
                    Hresult::VDS_E_BAD_PROVIDER_DATA
                }
                _ => Hresult::VDS_E_PROVIDER_FAILURE,
            },
            StoreError::Sqlite(_) => Hresult::VDS_E_PROVIDER_FAILURE,
            // Another gateway's change came first: the call may be made again.
            StoreError::Stale { .. } => Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS,
            StoreError::Replication(_) => Hresult::VDS_E_IO_ERROR,
        }
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Which secret of a target a row holds (BEHAVIOUR.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// Target secret for every initiator (`SetSharedSecret` without a name).
    Default,
    /// Target secret for one initiator (`SetSharedSecret` with a name).
    Initiator,
    /// The initiator's secret the target answers with (`RememberInitiatorSharedSecret`).
    Mutual,
}

impl SecretKind {
    fn as_str(self) -> &'static str {
        match self {
            SecretKind::Default => "default",
            SecretKind::Initiator => "initiator",
            SecretKind::Mutual => "mutual",
        }
    }

    fn parse(s: &str) -> Result<SecretKind> {
        Ok(match s {
            "default" => SecretKind::Default,
            "initiator" => SecretKind::Initiator,
            "mutual" => SecretKind::Mutual,
            other => return Err(StoreError::BadRow(format!("secret kind {other:?}"))),
        })
    }
}

/// One stored secret. `Debug` shows its length, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// Target.
    pub target: Uuid,
    /// Kind.
    pub kind: SecretKind,
    /// Initiator name (`""` for the default secret).
    pub initiator: String,
    /// The bytes.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("target", &self.target)
            .field("kind", &self.kind)
            .field("initiator", &self.initiator)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

/// What the store keeps about a LUN beyond its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunRecord {
    /// The LUN (targets and LUN numbers included).
    pub lun: Lun,
    /// Device and inode of the backing file/device when it was last (re)opened.
    pub identity: Option<(u64, u64)>,
    /// Whether vds created the file (and deletes it with the LUN).
    pub owns_file: bool,
}

/// Everything in the store.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Subsystems.
    pub subsystems: Vec<Subsystem>,
    /// Controllers.
    pub controllers: Vec<Controller>,
    /// Drives.
    pub drives: Vec<Drive>,
    /// Named storage pools in creation order (`drives` filled in, figures zero).
    pub pools: Vec<StoragePool>,
    /// LUNs in creation order.
    pub luns: Vec<LunRecord>,
    /// Targets in creation order (`chap_enabled`, `portal_groups`, `luns` filled in).
    pub targets: Vec<Target>,
    /// Secrets.
    pub secrets: Vec<SecretRow>,
    /// Portal groups in creation order.
    pub portal_groups: Vec<PortalGroup>,
    /// Portals in creation order (`portal_groups` filled in).
    pub portals: Vec<Portal>,
    /// Persistent-reservation blobs by LUN.
    pub pr_states: Vec<(Uuid, Vec<u8>)>,
    /// Hints by LUN (LUNs without a row have the default hints).
    pub lun_hints: Vec<(Uuid, LunHints)>,
    /// Deleted ids.
    pub tombstones: Vec<(Uuid, ObjectKind)>,
    /// Key/value settings.
    pub meta: Vec<(String, String)>,
}

/// The open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    data_version: i64,
    seq: i64,
    /// Where every write is replicated before it commits (cluster mode), if anywhere.
    replicator: Option<Box<dyn Replicator>>,
}

fn bad(what: impl Into<String>) -> StoreError {
    StoreError::BadRow(what.into())
}

fn uuid_of(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| bad(format!("id {s:?}")))
}

fn enum_of<T>(v: i64, f: impl Fn(i64) -> Option<T>, what: &str) -> Result<T> {
    f(v).ok_or_else(|| bad(format!("{what} value {v}")))
}

/// Encodes a fault filter as one line of text (the store has no serde).
pub fn encode_filter(f: &FaultFilterSpec) -> String {
    match f {
        FaultFilterSpec::Delay {
            read_ms,
            write_ms,
            flush_ms,
        } => format!("delay {read_ms} {write_ms} {flush_ms}"),
        FaultFilterSpec::Error { ops, after } => {
            let ops: Vec<&str> = ops.iter().map(|o| o.short_name()).collect();
            format!("error {after} {}", ops.join(","))
        }
    }
}

/// Decodes [`encode_filter`]'s text.
pub fn decode_filter(s: &str) -> Option<FaultFilterSpec> {
    let mut it = s.split(' ');
    match it.next()? {
        "delay" => {
            let read_ms = it.next()?.parse().ok()?;
            let write_ms = it.next()?.parse().ok()?;
            let flush_ms = it.next()?.parse().ok()?;
            Some(FaultFilterSpec::Delay {
                read_ms,
                write_ms,
                flush_ms,
            })
        }
        "error" => {
            let after = it.next()?.parse().ok()?;
            let ops = match it.next() {
                Some("") | None => Vec::new(),
                Some(list) => list
                    .split(',')
                    .map(FaultOpKind::parse)
                    .collect::<Option<Vec<_>>>()?,
            };
            Some(FaultFilterSpec::Error { ops, after })
        }
        _ => None,
    }
}

impl Store {
    /// Opens `<data_dir>/vds.sqlite`, creating the data dir (mode 0700, its parent must exist)
    /// and the file (mode 0600) when missing, and migrating an older schema. A store from a
    /// newer schema is refused with [`StoreError::NewerSchema`].
    pub fn open(data_dir: &Path) -> Result<Store> {
        if !data_dir.exists() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(data_dir)
                .map_err(|source| StoreError::DataDir {
                    path: data_dir.to_path_buf(),
                    source,
                })?;
        } else if !data_dir.is_dir() {
            return Err(StoreError::DataDir {
                path: data_dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory"),
            });
        }
        let path = data_dir.join(STORE_FILE);
        // Create the file ourselves so that it (and SQLite's -wal/-shm, which copy its mode)
        // is private: secrets live in it.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::DataDir {
                path: path.clone(),
                source,
            })?;
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Keep the whole store in memory once read (the default 2 MB cache makes every commit
        // re-read B-tree pages once there are thousands of LUNs); pages are allocated lazily.
        conn.pragma_update(None, "cache_size", -65536)?;
        let mut store = Store {
            conn,
            path,
            data_version: 0,
            seq: 0,
            replicator: None,
        };
        store.migrate()?;
        store.seq = store.max_seq()?;
        store.data_version = store.read_data_version()?;
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<()> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
        )?;
        let found: Option<i64> = self
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()?;
        let found = found.unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for step in &MIGRATIONS[found as usize..] {
            tx.execute_batch(step)?;
        }
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [SCHEMA_VERSION],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))?)
    }

    fn max_seq(&self) -> Result<i64> {
        let mut max = 0i64;
        for table in ["luns", "targets", "portal_groups", "portals"] {
            let v: Option<i64> =
                self.conn
                    .query_row(&format!("SELECT MAX(seq) FROM {table}"), [], |r| r.get(0))?;
            max = max.max(v.unwrap_or(0));
        }
        let v: Option<i64> =
            self.conn
                .query_row("SELECT MAX(seq) FROM portal_group_members", [], |r| {
                    r.get(0)
                })?;
        Ok(max.max(v.unwrap_or(0)))
    }

    fn read_data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Whether another process (another connection) committed a change since the last call
    /// (SQLite `PRAGMA data_version`). Our own commits do not count.
    pub fn changed_externally(&mut self) -> Result<bool> {
        let v = self.read_data_version()?;
        let changed = v != self.data_version;
        self.data_version = v;
        Ok(changed)
    }

    /// True when nothing was ever configured (first start).
    pub fn is_empty(&self) -> Result<bool> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM subsystems", [], |r| r.get(0))?;
        Ok(n == 0)
    }

    /// Runs `f` in one transaction and commits it (durably) before returning. On error
    /// nothing is written. With a replicator ([`Store::set_replicator`]) the rows `f` touched
    /// are replicated first, by one compare-and-set from the cluster version this store
    /// holds; the local transaction commits (with the new version) only when it succeeded,
    /// else the answer is [`StoreError::Stale`] or [`StoreError::Replication`].
    pub fn write<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let tx = self.conn.transaction()?;
        let mut t = Tx {
            tx,
            seq: &mut self.seq,
        };
        let out = f(&mut t)?;
        if let Some(rep) = &self.replicator {
            let (set, remove) = replica::touched(&t.tx)?;
            if !set.is_empty() || !remove.is_empty() {
                let base = version_in(&t.tx)?;
                match rep.update(base, &set, &remove) {
                    Ok(Ok(v)) => t.set_meta(CLUSTER_VERSION_KEY, &v.to_string())?,
                    Ok(Err(found)) => return Err(StoreError::Stale { base, found }),
                    Err(e) => return Err(StoreError::Replication(e.to_string())),
                }
            }
        }
        t.tx.commit()?;
        // Our own commit does not change data_version for this connection; nothing to do.
        Ok(out)
    }

    /// From now on every [`Store::write`] is replicated through `rep` (cluster mode).
    pub fn set_replicator(&mut self, rep: Box<dyn Replicator>) -> Result<()> {
        replica::install_triggers(&self.conn)?;
        self.replicator = Some(rep);
        Ok(())
    }

    /// The cluster version this store holds (0: none applied yet).
    pub fn cluster_version(&self) -> Result<u64> {
        version_in(&self.conn)
    }

    /// Makes the replicated tables exactly the `row/` keys of `keys` (other keys are not the
    /// store's and are ignored) and records `version`, in one transaction; the replicator is
    /// not called. A malformed row changes nothing.
    pub fn replace_replicated(&mut self, keys: &[(String, Vec<u8>)], version: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        replica::replace(&tx, keys)?;
        if self.replicator.is_some() {
            // What the triggers noted of this replacement is not a change to replicate.
            tx.execute("DELETE FROM temp.vds_touched", [])?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![CLUSTER_VERSION_KEY, version.to_string()],
        )?;
        tx.commit()?;
        self.seq = self.max_seq()?;
        Ok(())
    }

    /// Reads everything.
    pub fn load(&self) -> Result<Snapshot> {
        let c = &self.conn;
        let mut snap = Snapshot::default();

        let mut st = c.prepare("SELECT key, value FROM meta")?;
        snap.meta = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;

        let mut st = c.prepare(
            "SELECT id, friendly_name, identification, flags, status, health, supported_raid_types,
                    rebuild_priority, portal_status_settable FROM subsystems ORDER BY rowid",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            snap.subsystems.push(Subsystem {
                id: uuid_of(&r.get::<_, String>(0)?)?,
                friendly_name: r.get(1)?,
                identification: r.get(2)?,
                flags: r.get::<_, i64>(3)? as u32,
                status: enum_of(r.get(4)?, SubsystemStatus::from_i64, "subsystem status")?,
                health: enum_of(r.get(5)?, Health::from_i64, "health")?,
                supported_raid_types: r.get::<_, i64>(6)? as u32,
                rebuild_priority: r.get(7)?,
                portal_status_settable: r.get(8)?,
            });
        }

        let mut st = c.prepare(
            "SELECT id, subsystem, friendly_name, identification, status, health, number_of_ports,
                    port_group FROM controllers ORDER BY rowid",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            snap.controllers.push(Controller {
                id: uuid_of(&r.get::<_, String>(0)?)?,
                subsystem: uuid_of(&r.get::<_, String>(1)?)?,
                friendly_name: r.get(2)?,
                identification: r.get(3)?,
                status: enum_of(r.get(4)?, ControllerStatus::from_i64, "controller status")?,
                health: enum_of(r.get(5)?, Health::from_i64, "health")?,
                number_of_ports: r.get(6)?,
                port_group: u16::try_from(r.get::<_, i64>(7)?)
                    .map_err(|_| bad("controller port_group out of range"))?,
            });
        }

        let mut st = c.prepare(
            "SELECT id, subsystem, friendly_name, identification, size_bytes, flags, status, health,
                    bus_number, slot_number, path, kind FROM drives ORDER BY rowid",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            snap.drives.push(Drive {
                id: uuid_of(&r.get::<_, String>(0)?)?,
                subsystem: uuid_of(&r.get::<_, String>(1)?)?,
                friendly_name: r.get(2)?,
                identification: r.get(3)?,
                size_bytes: r.get::<_, i64>(4)? as u64,
                flags: r.get::<_, i64>(5)? as u32,
                status: enum_of(r.get(6)?, DriveStatus::from_i64, "drive status")?,
                health: enum_of(r.get(7)?, Health::from_i64, "health")?,
                bus_number: r.get(8)?,
                slot_number: r.get(9)?,
                path: r.get(10)?,
                kind: DriveKind::parse(&r.get::<_, String>(11)?)
                    .ok_or_else(|| bad("unknown drive kind"))?,
            });
        }

        load_pools(c, &mut snap)?;

        // LUN associations first, then LUNs.
        let mut lun_targets: std::collections::HashMap<Uuid, Vec<(Uuid, u64)>> = Default::default();
        let mut target_luns: std::collections::HashMap<Uuid, Vec<Uuid>> = Default::default();
        let mut st = c.prepare(
            "SELECT lt.lun, lt.target, lt.lun_number FROM lun_targets lt
             JOIN luns l ON l.id = lt.lun ORDER BY l.seq, lt.rowid",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let lun = uuid_of(&r.get::<_, String>(0)?)?;
            let target = uuid_of(&r.get::<_, String>(1)?)?;
            let n = r.get::<_, i64>(2)? as u64;
            lun_targets.entry(lun).or_default().push((target, n));
            target_luns.entry(target).or_default().push(lun);
        }
        let mut plexes: std::collections::HashMap<Uuid, Vec<LunPlex>> = Default::default();
        let mut st = c.prepare(
            "SELECT id, lun, size_bytes, type, status, health, transition_state, flags, stripe_size,
                    rebuild_priority FROM lun_plexes ORDER BY lun, seq, rowid",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let lun = uuid_of(&r.get::<_, String>(1)?)?;
            plexes.entry(lun).or_default().push(LunPlex {
                id: uuid_of(&r.get::<_, String>(0)?)?,
                size_bytes: r.get::<_, i64>(2)? as u64,
                plex_type: enum_of(r.get(3)?, LunPlexType::from_i64, "plex type")?,
                status: enum_of(r.get(4)?, LunPlexStatus::from_i64, "plex status")?,
                health: enum_of(r.get(5)?, Health::from_i64, "health")?,
                transition_state: enum_of(
                    r.get(6)?,
                    TransitionState::from_i64,
                    "transition state",
                )?,
                flags: r.get::<_, i64>(7)? as u32,
                stripe_size: r.get::<_, i64>(8)? as u32,
                rebuild_priority: r.get(9)?,
            });
        }
        let mut extents: std::collections::HashMap<Uuid, Vec<Extent>> = Default::default();
        let mut st = c.prepare(
            "SELECT lun, plex, col, seq, drive, offset, size FROM extents
             ORDER BY lun, plex, col, seq",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let lun = uuid_of(&r.get::<_, String>(0)?)?;
            extents.entry(lun).or_default().push(Extent {
                plex: uuid_of(&r.get::<_, String>(1)?)?,
                column: r.get::<_, i64>(2)? as u32,
                seq: r.get::<_, i64>(3)? as u32,
                drive: uuid_of(&r.get::<_, String>(4)?)?,
                offset: r.get::<_, i64>(5)? as u64,
                size: r.get::<_, i64>(6)? as u64,
            });
        }
        let mut filters: std::collections::HashMap<Uuid, Vec<FaultFilterSpec>> = Default::default();
        let mut st = c.prepare("SELECT lun, spec FROM fault_filters ORDER BY lun, seq")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let lun = uuid_of(&r.get::<_, String>(0)?)?;
            let spec: String = r.get(1)?;
            let f = decode_filter(&spec).ok_or_else(|| bad(format!("fault filter {spec:?}")))?;
            filters.entry(lun).or_default().push(f);
        }
        let mut active: std::collections::HashMap<Uuid, Vec<Uuid>> = Default::default();
        let mut st = c.prepare("SELECT lun, controller FROM lun_controllers ORDER BY lun, seq")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let lun = uuid_of(&r.get::<_, String>(0)?)?;
            active
                .entry(lun)
                .or_default()
                .push(uuid_of(&r.get::<_, String>(1)?)?);
        }
        let mut st = c.prepare(
            "SELECT id, subsystem, drive, friendly_name, identification, size_bytes, unmasking_list,
                    flags, type, status, health, transition_state, rebuild_priority, thin,
                    backing_kind, backing_path, block_size, backing_dev, backing_ino, owns_file,
                    read_only, load_balance
             FROM luns ORDER BY seq",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id = uuid_of(&r.get::<_, String>(0)?)?;
            let kind: String = r.get(14)?;
            let lun_numbers = lun_targets.remove(&id).unwrap_or_default();
            let dev: Option<i64> = r.get(17)?;
            let ino: Option<i64> = r.get(18)?;
            let lun_plexes = plexes.remove(&id).unwrap_or_default();
            // Extents in the LUN's plex order, then column, then position in the column.
            let mut lun_extents = extents.remove(&id).unwrap_or_default();
            lun_extents.sort_by_key(|x| {
                let p = lun_plexes.iter().position(|p| p.id == x.plex);
                (p.unwrap_or(usize::MAX), x.column, x.seq)
            });
            snap.luns.push(LunRecord {
                lun: Lun {
                    id,
                    subsystem: uuid_of(&r.get::<_, String>(1)?)?,
                    drive: uuid_of(&r.get::<_, String>(2)?)?,
                    friendly_name: r.get(3)?,
                    identification: r.get(4)?,
                    size_bytes: r.get::<_, i64>(5)? as u64,
                    unmasking_list: r.get(6)?,
                    flags: r.get::<_, i64>(7)? as u32,
                    lun_type: enum_of(r.get(8)?, LunType::from_i64, "LUN type")?,
                    status: enum_of(r.get(9)?, LunStatus::from_i64, "LUN status")?,
                    health: enum_of(r.get(10)?, Health::from_i64, "health")?,
                    transition_state: enum_of(
                        r.get(11)?,
                        TransitionState::from_i64,
                        "transition state",
                    )?,
                    rebuild_priority: r.get(12)?,
                    thin: r.get(13)?,
                    read_only: r.get(20)?,
                    targets: lun_numbers.iter().map(|(t, _)| *t).collect(),
                    lun_numbers,
                    plexes: lun_plexes,
                    backing: Backing {
                        kind: BackingKind::parse(&kind)
                            .ok_or_else(|| bad(format!("backing kind {kind:?}")))?,
                        path: r.get(15)?,
                    },
                    filters: filters.remove(&id).unwrap_or_default(),
                    block_size: r.get::<_, i64>(16)? as u32,
                    active_controllers: active.remove(&id).unwrap_or_default(),
                    load_balance: enum_of(
                        r.get(21)?,
                        LoadBalancePolicy::from_i64,
                        "load-balance policy",
                    )?,
                    extents: lun_extents,
                },
                identity: dev.zip(ino).map(|(d, i)| (d as u64, i as u64)),
                owns_file: r.get(19)?,
            });
        }

        let mut st = c.prepare("SELECT target, kind, initiator, secret FROM target_secrets")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            snap.secrets.push(SecretRow {
                target: uuid_of(&r.get::<_, String>(0)?)?,
                kind: SecretKind::parse(&r.get::<_, String>(1)?)?,
                initiator: r.get(2)?,
                secret: r.get(3)?,
            });
        }

        let mut members: std::collections::HashMap<Uuid, Vec<Uuid>> = Default::default();
        let mut portal_pgs: std::collections::HashMap<Uuid, Vec<Uuid>> = Default::default();
        let mut st =
            c.prepare("SELECT portal_group, portal FROM portal_group_members ORDER BY seq")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let pg = uuid_of(&r.get::<_, String>(0)?)?;
            let portal = uuid_of(&r.get::<_, String>(1)?)?;
            members.entry(pg).or_default().push(portal);
            portal_pgs.entry(portal).or_default().push(pg);
        }
        let mut target_pgs: std::collections::HashMap<Uuid, Vec<Uuid>> = Default::default();
        let mut st = c.prepare("SELECT id, target, tag FROM portal_groups ORDER BY seq")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id = uuid_of(&r.get::<_, String>(0)?)?;
            let target = uuid_of(&r.get::<_, String>(1)?)?;
            target_pgs.entry(target).or_default().push(id);
            snap.portal_groups.push(PortalGroup {
                id,
                target,
                tag: r.get::<_, i64>(2)? as u16,
                portals: members.remove(&id).unwrap_or_default(),
            });
        }

        let mut st =
            c.prepare("SELECT id, subsystem, iscsi_name, friendly_name FROM targets ORDER BY seq")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id = uuid_of(&r.get::<_, String>(0)?)?;
            let chap_enabled = snap.secrets.iter().any(|s| {
                s.target == id && matches!(s.kind, SecretKind::Default | SecretKind::Initiator)
            });
            snap.targets.push(Target {
                id,
                subsystem: uuid_of(&r.get::<_, String>(1)?)?,
                iscsi_name: r.get(2)?,
                friendly_name: r.get(3)?,
                chap_enabled,
                portal_groups: target_pgs.remove(&id).unwrap_or_default(),
                luns: target_luns.remove(&id).unwrap_or_default(),
            });
        }

        let mut st = c.prepare(
            "SELECT id, subsystem, address, port, status, advertise, controller FROM portals
             ORDER BY seq",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id = uuid_of(&r.get::<_, String>(0)?)?;
            let addr: String = r.get(2)?;
            snap.portals.push(Portal {
                id,
                subsystem: uuid_of(&r.get::<_, String>(1)?)?,
                address: addr
                    .parse::<IpAddr>()
                    .map_err(|_| bad(format!("portal address {addr:?}")))?,
                port: r.get::<_, i64>(3)? as u16,
                status: enum_of(r.get(4)?, PortalStatus::from_i64, "portal status")?,
                advertise: r
                    .get::<_, Option<String>>(5)?
                    .map(|a| AdvertisedAddress::parse(&a).map_err(|e| bad(e.to_string())))
                    .transpose()?,
                controller: uuid_of(&r.get::<_, String>(6)?)?,
                portal_groups: portal_pgs.remove(&id).unwrap_or_default(),
            });
        }

        let mut st = c.prepare("SELECT lun, state FROM pr_state")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            snap.pr_states
                .push((uuid_of(&r.get::<_, String>(0)?)?, r.get(1)?));
        }

        let mut st = c.prepare(
            "SELECT lun, write_caching, write_through, read_back_verify, optimal_read_size,
             optimal_read_alignment, optimal_write_size, optimal_write_alignment,
             rebuild_priority, fast_crash_recovery FROM lun_hints",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let size = |i: usize| -> Result<u32> {
                let v: i64 = r.get(i)?;
                u32::try_from(v).map_err(|_| bad(format!("hint size {v}")))
            };
            snap.lun_hints.push((
                uuid_of(&r.get::<_, String>(0)?)?,
                LunHints {
                    write_caching_enabled: r.get(1)?,
                    write_through_caching_enabled: r.get(2)?,
                    read_back_verify_enabled: r.get(3)?,
                    optimal_read_size: size(4)?,
                    optimal_read_alignment: size(5)?,
                    optimal_write_size: size(6)?,
                    optimal_write_alignment: size(7)?,
                    rebuild_priority: r.get(8)?,
                    fast_crash_recovery_required: r.get(9)?,
                },
            ));
        }

        let mut st = c.prepare("SELECT id, kind FROM tombstones")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let kind: String = r.get(1)?;
            snap.tombstones.push((
                uuid_of(&r.get::<_, String>(0)?)?,
                ObjectKind::parse(&kind).ok_or_else(|| bad(format!("tombstone kind {kind:?}")))?,
            ));
        }
        Ok(snap)
    }

    /// Whether `id` is remembered as deleted, and as what.
    pub fn tombstone(&self, id: Uuid) -> Result<Option<ObjectKind>> {
        let kind: Option<String> = self
            .conn
            .query_row(
                "SELECT kind FROM tombstones WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        kind.map(|k| ObjectKind::parse(&k).ok_or_else(|| bad(format!("tombstone kind {k:?}"))))
            .transpose()
    }
}

/// One open write transaction.
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    seq: &'a mut i64,
}

impl Tx<'_> {
    fn next_seq(&mut self) -> i64 {
        *self.seq += 1;
        *self.seq
    }

    /// The listing position of row `id` of `table`: kept when the row exists (a rewrite must
    /// not move it in listings), the next one otherwise. `table` is one of this module's own
    /// table names, never input.
    fn seq_of(&mut self, table: &'static str, id: &str) -> Result<i64> {
        let seq: Option<i64> = self
            .tx
            .prepare_cached(&format!("SELECT seq FROM {table} WHERE id = ?1"))?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(match seq {
            Some(s) => s,
            None => self.next_seq(),
        })
    }

    /// Sets a key/value setting.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![key, value])?;
        Ok(())
    }

    /// Inserts or replaces a subsystem.
    pub fn put_subsystem(&mut self, s: &Subsystem) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO subsystems VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                s.id.to_string(),
                s.friendly_name,
                s.identification,
                s.flags as i64,
                s.status.value(),
                s.health.value(),
                s.supported_raid_types as i64,
                s.rebuild_priority,
                s.portal_status_settable
            ])?;
        Ok(())
    }

    /// Inserts or replaces a controller.
    pub fn put_controller(&mut self, c: &Controller) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO controllers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                c.id.to_string(),
                c.subsystem.to_string(),
                c.friendly_name,
                c.identification,
                c.status.value(),
                c.health.value(),
                c.number_of_ports,
                c.port_group as i64
            ])?;
        Ok(())
    }

    /// Deletes a drive's row.
    pub fn delete_drive(&mut self, id: Uuid) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM drives WHERE id = ?1")?
            .execute([id.to_string()])?;
        Ok(())
    }

    /// Inserts or replaces a drive.
    pub fn put_drive(&mut self, d: &Drive) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO drives VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                                                      ?12)",
            )?
            .execute(params![
                d.id.to_string(),
                d.subsystem.to_string(),
                d.friendly_name,
                d.identification,
                d.size_bytes as i64,
                d.flags as i64,
                d.status.value(),
                d.health.value(),
                d.bus_number,
                d.slot_number,
                d.path,
                d.kind.short_name()
            ])?;
        Ok(())
    }

    /// Inserts or replaces a named pool with its drives.
    pub fn put_pool(&mut self, p: &StoragePool) -> Result<()> {
        let id = p.id.to_string();
        self.delete_pool(p.id)?;
        let a = &p.attributes;
        self.tx
            .prepare_cached(
                "INSERT INTO pools VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                id,
                p.subsystem.to_string(),
                p.name,
                p.description,
                p.default_type.value(),
                a.raid_type.map(|t| t.value()),
                a.thin_provisioned,
                a.no_single_point_of_failure,
                a.stripe_size,
                a.number_of_columns,
                a.intended_usage
            ])?;
        for (i, d) in p.drives.iter().enumerate() {
            self.tx
                .prepare_cached("INSERT INTO pool_drives VALUES (?1, ?2, ?3)")?
                .execute(params![d.to_string(), id, i as i64])?;
        }
        Ok(())
    }

    /// Deletes a named pool's rows (its drives leave it).
    pub fn delete_pool(&mut self, id: Uuid) -> Result<()> {
        let id = id.to_string();
        self.tx
            .prepare_cached("DELETE FROM pool_drives WHERE pool = ?1")?
            .execute([&id])?;
        self.tx
            .prepare_cached("DELETE FROM pools WHERE id = ?1")?
            .execute([&id])?;
        Ok(())
    }

    /// Inserts or replaces a LUN with its plexes, fault filters and target mappings.
    pub fn put_lun(&mut self, rec: &LunRecord) -> Result<()> {
        let l = &rec.lun;
        let id = l.id.to_string();
        let seq = self.seq_of("luns", &id)?;
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO luns VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                 ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
            )?
            .execute(params![
                id,
                seq,
                l.subsystem.to_string(),
                l.drive.to_string(),
                l.friendly_name,
                l.identification,
                l.size_bytes as i64,
                l.unmasking_list,
                l.flags as i64,
                l.lun_type.value(),
                l.status.value(),
                l.health.value(),
                l.transition_state.value(),
                l.rebuild_priority,
                l.thin,
                l.backing.kind.short_name(),
                l.backing.path,
                l.block_size as i64,
                rec.identity.map(|(d, _)| d as i64),
                rec.identity.map(|(_, i)| i as i64),
                rec.owns_file,
                l.read_only,
                l.load_balance.value()
            ])?;
        self.tx
            .prepare_cached("DELETE FROM lun_plexes WHERE lun = ?1")?
            .execute([&id])?;
        for (i, p) in l.plexes.iter().enumerate() {
            self.tx
                .prepare_cached(
                    "INSERT INTO lun_plexes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    p.id.to_string(),
                    id,
                    p.size_bytes as i64,
                    p.plex_type.value(),
                    p.status.value(),
                    p.health.value(),
                    p.transition_state.value(),
                    p.flags as i64,
                    p.stripe_size as i64,
                    p.rebuild_priority,
                    i as i64
                ])?;
        }
        self.tx
            .prepare_cached("DELETE FROM extents WHERE lun = ?1")?
            .execute([&id])?;
        for x in &l.extents {
            self.tx
                .prepare_cached("INSERT INTO extents VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                .execute(params![
                    id,
                    x.plex.to_string(),
                    x.column as i64,
                    x.seq as i64,
                    x.drive.to_string(),
                    x.offset as i64,
                    x.size as i64
                ])?;
        }
        self.tx
            .prepare_cached("DELETE FROM fault_filters WHERE lun = ?1")?
            .execute([&id])?;
        for (i, f) in l.filters.iter().enumerate() {
            self.tx
                .prepare_cached("INSERT INTO fault_filters VALUES (?1, ?2, ?3)")?
                .execute(params![id, i as i64, encode_filter(f)])?;
        }
        self.tx
            .prepare_cached("DELETE FROM lun_targets WHERE lun = ?1")?
            .execute([&id])?;
        for (t, n) in &l.lun_numbers {
            self.tx
                .prepare_cached("INSERT INTO lun_targets VALUES (?1, ?2, ?3)")?
                .execute(params![id, t.to_string(), *n as i64])?;
        }
        self.tx
            .prepare_cached("DELETE FROM lun_controllers WHERE lun = ?1")?
            .execute([&id])?;
        for (i, c) in l.active_controllers.iter().enumerate() {
            self.tx
                .prepare_cached("INSERT INTO lun_controllers VALUES (?1, ?2, ?3)")?
                .execute(params![id, c.to_string(), i as i64])?;
        }
        Ok(())
    }

    /// Removes a LUN and everything that hangs off it.
    pub fn delete_lun(&mut self, id: Uuid) -> Result<()> {
        let id = id.to_string();
        for sql in [
            "DELETE FROM luns WHERE id = ?1",
            "DELETE FROM lun_plexes WHERE lun = ?1",
            "DELETE FROM extents WHERE lun = ?1",
            "DELETE FROM fault_filters WHERE lun = ?1",
            "DELETE FROM lun_targets WHERE lun = ?1",
            "DELETE FROM pr_state WHERE lun = ?1",
            "DELETE FROM lun_hints WHERE lun = ?1",
            "DELETE FROM lun_controllers WHERE lun = ?1",
        ] {
            self.tx.prepare_cached(sql)?.execute([&id])?;
        }
        Ok(())
    }

    /// Stores the persistent-reservation blob of a LUN.
    pub fn set_pr_state(&mut self, lun: Uuid, state: &[u8]) -> Result<()> {
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO pr_state VALUES (?1, ?2)")?
            .execute(params![lun.to_string(), state])?;
        Ok(())
    }

    /// Stores the hints of a LUN.
    pub fn set_lun_hints(&mut self, lun: Uuid, h: &LunHints) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO lun_hints VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                lun.to_string(),
                h.write_caching_enabled,
                h.write_through_caching_enabled,
                h.read_back_verify_enabled,
                i64::from(h.optimal_read_size),
                i64::from(h.optimal_read_alignment),
                i64::from(h.optimal_write_size),
                i64::from(h.optimal_write_alignment),
                h.rebuild_priority,
                h.fast_crash_recovery_required
            ])?;
        Ok(())
    }

    /// Inserts or replaces a target's row (secrets and associations are separate).
    pub fn put_target(&mut self, t: &Target) -> Result<()> {
        let id = t.id.to_string();
        let seq = self.seq_of("targets", &id)?;
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO targets VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![
                id,
                seq,
                t.subsystem.to_string(),
                t.iscsi_name,
                t.friendly_name
            ])?;
        Ok(())
    }

    /// Removes a target, its secrets and its LUN mappings.
    pub fn delete_target(&mut self, id: Uuid) -> Result<()> {
        let id = id.to_string();
        for sql in [
            "DELETE FROM targets WHERE id = ?1",
            "DELETE FROM target_secrets WHERE target = ?1",
            "DELETE FROM lun_targets WHERE target = ?1",
        ] {
            self.tx.prepare_cached(sql)?.execute([&id])?;
        }
        Ok(())
    }

    /// Sets (`Some`) or clears (`None`) one secret.
    pub fn set_secret(
        &mut self,
        target: Uuid,
        kind: SecretKind,
        initiator: &str,
        secret: Option<&[u8]>,
    ) -> Result<()> {
        match secret {
            Some(s) => {
                self.tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO target_secrets VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![target.to_string(), kind.as_str(), initiator, s])?;
            }
            None => {
                self.tx
                    .prepare_cached(
                        "DELETE FROM target_secrets WHERE target = ?1 AND kind = ?2 AND initiator = ?3",
                    )?
                    .execute(params![target.to_string(), kind.as_str(), initiator])?;
            }
        }
        Ok(())
    }

    /// Inserts or replaces a portal group with its member list.
    pub fn put_portal_group(&mut self, pg: &PortalGroup) -> Result<()> {
        let id = pg.id.to_string();
        let seq = self.seq_of("portal_groups", &id)?;
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO portal_groups VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![id, seq, pg.target.to_string(), pg.tag as i64])?;
        self.tx
            .prepare_cached("DELETE FROM portal_group_members WHERE portal_group = ?1")?
            .execute([&id])?;
        for p in &pg.portals {
            let s = self.next_seq();
            self.tx
                .prepare_cached("INSERT INTO portal_group_members VALUES (?1, ?2, ?3)")?
                .execute(params![id, p.to_string(), s])?;
        }
        Ok(())
    }

    /// Removes a portal group and its memberships.
    pub fn delete_portal_group(&mut self, id: Uuid) -> Result<()> {
        let id = id.to_string();
        self.tx
            .prepare_cached("DELETE FROM portal_groups WHERE id = ?1")?
            .execute([&id])?;
        self.tx
            .prepare_cached("DELETE FROM portal_group_members WHERE portal_group = ?1")?
            .execute([&id])?;
        Ok(())
    }

    /// Inserts or replaces a portal's row.
    pub fn put_portal(&mut self, p: &Portal) -> Result<()> {
        let id = p.id.to_string();
        let seq = self.seq_of("portals", &id)?;
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO portals VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                id,
                seq,
                p.subsystem.to_string(),
                p.address.to_string(),
                p.port as i64,
                p.status.value(),
                p.advertise.as_ref().map(|a| a.as_str()),
                p.controller.to_string()
            ])?;
        Ok(())
    }

    /// Removes a portal and its memberships.
    pub fn delete_portal(&mut self, id: Uuid) -> Result<()> {
        let id = id.to_string();
        self.tx
            .prepare_cached("DELETE FROM portals WHERE id = ?1")?
            .execute([&id])?;
        self.tx
            .prepare_cached("DELETE FROM portal_group_members WHERE portal = ?1")?
            .execute([&id])?;
        Ok(())
    }

    /// Remembers a deleted id.
    pub fn add_tombstone(&mut self, id: Uuid, kind: ObjectKind) -> Result<()> {
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO tombstones VALUES (?1, ?2)")?
            .execute(params![id.to_string(), kind.short_name()])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// The cluster version recorded in `meta` (0 when none).
fn version_in(c: &Connection) -> Result<u64> {
    let v: Option<String> = c
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [CLUSTER_VERSION_KEY],
            |r| r.get(0),
        )
        .optional()?;
    match v {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| bad(format!("{CLUSTER_VERSION_KEY} {v:?} is not a number"))),
    }
}

/// The named pools and their drives (schema 8).
fn load_pools(c: &Connection, snap: &mut Snapshot) -> Result<()> {
    let mut members: std::collections::HashMap<Uuid, Vec<(i64, Uuid)>> = Default::default();
    let mut st = c.prepare("SELECT drive, pool, seq FROM pool_drives")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        members
            .entry(uuid_of(&r.get::<_, String>(1)?)?)
            .or_default()
            .push((r.get(2)?, uuid_of(&r.get::<_, String>(0)?)?));
    }
    let mut st = c.prepare(
        "SELECT id, subsystem, name, description, default_type, raid_type, thin_provisioned,
                no_single_pof, stripe_size, number_of_columns, intended_usage
         FROM pools ORDER BY rowid",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let id = uuid_of(&r.get::<_, String>(0)?)?;
        let mut drives = members.remove(&id).unwrap_or_default();
        drives.sort_by_key(|(s, _)| *s);
        snap.pools.push(StoragePool {
            id,
            subsystem: uuid_of(&r.get::<_, String>(1)?)?,
            name: r.get(2)?,
            description: r.get(3)?,
            pool_type: StoragePoolType::Concrete,
            status: StoragePoolStatus::Online,
            health: Health::Healthy,
            drives: drives.into_iter().map(|(_, d)| d).collect(),
            default_type: enum_of(r.get(4)?, LunType::from_i64, "pool default type")?,
            attributes: PoolAttributes {
                raid_type: r
                    .get::<_, Option<i64>>(5)?
                    .map(|v| enum_of(v, RaidType::from_i64, "pool raid type"))
                    .transpose()?,
                thin_provisioned: r.get(6)?,
                no_single_point_of_failure: r.get(7)?,
                stripe_size: r.get(8)?,
                number_of_columns: r.get(9)?,
                intended_usage: r.get(10)?,
            },
            total_managed: 0,
            consumed: 0,
            remaining: 0,
            provisioned: 0,
            overcommitted: false,
        });
    }
    if let Some(pool) = members.keys().next() {
        return Err(bad(format!(
            "pool_drives names pool {pool}, which is not stored"
        )));
    }
    Ok(())
}
