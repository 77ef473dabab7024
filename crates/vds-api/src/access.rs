//! Who may call the API (BEHAVIOUR.md §11), checked before any handler runs, in this order:
//!
//! 1. the `Host` header names the API itself (its own address, `localhost` with its port, or a
//!    name the operator listed), else `403 E_ACCESSDENIED`: a web page that rebinds its DNS name
//!    to 127.0.0.1 still sends its own name, so it never reaches a handler;
//! 2. `Authorization: Bearer <token>`, compared in constant time, else `401 E_ACCESSDENIED` with
//!    `WWW-Authenticate: Bearer` (`GET /metrics` may be public by configuration; a `GET` of the
//!    web console's page or of one of its embedded assets is always public: they hold no data,
//!    and the page sends the token with every API call it makes);
//! 3. a request with a body says `Content-Type: application/json`, else `415 E_INVALIDARG`: an
//!    HTML form or a `text/plain` fetch (the "simple" requests a browser sends cross-origin
//!    without asking) never reaches a handler.
//!
//! `--insecure-loopback-api` ([`Auth::InsecureLoopback`]) skips step 2 only, for an API bound to
//! loopback, and warns once a minute while requests are served that way.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use vds_model::Hresult;

use crate::error::ApiError;

/// Who may call the API.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Every request needs `Authorization: Bearer <token>`.
    Bearer(String),
    /// No credentials: development on a loopback-bound API only (`--insecure-loopback-api`).
    InsecureLoopback,
}

/// The token is a secret: it never appears in a log line or a panic message.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::InsecureLoopback => f.write_str("InsecureLoopback"),
        }
    }
}

/// How often the insecure mode repeats its warning while it is used.
const INSECURE_WARN_EVERY: Duration = Duration::from_secs(60);

/// What the access layer checks (built once per router).
#[derive(Debug)]
pub(crate) struct Access {
    pub auth: Auth,
    /// The address the API listens on (`None`: any `Host` that is an IP address literal or
    /// `localhost`, for routers not bound to one socket, e.g. in-process tests).
    pub listen: Option<SocketAddr>,
    /// Further host names (lower case) the operator allows (`api_hosts`).
    pub hosts: Vec<String>,
    pub metrics_public: bool,
    /// Milliseconds since `start` of the last insecure-mode warning (0: never).
    last_warn_ms: AtomicU64,
    start: Instant,
}

impl Access {
    pub fn new(
        auth: Auth,
        listen: Option<SocketAddr>,
        hosts: Vec<String>,
        metrics_public: bool,
    ) -> Access {
        Access {
            auth,
            listen,
            hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
            metrics_public,
            last_warn_ms: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    /// Whether `host` (the `Host` header's value) names this API.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, port) = split_host_port(&host);
        let port_ok = |want: u16| port.is_none_or(|p| p == want);
        if self.hosts.iter().any(|h| *h == name) {
            // A listed name may come with or without a port (a reverse proxy may drop it).
            return self.listen.is_none_or(|l| port_ok(l.port()));
        }
        let ip = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name)
            .parse::<IpAddr>()
            .ok();
        let Some(listen) = self.listen else {
            return ip.is_some() || name == "localhost";
        };
        // The port must be the API's own: a browser always sends it for a non-default port.
        if port != Some(listen.port()) {
            return false;
        }
        if name == "localhost" {
            return listen.ip().is_loopback() || listen.ip().is_unspecified();
        }
        match ip {
            // Bound to every address: any literal address of this host reaches it; a DNS
            // rebinding attack always carries a name, never a literal.
            Some(_) if listen.ip().is_unspecified() => true,
            Some(ip) => ip == listen.ip() || ip.to_canonical() == listen.ip(),
            None => false,
        }
    }

    /// `Ok` if the bearer token in `headers` is right (or none is needed for this request).
    fn authorised(&self, headers: &HeaderMap, method: &Method, path: &str) -> Result<(), ApiError> {
        if crate::console::is_public(method, path) {
            return Ok(());
        }
        let token = match &self.auth {
            Auth::InsecureLoopback => {
                self.warn_insecure();
                return Ok(());
            }
            Auth::Bearer(t) => t,
        };
        if self.metrics_public && path == "/metrics" {
            return Ok(());
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        let why = match given {
            // `ct_eq` on slices of different lengths is false without looking at the bytes;
            // the length of the token is not the secret.
            Some(g) if bool::from(g.as_bytes().ct_eq(token.as_bytes())) => return Ok(()),
            Some(_) => "the bearer token is not valid",
            None => "this API requires Authorization: Bearer <token> (see <data-dir>/api-token)",
        };
        Err(ApiError::new(Hresult::E_ACCESSDENIED, why).with_status(StatusCode::UNAUTHORIZED))
    }

    /// Logs the insecure-mode warning at most once a minute.
    fn warn_insecure(&self) {
        let now = (self.start.elapsed().as_millis() as u64).max(1);
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= INSECURE_WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_warn_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "the management API is serving requests WITHOUT authentication \
                 (--insecure-loopback-api): any local process can manage this array"
            );
        }
    }
}

/// `host[:port]` or `[v6]:port` → (host, port). A port that does not parse counts as none, so
/// `host:junk` matches nothing that needs a port.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if s.starts_with('[') {
        return match s.find(']') {
            Some(i) => {
                let port = s[i + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
                (&s[..=i], port)
            }
            None => (s, None),
        };
    }
    match s.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address, no port.
        Some((h, _)) if h.contains(':') => (s, None),
        Some((h, p)) => (h, p.parse().ok()),
        None => (s, None),
    }
}

/// Whether the request carries a body: a length above zero, chunked, or (HTTP/2, in-process
/// requests) a body stream that is not known to be empty.
fn has_body(headers: &HeaderMap, body: &axum::body::Body) -> bool {
    use axum::body::HttpBody;
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim() != "0");
    let hint = body.size_hint();
    len.unwrap_or(false)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || hint.lower() > 0
        || (hint.upper() != Some(0) && !body.is_end_stream())
}

/// `Ok` unless the request has a body that is not declared `application/json`.
fn json_body(headers: &HeaderMap, has_body: bool) -> Result<(), ApiError> {
    if !has_body {
        return Ok(());
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = ct.as_deref().map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if essence.as_deref() == Some("application/json") {
        return Ok(());
    }
    let found = match ct {
        Some(c) => format!("found {:?}", c.chars().take(100).collect::<String>()),
        None => "there is none".to_string(),
    };
    Err(ApiError::invalid_arg(format!(
        "request body: Content-Type must be application/json, {found}"
    ))
    .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE))
}

/// The middleware: Host, then token, then content type (module docs).
pub(crate) async fn guard(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if let Some(host) = headers.get(header::HOST) {
        let ok = host.to_str().is_ok_and(|h| access.host_allowed(h));
        if !ok {
            let shown: String = String::from_utf8_lossy(host.as_bytes())
                .chars()
                .take(100)
                .collect();
            return ApiError::new(
                Hresult::E_ACCESSDENIED,
                format!(
                    "Host {shown:?} is not this API's address, localhost or a name in api_hosts"
                ),
            )
            .into_response();
        }
    }
    if let Err(e) = access.authorised(headers, req.method(), req.uri().path()) {
        return e.into_response();
    }
    if let Err(e) = json_body(headers, has_body(headers, req.body())) {
        return e.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(listen: &str, hosts: &[&str]) -> Access {
        Access::new(
            Auth::Bearer("t".repeat(20)),
            Some(listen.parse().unwrap()),
            hosts.iter().map(|s| s.to_string()).collect(),
            false,
        )
    }

    #[test]
    fn host_must_name_the_api() {
        let a = access("127.0.0.2:3280", &["array.example"]);
        for ok in [
            "127.0.0.2:3280",
            "localhost:3280",
            "LOCALHOST:3280",
            "array.example",
            "array.example:3280",
        ] {
            assert!(a.host_allowed(ok), "{ok}");
        }
        for bad in [
            "127.0.0.2",
            "127.0.0.1:3280",
            "localhost",
            "localhost:80",
            "evil.example:3280",
            "array.example:81",
            "127.0.0.2:3280x",
            "",
        ] {
            assert!(!a.host_allowed(bad), "{bad}");
        }
        let any = access("0.0.0.0:3280", &[]);
        assert!(any.host_allowed("10.1.2.3:3280"));
        assert!(any.host_allowed("localhost:3280"));
        assert!(!any.host_allowed("rebind.example:3280"));
        let v6 = access("[::1]:3280", &[]);
        assert!(v6.host_allowed("[::1]:3280"));
        assert!(v6.host_allowed("localhost:3280"));
        assert!(!v6.host_allowed("[::2]:3280"));
    }

    #[test]
    fn bearer_scheme_and_token() {
        let a = access("127.0.0.1:1", &[]);
        let mut h = HeaderMap::new();
        let st = |h: &HeaderMap| {
            a.authorised(h, &Method::GET, "/v1/provider")
                .map_err(|e| e.status())
        };
        assert_eq!(st(&h), Err(StatusCode::UNAUTHORIZED));
        h.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert_eq!(st(&h), Err(StatusCode::UNAUTHORIZED));
        h.insert(
            header::AUTHORIZATION,
            format!("bearer {}", "t".repeat(20)).parse().unwrap(),
        );
        assert_eq!(st(&h), Ok(()));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {}", "t".repeat(20)).parse().unwrap(),
        );
        assert_eq!(st(&h), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(
            format!("{:?}", a.auth),
            "Bearer(<redacted>)",
            "Debug never shows the token"
        );
    }

    #[test]
    fn only_json_bodies() {
        let mut h = HeaderMap::new();
        let empty = axum::body::Body::empty();
        assert!(!has_body(&h, &empty));
        assert!(
            json_body(&h, false).is_ok(),
            "no body, no content type needed"
        );
        assert!(has_body(&h, &axum::body::Body::from("{}")));
        h.insert(header::CONTENT_LENGTH, "2".parse().unwrap());
        assert!(has_body(&h, &empty), "the header says so");
        assert_eq!(
            json_body(&h, true).unwrap_err().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        assert!(json_body(&h, true).is_err());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(json_body(&h, true).is_err());
        h.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(json_body(&h, true).is_ok());
    }
}
