//! One handler per endpoint of INTERFACE.md: each turns HTTP into one provider [`Command`],
//! runs it on a blocking thread, and turns the [`Outcome`] back into HTTP. Each endpoint keeps
//! its own function because its `utoipa` annotation generates the OpenAPI document; what they
//! share lives once in [`AppState`]'s `by_id`, `with_body`, `job_on` and `job_with_body` (the
//! `{id}` of the path, then its object, then body and query, then the command), so a handler
//! names only its command and the read (`get::*`) that checks its object.
//!
//! Shapes of the answers:
//! - a read or synchronous change: `200` and the object (`201` + `Location` for a created
//!   portal; `200` and the existing object for `VDS_S_ALREADY_EXISTS`); a synchronous delete:
//!   `204`;
//! - a call that starts a job: `202`, `Location: /v1/jobs/{id}` and the job; with `?wait=true`
//!   the answer of the finished job: `201` + the created object, `200` + the changed object,
//!   `204` for a delete, or the job's error body;
//! - a failure: the error body (see `error.rs`). A malformed body or query is reported only
//!   after the object of the path has been checked (BEHAVIOUR.md §2).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use vds_model::{
    ControllerStatus, DriveStatus, Hresult, InterconnectFlag, Job, JobOutput, JobState, LunStatus,
    ObjectKind, PortalStatus, SubsystemStatus, VersionSupportFlag,
};
use vds_provider::{BackingSpec, Command, CreateLunArgs, MaintenanceAction, Outcome, Provider};

use crate::config::{ConfigJson, ConfigPlanJson};
use crate::error::ApiError;
use crate::extract::{JsonArg, PathParams, Query};
use crate::metrics::{self, Metrics};
use crate::sessions::{PathJson, SessionJson};
use crate::wire::*;
use uuid::Uuid;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub provider: Arc<Provider>,
    pub metrics: Arc<Metrics>,
    /// Event streams end when this turns `true` (daemon shutdown).
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
}

type ApiResult = Result<Response, ApiError>;

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = (status, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    // The DTOs hold only strings, numbers, bools and string-keyed maps: this cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn list<'a, M: 'a, J: Serialize + From<&'a M>>(items: &'a [M]) -> Vec<u8> {
    to_bytes(&items.iter().map(J::from).collect::<Vec<J>>())
}

/// The JSON of an outcome; `None` for a delete (answered `204`).
fn outcome_bytes(o: &Outcome) -> Option<Vec<u8>> {
    Some(match o {
        Outcome::Provider(p) => to_bytes(&ProviderJson::from(p)),
        Outcome::Subsystems(v) => list::<_, SubsystemJson>(v),
        Outcome::Subsystem(s) => to_bytes(&SubsystemJson::from(s)),
        Outcome::Controllers(v) => list::<_, ControllerJson>(v),
        Outcome::Controller(c) => to_bytes(&ControllerJson::from(c)),
        Outcome::Drives(v) => list::<_, DriveJson>(v),
        Outcome::Drive(d) => to_bytes(&DriveJson::from(d)),
        Outcome::DriveExtents(v) => list::<_, DriveRangeJson>(v),
        Outcome::PoolDriveExtents(v) => list::<_, PoolDriveExtentJson>(v),
        Outcome::Plexes(v) => list::<_, LunPlexJson>(v),
        Outcome::Plex(p) => to_bytes(&LunPlexJson::from(p.as_ref())),
        Outcome::Pools(v) => list::<_, PoolJson>(v),
        Outcome::Pool(p) => to_bytes(&PoolJson::from(p.as_ref())),
        Outcome::Size(n) => to_bytes(&SizeJson { size_bytes: *n }),
        Outcome::Luns(v) => list::<_, LunJson>(v),
        Outcome::Lun(l) => to_bytes(&LunJson::from(l.as_ref())),
        Outcome::Identification(i) => to_bytes(&IdentificationJson::from(i.as_ref())),
        Outcome::Hints(h) => to_bytes(&HintsJson::from(h.as_ref())),
        Outcome::PlexHints(h) => to_bytes(&PlexHintsJson::from(h.as_ref())),
        Outcome::Targets(v) => list::<_, TargetJson>(v),
        Outcome::Target(t) => to_bytes(&TargetJson::from(t)),
        Outcome::PortalGroups(v) => list::<_, PortalGroupJson>(v),
        Outcome::PortalGroup(p) => to_bytes(&PortalGroupJson::from(p)),
        Outcome::Portals(v) => list::<_, PortalJson>(v),
        Outcome::Portal(p) => to_bytes(&PortalJson::from(p)),
        Outcome::Jobs(v) => list::<_, JobJson>(v),
        Outcome::Job(j) => to_bytes(&JobJson::from(j)),
        Outcome::Initiators(v) => to_bytes(v),
        Outcome::Sessions(v) => list::<_, SessionJson>(v),
        Outcome::Paths(v) => list::<_, PathJson>(v),
        Outcome::Interconnects(bits) => to_bytes(&FlagsJson {
            flags: InterconnectFlag::names(*bits),
            value: *bits,
        }),
        Outcome::VersionSupport(bits) => to_bytes(&FlagsJson {
            flags: VersionSupportFlag::names(*bits),
            value: *bits,
        }),
        Outcome::LoadBalance { policy, supported } => {
            to_bytes(&LoadBalanceJson::new(*policy, *supported))
        }
        Outcome::Deleted { .. } => return None,
        Outcome::AlreadyExists(inner) => return outcome_bytes(inner),
        Outcome::Config(d) => to_bytes(&ConfigJson::from(d.as_ref())),
        Outcome::ConfigPlan(steps) => to_bytes(&ConfigPlanJson {
            steps: steps.clone(),
        }),
    })
}

/// Where a created object lives.
fn location_of(o: &Outcome) -> Option<String> {
    match o {
        Outcome::Lun(l) => Some(format!("/v1/luns/{}", l.id)),
        Outcome::Target(t) => Some(format!("/v1/targets/{}", t.id)),
        Outcome::PortalGroup(p) => Some(format!("/v1/portal-groups/{}", p.id)),
        Outcome::Portal(p) => Some(format!("/v1/portals/{}", p.id)),
        Outcome::Controller(c) => Some(format!("/v1/controllers/{}", c.id)),
        Outcome::Drive(d) => Some(format!("/v1/drives/{}", d.id)),
        Outcome::Pool(p) => Some(format!("/v1/pools/{}", p.id)),
        _ => None,
    }
}

fn with_location(mut r: Response, loc: Option<String>) -> Response {
    if let Some(v) = loc.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The answer to a command that did not start a job.
pub fn respond(o: Outcome, created: bool) -> Response {
    match &o {
        Outcome::Deleted { .. } => StatusCode::NO_CONTENT.into_response(),
        Outcome::AlreadyExists(_) => {
            json_response(StatusCode::OK, outcome_bytes(&o).unwrap_or_default())
        }
        _ if created => with_location(
            json_response(StatusCode::CREATED, outcome_bytes(&o).unwrap_or_default()),
            location_of(&o),
        ),
        _ => json_response(StatusCode::OK, outcome_bytes(&o).unwrap_or_default()),
    }
}

/// `202 Accepted`, `Location: /v1/jobs/{id}` and the job.
fn job_accepted(job: &Job) -> Response {
    with_location(
        json_response(StatusCode::ACCEPTED, to_bytes(&JobJson::from(job))),
        Some(format!("/v1/jobs/{}", job.id)),
    )
}

/// The answer of a finished job to `?wait=true`.
pub fn job_finished(job: &Job, created: bool) -> ApiResult {
    match job.state {
        JobState::Succeeded => Ok(match &job.output {
            None | Some(JobOutput::Deleted(_)) => StatusCode::NO_CONTENT.into_response(),
            Some(JobOutput::Lun(l)) => respond(Outcome::Lun(l.clone()), created),
            Some(JobOutput::Target(t)) => respond(Outcome::Target(t.clone()), created),
            Some(JobOutput::PortalGroup(p)) => respond(Outcome::PortalGroup(p.clone()), created),
        }),
        JobState::Failed | JobState::Canceled => Err(ApiError::new(
            job.hresult,
            job.message
                .clone()
                .unwrap_or_else(|| job.hresult.description().to_string()),
        )),
        // A wait without timeout returns an ended job; if not, report it as still pending.
        JobState::Running => Ok(json_response(StatusCode::OK, to_bytes(&JobJson::from(job)))),
    }
}

impl AppState {
    /// Runs one command on a blocking thread (the provider may flush, bind or wait).
    pub async fn apply(&self, cmd: Command) -> Result<Outcome, ApiError> {
        let p = self.provider.clone();
        tokio::task::spawn_blocking(move || p.apply(cmd))
            .await
            .map_err(|e| {
                ApiError::new(Hresult::E_UNEXPECTED, format!("provider call failed: {e}"))
            })?
            .map_err(ApiError::from)
    }

    /// A malformed argument is reported only if the object itself is fine: the probe (a read
    /// of the path's object) answers NOT_FOUND, DELETED or CACHE_CORRUPT first.
    async fn precheck(&self, probe: Command, err: ApiError) -> ApiError {
        match self.apply(probe).await {
            Err(e) => e,
            Ok(_) => err,
        }
    }

    async fn arg<T>(&self, arg: JsonArg<T>, probe: Command) -> Result<T, ApiError> {
        match arg.0 {
            Ok(v) => Ok(v),
            Err(e) => Err(self.precheck(probe, e).await),
        }
    }

    async fn call(&self, cmd: Command) -> ApiResult {
        Ok(respond(self.apply(cmd).await?, false))
    }

    /// The `{id}` of the path → one command, answered synchronously.
    async fn by_id(&self, p: &PathParams, cmd: impl FnOnce(Uuid) -> Command) -> ApiResult {
        self.call(cmd(p.uuid("id")?)).await
    }

    /// A body about the object of the path → one command, answered synchronously. The body
    /// is reported malformed only once `probe` (a [`get`] of the path's object) found it.
    async fn with_body<B>(
        &self,
        p: &PathParams,
        body: JsonArg<B>,
        probe: fn(Uuid) -> Command,
        cmd: impl FnOnce(Uuid, B) -> Command,
    ) -> ApiResult {
        let id = p.uuid("id")?;
        let b = self.arg(body, probe(id)).await?;
        self.call(cmd(id, b)).await
    }

    /// A job on the object of the path; `probe` as for [`AppState::with_body`], for the query.
    async fn job_on(
        &self,
        p: &PathParams,
        q: Query,
        probe: fn(Uuid) -> Command,
        cmd: impl FnOnce(Uuid) -> Command,
        created: bool,
    ) -> ApiResult {
        let id = p.uuid("id")?;
        self.job(cmd(id), q, probe(id), created).await
    }

    /// A job with a body on the object of the path: path, then body, then query are checked.
    async fn job_with_body<B>(
        &self,
        p: &PathParams,
        q: Query,
        body: JsonArg<B>,
        probe: fn(Uuid) -> Command,
        cmd: impl FnOnce(Uuid, B) -> Command,
        created: bool,
    ) -> ApiResult {
        let id = p.uuid("id")?;
        let b = self.arg(body, probe(id)).await?;
        self.job(cmd(id, b), q, probe(id), created).await
    }

    /// A command that starts a job; `?wait=true` answers with the job's end.
    async fn job(&self, cmd: Command, mut q: Query, probe: Command, created: bool) -> ApiResult {
        let wait = match q.take_bool("wait").and_then(|w| q.finish().map(|_| w)) {
            Ok(w) => w,
            Err(e) => return Err(self.precheck(probe, e).await),
        };
        let job = match self.apply(cmd).await? {
            Outcome::Job(j) => j,
            other => return Ok(respond(other, created)),
        };
        if !wait {
            return Ok(job_accepted(&job));
        }
        match self
            .apply(Command::WaitJob {
                id: job.id,
                timeout: None,
            })
            .await?
        {
            Outcome::Job(done) => job_finished(&done, created),
            other => Ok(respond(other, false)),
        }
    }
}

/// The reads of one object by id: the `GET` of each object, and the probes that check the
/// object of a path before its body or query (BEHAVIOUR.md §2).
mod get {
    use uuid::Uuid;
    use vds_provider::Command;

    macro_rules! reads {
        ($($name:ident => $variant:ident,)*) => {
            $(pub fn $name(id: Uuid) -> Command {
                Command::$variant { id }
            })*
        };
    }

    reads! {
        subsystem => GetSubsystem,
        controller => GetController,
        drive => GetDrive,
        pool => GetPool,
        lun => GetLun,
        plex => GetPlex,
        plex_hints => GetPlexHints,
        target => GetTarget,
        portal_group => GetPortalGroup,
        portal => GetPortal,
        job => GetJob,
    }
}

// ---- provider ------------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/provider", tag = "provider",
    responses((status = 200, body = ProviderJson), (status = "5XX", body = ErrorBody)))]
pub async fn get_provider(State(s): State<AppState>) -> ApiResult {
    s.call(Command::GetProvider).await
}

#[utoipa::path(post, path = "/v1/provider/reenumerate", tag = "provider",
    description = "Rediscover subsystems, drives and portals (first half of the cache cure).",
    responses((status = 200, body = ProviderJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn reenumerate(State(s): State<AppState>) -> ApiResult {
    s.call(Command::Reenumerate).await
}

#[utoipa::path(post, path = "/v1/provider/refresh", tag = "provider",
    description = "Re-read the state of every known object; after a reenumerate this cures a corrupt cache.",
    responses((status = 200, body = ProviderJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn refresh(State(s): State<AppState>) -> ApiResult {
    s.call(Command::Refresh).await
}

#[utoipa::path(get, path = "/v1/provider/version-support", tag = "provider",
    description = "IVdsProviderSupport::GetVersionSupport: the VDS_VERSION_SUPPORT_FLAG bits \
                   of the VDS versions whose interfaces this provider implements.",
    responses((status = 200, body = FlagsJson), (status = "5XX", body = ErrorBody)))]
pub async fn get_version_support(State(s): State<AppState>) -> ApiResult {
    s.call(Command::GetVersionSupport).await
}

// ---- the configuration document ------------------------------------------------------------

#[utoipa::path(get, path = "/v1/config", tag = "config",
    description = "The whole configuration as one document (INTERFACE.md \"Configuration documents\"); \
                   CHAP secrets only with include_secrets=true.",
    params(("include_secrets" = Option<bool>, Query, description = "put the CHAP secrets in the document")),
    responses((status = 200, body = ConfigJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_config(State(s): State<AppState>, mut q: Query) -> ApiResult {
    let include_secrets = q.take_bool("include_secrets")?;
    q.finish()?;
    s.call(Command::ExportConfig { include_secrets }).await
}

#[utoipa::path(put, path = "/v1/config", tag = "config",
    description = "Make the array match the document: objects matched by name, created, changed \
                   and deleted in one job and one commit, all or nothing (a job, no output). With \
                   dry_run=true: the plan only, nothing changed.",
    params(("dry_run" = Option<bool>, Query, description = "answer the plan, change nothing"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    request_body = ConfigJson,
    responses((status = 202, body = JobJson), (status = 204, description = "with ?wait=true"),
              (status = 200, body = ConfigPlanJson, description = "with ?dry_run=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn put_config(
    State(s): State<AppState>,
    mut q: Query,
    body: JsonArg<ConfigJson>,
) -> ApiResult {
    let dry_run = q.take_bool("dry_run")?;
    let doc = Box::new(body.0?.into_doc()?);
    if dry_run {
        q.finish()?;
        return s.call(Command::ApplyConfig { doc, dry_run }).await;
    }
    s.job(
        Command::ApplyConfig { doc, dry_run },
        q,
        Command::GetProvider,
        false,
    )
    .await
}

// ---- subsystems, controllers, drives -------------------------------------------------------

#[utoipa::path(get, path = "/v1/subsystems", tag = "subsystem",
    responses((status = 200, body = Vec<SubsystemJson>), (status = "5XX", body = ErrorBody)))]
pub async fn list_subsystems(State(s): State<AppState>) -> ApiResult {
    s.call(Command::ListSubsystems).await
}

#[utoipa::path(get, path = "/v1/subsystems/{id}", tag = "subsystem",
    params(("id" = Uuid, Path, description = "subsystem id")),
    responses((status = 200, body = SubsystemJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_subsystem(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, get::subsystem).await
}

#[utoipa::path(post, path = "/v1/subsystems/{id}/status", tag = "subsystem",
    params(("id" = Uuid, Path, description = "subsystem id")), request_body = StatusRequest,
    responses((status = 200, body = SubsystemJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_subsystem_status(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<StatusBody<SubsystemStatus>>,
) -> ApiResult {
    s.with_body(&p, body, get::subsystem, |id, b| {
        Command::SetSubsystemStatus {
            id,
            status: b.status.value,
        }
    })
    .await
}

#[utoipa::path(patch, path = "/v1/subsystems/{id}", tag = "subsystem",
    description = "IVdsSubSystemNaming::SetFriendlyName. The same name again changes nothing.",
    params(("id" = Uuid, Path, description = "subsystem id")), request_body = PatchSubsystemBody,
    responses((status = 200, body = SubsystemJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn patch_subsystem(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<PatchSubsystemBody>,
) -> ApiResult {
    s.with_body(&p, body, get::subsystem, |id, b| Command::RenameSubsystem {
        id,
        friendly_name: b.friendly_name,
    })
    .await
}

#[utoipa::path(post, path = "/v1/subsystems/{id}/controller-status", tag = "subsystem",
    description = "IVdsSubSystem::SetControllerStatus: every controller of the subsystem in \
                   exactly one of the lists; all change or none. Answers the subsystem's \
                   controllers.",
    params(("id" = Uuid, Path, description = "subsystem id")), request_body = ControllerStatusBody,
    responses((status = 200, body = Vec<ControllerJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_controller_statuses(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<ControllerStatusBody>,
) -> ApiResult {
    s.with_body(&p, body, get::subsystem, |id, b| {
        Command::SetControllerStatuses {
            subsystem: id,
            online: b.online,
            offline: b.offline,
        }
    })
    .await
}

#[utoipa::path(get, path = "/v1/subsystems/{id}/interconnects", tag = "subsystem",
    description = "IVdsSubSystemInterconnect::GetSupportedInterconnects (VDS_INTERCONNECT_FLAG).",
    params(("id" = Uuid, Path, description = "subsystem id")),
    responses((status = 200, body = FlagsJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_interconnects(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetSupportedInterconnects {
        subsystem: id,
    })
    .await
}

#[utoipa::path(get, path = "/v1/subsystems/{id}/controllers", tag = "controller",
    params(("id" = Uuid, Path, description = "subsystem id")),
    responses((status = 200, body = Vec<ControllerJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_controllers(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::ListControllers {
        subsystem: Some(id),
    })
    .await
}

#[utoipa::path(get, path = "/v1/controllers/{id}", tag = "controller",
    params(("id" = Uuid, Path, description = "controller id")),
    responses((status = 200, body = ControllerJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_controller(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, get::controller).await
}

#[utoipa::path(post, path = "/v1/controllers/{id}/status", tag = "controller",
    params(("id" = Uuid, Path, description = "controller id")), request_body = StatusRequest,
    responses((status = 200, body = ControllerJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_controller_status(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<StatusBody<ControllerStatus>>,
) -> ApiResult {
    s.with_body(&p, body, get::controller, |id, b| {
        Command::SetControllerStatus {
            id,
            status: b.status.value,
        }
    })
    .await
}

#[utoipa::path(get, path = "/v1/subsystems/{id}/drives/{bus}/{slot}", tag = "drive",
    description = "IVdsSubSystem::GetDrive(bus, slot): the drive at that internal bus and slot \
                   (the `bus_number` and `slot_number` of the drive); VDS_E_OBJECT_NOT_FOUND \
                   when none is there.",
    params(("id" = Uuid, Path, description = "subsystem id"),
           ("bus" = i16, Path, description = "internal bus number"),
           ("slot" = i16, Path, description = "slot number")),
    responses((status = 200, body = DriveJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_drive_at(State(s): State<AppState>, p: PathParams) -> ApiResult {
    let id = p.uuid("id")?;
    let number = |name: &str| -> Result<i16, ApiError> {
        let text = p.text(name)?;
        text.parse::<i16>().map_err(|e| {
            ApiError::invalid_arg(format!(
                "{name}: {text:?} is not a {name} number (-32768..=32767): {e}"
            ))
        })
    };
    let (bus, slot) = match (number("bus"), number("slot")) {
        (Ok(b), Ok(sl)) => (b, sl),
        (Err(e), _) | (_, Err(e)) => return Err(s.precheck(get::subsystem(id), e).await),
    };
    s.call(Command::GetDriveAt {
        subsystem: id,
        bus,
        slot,
    })
    .await
}

#[utoipa::path(get, path = "/v1/subsystems/{id}/drives", tag = "drive",
    params(("id" = Uuid, Path, description = "subsystem id")),
    responses((status = 200, body = Vec<DriveJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_drives(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::ListDrives {
        subsystem: Some(id),
    })
    .await
}

#[utoipa::path(get, path = "/v1/drives/{id}", tag = "drive",
    params(("id" = Uuid, Path, description = "drive id")),
    responses((status = 200, body = DriveJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_drive(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, get::drive).await
}

#[utoipa::path(get, path = "/v1/drives/{id}/extents", tag = "drive",
    description = "IVdsDrive::QueryExtents: the drive's used ranges (LUN, plex, column) and free ones.",
    params(("id" = Uuid, Path, description = "drive id")),
    responses((status = 200, body = [DriveRangeJson]), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_drive_extents(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetDriveExtents { id }).await
}

#[utoipa::path(get, path = "/v1/luns/{id}/plexes", tag = "lun",
    description = "IVdsLun::QueryPlexes: plex i is the i-th of the LUN, with its extents.",
    params(("id" = Uuid, Path, description = "LUN id")),
    responses((status = 200, body = [LunPlexJson]), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_lun_plexes(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetLunPlexes { id }).await
}

#[utoipa::path(get, path = "/v1/plexes/{id}", tag = "lun",
    description = "IVdsLunPlex::GetProperties and QueryExtents.",
    params(("id" = Uuid, Path, description = "plex id")),
    responses((status = 200, body = LunPlexJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_plex(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetPlex { id }).await
}

#[utoipa::path(get, path = "/v1/plexes/{id}/hints", tag = "lun",
    description = "IVdsLunPlex::QueryHints: the hints of the plex's LUN (hints apply to all its plexes at once), VDS_HINTS members only.",
    params(("id" = Uuid, Path, description = "plex id")),
    responses((status = 200, body = PlexHintsJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_plex_hints(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetPlexHints { id }).await
}

#[utoipa::path(put, path = "/v1/plexes/{id}/hints", tag = "lun",
    description = "IVdsLunPlex::ApplyHints: VDS_HINTS applied to the plex's LUN, so to all its plexes at once, as PUT /v1/luns/{id}/hints; a VDS_HINTS2-only member is E_INVALIDARG naming it.",
    params(("id" = Uuid, Path, description = "plex id")), request_body = HintsBody,
    responses((status = 200, body = PlexHintsJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_plex_hints(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<HintsBody>,
) -> ApiResult {
    s.with_body(&p, body, get::plex_hints, |id, b| Command::SetPlexHints {
        id,
        hints: b.into(),
    })
    .await
}

#[utoipa::path(post, path = "/v1/drives/{id}/status", tag = "drive",
    params(("id" = Uuid, Path, description = "drive id")), request_body = StatusRequest,
    responses((status = 200, body = DriveJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_drive_status(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<StatusBody<DriveStatus>>,
) -> ApiResult {
    s.with_body(&p, body, get::drive, |id, b| Command::SetDriveStatus {
        id,
        status: b.status.value,
    })
    .await
}

#[utoipa::path(post, path = "/v1/subsystems/{id}/drives", tag = "drive",
    description = "Add a drive (BEHAVIOUR.md §15): a directory (`dir`) or a block device or \
                   regular file (`block`) at a resolved path outside the data dir that no other \
                   drive or LUN uses; labelled (`.vds-drive` / the first MiB; over foreign data \
                   only with `force`); bus 0, the lowest free slot.",
    params(("id" = Uuid, Path, description = "subsystem id")), request_body = AddDriveBody,
    responses((status = 201, body = DriveJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn add_drive(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<AddDriveBody>,
) -> ApiResult {
    let subsystem = p.uuid("id")?;
    let b = s.arg(body, get::subsystem(subsystem)).await?;
    let o = s
        .apply(Command::AddDrive {
            subsystem,
            kind: b.kind,
            path: b.path,
            friendly_name: b.friendly_name,
            force: b.force.unwrap_or(false),
        })
        .await?;
    Ok(respond(o, true))
}

#[utoipa::path(delete, path = "/v1/drives/{id}", tag = "drive",
    description = "Remove a drive that holds no LUN (VDS_E_DEVICE_IN_USE otherwise; the data \
                   dir's drive never: VDS_E_NOT_SUPPORTED); its label is wiped.",
    params(("id" = Uuid, Path, description = "drive id")),
    responses((status = 204, description = "removed"), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn remove_drive(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::RemoveDrive { id }).await
}

#[utoipa::path(put, path = "/v1/drives/{id}/flags", tag = "drive",
    description = "IVdsDrive::SetFlags / ClearFlags with VDS_DRF_HOTSPARE. A drive holding a LUN \
                   is not made a spare (VDS_E_DEVICE_IN_USE).",
    params(("id" = Uuid, Path, description = "drive id")), request_body = DriveFlagsBody,
    responses((status = 200, body = DriveJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_drive_flags(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<DriveFlagsBody>,
) -> ApiResult {
    s.with_body(&p, body, get::drive, |id, b| Command::SetDriveFlags {
        id,
        hotspare: b.hotspare,
    })
    .await
}

// ---- LUNs ------------------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/subsystems/{id}/luns", tag = "lun",
    params(("id" = Uuid, Path, description = "subsystem id")),
    responses((status = 200, body = Vec<LunJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_luns(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::ListLuns {
        subsystem: Some(id),
    })
    .await
}

#[utoipa::path(get, path = "/v1/luns", tag = "lun",
    description = "Every LUN of every subsystem, or those that carry a designator (BEHAVIOUR.md §14).",
    params(("identifier" = Option<String>, Query,
            description = "NAA hex (with or without naa.), T10 vendor id (with or without t10.) or serial number; case-insensitive")),
    responses((status = 200, body = Vec<LunJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_all_luns(State(s): State<AppState>, mut q: Query) -> ApiResult {
    let identifier = q.take("identifier");
    q.finish()?;
    match identifier {
        Some(identifier) => s.call(Command::FindLuns { identifier }).await,
        None => s.call(Command::ListLuns { subsystem: None }).await,
    }
}

#[utoipa::path(get, path = "/v1/luns/{id}/identification", tag = "lun",
    description = "IVdsLun::GetIdentificationData: VDS_LUN_INFORMATION from the code that answers INQUIRY and VPD 80/83.",
    params(("id" = Uuid, Path, description = "LUN id")),
    responses((status = 200, body = IdentificationJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_lun_identification(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetLunIdentification { id }).await
}

#[utoipa::path(get, path = "/v1/luns/{id}/hints", tag = "lun",
    description = "IVdsLun2::QueryHints2.",
    params(("id" = Uuid, Path, description = "LUN id")),
    responses((status = 200, body = HintsJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_lun_hints(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetLunHints { id }).await
}

#[utoipa::path(put, path = "/v1/luns/{id}/hints", tag = "lun",
    description = "IVdsLun2::ApplyHints2: the members given are applied; the answer is the LUN's hints with the mask of those applied and the ones not applied.",
    params(("id" = Uuid, Path, description = "LUN id")), request_body = HintsBody,
    responses((status = 200, body = HintsJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_lun_hints(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<HintsBody>,
) -> ApiResult {
    s.with_body(&p, body, get::lun, |id, b| Command::SetLunHints {
        id,
        hints: b.into(),
    })
    .await
}

#[utoipa::path(post, path = "/v1/subsystems/{id}/luns", tag = "lun",
    description = "Create a LUN (a job; output: the LUN).",
    params(("id" = Uuid, Path, description = "subsystem id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    request_body = CreateLunBody,
    responses((status = 202, body = JobJson, description = "job started; Location: /v1/jobs/{id}"),
              (status = 201, body = LunJson, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn create_lun(
    State(s): State<AppState>,
    p: PathParams,
    q: Query,
    body: JsonArg<CreateLunBody>,
) -> ApiResult {
    let cmd = |subsystem, b: CreateLunBody| {
        Command::CreateLun(CreateLunArgs {
            subsystem,
            size_bytes: b.size_bytes,
            friendly_name: b.friendly_name,
            lun_type: b.lun_type.map(|t| t.0),
            thin: b.thin,
            drive: b.drive,
            unmasking_list: b.unmasking_list,
            targets: b.targets,
            backing: b.backing.map(|k| BackingSpec {
                kind: k.kind.map(|k| k.0).unwrap_or(BackingSpec::default().kind),
                path: k.path,
                filters: k.filters.iter().map(Into::into).collect(),
                wipe: k.wipe,
                pool: k.pool,
                image: k.image,
            }),
            read_only: b.read_only,
            hints: b.hints.map(Into::into),
            drives: b.drives,
            plexes: b.plexes,
            stripe_size: b.stripe_size,
            load_balance: b.load_balance.map(|p| p.value),
        })
    };
    s.job_with_body(&p, q, body, get::subsystem, cmd, true)
        .await
}

#[utoipa::path(get, path = "/v1/luns/{id}", tag = "lun",
    params(("id" = Uuid, Path, description = "LUN id")),
    responses((status = 200, body = LunJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_lun(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, get::lun).await
}

#[utoipa::path(delete, path = "/v1/luns/{id}", tag = "lun",
    params(("id" = Uuid, Path, description = "LUN id")),
    responses((status = 204, description = "deleted"), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn delete_lun(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::DeleteLun { id }).await
}

#[utoipa::path(patch, path = "/v1/luns/{id}", tag = "lun",
    params(("id" = Uuid, Path, description = "LUN id")), request_body = PatchLunBody,
    responses((status = 200, body = LunJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn patch_lun(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<PatchLunBody>,
) -> ApiResult {
    s.with_body(&p, body, get::lun, |id, b| Command::PatchLun {
        id,
        friendly_name: b.friendly_name,
        unmasking_list: b.unmasking_list,
        read_only: b.read_only,
    })
    .await
}

#[utoipa::path(post, path = "/v1/subsystems/{id}/controllers", tag = "controller",
    description = "Add a controller: the next ALUA target port group of the subsystem, ONLINE, \
                   no ports until a portal names it, inactive for every existing LUN.",
    params(("id" = Uuid, Path, description = "subsystem id")), request_body = AddControllerBody,
    responses((status = 201, body = ControllerJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn add_controller(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<AddControllerBody>,
) -> ApiResult {
    let subsystem = p.uuid("id")?;
    let b = s.arg(body, get::subsystem(subsystem)).await?;
    let o = s
        .apply(Command::AddController {
            subsystem,
            friendly_name: b.friendly_name,
        })
        .await?;
    Ok(respond(o, true))
}

#[utoipa::path(get, path = "/v1/controllers/{id}/luns", tag = "controller",
    description = "IVdsController::QueryAssociatedLuns: the LUNs for which the controller is active.",
    params(("id" = Uuid, Path, description = "controller id")),
    responses((status = 200, body = Vec<LunJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_controller_luns(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetControllerLuns { id }).await
}

#[utoipa::path(get, path = "/v1/luns/{id}/controllers", tag = "lun",
    description = "IVdsLun::QueryActiveControllers: the controllers for which the LUN is active.",
    params(("id" = Uuid, Path, description = "LUN id")),
    responses((status = 200, body = Vec<ControllerJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_lun_controllers(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetLunControllers { id }).await
}

#[utoipa::path(put, path = "/v1/luns/{id}/controllers", tag = "lun",
    description = "IVdsLun::AssociateControllers: every controller of the subsystem in exactly \
                   one list, at least one active. Every I_T nexus of the LUN then gets UNIT \
                   ATTENTION 06/2A/06 once. Answers the active controllers.",
    params(("id" = Uuid, Path, description = "LUN id")), request_body = AssociateControllersBody,
    responses((status = 200, body = Vec<ControllerJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn associate_controllers(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<AssociateControllersBody>,
) -> ApiResult {
    s.with_body(&p, body, get::lun, |id, b| Command::AssociateControllers {
        id,
        active: b.active,
        inactive: b.inactive,
    })
    .await
}

#[utoipa::path(get, path = "/v1/luns/{id}/load-balance", tag = "lun",
    description = "IVdsLunMpio::GetLoadBalancePolicy and GetSupportedLbPolicies.",
    params(("id" = Uuid, Path, description = "LUN id")),
    responses((status = 200, body = LoadBalanceJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_load_balance(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetLoadBalance { id }).await
}

#[utoipa::path(put, path = "/v1/luns/{id}/load-balance", tag = "lun",
    description = "IVdsLunMpio::SetLoadBalancePolicy: failover (inactive controllers Standby), \
                   round_robin or round_robin_with_subset (inactive controllers \
                   Active/Non-optimized); the other policies are VDS_E_NOT_SUPPORTED.",
    params(("id" = Uuid, Path, description = "LUN id")), request_body = LoadBalanceRequest,
    responses((status = 200, body = LoadBalanceJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_load_balance(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<LoadBalanceBody>,
) -> ApiResult {
    s.with_body(&p, body, get::lun, |id, b| Command::SetLoadBalance {
        id,
        policy: b.policy.value,
    })
    .await
}

#[utoipa::path(post, path = "/v1/luns/{id}/status", tag = "lun",
    params(("id" = Uuid, Path, description = "LUN id")), request_body = StatusRequest,
    responses((status = 200, body = LunJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_lun_status(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<StatusBody<LunStatus>>,
) -> ApiResult {
    s.with_body(&p, body, get::lun, |id, b| Command::SetLunStatus {
        id,
        status: b.status.value,
    })
    .await
}

#[utoipa::path(post, path = "/v1/luns/{id}/extend", tag = "lun",
    description = "Grow by `bytes` (a job; output: the LUN).",
    params(("id" = Uuid, Path, description = "LUN id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    request_body = BytesBody,
    responses((status = 202, body = JobJson), (status = 200, body = LunJson, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn extend_lun(
    State(s): State<AppState>,
    p: PathParams,
    q: Query,
    body: JsonArg<BytesBody>,
) -> ApiResult {
    let cmd = |id, b: BytesBody| match b.drives {
        Some(drives) => Command::ExtendLunOnto {
            id,
            bytes: b.bytes,
            drives,
        },
        None => Command::ExtendLun { id, bytes: b.bytes },
    };
    s.job_with_body(&p, q, body, get::lun, cmd, false).await
}

#[utoipa::path(post, path = "/v1/luns/{id}/shrink", tag = "lun",
    description = "Remove `bytes` from the end (a job; output: the LUN).",
    params(("id" = Uuid, Path, description = "LUN id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    request_body = ShrinkBody,
    responses((status = 202, body = JobJson), (status = 200, body = LunJson, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn shrink_lun(
    State(s): State<AppState>,
    p: PathParams,
    q: Query,
    body: JsonArg<ShrinkBody>,
) -> ApiResult {
    let cmd = |id, b: ShrinkBody| Command::ShrinkLun { id, bytes: b.bytes };
    s.job_with_body(&p, q, body, get::lun, cmd, false).await
}

#[utoipa::path(post, path = "/v1/luns/{id}/recover", tag = "lun",
    description = "Resynchronise a fault-tolerant LUN (a job).",
    params(("id" = Uuid, Path, description = "LUN id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    responses((status = 202, body = JobJson), (status = 200, body = LunJson, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn recover_lun(State(s): State<AppState>, p: PathParams, q: Query) -> ApiResult {
    s.job_on(&p, q, get::lun, |id| Command::RecoverLun { id }, false)
        .await
}

#[utoipa::path(post, path = "/v1/subsystems/{id}/replace-drive", tag = "subsystem",
    description = "IVdsSubSystem::ReplaceDrive: every extent on drive `old` moves to drive `new` (ONLINE, same subsystem, room for them, no extent of those LUNs' other plexes) while the LUNs serve I/O; one ReplaceDisk job over every byte.",
    params(("id" = Uuid, Path, description = "subsystem id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    request_body = ReplaceDriveBody,
    responses((status = 202, body = JobJson), (status = 204, description = "with ?wait=true: the job ended well"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn replace_drive(
    State(s): State<AppState>,
    p: PathParams,
    q: Query,
    body: JsonArg<ReplaceDriveBody>,
) -> ApiResult {
    let cmd = |id, b: ReplaceDriveBody| Command::ReplaceDrive {
        id,
        old: b.old,
        new: b.new,
    };
    s.job_with_body(&p, q, body, get::subsystem, cmd, false)
        .await
}

#[utoipa::path(post, path = "/v1/luns/{id}/plexes", tag = "lun",
    description = "IVdsLun::AddPlex: another LUN (extent-backed, one plex, same subsystem, at least as large, on drives of its own, on no target) becomes a new plex of this one, regenerated by an AddLunPlex job; the other LUN departs and its data is gone.",
    params(("id" = Uuid, Path, description = "LUN id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    request_body = AddPlexBody,
    responses((status = 202, body = JobJson), (status = 204, description = "with ?wait=true: the job ended well"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn add_lun_plex(
    State(s): State<AppState>,
    p: PathParams,
    q: Query,
    body: JsonArg<AddPlexBody>,
) -> ApiResult {
    let cmd = |id, b: AddPlexBody| Command::AddPlex { id, lun: b.lun };
    s.job_with_body(&p, q, body, get::lun, cmd, false).await
}

#[utoipa::path(delete, path = "/v1/plexes/{id}", tag = "lun",
    description = "IVdsLun::RemovePlex: frees a plex of a LUN of several (never the last, nor the last current one, nor while a copy runs); a RemoveLunPlex job, finished when answered.",
    params(("id" = Uuid, Path, description = "plex id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    responses((status = 202, body = JobJson), (status = 204, description = "with ?wait=true: the job ended well"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn remove_plex(State(s): State<AppState>, p: PathParams, q: Query) -> ApiResult {
    s.job_on(&p, q, get::plex, |id| Command::RemovePlex { id }, false)
        .await
}

#[utoipa::path(put, path = "/v1/luns/{id}/faults", tag = "lun",
    description = "Replace the fault filters (only with --enable-fault-injection).",
    params(("id" = Uuid, Path, description = "LUN id")), request_body = FaultsBody,
    responses((status = 200, body = LunJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_lun_faults(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<FaultsBody>,
) -> ApiResult {
    s.with_body(&p, body, get::lun, |id, b| Command::SetLunFaults {
        id,
        filters: b.filters.iter().map(Into::into).collect(),
    })
    .await
}

#[utoipa::path(put, path = "/v1/drives/{id}/faults", tag = "drive",
    description = "Replace the fault filters of every extent on the drive (only with --enable-fault-injection; not stored).",
    params(("id" = Uuid, Path, description = "drive id")), request_body = FaultsBody,
    responses((status = 200, body = DriveJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_drive_faults(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<FaultsBody>,
) -> ApiResult {
    s.with_body(&p, body, get::drive, |id, b| Command::SetDriveFaults {
        id,
        filters: b.filters.iter().map(Into::into).collect(),
    })
    .await
}

#[utoipa::path(put, path = "/v1/luns/{id}/targets", tag = "lun",
    description = "Set the complete set of targets the LUN is exposed through.",
    params(("id" = Uuid, Path, description = "LUN id")), request_body = TargetsBody,
    responses((status = 200, body = LunJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_lun_targets(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<TargetsBody>,
) -> ApiResult {
    s.with_body(&p, body, get::lun, |id, b| Command::SetLunTargets {
        id,
        targets: b.targets,
    })
    .await
}

// ---- targets ---------------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/subsystems/{id}/targets", tag = "target",
    params(("id" = Uuid, Path, description = "subsystem id")),
    responses((status = 200, body = Vec<TargetJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_targets(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::ListTargets {
        subsystem: Some(id),
    })
    .await
}

#[utoipa::path(post, path = "/v1/subsystems/{id}/targets", tag = "target",
    description = "Create a target (a job; output: the target).",
    params(("id" = Uuid, Path, description = "subsystem id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    request_body = CreateTargetBody,
    responses((status = 202, body = JobJson), (status = 201, body = TargetJson, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn create_target(
    State(s): State<AppState>,
    p: PathParams,
    q: Query,
    body: JsonArg<CreateTargetBody>,
) -> ApiResult {
    let cmd = |subsystem, b: CreateTargetBody| Command::CreateTarget {
        subsystem,
        iscsi_name: b.iscsi_name,
        friendly_name: b.friendly_name,
    };
    s.job_with_body(&p, q, body, get::subsystem, cmd, true)
        .await
}

#[utoipa::path(get, path = "/v1/targets/{id}", tag = "target",
    params(("id" = Uuid, Path, description = "target id")),
    responses((status = 200, body = TargetJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_target(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, get::target).await
}

#[utoipa::path(delete, path = "/v1/targets/{id}", tag = "target",
    description = "Delete a target and its portal groups (a job).",
    params(("id" = Uuid, Path, description = "target id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    responses((status = 202, body = JobJson), (status = 204, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn delete_target(State(s): State<AppState>, p: PathParams, q: Query) -> ApiResult {
    s.job_on(&p, q, get::target, |id| Command::DeleteTarget { id }, false)
        .await
}

#[utoipa::path(patch, path = "/v1/targets/{id}", tag = "target",
    params(("id" = Uuid, Path, description = "target id")), request_body = PatchTargetBody,
    responses((status = 200, body = TargetJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn patch_target(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<PatchTargetBody>,
) -> ApiResult {
    s.with_body(&p, body, get::target, |id, b| Command::RenameTarget {
        id,
        friendly_name: b.friendly_name,
    })
    .await
}

#[utoipa::path(put, path = "/v1/targets/{id}/shared-secret", tag = "target",
    description = "Set the target's CHAP secret (absent secret clears; 12 to 16 bytes; never returned).",
    params(("id" = Uuid, Path, description = "target id")), request_body = SharedSecretBody,
    responses((status = 200, body = TargetJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_shared_secret(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<SharedSecretBody>,
) -> ApiResult {
    s.with_body(&p, body, get::target, |id, b| Command::SetSharedSecret {
        id,
        secret: b.secret.map(|s| s.into_bytes().into()),
        initiator_name: b.initiator_name,
    })
    .await
}

#[utoipa::path(put, path = "/v1/targets/{id}/initiator-secrets/{initiator_name}", tag = "target",
    description = "Remember an initiator's secret for mutual CHAP (absent secret forgets it).",
    params(("id" = Uuid, Path, description = "target id"),
           ("initiator_name" = String, Path, description = "initiator IQN")),
    request_body = InitiatorSecretBody,
    responses((status = 200, body = TargetJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn remember_initiator_secret(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<InitiatorSecretBody>,
) -> ApiResult {
    let id = p.uuid("id")?;
    let initiator_name = p.text("initiator_name")?.to_string();
    let b = s.arg(body, get::target(id)).await?;
    s.call(Command::RememberInitiatorSecret {
        id,
        initiator_name,
        secret: b.secret.map(|s| s.into_bytes().into()),
    })
    .await
}

#[utoipa::path(get, path = "/v1/targets/{id}/initiators", tag = "target",
    description = "Names of the connected initiators.",
    params(("id" = Uuid, Path, description = "target id")),
    responses((status = 200, body = Vec<String>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_initiators(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetConnectedInitiators { id })
        .await
}

#[utoipa::path(get, path = "/v1/targets/{id}/sessions", tag = "session",
    description = "The target's logged-in sessions (as GET /v1/sessions).",
    params(("id" = Uuid, Path, description = "target id")),
    responses((status = 200, body = Vec<SessionJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_target_sessions(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::ListSessions { target: Some(id) })
        .await
}

// ---- sessions and paths --------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/sessions", tag = "session",
    description = "Every logged-in normal session: initiator, ISID, TSIH, its connections with \
                   their addresses and negotiated keys, and its command and byte counters.",
    responses((status = 200, body = Vec<SessionJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_sessions(State(s): State<AppState>) -> ApiResult {
    s.call(Command::ListSessions { target: None }).await
}

#[utoipa::path(get, path = "/v1/luns/{id}/paths", tag = "lun",
    description = "IVdsLunMpio::GetPathInfo: one entry per logged-in I_T nexus that can reach \
                   the LUN, with its status (online, standby, failed).",
    params(("id" = Uuid, Path, description = "LUN id")),
    responses((status = 200, body = Vec<PathJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_lun_paths(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetLunPaths { id }).await
}

// ---- portal groups -------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/targets/{id}/portal-groups", tag = "portal_group",
    params(("id" = Uuid, Path, description = "target id")),
    responses((status = 200, body = Vec<PortalGroupJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_portal_groups(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::ListPortalGroups { target: Some(id) })
        .await
}

#[utoipa::path(post, path = "/v1/targets/{id}/portal-groups", tag = "portal_group",
    description = "Create a portal group (a job; output: the portal group).",
    params(("id" = Uuid, Path, description = "target id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    responses((status = 202, body = JobJson), (status = 201, body = PortalGroupJson, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn create_portal_group(State(s): State<AppState>, p: PathParams, q: Query) -> ApiResult {
    s.job_on(
        &p,
        q,
        get::target,
        |target| Command::CreatePortalGroup { target },
        true,
    )
    .await
}

#[utoipa::path(get, path = "/v1/portal-groups/{id}", tag = "portal_group",
    params(("id" = Uuid, Path, description = "portal group id")),
    responses((status = 200, body = PortalGroupJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_portal_group(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, get::portal_group).await
}

#[utoipa::path(delete, path = "/v1/portal-groups/{id}", tag = "portal_group",
    description = "Delete a portal group (a job).",
    params(("id" = Uuid, Path, description = "portal group id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    responses((status = 202, body = JobJson), (status = 204, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn delete_portal_group(State(s): State<AppState>, p: PathParams, q: Query) -> ApiResult {
    s.job_on(
        &p,
        q,
        get::portal_group,
        |id| Command::DeletePortalGroup { id },
        false,
    )
    .await
}

#[utoipa::path(post, path = "/v1/portal-groups/{id}/portals", tag = "portal_group",
    description = "Add a portal (a job; output: the portal group).",
    params(("id" = Uuid, Path, description = "portal group id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    request_body = AddPortalBody,
    responses((status = 202, body = JobJson), (status = 200, body = PortalGroupJson, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn add_portal_to_group(
    State(s): State<AppState>,
    p: PathParams,
    q: Query,
    body: JsonArg<AddPortalBody>,
) -> ApiResult {
    let cmd = |portal_group, b: AddPortalBody| Command::AddPortalToGroup {
        portal_group,
        portal: b.portal,
    };
    s.job_with_body(&p, q, body, get::portal_group, cmd, false)
        .await
}

#[utoipa::path(delete, path = "/v1/portal-groups/{id}/portals/{portal_id}", tag = "portal_group",
    description = "Remove a portal (a job; output: the portal group).",
    params(("id" = Uuid, Path, description = "portal group id"),
           ("portal_id" = Uuid, Path, description = "portal id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    responses((status = 202, body = JobJson), (status = 200, body = PortalGroupJson, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn remove_portal_from_group(
    State(s): State<AppState>,
    p: PathParams,
    q: Query,
) -> ApiResult {
    let id = p.uuid("id")?;
    let portal = p.uuid("portal_id")?;
    let cmd = Command::RemovePortalFromGroup {
        portal_group: id,
        portal,
    };
    s.job(cmd, q, get::portal_group(id), false).await
}

// ---- maintenance (IVdsMaintenance) ----------------------------------------------------------

/// The shared body of the four maintenance endpoints: the object, then the body, then the
/// provider's answer (`VDS_E_NOT_SUPPORTED` with the reason, BEHAVIOUR.md §14).
async fn maintenance(
    s: &AppState,
    p: &PathParams,
    body: JsonArg<MaintenanceBody>,
    kind: ObjectKind,
    probe: fn(Uuid) -> Command,
) -> ApiResult {
    let id = p.uuid("id")?;
    let b = s.arg(body, probe(id)).await?;
    let action = match (b.action, b.count) {
        (MaintenanceActionArg::Start, None) => MaintenanceAction::Start,
        (MaintenanceActionArg::Stop, None) => MaintenanceAction::Stop,
        (MaintenanceActionArg::Pulse, Some(n)) => MaintenanceAction::Pulse(n),
        (MaintenanceActionArg::Pulse, None) => {
            let e = ApiError::invalid_arg("count: a pulse needs a count");
            return Err(s.precheck(probe(id), e).await);
        }
        (_, Some(_)) => {
            let e = ApiError::invalid_arg("count: only a pulse takes a count");
            return Err(s.precheck(probe(id), e).await);
        }
    };
    s.call(Command::Maintenance {
        kind,
        id,
        operation: b.operation.0,
        action,
    })
    .await
}

macro_rules! maintenance_endpoint {
    ($fn:ident, $path:literal, $tag:literal, $what:literal, $kind:ident, $probe:ident) => {
        #[utoipa::path(post, path = $path, tag = $tag,
            description = concat!("IVdsMaintenance on a ", $what, ": StartMaintenance, \
                StopMaintenance or PulseMaintenance(count). A software array has no light, \
                alarm, spindle or separate device to ping: after the object and the body are \
                checked, every operation answers VDS_E_NOT_SUPPORTED with the reason."),
            params(("id" = Uuid, Path, description = concat!($what, " id"))),
            request_body = MaintenanceBody,
            responses((status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
        pub async fn $fn(
            State(s): State<AppState>,
            p: PathParams,
            body: JsonArg<MaintenanceBody>,
        ) -> ApiResult {
            maintenance(&s, &p, body, ObjectKind::$kind, get::$probe).await
        }
    };
}

maintenance_endpoint!(
    subsystem_maintenance,
    "/v1/subsystems/{id}/maintenance",
    "subsystem",
    "subsystem",
    Subsystem,
    subsystem
);
maintenance_endpoint!(
    controller_maintenance,
    "/v1/controllers/{id}/maintenance",
    "controller",
    "controller",
    Controller,
    controller
);
maintenance_endpoint!(
    drive_maintenance,
    "/v1/drives/{id}/maintenance",
    "drive",
    "drive",
    Drive,
    drive
);
maintenance_endpoint!(
    lun_maintenance,
    "/v1/luns/{id}/maintenance",
    "lun",
    "LUN",
    Lun,
    lun
);

// ---- portals ---------------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/subsystems/{id}/portals", tag = "portal",
    params(("id" = Uuid, Path, description = "subsystem id")),
    responses((status = 200, body = Vec<PortalJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_portals(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::ListPortals {
        subsystem: Some(id),
    })
    .await
}

#[utoipa::path(post, path = "/v1/subsystems/{id}/portals", tag = "portal",
    description = "Declare a portal; it starts offline. The same address and port again answers 200 with the existing portal.",
    params(("id" = Uuid, Path, description = "subsystem id")), request_body = CreatePortalBody,
    responses((status = 201, body = PortalJson), (status = 200, body = PortalJson, description = "VDS_S_ALREADY_EXISTS"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn create_portal(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<CreatePortalBody>,
) -> ApiResult {
    let subsystem = p.uuid("id")?;
    let b = s.arg(body, get::subsystem(subsystem)).await?;
    let o = s
        .apply(Command::CreatePortal {
            subsystem,
            address: b.address,
            port: b.port,
            advertise: b.advertise,
            controller: b.controller,
        })
        .await?;
    Ok(respond(o, true))
}

#[utoipa::path(patch, path = "/v1/portals/{id}", tag = "portal",
    description = "Set (`\"host:port\"`) or clear (`null`) the address SendTargets reports for the portal.",
    params(("id" = Uuid, Path, description = "portal id")), request_body = PatchPortalBody,
    responses((status = 200, body = PortalJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn patch_portal(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<PatchPortalBody>,
) -> ApiResult {
    s.with_body(&p, body, get::portal, |id, b| Command::PatchPortal {
        id,
        advertise: b.advertise,
    })
    .await
}

#[utoipa::path(get, path = "/v1/portals/{id}", tag = "portal",
    params(("id" = Uuid, Path, description = "portal id")),
    responses((status = 200, body = PortalJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_portal(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, get::portal).await
}

#[utoipa::path(delete, path = "/v1/portals/{id}", tag = "portal",
    params(("id" = Uuid, Path, description = "portal id")),
    responses((status = 204, description = "deleted"), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn delete_portal(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::DeletePortal { id }).await
}

#[utoipa::path(post, path = "/v1/portals/{id}/status", tag = "portal",
    params(("id" = Uuid, Path, description = "portal id")), request_body = StatusRequest,
    responses((status = 200, body = PortalJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn set_portal_status(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<StatusBody<PortalStatus>>,
) -> ApiResult {
    s.with_body(&p, body, get::portal, |id, b| Command::SetPortalStatus {
        id,
        status: b.status.value,
    })
    .await
}

// ---- jobs ------------------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/jobs", tag = "job",
    responses((status = 200, body = Vec<JobJson>), (status = "5XX", body = ErrorBody)))]
pub async fn list_jobs(State(s): State<AppState>) -> ApiResult {
    s.call(Command::ListJobs).await
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "job",
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, body = JobJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_job(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, get::job).await
}

#[utoipa::path(post, path = "/v1/jobs/{id}/wait", tag = "job",
    description = "Block until the job ends (or `timeout_ms` passes) and return it.",
    params(("id" = Uuid, Path, description = "job id"),
           ("timeout_ms" = Option<u64>, Query, description = "longest wait in milliseconds")),
    responses((status = 200, body = JobJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn wait_job(State(s): State<AppState>, p: PathParams, mut q: Query) -> ApiResult {
    let id = p.uuid("id")?;
    let timeout = match q.take_u64("timeout_ms").and_then(|t| q.finish().map(|_| t)) {
        Ok(t) => t.map(Duration::from_millis),
        Err(e) => return Err(s.precheck(get::job(id), e).await),
    };
    s.call(Command::WaitJob { id, timeout }).await
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "job",
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, body = JobJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn cancel_job(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::CancelJob { id }).await
}

// ---- events, metrics, documentation --------------------------------------------------------

/// Ends when the shutdown flag turns true (never when there is none, or its sender is gone).
async fn shutdown_signal(rx: Option<tokio::sync::watch::Receiver<bool>>) {
    let Some(mut rx) = rx else {
        return futures::future::pending().await;
    };
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return futures::future::pending().await;
        }
    }
}

#[utoipa::path(get, path = "/v1/events", tag = "events",
    description = "Server-sent events: one JSON object per change. A subscriber too slow to keep up gets an event named `lagged` with the number of events it missed.",
    responses((status = 200, content_type = "text/event-stream", body = EventJson)))]
pub async fn events(
    State(s): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.provider.subscribe();
    let guard = s.metrics.stream_opened();
    let metrics = s.metrics.clone();
    let stream = BroadcastStream::new(rx)
        .map(move |item| {
            let _open = &guard;
            let ev = match item {
                Ok(e) => {
                    metrics.event_sent();
                    SseEvent::default()
                        .data(serde_json::to_string(&EventJson::from(&e)).unwrap_or_default())
                }
                Err(BroadcastStreamRecvError::Lagged(n)) => SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"lagged\":{n}}}")),
            };
            Ok(ev)
        })
        .take_until(shutdown_signal(s.shutdown.clone()));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[utoipa::path(get, path = "/metrics", tag = "metrics",
    description = "Prometheus text format.",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics_text(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    s.metrics.render_api(&mut out);
    let p = s.provider.clone();
    let provider_part = tokio::task::spawn_blocking(move || {
        let mut o = String::new();
        metrics::render_provider(&p, &mut o);
        crate::datapath_metrics::render(&p, &mut o);
        o
    })
    .await
    .unwrap_or_default();
    out.push_str(&provider_part);
    let mut r = out.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "documentation",
    responses((status = 200, content_type = "application/json", description = "this document")))]
pub async fn openapi_json() -> Response {
    json_response(StatusCode::OK, crate::openapi::document().into_bytes())
}

/// Unknown route: `404` with an `E_INVALIDARG` body (not VDS_E_OBJECT_NOT_FOUND: no object
/// was named).
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::invalid_arg(format!("no such endpoint: {method} {}", uri.path()))
        .with_status(StatusCode::NOT_FOUND)
}

/// Known route, wrong method: `405` with an `E_INVALIDARG` body.
pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::invalid_arg(format!("method {method} is not allowed on {}", uri.path()))
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

// ---- storage pools (BEHAVIOUR.md §15) -------------------------------------------------------

#[utoipa::path(get, path = "/v1/subsystems/{id}/pools", tag = "pool",
    description = "IVdsHwProviderStoragePools::QueryStoragePools: the subsystem's primordial pool \
                   (every added drive that is not a hot spare) first, then its named pools.",
    params(("id" = Uuid, Path, description = "subsystem id")),
    responses((status = 200, body = Vec<PoolJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn list_pools(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |subsystem| Command::ListPools { subsystem })
        .await
}

#[utoipa::path(post, path = "/v1/subsystems/{id}/pools", tag = "pool",
    description = "Create a named pool of added drives (each in no other named pool; no hot \
                   spare, not the data dir's drive).",
    params(("id" = Uuid, Path, description = "subsystem id")), request_body = CreatePoolBody,
    responses((status = 201, body = PoolJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn create_pool(
    State(s): State<AppState>,
    p: PathParams,
    body: JsonArg<CreatePoolBody>,
) -> ApiResult {
    let subsystem = p.uuid("id")?;
    let b = s.arg(body, get::subsystem(subsystem)).await?;
    let o = s
        .apply(Command::CreatePool(vds_provider::PoolArgs {
            subsystem,
            friendly_name: b.friendly_name,
            description: b.description,
            drives: b.drives,
            default_type: b.default_type.map(|t| t.0),
            attributes: b.attributes.as_ref().map(Into::into).unwrap_or_default(),
        }))
        .await?;
    Ok(respond(o, true))
}

#[utoipa::path(get, path = "/v1/pools/{id}", tag = "pool",
    description = "IVdsStoragePool::GetProperties and GetAttributes; the figures are derived from \
                   the drives and their extents now.",
    params(("id" = Uuid, Path, description = "pool id")),
    responses((status = 200, body = PoolJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_pool(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, get::pool).await
}

#[utoipa::path(delete, path = "/v1/pools/{id}", tag = "pool",
    description = "Delete a named pool that no LUN uses (VDS_E_ASSOCIATED_LUNS_EXIST otherwise; \
                   the primordial pool: VDS_E_NOT_SUPPORTED).",
    params(("id" = Uuid, Path, description = "pool id")),
    responses((status = 204, description = "deleted"), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn delete_pool(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::DeletePool { id }).await
}

#[utoipa::path(get, path = "/v1/pools/{id}/drives", tag = "pool",
    description = "The pool's drives, in its order.",
    params(("id" = Uuid, Path, description = "pool id")),
    responses((status = 200, body = Vec<DriveJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_pool_drives(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetPoolDrives { id }).await
}

#[utoipa::path(get, path = "/v1/pools/{id}/drive-extents", tag = "pool",
    description = "IVdsStoragePool::QueryDriveExtents: every used and free range of every drive of the pool (VDS_STORAGE_POOL_DRIVE_EXTENT), in the pool's drive order, each drive's as GET /v1/drives/{id}/extents answers them; per drive they add up to its capacity.",
    params(("id" = Uuid, Path, description = "pool id")),
    responses((status = 200, body = Vec<PoolDriveExtentJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_pool_drive_extents(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetPoolDriveExtents { id }).await
}

#[utoipa::path(get, path = "/v1/pools/{id}/luns", tag = "pool",
    description = "IVdsStoragePool::QueryAllocatedLuns: the LUNs with an extent on the pool's drives.",
    params(("id" = Uuid, Path, description = "pool id")),
    responses((status = 200, body = Vec<LunJson>), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn get_pool_luns(State(s): State<AppState>, p: PathParams) -> ApiResult {
    s.by_id(&p, |id| Command::GetPoolLuns { id }).await
}

#[utoipa::path(post, path = "/v1/pools/{id}/luns", tag = "pool",
    description = "IVdsHwProviderStoragePools::CreateLunInStoragePool (a job; output: the LUN): \
                   the type defaults to the pool's; the drives are the caller's (all in the \
                   pool) or chosen among the pool's, the roomiest first.",
    params(("id" = Uuid, Path, description = "pool id"),
           ("wait" = Option<bool>, Query, description = "answer when the job ends")),
    request_body = CreatePoolLunBody,
    responses((status = 202, body = JobJson, description = "job started; Location: /v1/jobs/{id}"),
              (status = 201, body = LunJson, description = "with ?wait=true"),
              (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn create_pool_lun(
    State(s): State<AppState>,
    p: PathParams,
    q: Query,
    body: JsonArg<CreatePoolLunBody>,
) -> ApiResult {
    let cmd = |pool, b: CreatePoolLunBody| Command::CreateLunInPool {
        pool,
        args: CreateLunArgs {
            subsystem: Uuid::nil(),
            size_bytes: b.size_bytes,
            friendly_name: b.friendly_name,
            lun_type: b.lun_type.map(|t| t.0),
            thin: b.thin,
            drive: None,
            unmasking_list: b.unmasking_list,
            targets: b.targets,
            backing: None,
            read_only: b.read_only,
            hints: b.hints.map(Into::into),
            drives: b.drives,
            plexes: b.plexes,
            stripe_size: b.stripe_size,
            load_balance: None,
        },
    };
    s.job_with_body(&p, q, body, get::pool, cmd, true).await
}

/// The query of `max-lun-size`: `type`, `drives` (comma-separated ids), `plexes`,
/// `stripe_size` (the subsystem and pool left to the caller).
fn max_size_query(q: &mut Query) -> Result<vds_provider::MaxSizeArgs, ApiError> {
    let lun_type = q
        .take("type")
        .map(|t| {
            vds_model::LunType::parse(&t).map_err(|e| ApiError::invalid_arg(format!("type: {e}")))
        })
        .transpose()?;
    let drives = q
        .take("drives")
        .map(|d| {
            d.split(',')
                .enumerate()
                .map(|(i, x)| {
                    Uuid::parse_str(x.trim()).map_err(|e| {
                        ApiError::invalid_arg(format!(
                            "drives[{i}]: {x:?} is not an object id: {e}"
                        ))
                    })
                })
                .collect::<Result<Vec<Uuid>, ApiError>>()
        })
        .transpose()?;
    let plexes = q
        .take_u64("plexes")?
        .map(|p| {
            u32::try_from(p)
                .map_err(|_| ApiError::invalid_arg(format!("plexes: {p} is out of range")))
        })
        .transpose()?;
    let stripe_size = q.take_u64("stripe_size")?;
    Ok(vds_provider::MaxSizeArgs {
        subsystem: None,
        pool: None,
        lun_type,
        drives,
        plexes,
        stripe_size,
    })
}

#[utoipa::path(get, path = "/v1/subsystems/{id}/max-lun-size", tag = "pool",
    description = "IVdsSubSystem::QueryMaxLunCreateSize: the largest size a CreateLun with these \
                   arguments gets now (one block more answers VDS_E_NOT_ENOUGH_SPACE); without \
                   drives, a file LUN's (the size limit).",
    params(("id" = Uuid, Path, description = "subsystem id"),
           ("type" = Option<String>, Query, description = "LUN type (default simple)"),
           ("drives" = Option<String>, Query, description = "drive ids, comma-separated, in order"),
           ("plexes" = Option<u32>, Query, description = "plexes of a mirror or raid10"),
           ("stripe_size" = Option<u64>, Query, description = "stripe size")),
    responses((status = 200, body = SizeJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn subsystem_max_lun_size(
    State(s): State<AppState>,
    p: PathParams,
    mut q: Query,
) -> ApiResult {
    let id = p.uuid("id")?;
    let parsed = max_size_query(&mut q).and_then(|v| q.finish().map(|()| v));
    let args = match parsed {
        Ok(v) => v,
        Err(e) => return Err(s.precheck(get::subsystem(id), e).await),
    };
    s.call(Command::MaxLunSize(vds_provider::MaxSizeArgs {
        subsystem: Some(id),
        ..args
    }))
    .await
}

#[utoipa::path(get, path = "/v1/pools/{id}/max-lun-size", tag = "pool",
    description = "IVdsHwProviderStoragePools::QueryMaxLunCreateSizeInStoragePool: as the \
                   subsystem's, on the pool's drives; the type defaults to the pool's.",
    params(("id" = Uuid, Path, description = "pool id"),
           ("type" = Option<String>, Query, description = "LUN type (default: the pool's)"),
           ("drives" = Option<String>, Query, description = "drive ids of the pool, comma-separated"),
           ("plexes" = Option<u32>, Query, description = "plexes of a mirror or raid10"),
           ("stripe_size" = Option<u64>, Query, description = "stripe size")),
    responses((status = 200, body = SizeJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn pool_max_lun_size(
    State(s): State<AppState>,
    p: PathParams,
    mut q: Query,
) -> ApiResult {
    let id = p.uuid("id")?;
    let parsed = max_size_query(&mut q).and_then(|v| q.finish().map(|()| v));
    let args = match parsed {
        Ok(v) => v,
        Err(e) => return Err(s.precheck(get::pool(id), e).await),
    };
    s.call(Command::MaxLunSize(vds_provider::MaxSizeArgs {
        pool: Some(id),
        ..args
    }))
    .await
}

#[utoipa::path(get, path = "/v1/luns/{id}/max-extend-size", tag = "lun",
    description = "IVdsLun::QueryMaxLunExtendSize: the most bytes an extend adds now (one block \
                   more answers VDS_E_NOT_ENOUGH_SPACE); `drives` for a span LUN growing onto them.",
    params(("id" = Uuid, Path, description = "LUN id"),
           ("drives" = Option<String>, Query, description = "drive ids, comma-separated")),
    responses((status = 200, body = SizeJson), (status = "4XX", body = ErrorBody), (status = "5XX", body = ErrorBody)))]
pub async fn lun_max_extend_size(
    State(s): State<AppState>,
    p: PathParams,
    mut q: Query,
) -> ApiResult {
    let id = p.uuid("id")?;
    let parsed = max_size_query(&mut q).and_then(|a| {
        if a.lun_type.is_some() || a.plexes.is_some() || a.stripe_size.is_some() {
            return Err(ApiError::invalid_arg(
                "query: an extend keeps the LUN's type, plexes and stripe size; only drives",
            ));
        }
        q.finish().map(|()| a.drives)
    });
    let drives = match parsed {
        Ok(v) => v,
        Err(e) => return Err(s.precheck(get::lun(id), e).await),
    };
    s.call(Command::MaxExtendSize { id, drives }).await
}
