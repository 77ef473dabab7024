//! Human output: aligned tables for lists and `key: value` blocks for single objects.
//!
//! Pure functions from the API's JSON to text, so they are tested without a server. `--json`
//! bypasses this module entirely (the API's body is printed as received).

use serde_json::Value;

use crate::size::format_size;

/// The kinds of object the CLI lists; each has its own table columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Subsystem,
    Controller,
    Drive,
    Lun,
    Target,
    PortalGroup,
    Portal,
    /// A live session (`GET /v1/sessions`).
    Session,
    /// A path to a LUN (`GET /v1/luns/{id}/paths`).
    Path,
    /// A plex of a LUN (`GET /v1/luns/{id}/plexes`).
    Plex,
    /// A range of a drive (`GET /v1/drives/{id}/extents`).
    Extent,
    /// A storage pool (`GET /v1/subsystems/{id}/pools`).
    Pool,
    /// A range of a drive of a pool (`GET /v1/pools/{id}/drive-extents`).
    PoolExtent,
}

type Column = (&'static str, fn(&Value) -> String);

fn field(v: &Value, key: &str) -> String {
    v.get(key).map(scalar).unwrap_or_else(|| "-".into())
}

fn count(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::Array(a)) => a.len().to_string(),
        Some(Value::Object(o)) => o.len().to_string(),
        _ => "-".into(),
    }
}

fn size(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_u64)
        .map(format_size)
        .unwrap_or_else(|| "-".into())
}

fn columns(kind: Kind) -> Vec<Column> {
    match kind {
        Kind::Subsystem => vec![
            ("ID", |v| field(v, "id")),
            ("NAME", |v| field(v, "friendly_name")),
            ("STATUS", |v| field(v, "status")),
            ("HEALTH", |v| field(v, "health")),
        ],
        Kind::Controller => vec![
            ("ID", |v| field(v, "id")),
            ("NAME", |v| field(v, "friendly_name")),
            ("STATUS", |v| field(v, "status")),
            ("HEALTH", |v| field(v, "health")),
            ("PORTS", |v| field(v, "number_of_ports")),
            ("GROUP", |v| field(v, "port_group")),
        ],
        Kind::Drive => vec![
            ("ID", |v| field(v, "id")),
            ("NAME", |v| field(v, "friendly_name")),
            ("SIZE", |v| size(v, "size_bytes")),
            ("STATUS", |v| field(v, "status")),
            ("HEALTH", |v| field(v, "health")),
            ("KIND", |v| field(v, "kind")),
            ("SLOT", |v| field(v, "slot_number")),
            ("PATH", |v| field(v, "path")),
        ],
        Kind::Lun => vec![
            ("ID", |v| field(v, "id")),
            ("NAME", |v| field(v, "friendly_name")),
            ("SIZE", |v| size(v, "size_bytes")),
            ("TYPE", |v| field(v, "type")),
            ("STATUS", |v| field(v, "status")),
            ("HEALTH", |v| field(v, "health")),
            ("MASK", |v| field(v, "unmasking_list")),
            ("TARGETS", |v| count(v, "targets")),
        ],
        Kind::Target => vec![
            ("ID", |v| field(v, "id")),
            ("NAME", |v| field(v, "friendly_name")),
            ("IQN", |v| field(v, "iscsi_name")),
            ("CHAP", |v| field(v, "chap_enabled")),
            ("PORTAL GROUPS", |v| count(v, "portal_groups")),
            ("LUNS", |v| count(v, "luns")),
        ],
        Kind::PortalGroup => vec![
            ("ID", |v| field(v, "id")),
            ("TARGET", |v| field(v, "target")),
            ("TAG", |v| field(v, "tag")),
            ("PORTALS", |v| field(v, "portals")),
        ],
        Kind::Portal => vec![
            ("ID", |v| field(v, "id")),
            ("ADDRESS", portal_endpoint),
            ("TYPE", |v| field(v, "address_type")),
            ("STATUS", |v| field(v, "status")),
            ("ADVERTISE", |v| field(v, "advertise")),
        ],
        Kind::Session => vec![
            ("TSIH", |v| field(v, "tsih")),
            ("TARGET", |v| field(v, "target_iqn")),
            ("INITIATOR", |v| field(v, "initiator")),
            ("ISID", |v| field(v, "isid")),
            ("PEER", |v| lead(v, "peer_address")),
            ("DIGESTS", digests),
            ("COMMANDS", |v| counter(v, "commands")),
            ("READ", |v| counter_size(v, "bytes_read")),
            ("WRITTEN", |v| counter_size(v, "bytes_written")),
            ("ERRORS", |v| counter(v, "errors")),
        ],
        Kind::Path => vec![
            ("PATH ID", |v| {
                v.pointer("/id/path_id")
                    .map(scalar)
                    .unwrap_or_else(|| "-".into())
            }),
            ("STATUS", |v| field(v, "status")),
            ("INITIATOR", |v| field(v, "initiator")),
            ("ADDRESS", |v| {
                let a = field(v, "initiator_address");
                let p = field(v, "initiator_port");
                if a.contains(':') {
                    format!("[{a}]:{p}")
                } else {
                    format!("{a}:{p}")
                }
            }),
            ("PORTAL", |v| field(v, "target_portal")),
            ("CONTROLLER", |v| field(v, "controller")),
        ],
        Kind::Plex => vec![
            ("ID", |v| field(v, "id")),
            ("TYPE", |v| field(v, "type")),
            ("SIZE", |v| size(v, "size_bytes")),
            ("STATUS", |v| field(v, "status")),
            ("HEALTH", |v| field(v, "health")),
            ("STRIPE", |v| field(v, "stripe_size")),
            ("EXTENTS", |v| count(v, "extents")),
        ],
        Kind::Pool => vec![
            ("ID", |v| field(v, "id")),
            ("NAME", |v| field(v, "friendly_name")),
            ("TYPE", |v| field(v, "type")),
            ("STATUS", |v| field(v, "status")),
            ("HEALTH", |v| field(v, "health")),
            ("DRIVES", |v| count(v, "drives")),
            ("TOTAL", |v| size(v, "total_managed_space")),
            ("CONSUMED", |v| size(v, "consumed_space")),
            ("FREE", |v| size(v, "remaining_free_space")),
        ],
        Kind::PoolExtent => vec![
            ("DRIVE", |v| field(v, "drive")),
            ("SIZE", |v| size(v, "size_bytes")),
            ("USED", |v| field(v, "used")),
        ],
        Kind::Extent => vec![
            ("OFFSET", |v| field(v, "offset")),
            ("SIZE", |v| size(v, "size_bytes")),
            ("LUN", |v| {
                if v.get("free").and_then(Value::as_bool) == Some(true) {
                    "(free)".into()
                } else {
                    field(v, "lun")
                }
            }),
            ("PLEX", |v| field(v, "plex")),
            ("COLUMN", |v| field(v, "column")),
        ],
    }
}

/// A field of a session's leading connection.
fn lead(v: &Value, key: &str) -> String {
    v.pointer(&format!("/connections/0/{key}"))
        .map(scalar)
        .unwrap_or_else(|| "-".into())
}

/// A session's `HeaderDigest/DataDigest` (`CRC32C/None`, ...).
fn digests(v: &Value) -> String {
    format!(
        "{}/{}",
        lead(v, "keys/header_digest"),
        lead(v, "keys/data_digest")
    )
}

/// A counter of a session.
fn counter(v: &Value, key: &str) -> String {
    v.pointer(&format!("/counters/{key}"))
        .map(scalar)
        .unwrap_or_else(|| "-".into())
}

/// A byte counter of a session, with units.
fn counter_size(v: &Value, key: &str) -> String {
    v.pointer(&format!("/counters/{key}"))
        .and_then(Value::as_u64)
        .map(format_size)
        .unwrap_or_else(|| "-".into())
}

/// `ADDR:PORT`, with brackets around an IPv6 address.
pub fn portal_endpoint(v: &Value) -> String {
    let addr = v.get("address").and_then(Value::as_str).unwrap_or("?");
    let port = v.get("port").map(scalar).unwrap_or_else(|| "?".into());
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// A table of objects of one kind.
pub fn list(kind: Kind, items: &[Value]) -> String {
    let cols = columns(kind);
    let headers: Vec<&str> = cols.iter().map(|c| c.0).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| cols.iter().map(|c| (c.1)(item)).collect())
        .collect();
    table(&headers, &rows)
}

/// Columns separated by two spaces, each as wide as its widest cell; the last column is not
/// padded (no trailing blanks).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                l.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Fields shown first in a block, in this order; the others follow alphabetically.
const FIRST: &[&str] = &[
    "id",
    "name",
    "friendly_name",
    "iscsi_name",
    "operation",
    "state",
    "percent",
    "hresult",
    "message",
    "version",
    "type",
    "subsystem",
    "target",
    "tag",
    "address",
    "port",
    "address_type",
    "size_bytes",
    "status",
    "health",
    "transition_state",
];

/// A `key: value` block for one object (values aligned). Non-objects print as a scalar.
/// Nested objects (a LUN's `backing`) and lists of objects (its `plexes`) follow their key
/// as indented blocks, list items marked with `- `.
pub fn block(obj: &Value) -> String {
    let mut out = String::new();
    match obj {
        Value::Object(map) => write_block(map, "", "", &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn is_nested(v: &Value) -> bool {
    match v {
        Value::Object(o) => !o.is_empty(),
        Value::Array(a) => !a.is_empty() && a.iter().all(Value::is_object),
        _ => false,
    }
}

/// Writes `map` with `first` before its first line and `rest` before the others (so a list
/// item can start with `- ` and continue aligned).
fn write_block(map: &serde_json::Map<String, Value>, first: &str, rest: &str, out: &mut String) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| {
        (
            FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()),
            k.as_str(),
        )
    });
    // Nested values start on their own lines: only scalar keys set the alignment.
    let width = keys
        .iter()
        .filter(|k| !is_nested(&map[k.as_str()]))
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0);
    let nested_indent = format!("{rest}  ");
    for (i, k) in keys.into_iter().enumerate() {
        let prefix = if i == 0 { first } else { rest };
        let v = &map[k];
        if is_nested(v) {
            out.push_str(&format!("{prefix}{k}:\n"));
            match v {
                Value::Object(o) => write_block(o, &nested_indent, &nested_indent, out),
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(o) = item {
                            write_block(
                                o,
                                &format!("{nested_indent}- "),
                                &format!("{nested_indent}  "),
                                out,
                            );
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        let text = if k == "size_bytes" {
            match v.as_u64() {
                Some(n) => format!("{n} ({})", format_size(n)),
                None => scalar(v),
            }
        } else {
            scalar(v)
        };
        let pad = width - k.chars().count();
        out.push_str(&format!("{prefix}{k}:{} {text}\n", " ".repeat(pad)));
    }
}

/// One value as a single line: strings bare, arrays comma-separated, maps as `k=v`.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::Object(_) | Value::Array(_) => x.to_string(),
                _ => scalar(x),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(o) if o.is_empty() => "-".into(),
        Value::Object(o) => o
            .iter()
            .map(|(k, x)| match x {
                Value::Object(_) | Value::Array(_) => format!("{k}={x}"),
                _ => format!("{k}={}", scalar(x)),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A list of plain strings (connected initiators), one per line.
pub fn lines(items: &[Value]) -> String {
    items.iter().map(|v| format!("{}\n", scalar(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_columns_are_aligned_without_trailing_blanks() {
        let t = table(
            &["ID", "NAME", "STATUS"],
            &[
                vec!["1".into(), "a-long-name".into(), "online".into()],
                vec!["22".into(), "b".into(), "offline".into()],
            ],
        );
        assert_eq!(
            t,
            "ID  NAME         STATUS\n\
             1   a-long-name  online\n\
             22  b            offline\n"
        );
    }

    #[test]
    fn session_table_shows_the_leading_connection_and_counters() {
        let s = json!([{"tsih": 3, "target_iqn": "iqn.t", "initiator": "iqn.i",
            "isid": "400001370000",
            "connections": [{"peer_address": "127.0.0.1:5000",
                             "keys": {"header_digest": "CRC32C", "data_digest": "None"}}],
            "counters": {"commands": 7, "bytes_read": 4096, "bytes_written": 1048576,
                         "errors": 1}}]);
        let t = list(Kind::Session, s.as_array().unwrap());
        let row = t.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells[..6],
            [
                "3",
                "iqn.t",
                "iqn.i",
                "400001370000",
                "127.0.0.1:5000",
                "CRC32C/None"
            ]
        );
        assert_eq!(cells[6], "7");
        assert!(row.contains(&format_size(4096)), "{row}");
        assert!(row.contains(&format_size(1048576)), "{row}");
        assert!(row.ends_with(" 1"), "{row}");
    }

    #[test]
    fn empty_table_is_the_header() {
        assert_eq!(table(&["ID", "NAME"], &[]), "ID  NAME\n");
    }

    #[test]
    fn lun_table_shows_sizes_in_units() {
        let luns = [
            json!({"id": "u1", "friendly_name": "lun0", "size_bytes": 1u64 << 30,
                           "type": "simple", "status": "online", "health": "healthy",
                           "unmasking_list": "*", "targets": ["t1"]}),
        ];
        assert_eq!(
            list(Kind::Lun, &luns),
            "ID  NAME  SIZE   TYPE    STATUS  HEALTH   MASK  TARGETS\n\
             u1  lun0  1 GiB  simple  online  healthy  *     1\n"
        );
    }

    #[test]
    fn portal_endpoint_brackets_ipv6() {
        assert_eq!(
            portal_endpoint(&json!({"address": "127.0.0.1", "port": 3260})),
            "127.0.0.1:3260"
        );
        assert_eq!(
            portal_endpoint(&json!({"address": "::1", "port": 3260})),
            "[::1]:3260"
        );
    }

    #[test]
    fn block_puts_identity_first_and_aligns_values() {
        let b = block(
            &json!({"status": "online", "id": "u1", "friendly_name": "x",
                              "size_bytes": 1048576, "lun_numbers": {"t1": 0},
                              "targets": ["a", "b"], "filters": []}),
        );
        assert_eq!(
            b,
            "id:            u1\n\
             friendly_name: x\n\
             size_bytes:    1048576 (1 MiB)\n\
             status:        online\n\
             filters:       -\n\
             lun_numbers:\n\
             \x20 t1: 0\n\
             targets:       a, b\n"
        );
    }

    #[test]
    fn nested_objects_and_lists_are_indented_blocks() {
        let b = block(&json!({"id": "u1",
                              "backing": {"kind": "file", "path": "/d/f"},
                              "plexes": [{"id": "p1", "status": "online"},
                                         {"id": "p2", "status": "failed"}]}));
        assert_eq!(
            b,
            "id: u1\n\
             backing:\n\
             \x20 kind: file\n\
             \x20 path: /d/f\n\
             plexes:\n\
             \x20 - id:     p1\n\
             \x20   status: online\n\
             \x20 - id:     p2\n\
             \x20   status: failed\n"
        );
    }

    #[test]
    fn scalars() {
        assert_eq!(scalar(&json!(null)), "-");
        assert_eq!(scalar(&json!(true)), "true");
        assert_eq!(scalar(&json!([1, "a"])), "1, a");
        assert_eq!(scalar(&json!([{"a": 1}])), "{\"a\":1}");
    }
}
