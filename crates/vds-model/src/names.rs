//! Validation of the names and secrets the management API accepts: iSCSI names (RFC 3720
//! §3.2.6: `iqn.`, `eui.`, `naa.`), the LUN unmasking list (BEHAVIOUR.md §10)
//! and CHAP secrets (12 to 16 bytes), and a portal's advertised address (BEHAVIOUR.md §4).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest iSCSI name in bytes (RFC 3720 §3.2.6.1).
pub const MAX_ISCSI_NAME_LEN: usize = 223;
/// Shortest CHAP secret the VDS API accepts (`VDS_ISCSI_SHARED_SECRET`).
pub const MIN_CHAP_SECRET_LEN: usize = 12;
/// Longest CHAP secret the VDS API accepts.
pub const MAX_CHAP_SECRET_LEN: usize = 16;

/// Why a string is not a valid iSCSI name. The message says exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a valid iSCSI name: {reason}")]
pub struct NameError {
    /// The offending name.
    pub name: String,
    /// What rule it breaks.
    pub reason: String,
}

fn bad(name: &str, reason: impl Into<String>) -> NameError {
    NameError {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Checks an iSCSI name in its normalised (lower-case) form: `iqn.yyyy-mm.reversed.domain[:x]`,
/// `eui.` + 16 hex digits, or `naa.` + 16 or 32 hex digits.
///
/// Only ASCII is accepted (RFC 3720 allows stringprep'd Unicode; vds does not, so names stay
/// comparable byte for byte on the wire).
pub fn validate_iscsi_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(bad(name, "it is empty"));
    }
    if name.len() > MAX_ISCSI_NAME_LEN {
        return Err(bad(
            name,
            format!(
                "it is {} bytes long, the limit is {MAX_ISCSI_NAME_LEN}",
                name.len()
            ),
        ));
    }
    if let Some(rest) = name.strip_prefix("iqn.") {
        validate_iqn(name, rest)
    } else if let Some(hex) = name.strip_prefix("eui.") {
        validate_hex(name, hex, &[16], "eui.")
    } else if let Some(hex) = name.strip_prefix("naa.") {
        validate_hex(name, hex, &[16, 32], "naa.")
    } else {
        Err(bad(
            name,
            "it must start with \"iqn.\", \"eui.\" or \"naa.\" (lower-case)",
        ))
    }
}

fn validate_hex(name: &str, hex: &str, lens: &[usize], prefix: &str) -> Result<(), NameError> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            name,
            format!("after {prefix:?} only hexadecimal digits are allowed"),
        ));
    }
    if !lens.contains(&hex.len()) {
        let want = lens
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(bad(
            name,
            format!(
                "after {prefix:?} it needs {want} hexadecimal digits, found {}",
                hex.len()
            ),
        ));
    }
    Ok(())
}

fn validate_iqn(name: &str, rest: &str) -> Result<(), NameError> {
    for (i, c) in name.char_indices() {
        let ok = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':');
        if !ok {
            let what = if c.is_ascii_uppercase() {
                "upper-case letters are not allowed (iSCSI names are normalised to lower case)"
                    .to_string()
            } else {
                format!("character {c:?} at byte {i} is not allowed (a-z, 0-9, '-', '.', ':')")
            };
            return Err(bad(name, what));
        }
    }
    // Date: yyyy-mm.
    let date = rest.get(..7).unwrap_or("");
    let db = date.as_bytes();
    let date_ok = db.len() == 7
        && db[..4].iter().all(u8::is_ascii_digit)
        && db[4] == b'-'
        && db[5..].iter().all(u8::is_ascii_digit)
        && matches!(
            &date[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        );
    if !date_ok {
        return Err(bad(
            name,
            "\"iqn.\" must be followed by a date yyyy-mm with a month 01 to 12",
        ));
    }
    let after = &rest[7..];
    let Some(domain_and_more) = after.strip_prefix('.') else {
        return Err(bad(
            name,
            "the date must be followed by '.' and a reversed domain name",
        ));
    };
    let domain = domain_and_more
        .split_once(':')
        .map_or(domain_and_more, |(d, _)| d);
    if domain.is_empty() {
        return Err(bad(name, "the reversed domain name is empty"));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(bad(name, "the reversed domain name has an empty label"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(
                name,
                format!("domain label {label:?} starts or ends with '-'"),
            ));
        }
    }
    Ok(())
}

/// A parsed unmasking list: who may see a LUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnmaskingList {
    /// `"*"`: every initiator.
    Everyone,
    /// `""`: nobody.
    Nobody,
    /// Initiator names, de-duplicated case-insensitively, first spelling kept, in order.
    Only(Vec<String>),
}

/// Why an unmasking list is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnmaskingError {
    /// `"*"` mixed with initiator names.
    #[error("\"*\" must stand alone in the unmasking list")]
    StarCombined,
    /// `a;;b`.
    #[error("the unmasking list has an empty entry (entry {index})")]
    EmptyEntry {
        /// 1-based position.
        index: usize,
    },
    /// An entry that is not an iSCSI name.
    #[error("unmasking list entry {index}: {error}")]
    BadName {
        /// 1-based position.
        index: usize,
        /// What is wrong with it.
        error: NameError,
    },
}

impl UnmaskingList {
    /// Parses the VDS grammar: `"*"`, `""` or `;`-separated initiator names. Whitespace around
    /// entries is ignored. Names are checked in lower-case form (iSCSI names are
    /// case-insensitive) but kept as given.
    pub fn parse(s: &str) -> Result<UnmaskingList, UnmaskingError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(UnmaskingList::Nobody);
        }
        if s == "*" {
            return Ok(UnmaskingList::Everyone);
        }
        let mut names: Vec<String> = Vec::new();
        for (i, entry) in s.split(';').enumerate() {
            let index = i + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(UnmaskingError::EmptyEntry { index });
            }
            if entry == "*" {
                return Err(UnmaskingError::StarCombined);
            }
            validate_iscsi_name(&entry.to_ascii_lowercase())
                .map_err(|error| UnmaskingError::BadName { index, error })?;
            if !names.iter().any(|n| n.eq_ignore_ascii_case(entry)) {
                names.push(entry.to_string());
            }
        }
        Ok(UnmaskingList::Only(names))
    }

    /// Whether `initiator` is unmasked (case-insensitive).
    pub fn allows(&self, initiator: &str) -> bool {
        match self {
            UnmaskingList::Everyone => true,
            UnmaskingList::Nobody => false,
            UnmaskingList::Only(names) => names.iter().any(|n| n.eq_ignore_ascii_case(initiator)),
        }
    }
}

impl fmt::Display for UnmaskingList {
    /// The canonical string form (what `GET` reports).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnmaskingList::Everyone => f.write_str("*"),
            UnmaskingList::Nobody => Ok(()),
            UnmaskingList::Only(names) => f.write_str(&names.join(";")),
        }
    }
}

/// A CHAP secret of valid length. Never printed: `Debug` hides the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ChapSecret(Vec<u8>);

/// A secret outside 12..=16 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a CHAP secret must be {MIN_CHAP_SECRET_LEN} to {MAX_CHAP_SECRET_LEN} bytes, this one has {len}")]
pub struct SecretLengthError {
    /// The length given.
    pub len: usize,
}

impl ChapSecret {
    /// Checks the VDS length rule.
    pub fn new(bytes: Vec<u8>) -> Result<ChapSecret, SecretLengthError> {
        if (MIN_CHAP_SECRET_LEN..=MAX_CHAP_SECRET_LEN).contains(&bytes.len()) {
            Ok(ChapSecret(bytes))
        } else {
            Err(SecretLengthError { len: bytes.len() })
        }
    }

    /// The secret's bytes (for the data path and the store only).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes it.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for ChapSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChapSecret(<{} bytes>)", self.0.len())
    }
}

/// Longest advertised address in bytes: a 253-byte DNS name, `:` and a 5-digit port.
pub const MAX_ADVERTISE_LEN: usize = 259;
/// Longest DNS name in an advertised address (RFC 1035 §2.3.4, without the trailing dot).
const MAX_DNS_NAME_LEN: usize = 253;

/// What SendTargets reports for a portal instead of its bind address (BEHAVIOUR.md §4): the
/// `host:port` a host must connect to when it reaches the portal through NAT, a port forward
/// or a container's published port. `host` is a DNS name, an IPv4 address or a bracketed IPv6
/// address; `port` is 1 to 65535.
///
/// It is echoed into a TargetAddress key (`host:port,tpgt`) of a Text Response, so only the
/// characters that grammar allows can be in it: no spaces, commas, control characters or
/// anything outside ASCII letters, digits, `.`, `-`, `:` and the brackets of an IPv6 host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdvertisedAddress(String);

/// Why a string is not a valid advertised address. The message says exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid advertised address (host:port): {reason}")]
pub struct AdvertiseError {
    /// The offending value, cut to [`MAX_ADVERTISE_LEN`] characters.
    pub value: String,
    /// What rule it breaks.
    pub reason: String,
}

impl AdvertisedAddress {
    /// Checks `host:port`; the address is kept exactly as given (it is what hosts are told).
    pub fn parse(s: &str) -> Result<AdvertisedAddress, AdvertiseError> {
        let fail = |reason: String| AdvertiseError {
            value: s.chars().take(MAX_ADVERTISE_LEN).collect(),
            reason,
        };
        if s.is_empty() {
            return Err(fail("it is empty".into()));
        }
        if s.len() > MAX_ADVERTISE_LEN {
            return Err(fail(format!(
                "it is {} bytes long, the limit is {MAX_ADVERTISE_LEN}",
                s.len()
            )));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
        {
            return Err(fail(format!("the character {c:?} is not allowed")));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| fail("it has no \":port\"".into()))?;
        check_port(port).map_err(fail)?;
        check_host(host).map_err(fail)?;
        Ok(AdvertisedAddress(s.to_string()))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdvertisedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A decimal port 1..=65535, no sign and no leading zero.
fn check_port(port: &str) -> Result<(), String> {
    if port.is_empty() {
        return Err("the port is missing".into());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) || port.starts_with('0') || port.len() > 5 {
        return Err(format!("the port {port:?} is not a number from 1 to 65535"));
    }
    match port.parse::<u32>() {
        Ok(1..=65535) => Ok(()),
        _ => Err(format!("the port {port:?} is not a number from 1 to 65535")),
    }
}

/// A bracketed IPv6 address, a dotted IPv4 address or a DNS name (letters, digits, hyphens;
/// labels of 1 to 63, not starting or ending with a hyphen). Unspecified addresses are refused:
/// a host cannot connect to them.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("the IPv6 address {host:?} has no closing \"]\""))?;
        let ip: Ipv6Addr = inner
            .parse()
            .map_err(|_| format!("{inner:?} is not an IPv6 address"))?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(format!("{ip} cannot be connected to"));
        }
        return Ok(());
    }
    if host.contains(['[', ']']) {
        return Err("brackets are only allowed around a whole IPv6 address".into());
    }
    if host.contains(':') {
        return Err("an IPv6 address must be written in brackets: [addr]:port".into());
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let ip: Ipv4Addr = host
            .parse()
            .map_err(|_| format!("{host:?} is not an IPv4 address"))?;
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
            return Err(format!("{ip} cannot be connected to"));
        }
        return Ok(());
    }
    if host.len() > MAX_DNS_NAME_LEN {
        return Err(format!(
            "the host name is {} bytes long, the limit is {MAX_DNS_NAME_LEN}",
            host.len()
        ));
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(format!("the host name {host:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!(
                "the host name label {label:?} is longer than 63 bytes"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "the host name label {label:?} starts or ends with a hyphen"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for n in [
            "iqn.2026-11.local.vds:default",
            "iqn.1991-05.com.microsoft:host-1.example",
            "iqn.2001-04.com.example",
            "iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
            "eui.02004567A425678D",
            "naa.52004567BA64678D",
            "naa.62004567BA64678D0123456789ABCDEF",
        ] {
            assert_eq!(validate_iscsi_name(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn invalid_names_say_why() {
        let cases = [
            ("", "empty"),
            ("IQN.2001-04.com.example", "must start"),
            ("iqn.2001-04.Com.example", "upper-case"),
            ("iqn.2001-13.com.example", "month"),
            ("iqn.01-04.com.example", "date"),
            ("iqn.2001-04", "reversed domain"),
            ("iqn.2001-04.", "empty"),
            ("iqn.2001-04.com..x", "empty label"),
            ("iqn.2001-04.com.ex_ample", "not allowed"),
            ("iqn.2001-04.com.ex ample", "not allowed"),
            ("eui.0200", "16 hexadecimal"),
            ("eui.02004567A425678G", "hexadecimal"),
            ("naa.0123", "16 or 32"),
        ];
        for (n, why) in cases {
            let e = validate_iscsi_name(n).unwrap_err();
            assert!(e.reason.contains(why), "{n}: {e}");
        }
        let long = format!("iqn.2001-04.com.example:{}", "a".repeat(200));
        assert!(validate_iscsi_name(&long)
            .unwrap_err()
            .reason
            .contains("223"));
    }

    #[test]
    fn unmasking_grammar() {
        assert_eq!(UnmaskingList::parse("*"), Ok(UnmaskingList::Everyone));
        assert_eq!(UnmaskingList::parse(""), Ok(UnmaskingList::Nobody));
        assert_eq!(UnmaskingList::parse("  "), Ok(UnmaskingList::Nobody));
        let l = UnmaskingList::parse("iqn.2001-04.com.a:x;IQN.2001-04.COM.A:X;iqn.2001-04.com.b")
            .unwrap();
        assert_eq!(
            l,
            UnmaskingList::Only(vec![
                "iqn.2001-04.com.a:x".into(),
                "iqn.2001-04.com.b".into()
            ])
        );
        assert_eq!(l.to_string(), "iqn.2001-04.com.a:x;iqn.2001-04.com.b");
        assert!(l.allows("IQN.2001-04.com.B"));
        assert!(!l.allows("iqn.2001-04.com.c"));
        assert_eq!(
            UnmaskingList::parse("*;iqn.2001-04.com.a"),
            Err(UnmaskingError::StarCombined)
        );
        assert_eq!(
            UnmaskingList::parse("iqn.2001-04.com.a;;iqn.2001-04.com.b"),
            Err(UnmaskingError::EmptyEntry { index: 2 })
        );
        assert!(matches!(
            UnmaskingList::parse("iqn.2001-04.com.a;0123456789ABCDEF"),
            Err(UnmaskingError::BadName { index: 2, .. })
        ));
    }

    #[test]
    fn secret_length() {
        assert!(ChapSecret::new(vec![b'a'; 11]).is_err());
        assert!(ChapSecret::new(vec![b'a'; 12]).is_ok());
        assert!(ChapSecret::new(vec![b'a'; 16]).is_ok());
        assert_eq!(
            ChapSecret::new(vec![b'a'; 17]).unwrap_err(),
            SecretLengthError { len: 17 }
        );
        let s = ChapSecret::new(b"secretsecret".to_vec()).unwrap();
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn advertised_addresses() {
        for ok in [
            "10.0.2.100:3260",
            "gw.example.com:3260",
            "storage-1:1",
            "[fd00::1]:65535",
            "[::ffff:10.0.0.1]:860",
            "A.example:3260",
        ] {
            assert_eq!(AdvertisedAddress::parse(ok).unwrap().as_str(), ok);
        }
        let cases = [
            ("", "empty"),
            ("10.0.2.100", "no \":port\""),
            ("10.0.2.100:", "port is missing"),
            ("10.0.2.100:0", "1 to 65535"),
            ("10.0.2.100:65536", "1 to 65535"),
            ("10.0.2.100:03260", "1 to 65535"),
            ("10.0.2.100:+3260", "'+'"),
            ("10.0.2.100:99999999999", "1 to 65535"),
            (":3260", "host is missing"),
            ("10.0.2.100:3260,1", "','"),
            ("a b:3260", "' '"),
            ("a\nb:3260", "'\\n'"),
            ("h\u{e9}te:3260", "'\u{e9}'"),
            ("fd00::1:3260", "in brackets"),
            ("[fd00::1:3260", "closing"),
            ("[fd00::g]:3260", "not an IPv6"),
            ("a[b]:3260", "brackets"),
            ("[::]:3260", "cannot be connected"),
            ("0.0.0.0:3260", "cannot be connected"),
            ("224.0.0.1:3260", "cannot be connected"),
            ("10.0.2.300:3260", "not an IPv4"),
            ("1.2.3:3260", "not an IPv4"),
            ("a..b:3260", "empty label"),
            ("-a.b:3260", "hyphen"),
            ("a.b-:3260", "hyphen"),
        ];
        for (v, why) in cases {
            let e = AdvertisedAddress::parse(v).unwrap_err();
            assert!(e.to_string().contains(why), "{v:?}: {e}");
        }
        let label = "a".repeat(64);
        assert!(AdvertisedAddress::parse(&format!("{label}.b:1"))
            .unwrap_err()
            .reason
            .contains("63"));
        let name = vec!["a".repeat(60); 5].join(".");
        assert!(AdvertisedAddress::parse(&format!("{name}:1"))
            .unwrap_err()
            .reason
            .contains("limit is 259"));
        let name = vec!["a".repeat(50); 5].join(".");
        assert!(AdvertisedAddress::parse(&format!("{name}:1"))
            .unwrap_err()
            .reason
            .contains("limit is 253"));
        let huge = "a".repeat(1 << 20);
        assert!(AdvertisedAddress::parse(&huge).unwrap_err().value.len() <= MAX_ADVERTISE_LEN);
    }
}
