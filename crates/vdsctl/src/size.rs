//! Sizes on the command line (`1GiB`, `512MiB`, `10G`, `1.5TiB`, plain bytes) and their display.
//!
//! Units follow coreutils: `K M G T P E` and `KiB … EiB` are powers of 1024, `KB … EB` powers of
//! 1000; `B` is bytes. Unit letters are case-insensitive. A fraction is allowed when it names a
//! whole number of bytes. Anything else is a usage error, never a guess.

/// Parses a size; the error text names what is wrong and is shown as a usage error.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty size".into());
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim_start();
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "p" | "pib" => 1 << 50,
        "e" | "eib" => 1 << 60,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        "eb" => 1_000_000_000_000_000_000,
        _ => {
            return Err(format!(
                "invalid size {input:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB, K, M, G, T, KB, MB, GB, TB)"
            ))
        }
    };
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(format!("invalid size {input:?}: no number"));
    }
    if frac_part.contains('.') || (num.contains('.') && frac_part.is_empty()) {
        return Err(format!("invalid size {input:?}: malformed number"));
    }
    let too_big = || format!("invalid size {input:?}: larger than 2^64-1 bytes");
    // Integer arithmetic on u128 keeps fractions exact: value = (int·10^f + frac)·mult / 10^f.
    let digits = format!("{int_part}{frac_part}");
    if digits.len() > 38 {
        return Err(too_big());
    }
    let scaled: u128 = digits
        .parse()
        .map_err(|_| format!("invalid size {input:?}: malformed number"))?;
    let denom = 10u128.pow(frac_part.len() as u32);
    let total = scaled.checked_mul(multiplier).ok_or_else(too_big)?;
    if total % denom != 0 {
        return Err(format!(
            "invalid size {input:?}: not a whole number of bytes"
        ));
    }
    u64::try_from(total / denom).map_err(|_| too_big())
}

/// Human display of a byte count: exact binary units when they fit, else two decimals.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    let mut div: u64 = 1024;
    while unit + 1 < UNITS.len() && bytes / div >= 1024 {
        div *= 1024;
        unit += 1;
    }
    if bytes.checked_rem(div) == Some(0) {
        format!("{} {}", bytes / div, UNITS[unit])
    } else {
        format!("{:.2} {}", bytes as f64 / div as f64, UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_units() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("10g"), Ok(10 << 30));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("2 TiB"), Ok(2 << 40));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("7B"), Ok(7));
    }

    #[test]
    fn fractions_must_be_whole_bytes() {
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size(".5K"), Ok(512));
        assert!(parse_size("1.5B").is_err());
        assert!(parse_size("0.1K").is_err());
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        for bad in [
            "", " ", "GiB", "abc", "1XiB", "-1", "1..2G", "1.", "1.2.3M", "12 34", "1GiBs",
        ] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.contains("size"), "{bad}: {e}");
        }
    }

    #[test]
    fn overflow_is_rejected() {
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("16EiB").is_err());
        assert!(parse_size("99999999999999999999999999999999999999999G").is_err());
    }

    #[test]
    fn display_is_exact_when_it_can_be() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(3 << 29), "1.50 GiB");
        assert_eq!(format_size(1536 << 20), "1.50 GiB");
        assert_eq!(format_size(u64::MAX), "16.00 EiB");
    }
}
