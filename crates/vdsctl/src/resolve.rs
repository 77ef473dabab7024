//! Object references on the command line: a UUID, or a unique name resolved through list calls.
//!
//! Names: a subsystem's, controller's, drive's or LUN's friendly name; a target's IQN or friendly
//! name; a portal's `ADDR:PORT` (`[v6]:PORT`, port 3260 when omitted). A name that matches nothing
//! is `VDS_E_OBJECT_NOT_FOUND` (the answer the API gives for an unknown id, exit 1); a name that
//! matches several objects is a usage error (exit 2) asking for the id. Portal groups and jobs
//! have no names: they are referenced by id only.

use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use crate::error::CliError;

/// True for the canonical 8-4-4-4-12 hexadecimal form of a UUID.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// How an object of some kind is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `friendly_name`.
    FriendlyName,
    /// `iscsi_name` or `friendly_name`.
    Target,
    /// `address` + `port`.
    Portal,
}

/// The default iSCSI port, used when a portal reference omits the port.
pub const ISCSI_PORT: u16 = 3260;

/// Parses `ADDR:PORT`, `[V6]:PORT`, a bare IPv4/IPv6 address (port 3260).
pub fn parse_endpoint(s: &str) -> Option<SocketAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, ISCSI_PORT))
}

fn matches(naming: Naming, needle: &str, item: &Value) -> bool {
    let str_field = |k: &str| item.get(k).and_then(Value::as_str);
    match naming {
        Naming::FriendlyName => str_field("friendly_name") == Some(needle),
        Naming::Target => {
            str_field("iscsi_name") == Some(needle) || str_field("friendly_name") == Some(needle)
        }
        Naming::Portal => {
            let Some(want) = parse_endpoint(needle) else {
                return false;
            };
            let addr = str_field("address").and_then(|a| a.parse::<IpAddr>().ok());
            let port = item
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok());
            matches!((addr, port), (Some(a), Some(p)) if SocketAddr::new(a, p) == want)
        }
    }
}

/// Picks the one object among `items` that `needle` names. `what` is the kind for messages
/// ("LUN", "target", ...).
pub fn pick<'a>(
    what: &str,
    naming: Naming,
    needle: &str,
    items: &'a [Value],
) -> Result<&'a Value, CliError> {
    let found: Vec<&Value> = items
        .iter()
        .filter(|i| matches(naming, needle, i))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(CliError::not_found(format!(
            "no {what} is named {needle:?}"
        ))),
        many => Err(CliError::Usage(format!(
            "{} {what}s are named {needle:?}; use the id",
            many.len()
        ))),
    }
}

/// The id of the object `needle` names: the UUID itself, or the id of the unique match.
pub fn resolve_id(
    what: &str,
    naming: Naming,
    needle: &str,
    items: impl FnOnce() -> Result<Vec<Value>, CliError>,
) -> Result<String, CliError> {
    if is_uuid(needle) {
        return Ok(needle.to_ascii_lowercase());
    }
    if naming == Naming::Portal && parse_endpoint(needle).is_none() {
        return Err(CliError::Usage(format!(
            "{needle:?} is neither a portal id nor ADDR:PORT"
        )));
    }
    let items = items()?;
    let item = pick(what, naming, needle, &items)?;
    item.get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CliError::Protocol(format!("a {what} without an id")))
}

/// An id-only reference (portal groups, jobs): a usage error unless it is a UUID.
pub fn require_uuid(what: &str, s: &str) -> Result<String, CliError> {
    if is_uuid(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(CliError::Usage(format!(
            "a {what} is referenced by its id (a UUID), not {s:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U1: &str = "6f1c2a3b-0000-4000-8000-000000000001";

    fn luns() -> Vec<Value> {
        vec![
            json!({"id": U1, "friendly_name": "db"}),
            json!({"id": "u2", "friendly_name": "logs"}),
            json!({"id": "u3", "friendly_name": "dup"}),
            json!({"id": "u4", "friendly_name": "dup"}),
        ]
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid(U1));
        assert!(is_uuid("6F1C2A3B-0000-4000-8000-00000000000A"));
        assert!(!is_uuid("6f1c2a3b00004000800000000000000a"));
        assert!(!is_uuid("6f1c2a3b-0000-4000-8000-00000000000g"));
        assert!(!is_uuid("db"));
    }

    #[test]
    fn a_uuid_needs_no_list_call() {
        let id = resolve_id("LUN", Naming::FriendlyName, U1, || {
            panic!("no list call for a UUID")
        });
        assert_eq!(id, Ok(U1.to_string()));
    }

    #[test]
    fn unique_name_resolves_to_its_id() {
        let id = resolve_id("LUN", Naming::FriendlyName, "logs", || Ok(luns()));
        assert_eq!(id, Ok("u2".to_string()));
    }

    #[test]
    fn unknown_name_is_not_found_and_duplicate_is_usage() {
        let e = resolve_id("LUN", Naming::FriendlyName, "nope", || Ok(luns())).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e
            .to_string()
            .starts_with("error: VDS_E_OBJECT_NOT_FOUND (0x80042405): "));
        let e = resolve_id("LUN", Naming::FriendlyName, "dup", || Ok(luns())).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("use the id"));
    }

    #[test]
    fn targets_by_iqn_or_friendly_name() {
        let t = vec![
            json!({"id": "t1", "iscsi_name": "iqn.2024-01.org.vds:a", "friendly_name": "alpha"}),
            json!({"id": "t2", "iscsi_name": "iqn.2024-01.org.vds:b", "friendly_name": "beta"}),
        ];
        let by = |n: &str| resolve_id("target", Naming::Target, n, || Ok(t.clone()));
        assert_eq!(by("iqn.2024-01.org.vds:b"), Ok("t2".into()));
        assert_eq!(by("alpha"), Ok("t1".into()));
        assert_eq!(by("gamma").unwrap_err().exit_code(), 1);
    }

    #[test]
    fn portals_by_endpoint() {
        let p = vec![
            json!({"id": "p1", "address": "127.0.0.1", "port": 3260}),
            json!({"id": "p2", "address": "127.0.0.2", "port": 3261}),
            json!({"id": "p3", "address": "::1", "port": 3260}),
        ];
        let by = |n: &str| resolve_id("portal", Naming::Portal, n, || Ok(p.clone()));
        assert_eq!(by("127.0.0.2:3261"), Ok("p2".into()));
        assert_eq!(by("127.0.0.1"), Ok("p1".into()));
        assert_eq!(by("[::1]:3260"), Ok("p3".into()));
        assert_eq!(by("::1"), Ok("p3".into()));
        assert_eq!(by("127.0.0.2:3260").unwrap_err().exit_code(), 1);
        assert_eq!(by("not-an-address").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn ids_only_for_portal_groups_and_jobs() {
        assert_eq!(require_uuid("job", U1), Ok(U1.to_string()));
        assert_eq!(require_uuid("job", "x").unwrap_err().exit_code(), 2);
    }
}
