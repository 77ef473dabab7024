//! The one place where a failure becomes an HTTP answer: the HTTP status of BEHAVIOUR.md §1
//! (from `Hresult::http_status`) and the error body
//! `{"error": {"hresult": "0x8004240B", "name": "VDS_E_OBJECT_DELETED", "message": "..."}}`.
//!
//! Two answers keep an HTTP status of their own, because generic HTTP clients act on it:
//! a body over the 1 MiB limit is `413` with `E_INVALIDARG` (retrying cannot help, so not
//! `E_OUTOFMEMORY`/503), and an unknown route or method is `404`/`405` with `E_INVALIDARG`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vds_model::Hresult;
use vds_provider::VdsError;

use crate::wire::{ErrorBody, ErrorDetail};

/// A failed call, as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub hresult: Hresult,
    pub message: String,
    /// Overrides the status derived from the HRESULT (413, 404/405 for routing, see above).
    pub status: Option<StatusCode>,
}

impl ApiError {
    pub fn new(hresult: Hresult, message: impl Into<String>) -> ApiError {
        ApiError {
            hresult,
            message: message.into(),
            status: None,
        }
    }

    /// `E_INVALIDARG` with a message that names the offending field.
    pub fn invalid_arg(message: impl Into<String>) -> ApiError {
        ApiError::new(Hresult::E_INVALIDARG, message)
    }

    /// The same error carried by another HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = Some(status);
        self
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.hresult.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        })
    }

    /// The body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                hresult: self.hresult.hex(),
                name: self.hresult.name().into_owned(),
                message: self.message.clone(),
            },
        }
    }
}

impl From<VdsError> for ApiError {
    fn from(e: VdsError) -> Self {
        ApiError::new(e.hresult, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // Only a missing or wrong token is a challenge; a refused Host or path is not.
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"vds\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_hresult() {
        let cases = [
            (Hresult::E_INVALIDARG, 400),
            (Hresult::E_ACCESSDENIED, 403),
            (Hresult::VDS_E_OBJECT_NOT_FOUND, 404),
            (Hresult::VDS_E_OBJECT_DELETED, 410),
            (Hresult::VDS_E_NOT_SUPPORTED, 422),
            (Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS, 409),
            (Hresult::VDS_E_PROVIDER_CACHE_CORRUPT, 503),
            (Hresult::VDS_E_NOT_ENOUGH_SPACE, 507),
            (Hresult::from_win32(10048), 500),
        ];
        for (h, s) in cases {
            assert_eq!(ApiError::new(h, "m").status().as_u16(), s, "{h}");
        }
        let e = ApiError::invalid_arg("too big").with_status(StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.status().as_u16(), 413);
    }

    #[test]
    fn body_has_hex_name_and_message() {
        let b = ApiError::new(Hresult::VDS_E_OBJECT_DELETED, "LUN x is no longer present").body();
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"error": {"hresult": "0x8004240B", "name": "VDS_E_OBJECT_DELETED",
                                         "message": "LUN x is no longer present"}})
        );
        let b = ApiError::new(Hresult::from_win32(10048), "bind").body();
        assert_eq!(b.error.hresult, "0x80072740");
    }
}
