//! Text keys: the `key=value\0` lists of Login and Text PDUs (RFC 7143 §6), binary values
//! (`0x` hex, `0b` base64) and numbers.

use base64::Engine as _;

/// Why a key list is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("a key/value pair has no '='")]
    NoEquals,
    #[error("a key or value is not UTF-8")]
    NotUtf8,
    #[error("key {0:?} appears twice")]
    Repeated(String),
    #[error("key name {0:?} is invalid")]
    BadKey(String),
}

/// Parse a complete key list. Empty entries (extra NULs, e.g. padding) are skipped.
pub fn parse(data: &[u8]) -> Result<Vec<(String, String)>, TextError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in data.split(|&c| c == 0) {
        if item.is_empty() {
            continue;
        }
        let s = std::str::from_utf8(item).map_err(|_| TextError::NotUtf8)?;
        let (k, v) = s.split_once('=').ok_or(TextError::NoEquals)?;
        if k.is_empty() || k.len() > 63 {
            return Err(TextError::BadKey(k.to_string()));
        }
        if out.iter().any(|(ok, _)| ok == k) {
            return Err(TextError::Repeated(k.to_string()));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Encode pairs as `key=value\0...`.
pub fn encode(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Decode a binary value: `0x`/`0X` hex (odd digit count allowed, leading nibble) or `0b`/`0B`
/// base64. Anything else is not a binary value.
pub fn decode_binary(v: &str) -> Option<Vec<u8>> {
    let (prefix, body) = (v.get(..2)?, v.get(2..)?);
    match prefix {
        "0x" | "0X" => {
            if body.is_empty() {
                return None;
            }
            if body.len() % 2 == 1 {
                hex::decode(format!("0{body}")).ok()
            } else {
                hex::decode(body).ok()
            }
        }
        "0b" | "0B" => {
            if body.is_empty() {
                return None;
            }
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .ok()
                .or_else(|| {
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(body)
                        .ok()
                })
        }
        _ => None,
    }
}

/// Encode bytes as `0x` hex.
pub fn encode_hex(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Encode bytes as `0b` base64.
pub fn encode_base64(b: &[u8]) -> String {
    format!("0b{}", base64::engine::general_purpose::STANDARD.encode(b))
}

/// Parse a numeric value: decimal, or `0x` hex. Leading `+`/`-` and empty values are refused.
pub fn parse_number(v: &str) -> Option<u64> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 16 {
            return None;
        }
        return u64::from_str_radix(h, 16).ok();
    }
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) || v.len() > 20 {
        return None;
    }
    v.parse().ok()
}

/// Parse `Yes`/`No`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

pub fn bool_str(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_skips_padding_nuls() {
        let p = parse(b"InitiatorName=iqn.x\0SessionType=Normal\0\0\0").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1], ("SessionType".into(), "Normal".into()));
    }

    #[test]
    fn repeated_key_is_an_error() {
        assert_eq!(parse(b"A=1\0A=2\0"), Err(TextError::Repeated("A".into())));
        assert_eq!(parse(b"novalue\0"), Err(TextError::NoEquals));
    }

    #[test]
    fn binary_values_in_hex_and_base64() {
        assert_eq!(decode_binary("0x0a0B"), Some(vec![0x0a, 0x0b]));
        assert_eq!(decode_binary("0xabc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(decode_binary("0bAQID"), Some(vec![1, 2, 3]));
        assert_eq!(decode_binary("0x"), None);
        assert_eq!(decode_binary("0xzz"), None);
        assert_eq!(decode_binary("12"), None);
        assert_eq!(decode_binary(&encode_base64(&[9; 17])), Some(vec![9; 17]));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("8192"), Some(8192));
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number(""), None);
    }
}
