//! The optional `--config FILE`: `key = value` lines, `#` comments. Unknown keys and bad values
//! are errors that name the line, so a typo never silently changes behaviour.

use std::path::Path;
use std::time::Duration;

/// Daemon settings that are not flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// AsyncEvent 1 Parameter3 and the drop deadline when a portal goes OFFLINE.
    pub logout_timeout: Duration,
    /// `false` reproduces the documented "not supported" provider for portal SetStatus.
    pub portal_status_settable: bool,
    /// Bearer token the API requires when bound to a non-loopback address.
    pub api_token: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            logout_timeout: Duration::from_secs(2),
            portal_status_settable: true,
            api_token: None,
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

impl DaemonConfig {
    pub fn parse(text: &str) -> Result<DaemonConfig, String> {
        let mut c = DaemonConfig::default();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line {n}: expected `key = value`, found {line:?}"))?;
            let (k, v) = (k.trim(), v.trim());
            match k {
                "logout_timeout_secs" => {
                    let s: u64 = v
                        .parse()
                        .ok()
                        .filter(|s| (1..=3600).contains(s))
                        .ok_or_else(|| {
                            format!("line {n}: logout_timeout_secs must be 1..=3600, found {v:?}")
                        })?;
                    c.logout_timeout = Duration::from_secs(s);
                }
                "portal_status_settable" => {
                    c.portal_status_settable = parse_bool(v).ok_or_else(|| {
                        format!(
                            "line {n}: portal_status_settable must be true or false, found {v:?}"
                        )
                    })?;
                }
                "api_token" => {
                    if v.len() < 16 {
                        return Err(format!(
                            "line {n}: api_token must be at least 16 characters"
                        ));
                    }
                    c.api_token = Some(v.to_string());
                }
                other => return Err(format!("line {n}: unknown key {other:?}")),
            }
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<DaemonConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys_and_comments() {
        let c = DaemonConfig::parse(
            "# vds\nlogout_timeout_secs = 5\nportal_status_settable = false # legacy\n",
        )
        .unwrap();
        assert_eq!(c.logout_timeout, Duration::from_secs(5));
        assert!(!c.portal_status_settable);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values_naming_the_line() {
        assert!(DaemonConfig::parse("logout_timeot_secs = 5")
            .unwrap_err()
            .contains("line 1"));
        assert!(DaemonConfig::parse("\nlogout_timeout_secs = 0")
            .unwrap_err()
            .contains("line 2"));
        assert!(DaemonConfig::parse("portal_status_settable = maybe").is_err());
        assert!(DaemonConfig::parse("just words").is_err());
        assert!(DaemonConfig::parse("api_token = short").is_err());
    }
}
