//! The CLI's failure kinds and the one place that maps them onto exit codes and the stderr line.
//!
//! INTERFACE.md fixes the exit statuses: 0 success, 1 the provider answered an error (printed as
//! `error: NAME (0xHHHHHHHH): message`), 2 a usage error, 3 the API cannot be reached.

use std::fmt;

use vds_model::Hresult;

/// Exit status for a usage error (clap uses the same value for its own parse errors).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when the provider answered with an error body.
pub const EXIT_PROVIDER: i32 = 1;
/// Exit status when the API cannot be reached (or what answered is not the vds API).
pub const EXIT_UNREACHABLE: i32 = 3;

/// Everything that can make a `vdsctl` invocation fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// The command line is wrong (bad size, ambiguous name, missing choice): exit 2.
    Usage(String),
    /// The provider answered with an error (or a job ended with one): exit 1.
    Provider {
        hresult: u32,
        name: String,
        message: String,
    },
    /// No connection to the API (refused, DNS, timeout, closed stream): exit 3.
    Unreachable(String),
    /// Something answered, but not with the vds API's JSON: exit 3, as we cannot talk to the API.
    Protocol(String),
}

impl CliError {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Provider { .. } => EXIT_PROVIDER,
            CliError::Unreachable(_) | CliError::Protocol(_) => EXIT_UNREACHABLE,
        }
    }

    /// A name that resolves to no object: the CLI answers on the provider's behalf with what the
    /// API gives for an unknown id, named by the model's table.
    pub fn not_found(message: String) -> Self {
        let h = Hresult::VDS_E_OBJECT_NOT_FOUND;
        CliError::Provider {
            hresult: h.value(),
            name: h.name().into_owned(),
            message,
        }
    }
}

impl fmt::Display for CliError {
    /// The line written to stderr (without the trailing newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "error: {m}"),
            CliError::Provider {
                hresult,
                name,
                message,
            } => write!(f, "error: {name} (0x{hresult:08X}): {message}"),
            CliError::Unreachable(m) => write!(f, "error: cannot reach the vds API: {m}"),
            CliError::Protocol(m) => write!(f, "error: unexpected answer from the vds API: {m}"),
        }
    }
}

/// Parses the `hresult` field of an error body (`"0x8004240B"`); also accepts a JSON number.
pub fn parse_hresult(v: &serde_json::Value) -> Option<u32> {
    match v {
        serde_json::Value::String(s) => {
            let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
            u32::from_str_radix(hex, 16).ok()
        }
        serde_json::Value::Number(n) => {
            n.as_u64().and_then(|x| u32::try_from(x).ok()).or_else(|| {
                n.as_i64()
                    .and_then(|x| i32::try_from(x).ok())
                    .map(|x| x as u32)
            })
        }
        _ => None,
    }
}

/// Builds a [`CliError::Provider`] from an API error body
/// (`{"error":{"hresult":"0x…","name":"…","message":"…"}}`); `None` if the body is not one.
pub fn from_error_body(body: &serde_json::Value) -> Option<CliError> {
    let e = body.get("error")?;
    let hresult = parse_hresult(e.get("hresult")?)?;
    let name = e.get("name")?.as_str()?.to_string();
    let message = e
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    Some(CliError::Provider {
        hresult,
        name,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::not_found("x".into()).exit_code(), 1);
        assert_eq!(CliError::Unreachable("x".into()).exit_code(), 3);
        assert_eq!(CliError::Protocol("x".into()).exit_code(), 3);
    }

    #[test]
    fn provider_error_line_has_name_hex_and_message() {
        let body = json!({"error": {"hresult": "0x8004240B", "name": "VDS_E_OBJECT_DELETED",
                                     "message": "LUN 6f1c is no longer present"}});
        let e = from_error_body(&body).expect("an error body");
        assert_eq!(
            e.to_string(),
            "error: VDS_E_OBJECT_DELETED (0x8004240B): LUN 6f1c is no longer present"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn hex_is_eight_upper_case_digits() {
        let e = CliError::Provider {
            hresult: 0x42714,
            name: "VDS_S_ALREADY_EXISTS".into(),
            message: "m".into(),
        };
        assert_eq!(e.to_string(), "error: VDS_S_ALREADY_EXISTS (0x00042714): m");
    }

    #[test]
    fn bodies_that_are_not_error_bodies_are_rejected() {
        assert_eq!(from_error_body(&json!({"id": "x"})), None);
        assert_eq!(
            from_error_body(&json!({"error": {"hresult": "zz", "name": "N"}})),
            None
        );
        assert_eq!(from_error_body(&json!({"error": {"hresult": "0x1"}})), None);
    }

    #[test]
    fn hresult_accepts_numbers_too() {
        assert_eq!(parse_hresult(&json!(2147942487u64)), Some(0x8007_0057));
        assert_eq!(parse_hresult(&json!(-2147024809i64)), Some(0x8007_0057));
        assert_eq!(parse_hresult(&json!("0x80070057")), Some(0x8007_0057));
        assert_eq!(parse_hresult(&json!("80070057")), None);
    }
}
