//! vds-api: the management HTTP API (INTERFACE.md "HTTP API") over [`vds_provider::Provider`].
//! The only crate with wire serde.
//!
//! - [`router`] builds the axum router for a provider; [`serve`] / [`serve_with_shutdown`] run it;
//! - `handlers`: one handler per endpoint (HTTP → `Command` → `Outcome` → HTTP);
//! - `wire`: the JSON objects and request bodies; `sessions`: the JSON of the live sessions
//!   and a LUN's paths; `extract`: body/path/query extraction with
//!   `E_INVALIDARG` answers that name the field; `error`: the error body and HTTP status;
//! - `metrics`: Prometheus `/metrics`; `openapi`: `/v1/openapi.json`;
//! - `console`: the web console's page and assets at `/` and `/console/` (embedded).
//!
//! Access (BEHAVIOUR.md §11, `access`): every request, loopback included, needs
//! `Authorization: Bearer <token>` (`401 E_ACCESSDENIED` and `WWW-Authenticate: Bearer`
//! otherwise), a `Host` that names the API (`403`), and a JSON content type for its body
//! (`415`); only the console's page and assets may be fetched without the token. Bodies are limited to 1 MiB (`413`, `E_INVALIDARG`);
//! [`with_limits`] sets another body limit and a request rate limit (`limits`).

pub mod access;
pub mod config;
pub mod console;
pub mod datapath_metrics;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod sessions;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use vds_provider::Provider;

pub use access::Auth;
pub use error::ApiError;
pub use handlers::AppState;
pub use limits::ApiLimits;
pub use metrics::Metrics;

/// How the router is set up by the daemon.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub auth: Auth,
    /// The address the API is bound to: the `Host` header must name it (or `localhost` with
    /// its port, or one of `hosts`). `None` (in-process routers): any address literal or
    /// `localhost`.
    pub listen: Option<SocketAddr>,
    /// Further host names a client may use (`api_hosts`).
    pub hosts: Vec<String>,
    /// `GET /metrics` without the token (`metrics_public`).
    pub metrics_public: bool,
    /// Event streams end when this turns `true`, so a graceful shutdown is not held open by
    /// `GET /v1/events` clients.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
}

impl ApiConfig {
    /// Every request needs `Authorization: Bearer <token>`.
    pub fn with_token(token: impl Into<String>) -> ApiConfig {
        ApiConfig {
            auth: Auth::Bearer(token.into()),
            listen: None,
            hosts: Vec::new(),
            metrics_public: false,
            shutdown: None,
        }
    }

    /// The access rule for an API bound to `addr`: the bearer `token`, or with `insecure` no
    /// credentials at all, which is refused unless `addr` is a loopback address.
    pub fn for_listen_addr(
        addr: SocketAddr,
        token: Option<String>,
        insecure: bool,
    ) -> Result<ApiConfig, String> {
        let auth = if insecure {
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "--insecure-loopback-api: the API is bound to {addr}, which is not a \
                     loopback address; refusing to serve it without authentication"
                ));
            }
            Auth::InsecureLoopback
        } else {
            match token.filter(|t| !t.is_empty()) {
                Some(t) => Auth::Bearer(t),
                None => return Err("the API needs a bearer token".into()),
            }
        };
        Ok(ApiConfig {
            auth,
            listen: Some(addr),
            hosts: Vec::new(),
            metrics_public: false,
            shutdown: None,
        })
    }
}

/// The API for `provider`.
pub fn router(provider: Arc<Provider>, cfg: ApiConfig) -> Router {
    router_with_metrics(provider, cfg, Arc::new(Metrics::default()))
}

/// Like [`router`], with a metrics registry the caller keeps (tests read it).
pub fn router_with_metrics(
    provider: Arc<Provider>,
    cfg: ApiConfig,
    metrics: Arc<Metrics>,
) -> Router {
    use handlers::*;
    let state = AppState {
        provider,
        metrics: metrics.clone(),
        shutdown: cfg.shutdown.clone(),
    };
    let mut r = Router::new()
        .route("/v1/provider", get(get_provider))
        .route("/v1/provider/reenumerate", post(reenumerate))
        .route("/v1/provider/refresh", post(refresh))
        .route("/v1/provider/version-support", get(get_version_support))
        .route("/v1/config", get(get_config).put(put_config))
        .route("/v1/subsystems", get(list_subsystems))
        .route(
            "/v1/subsystems/{id}",
            get(get_subsystem).patch(patch_subsystem),
        )
        .route("/v1/subsystems/{id}/status", post(set_subsystem_status))
        .route(
            "/v1/subsystems/{id}/controller-status",
            post(set_controller_statuses),
        )
        .route("/v1/subsystems/{id}/interconnects", get(get_interconnects))
        .route(
            "/v1/subsystems/{id}/controllers",
            get(list_controllers).post(add_controller),
        )
        .route(
            "/v1/subsystems/{id}/drives",
            get(list_drives).post(add_drive),
        )
        .route("/v1/subsystems/{id}/drives/{bus}/{slot}", get(get_drive_at))
        .route("/v1/subsystems/{id}/replace-drive", post(replace_drive))
        .route(
            "/v1/subsystems/{id}/pools",
            get(list_pools).post(create_pool),
        )
        .route(
            "/v1/subsystems/{id}/max-lun-size",
            get(subsystem_max_lun_size),
        )
        .route("/v1/pools/{id}", get(get_pool).delete(delete_pool))
        .route("/v1/pools/{id}/drives", get(get_pool_drives))
        .route("/v1/pools/{id}/drive-extents", get(get_pool_drive_extents))
        .route(
            "/v1/pools/{id}/luns",
            get(get_pool_luns).post(create_pool_lun),
        )
        .route("/v1/pools/{id}/max-lun-size", get(pool_max_lun_size))
        .route("/v1/luns/{id}/max-extend-size", get(lun_max_extend_size))
        .route(
            "/v1/subsystems/{id}/maintenance",
            post(subsystem_maintenance),
        )
        .route(
            "/v1/controllers/{id}/maintenance",
            post(controller_maintenance),
        )
        .route("/v1/drives/{id}/maintenance", post(drive_maintenance))
        .route("/v1/luns/{id}/maintenance", post(lun_maintenance))
        .route("/v1/subsystems/{id}/luns", get(list_luns).post(create_lun))
        .route(
            "/v1/subsystems/{id}/targets",
            get(list_targets).post(create_target),
        )
        .route(
            "/v1/subsystems/{id}/portals",
            get(list_portals).post(create_portal),
        )
        .route("/v1/controllers/{id}", get(get_controller))
        .route("/v1/controllers/{id}/status", post(set_controller_status))
        .route("/v1/controllers/{id}/luns", get(get_controller_luns))
        .route(
            "/v1/luns/{id}/controllers",
            get(get_lun_controllers).put(associate_controllers),
        )
        .route(
            "/v1/luns/{id}/load-balance",
            get(get_load_balance).put(set_load_balance),
        )
        .route("/v1/drives/{id}", get(get_drive).delete(remove_drive))
        .route("/v1/drives/{id}/extents", get(get_drive_extents))
        .route("/v1/drives/{id}/faults", put(set_drive_faults))
        .route(
            "/v1/luns/{id}/plexes",
            get(get_lun_plexes).post(add_lun_plex),
        )
        .route("/v1/plexes/{id}", get(get_plex).delete(remove_plex))
        .route(
            "/v1/plexes/{id}/hints",
            get(get_plex_hints).put(set_plex_hints),
        )
        .route("/v1/drives/{id}/flags", put(set_drive_flags))
        .route("/v1/drives/{id}/status", post(set_drive_status))
        .route("/v1/luns", get(list_all_luns))
        .route(
            "/v1/luns/{id}",
            get(get_lun).delete(delete_lun).patch(patch_lun),
        )
        .route("/v1/luns/{id}/status", post(set_lun_status))
        .route("/v1/luns/{id}/extend", post(extend_lun))
        .route("/v1/luns/{id}/shrink", post(shrink_lun))
        .route("/v1/luns/{id}/recover", post(recover_lun))
        .route("/v1/luns/{id}/faults", put(set_lun_faults))
        .route("/v1/luns/{id}/targets", put(set_lun_targets))
        .route("/v1/luns/{id}/identification", get(get_lun_identification))
        .route("/v1/luns/{id}/hints", get(get_lun_hints).put(set_lun_hints))
        .route(
            "/v1/targets/{id}",
            get(get_target).delete(delete_target).patch(patch_target),
        )
        .route("/v1/targets/{id}/shared-secret", put(set_shared_secret))
        .route(
            "/v1/targets/{id}/initiator-secrets/{initiator_name}",
            put(remember_initiator_secret),
        )
        .route("/v1/targets/{id}/initiators", get(get_initiators))
        .route("/v1/targets/{id}/sessions", get(list_target_sessions))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/luns/{id}/paths", get(get_lun_paths))
        .route(
            "/v1/targets/{id}/portal-groups",
            get(list_portal_groups).post(create_portal_group),
        )
        .route(
            "/v1/portal-groups/{id}",
            get(get_portal_group).delete(delete_portal_group),
        )
        .route("/v1/portal-groups/{id}/portals", post(add_portal_to_group))
        .route(
            "/v1/portal-groups/{id}/portals/{portal_id}",
            axum::routing::delete(remove_portal_from_group),
        )
        .route(
            "/v1/portals/{id}",
            get(get_portal).delete(delete_portal).patch(patch_portal),
        )
        .route("/v1/portals/{id}/status", post(set_portal_status))
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/wait", post(wait_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/events", get(events))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics_text))
        .route("/", get(console::index))
        .route("/console/{name}", get(console::asset))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state);
    r = r.layer(middleware::from_fn(read_whole_body));
    // Outside the body reader: nothing of a refused request's body is read.
    let access = access::Access::new(cfg.auth, cfg.listen, cfg.hosts, cfg.metrics_public);
    r = r.layer(middleware::from_fn_with_state(
        Arc::new(access),
        access::guard,
    ));
    r.layer(middleware::from_fn_with_state(metrics, metrics::track))
}

/// Reads a body of known, acceptable length off the connection before the handler runs.
/// Handlers that take no body (refresh, reenumerate, recover, job wait, ...) would otherwise
/// leave one unread when the client sends it after the headers; hyper then closes the
/// keep-alive connection right after the answer, and a client that has already sent its next
/// request on it gets EOF instead of an answer. Oversized and chunked bodies go through as they
/// are (the extractors judge them).
async fn read_whole_body(req: Request, next: Next) -> Response {
    let limit = req
        .extensions()
        .get::<limits::BodyLimit>()
        .map_or(extract::BODY_LIMIT, |l| l.0);
    let len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match len {
        Some(n) if n > 0 && n <= limit as u64 => {
            let (parts, body) = req.into_parts();
            match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => {
                    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                        .await
                }
                Err(e) => ApiError::invalid_arg(format!("request body: could not be read ({e})"))
                    .into_response(),
            }
        }
        _ => next.run(req).await,
    }
}

/// `router` with `limits` applied to every request: the body limit, and the request rate
/// (checked first, so a flood is refused before any body is read or any work is done).
pub fn with_limits(router: Router, limits: ApiLimits) -> Router {
    let r = router.layer(middleware::from_fn_with_state(
        limits.body_limit,
        limits::body_limit,
    ));
    if limits.rate_per_sec == 0 {
        return r;
    }
    r.layer(middleware::from_fn_with_state(
        Arc::new(limits::RateLimiter::new(limits.rate_per_sec, limits.burst)),
        limits::rate_limit,
    ))
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

/// Serves until `signal` completes, then stops accepting and lets open requests finish (set
/// [`ApiConfig::shutdown`] too, so event streams end).
pub async fn serve_with_shutdown(
    listener: tokio::net::TcpListener,
    router: Router,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .await
}
