//! Request extraction that never answers with axum's plain-text rejections: the body (JSON,
//! at most 1 MiB), path ids (UUIDs) and query flags each fail with an `E_INVALIDARG` error body
//! that names the offending field.
//!
//! A malformed body is not answered at once: [`JsonArg`] hands the handler a `Result`, so the
//! handler can first check the object the path names (BEHAVIOUR.md §2: not found, deleted and
//! cache corrupt come before a malformed argument).
//!
//! The `Content-Type` is not checked (`curl -d` sends a form type): the body is JSON or it is
//! rejected for what it is. Unknown query parameters are rejected by the handlers that take
//! parameters (`?wait`, `?timeout_ms`).

use std::collections::BTreeMap;

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1 << 20;

/// A JSON body, parsed into `T`, or the `E_INVALIDARG` that says why not. An empty body reads
/// as `{}` (so a missing required field is named rather than "EOF").
#[derive(Debug)]
pub struct JsonArg<T>(pub Result<T, ApiError>);

fn too_large(limit: usize) -> ApiError {
    let human = if limit & ((1 << 20) - 1) == 0 {
        format!(" ({} MiB)", limit >> 20)
    } else if limit & 1023 == 0 {
        format!(" ({} KiB)", limit >> 10)
    } else {
        String::new()
    };
    ApiError::invalid_arg(format!(
        "request body: larger than the limit of {limit} bytes{human}"
    ))
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonArg<T> {
    /// Only an oversized body is rejected outright (nothing about the object can change that).
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        // `with_limits` may set another limit for the whole router.
        let limit = req
            .extensions()
            .get::<crate::limits::BodyLimit>()
            .map_or(BODY_LIMIT, |l| l.0);
        if let Some(len) = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > limit as u64 {
                return Err(too_large(limit));
            }
        }
        let mut stream = req.into_body().into_data_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::invalid_arg(format!("request body: could not be read ({e})"))
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(JsonArg(parse_json(&buf)))
    }
}

/// Parses a body; errors name the JSON path of the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // Every body is an object; serde would also build a struct from an array, which no
    // client means.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') && serde_json::from_slice::<serde_json::Value>(bytes).is_ok() {
        return Err(ApiError::invalid_arg(
            "request body: expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(v) => {
            // Trailing garbage after the value is malformed too.
            de.end().map_err(|e| {
                ApiError::invalid_arg(format!("request body: {}", strip_position(&e)))
            })?;
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let what = strip_position(&inner);
            let message = if inner.is_syntax() || inner.is_eof() {
                format!(
                    "request body: malformed JSON: {what} (line {}, column {})",
                    inner.line(),
                    inner.column()
                )
            } else if path.is_empty() || path == "." {
                format!("request body: {what}")
            } else {
                format!("{path}: {what}")
            };
            Err(ApiError::invalid_arg(message))
        }
    }
}

/// serde_json appends " at line L column C"; the field path says more to a person.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The path parameters of the route, percent-decoded.
#[derive(Debug, Clone)]
pub struct PathParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match RawPathParams::from_request_parts(parts, state).await {
            Ok(p) => Ok(PathParams(
                p.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )),
            Err(e) => Err(ApiError::invalid_arg(format!("path: {}", e.body_text()))),
        }
    }
}

impl PathParams {
    /// The raw text of parameter `name`.
    pub fn text(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::invalid_arg(format!("path: no parameter {name}")))
    }

    /// Parameter `name` as an object id.
    pub fn uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        let text = self.text(name)?;
        Uuid::parse_str(text).map_err(|e| {
            ApiError::invalid_arg(format!("{name}: {text:?} is not an object id (UUID): {e}"))
        })
    }
}

/// The query string as `name → value`. Handlers take the parameters they know and call
/// [`Query::finish`], so a misspelt parameter is an error rather than silently ignored.
#[derive(Debug, Clone, Default)]
pub struct Query(BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or(""))
    }
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::invalid_arg(format!("query: bad percent-encoding in {s:?}"))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::invalid_arg(format!("query: {s:?} is not UTF-8")))
}

/// Parses `a=1&b=2`; a repeated parameter is an error.
pub fn parse_query(q: &str) -> Result<Query, ApiError> {
    let mut map = BTreeMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k)?;
        let v = percent_decode(v)?;
        if map.insert(k.clone(), v).is_some() {
            return Err(ApiError::invalid_arg(format!(
                "query: parameter {k} given twice"
            )));
        }
    }
    Ok(Query(map))
}

impl Query {
    /// A boolean flag: `true`/`1`/empty (`?wait`) or `false`/`0`; absent is `false`.
    pub fn take_bool(&mut self, name: &str) -> Result<bool, ApiError> {
        match self.0.remove(name).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(other) => Err(ApiError::invalid_arg(format!(
                "{name}: {other:?} is not a boolean (true or false)"
            ))),
        }
    }

    /// An unsigned integer parameter.
    pub fn take_u64(&mut self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::invalid_arg(format!("{name}: {v:?} is not a non-negative integer"))
            }),
        }
    }

    /// A text parameter, as given (percent-decoded).
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// Fails on any parameter not taken.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(k) => Err(ApiError::invalid_arg(format!(
                "query: unknown parameter {k:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        size_bytes: u64,
        name: Option<String>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        kind: String,
    }

    fn msg(json: &str) -> String {
        parse_json::<Body>(json.as_bytes()).unwrap_err().message
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            msg(r#"{"size_bytes": "big"}"#),
            "size_bytes: invalid type: string \"big\", expected u64"
        );
        assert_eq!(msg("{}"), "request body: missing field `size_bytes`");
        assert_eq!(msg(""), "request body: missing field `size_bytes`");
        assert!(msg(r#"{"size_bytes": 1, "inner": {"kind": 5}}"#).starts_with("inner.kind: "));
        assert!(msg(r#"{"size_bytes": 1, "nmae": "x"}"#).contains("unknown field `nmae`"));
        assert!(msg(r#"{"size_bytes": -1}"#).starts_with("size_bytes: "));
    }

    #[test]
    fn malformed_json_is_invalid_arg_with_position() {
        let e = parse_json::<Body>(b"{\"size_bytes\": 1,").unwrap_err();
        assert_eq!(e.hresult, vds_model::Hresult::E_INVALIDARG);
        assert!(
            e.message.starts_with("request body: malformed JSON"),
            "{}",
            e.message
        );
        let e = parse_json::<Body>(b"{\"size_bytes\": 1} x").unwrap_err();
        assert!(
            e.message.starts_with("request body: trailing"),
            "{}",
            e.message
        );
        let e = parse_json::<Body>(b"[1, null, null]").unwrap_err();
        assert_eq!(e.message, "request body: expected a JSON object");
        let e = parse_json::<Body>(b"nul").unwrap_err();
        assert!(
            e.message.starts_with("request body: malformed JSON"),
            "{}",
            e.message
        );
    }

    #[test]
    fn query_flags() {
        let mut q = parse_query("wait=true").unwrap();
        assert!(q.take_bool("wait").unwrap());
        q.finish().unwrap();
        let mut q = parse_query("wait").unwrap();
        assert!(q.take_bool("wait").unwrap());
        let mut q = parse_query("").unwrap();
        assert!(!q.take_bool("wait").unwrap());
        let mut q = parse_query("wait=maybe").unwrap();
        assert!(q
            .take_bool("wait")
            .unwrap_err()
            .message
            .starts_with("wait: "));
        let mut q = parse_query("wiat=true").unwrap();
        assert!(!q.take_bool("wait").unwrap());
        assert!(q.finish().unwrap_err().message.contains("wiat"));
        assert!(parse_query("a=1&a=2").is_err());
        assert!(parse_query("a=%zz").is_err());
        let mut q = parse_query("timeout_ms=250").unwrap();
        assert_eq!(q.take_u64("timeout_ms").unwrap(), Some(250));
    }
}
