//! The web console (INTERFACE.md "Web console"): one hand-written page and its assets, embedded
//! in the binary at build time, served at `/` and under `/console/`. Nothing is read from disk:
//! a path that is not one of [`ASSETS`] is `404`, whatever files exist next to the daemon.
//!
//! These are the only routes reachable without the bearer token (`access`), and only by
//! `GET`/`HEAD`: they hold no data. The page asks the operator for the token and sends it with
//! every API call it makes. Every answer carries a strict Content-Security-Policy (scripts and
//! styles from this origin only, no inline script, no `eval`, no framing) and `nosniff`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The prefix of every asset path (never a prefix of `/v1/` or `/metrics`).
pub const PREFIX: &str = "/console/";

/// One embedded file: its name under [`PREFIX`], its content type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page itself, served at `/` (and at `/console/index.html`).
const INDEX: &str = "index.html";

/// Every file the console is made of. The sources live in `console/` at the root of the
/// repository; `include_bytes!` puts them into the binary, so running vds needs no files.
const ASSETS: &[Asset] = &[
    Asset {
        name: INDEX,
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../../console/index.html"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../console/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../console/console.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../../console/favicon.svg"),
    },
];

/// The policy of every console answer: everything from this origin only, no inline script or
/// style, no `eval`, no plugins, never inside a frame, forms post nowhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'";

/// Whether a request may skip the bearer token: a `GET` or `HEAD` of the page or of one of
/// its assets, by its exact path.
pub(crate) fn is_public(method: &Method, path: &str) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    path == "/"
        || path
            .strip_prefix(PREFIX)
            .is_some_and(|name| ASSETS.iter().any(|a| a.name == name))
}

/// `GET /`: the page.
pub async fn index() -> Response {
    serve(INDEX)
}

/// `GET /console/{name}`: one asset, or `404` (nothing outside [`ASSETS`] is ever served).
pub async fn asset(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        let shown: String = name.chars().take(100).collect();
        return ApiError::invalid_arg(format!("no such console file: {shown:?}"))
            .with_status(StatusCode::NOT_FOUND)
            .into_response();
    };
    let mut r = a.body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary: a browser asks again rather than keep an old script.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_files_by_get_are_public() {
        assert!(is_public(&Method::GET, "/"));
        assert!(is_public(&Method::HEAD, "/console/console.js"));
        assert!(is_public(&Method::GET, "/console/index.html"));
        for (m, p) in [
            (Method::POST, "/"),
            (Method::DELETE, "/console/console.js"),
            (Method::GET, "/console/"),
            (Method::GET, "/console/missing.js"),
            (Method::GET, "/console/../v1/luns"),
            (Method::GET, "/console/console.js/x"),
            (Method::GET, "//"),
            (Method::GET, "/v1/luns"),
            (Method::GET, "/metrics"),
            (Method::GET, "/index.html"),
        ] {
            assert!(!is_public(&m, p), "{m} {p}");
        }
    }

    #[test]
    fn the_page_names_only_embedded_assets() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!page.contains("<script>"), "no inline script");
        assert!(!page.contains("style="), "no inline style");
        for part in page
            .split("src=\"")
            .skip(1)
            .chain(page.split("href=\"").skip(1))
        {
            let url = &part[..part.find('"').unwrap()];
            if url.starts_with('#') {
                continue;
            }
            let name = url.strip_prefix(PREFIX).unwrap_or_else(|| panic!("{url}"));
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "{url} is not embedded"
            );
        }
    }
}
