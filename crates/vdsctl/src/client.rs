//! The HTTP client: one blocking call per request (ureq), error bodies turned into [`CliError`].
//!
//! Transport failures (refused, DNS, timeout) are `Unreachable`; a non-2xx answer with the API's
//! error body is a `Provider` error; anything else that answers is a `Protocol` error. The bearer
//! token (`token`: `--token`, `VDS_TOKEN` or the daemon's `api-token` file) goes with every
//! request.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use crate::error::{from_error_body, CliError};

/// A 2xx answer of the API.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The body exactly as received (what `--json` prints).
    pub body: String,
}

impl Reply {
    /// The body as JSON; an empty body (204) is `null`.
    pub fn json(&self) -> Result<Value, CliError> {
        if self.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&self.body)
            .map_err(|e| CliError::Protocol(format!("body is not JSON ({e})")))
    }
}

/// A connection to one vds API.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// `base` is the API root (`http://127.0.0.1:3280`), with or without a trailing slash or
    /// `/v1` (the daemon prints the address with `/v1`; both spellings work).
    pub fn new(base: &str, token: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .build();
        Client {
            base: api_root(base),
            token: token.filter(|t| !t.is_empty()),
            agent,
        }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let mut req = self
            .agent
            .request(method, &format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        req
    }

    /// Sends one request; `body` is sent as JSON when given.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, CliError> {
        let req = self.request(method, path);
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match result {
            Ok(resp) => {
                let status = resp.status();
                let body = read_body(resp)?;
                Ok(Reply { status, body })
            }
            Err(ureq::Error::Status(code, resp)) => {
                let text = read_body(resp)?;
                Err(error_from_status(code, &text))
            }
            Err(ureq::Error::Transport(t)) => Err(CliError::Unreachable(format!(
                "{} ({})",
                self.base,
                t.message()
                    .map(str::to_string)
                    .unwrap_or_else(|| t.to_string())
            ))),
        }
    }

    pub fn get(&self, path: &str) -> Result<Reply, CliError> {
        self.call("GET", path, None)
    }

    /// Opens a long-lived GET (the event stream) and returns its body reader.
    pub fn stream(&self, path: &str) -> Result<Box<dyn Read + Send + Sync>, CliError> {
        match self.request("GET", path).call() {
            Ok(resp) => Ok(resp.into_reader()),
            Err(ureq::Error::Status(code, resp)) => {
                let text = read_body(resp)?;
                Err(error_from_status(code, &text))
            }
            Err(ureq::Error::Transport(t)) => Err(CliError::Unreachable(format!(
                "{} ({})",
                self.base,
                t.message()
                    .map(str::to_string)
                    .unwrap_or_else(|| t.to_string())
            ))),
        }
    }
}

/// The server root of an API URL: without trailing slashes and without a final `/v1`.
pub fn api_root(base: &str) -> String {
    let b = base.trim_end_matches('/');
    b.strip_suffix("/v1").unwrap_or(b).to_string()
}

/// Reads a whole body (no size cap: a list of 10,000 LUNs is several MiB).
fn read_body(resp: ureq::Response) -> Result<String, CliError> {
    let mut s = String::new();
    resp.into_reader()
        .read_to_string(&mut s)
        .map_err(|e| CliError::Unreachable(format!("reading the answer: {e}")))?;
    Ok(s)
}

/// A non-2xx answer: the API's error body, or a protocol error when it is not one.
pub fn error_from_status(code: u16, text: &str) -> CliError {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| from_error_body(&v))
        .unwrap_or_else(|| {
            let snippet: String = text.chars().take(200).collect();
            CliError::Protocol(format!("HTTP {code} without an error body: {snippet:?}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_become_provider_errors() {
        let e = error_from_status(
            404,
            r#"{"error":{"hresult":"0x80042405","name":"VDS_E_OBJECT_NOT_FOUND","message":"no such LUN"}}"#,
        );
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "error: VDS_E_OBJECT_NOT_FOUND (0x80042405): no such LUN"
        );
    }

    #[test]
    fn other_answers_are_protocol_errors() {
        let e = error_from_status(404, "Not Found");
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("HTTP 404"));
    }

    #[test]
    fn empty_body_is_null() {
        let r = Reply {
            status: 204,
            body: String::new(),
        };
        assert_eq!(r.json(), Ok(Value::Null));
    }

    #[test]
    fn api_root_accepts_the_banner_spelling() {
        assert_eq!(api_root("http://127.0.0.1:3280"), "http://127.0.0.1:3280");
        assert_eq!(api_root("http://127.0.0.1:3280/"), "http://127.0.0.1:3280");
        assert_eq!(
            api_root("http://127.0.0.1:3280/v1"),
            "http://127.0.0.1:3280"
        );
        assert_eq!(
            api_root("http://127.0.0.1:3280/v1/"),
            "http://127.0.0.1:3280"
        );
    }

    #[test]
    fn refused_connection_is_unreachable() {
        // Port 1 on loopback: nothing listens there in a test environment.
        let c = Client::new("http://127.0.0.1:1/", None);
        let e = c
            .get("/v1/provider")
            .expect_err("nothing listens on port 1");
        assert_eq!(e.exit_code(), 3, "{e}");
    }
}
