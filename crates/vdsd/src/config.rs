//! The optional `--config FILE`: `key = value` lines, `#` comments. Unknown keys and bad values
//! are errors that name the line, so a typo never silently changes behaviour. An error names
//! the line number and the key, never the value or the line: the line may hold a secret
//! (`api_token`), and errors go to logs.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configured API token; its `Debug` never shows it (a config printed in a log or a panic
/// message must not carry the key to the API).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(pub String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiToken(<{} bytes>)", self.0.len())
    }
}

/// Daemon settings that are not flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// AsyncEvent 1 Parameter3 and the drop deadline when a portal goes OFFLINE.
    pub logout_timeout: Duration,
    /// `false` reproduces the documented "not supported" provider for portal SetStatus.
    pub portal_status_settable: bool,
    /// Bearer token the API requires (absent: the one in `<data-dir>/api-token`).
    pub api_token: Option<ApiToken>,
    /// Host names, besides the API's address and `localhost`, that clients may put in the
    /// `Host` header (a reverse proxy's name).
    pub api_hosts: Vec<String>,
    /// `GET /metrics` without the bearer token.
    pub metrics_public: bool,
    /// Data-path limits (`None`: the `vds_target::Limits` default).
    pub max_sessions_per_target: Option<usize>,
    pub max_connections_per_portal: Option<usize>,
    pub login_timeout: Option<Duration>,
    /// Commands outstanding per session (the CmdSN window).
    pub queue_depth: Option<u32>,
    pub max_recv_data_segment_length: Option<u32>,
    pub max_burst_length: Option<u32>,
    pub first_burst_length: Option<u32>,
    /// Largest write (EDTL) buffered per command.
    pub max_write_bytes: Option<u32>,
    /// Threads running iSCSI connections (default: one per core).
    pub io_threads: Option<usize>,
    /// Bytes one connection may hold (commands, Data-Out, queued Data-In); BEHAVIOUR §13.
    pub max_connection_buffer_bytes: Option<usize>,
    /// Bytes all connections together may hold; BEHAVIOUR §13.
    pub max_buffer_bytes: Option<usize>,
    /// API limits.
    pub api_body_limit: usize,
    pub api_rate_limit: u32,
    pub api_rate_burst: u32,
    /// Where a block drive under a new device node is looked for (`None`: the provider's
    /// default, `/dev`; empty: never looked for). BEHAVIOUR.md §15.
    pub drive_search_dirs: Option<Vec<PathBuf>>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            logout_timeout: Duration::from_secs(2),
            portal_status_settable: true,
            api_token: None,
            api_hosts: Vec::new(),
            metrics_public: false,
            max_sessions_per_target: None,
            max_connections_per_portal: None,
            login_timeout: None,
            queue_depth: None,
            max_recv_data_segment_length: None,
            max_burst_length: None,
            first_burst_length: None,
            max_write_bytes: None,
            io_threads: None,
            max_connection_buffer_bytes: None,
            max_buffer_bytes: None,
            api_body_limit: vds_api::ApiLimits::default().body_limit,
            api_rate_limit: vds_api::ApiLimits::default().rate_per_sec,
            api_rate_burst: vds_api::ApiLimits::default().burst,
            drive_search_dirs: None,
        }
    }
}

/// An integer within `range`, or the error naming the line, the key and the range.
fn parse_in<T>(n: usize, k: &str, v: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    v.parse::<T>()
        .ok()
        .filter(|x| range.contains(x))
        .ok_or_else(|| {
            format!(
                "line {n}: {k} must be an integer in {}..={}",
                range.start(),
                range.end()
            )
        })
}

/// A key as an error may show it (a line pasted by mistake could be long).
fn shorten(k: &str) -> String {
    k.chars().take(40).collect()
}

/// `api_hosts = a.example, b.example`: DNS names (letters, digits, `-`, `.`).
fn parse_hosts(n: usize, v: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = v
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let valid = |h: &String| {
        h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if names.is_empty() || !names.iter().all(valid) {
        return Err(format!(
            "line {n}: api_hosts must be a comma-separated list of host names"
        ));
    }
    Ok(names)
}

/// `drive_search_dirs = /dev, /srv/disks` (absolute directories, at most 16), or `none`.
fn parse_search_dirs(n: usize, v: &str) -> Result<Vec<PathBuf>, String> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let dirs: Vec<PathBuf> = v.split(',').map(|d| PathBuf::from(d.trim())).collect();
    let valid = |d: &PathBuf| d.is_absolute() && d.as_os_str().len() <= 4096;
    if dirs.len() > 16 || !dirs.iter().all(valid) {
        return Err(format!(
            "line {n}: drive_search_dirs must be `none` or a comma-separated list of at most 16 \
             absolute directories"
        ));
    }
    Ok(dirs)
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
                .ok_or_else(|| format!("line {n}: expected `key = value`"))?;
            let (k, v) = (k.trim(), v.trim());
            match k {
                "logout_timeout_secs" => {
                    let s: u64 = v
                        .parse()
                        .ok()
                        .filter(|s| (1..=3600).contains(s))
                        .ok_or_else(|| {
                            format!("line {n}: logout_timeout_secs must be an integer in 1..=3600")
                        })?;
                    c.logout_timeout = Duration::from_secs(s);
                }
                "portal_status_settable" => {
                    c.portal_status_settable = parse_bool(v).ok_or_else(|| {
                        format!("line {n}: portal_status_settable must be true or false")
                    })?;
                }
                "api_token" => {
                    if v.len() < 16 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(format!(
                            "line {n}: api_token must be at least 16 printable characters \
                             without spaces"
                        ));
                    }
                    c.api_token = Some(ApiToken(v.to_string()));
                }
                "api_hosts" => c.api_hosts = parse_hosts(n, v)?,
                "metrics_public" => {
                    c.metrics_public = parse_bool(v)
                        .ok_or_else(|| format!("line {n}: metrics_public must be true or false"))?;
                }
                "max_sessions_per_target" => {
                    c.max_sessions_per_target = Some(parse_in(n, k, v, 1..=65_535)?);
                }
                "max_connections_per_portal" => {
                    c.max_connections_per_portal = Some(parse_in(n, k, v, 1..=1_000_000)?);
                }
                "login_timeout_secs" => {
                    c.login_timeout = Some(Duration::from_secs(parse_in(n, k, v, 1..=3600)?));
                }
                "queue_depth" => c.queue_depth = Some(parse_in(n, k, v, 1..=65_536)?),
                // RFC 7143 bounds: 512 to 2^24 - 1.
                "max_recv_data_segment_length" => {
                    c.max_recv_data_segment_length = Some(parse_in(n, k, v, 512..=16_777_215)?);
                }
                "max_burst_length" => {
                    c.max_burst_length = Some(parse_in(n, k, v, 512..=16_777_215)?);
                }
                "first_burst_length" => {
                    c.first_burst_length = Some(parse_in(n, k, v, 512..=16_777_215)?);
                }
                "max_write_bytes" => {
                    c.max_write_bytes = Some(parse_in(n, k, v, 4096..=1 << 30)?);
                }
                "io_threads" => c.io_threads = Some(parse_in(n, k, v, 1..=256)?),
                "max_connection_buffer_bytes" => {
                    c.max_connection_buffer_bytes = Some(parse_in(n, k, v, 1 << 20..=1 << 40)?);
                }
                "max_buffer_bytes" => {
                    c.max_buffer_bytes = Some(parse_in(n, k, v, 1 << 20..=1 << 44)?);
                }
                "api_body_limit_bytes" => c.api_body_limit = parse_in(n, k, v, 1024..=1 << 30)?,
                "api_rate_limit_per_sec" => c.api_rate_limit = parse_in(n, k, v, 0..=1_000_000)?,
                "api_rate_burst" => c.api_rate_burst = parse_in(n, k, v, 1..=1_000_000)?,
                "drive_search_dirs" => c.drive_search_dirs = Some(parse_search_dirs(n, v)?),
                other => return Err(format!("line {n}: unknown key {:?}", shorten(other))),
            }
        }
        if let (Some(f), Some(m)) = (c.first_burst_length, c.max_burst_length) {
            if f > m {
                return Err(format!(
                    "first_burst_length ({f}) must not exceed max_burst_length ({m})"
                ));
            }
        }
        let l = vds_target::Limits::default();
        let (conn, all) = (
            c.max_connection_buffer_bytes
                .unwrap_or(l.connection.max_buffer_bytes),
            c.max_buffer_bytes.unwrap_or(l.max_buffer_bytes),
        );
        if conn > all {
            return Err(format!(
                "max_connection_buffer_bytes ({conn}) must not exceed max_buffer_bytes ({all})"
            ));
        }
        Ok(c)
    }

    /// The data-path limits: `vds_target::Limits::default()` with this file's keys applied.
    pub fn target_limits(&self) -> vds_target::Limits {
        let mut l = vds_target::Limits::default();
        if let Some(x) = self.max_sessions_per_target {
            l.sessions_per_target = x;
        }
        if let Some(x) = self.max_connections_per_portal {
            l.connections_per_portal = x;
        }
        if let Some(x) = self.login_timeout {
            l.login_timeout = x;
        }
        if let Some(x) = self.queue_depth {
            l.negotiation.queue_depth = x;
        }
        if let Some(x) = self.max_recv_data_segment_length {
            l.negotiation.max_recv_data_segment_length = x;
        }
        if let Some(x) = self.max_burst_length {
            l.negotiation.max_burst_length = x;
        }
        if let Some(x) = self.first_burst_length {
            l.negotiation.first_burst_length = x;
        }
        // A default first burst larger than a configured max burst would be refused by no
        // one: keep FirstBurstLength <= MaxBurstLength whatever was set.
        l.negotiation.first_burst_length = l
            .negotiation
            .first_burst_length
            .min(l.negotiation.max_burst_length);
        if let Some(x) = self.max_write_bytes {
            l.connection.max_write_len = x;
        }
        if let Some(x) = self.io_threads {
            l.io_threads = x;
        }
        if let Some(x) = self.max_connection_buffer_bytes {
            l.connection.max_buffer_bytes = x;
        }
        if let Some(x) = self.max_buffer_bytes {
            l.max_buffer_bytes = x;
        }
        l
    }

    /// The API limits.
    pub fn api_limits(&self) -> vds_api::ApiLimits {
        vds_api::ApiLimits {
            body_limit: self.api_body_limit,
            rate_per_sec: self.api_rate_limit,
            burst: self.api_rate_burst,
        }
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
    fn drive_search_dirs_are_absolute_directories_or_none() {
        assert_eq!(DaemonConfig::default().drive_search_dirs, None);
        let c = DaemonConfig::parse("drive_search_dirs = /dev, /srv/disks\n").unwrap();
        assert_eq!(
            c.drive_search_dirs,
            Some(vec![PathBuf::from("/dev"), PathBuf::from("/srv/disks")])
        );
        let c = DaemonConfig::parse("drive_search_dirs = none").unwrap();
        assert_eq!(c.drive_search_dirs, Some(vec![]));
        for bad in ["", "dev", "/dev,", "/dev, relative"] {
            let e = DaemonConfig::parse(&format!("\ndrive_search_dirs = {bad}")).unwrap_err();
            assert!(
                e.contains("line 2") && e.contains("drive_search_dirs"),
                "{bad:?}: {e}"
            );
        }
        let many = vec!["/d"; 17].join(",");
        assert!(DaemonConfig::parse(&format!("drive_search_dirs = {many}")).is_err());
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
        let c = DaemonConfig::parse("api_token = 0123456789abcdef-secret").unwrap();
        assert_eq!(c.api_token.as_ref().unwrap().0, "0123456789abcdef-secret");
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "the token is not in Debug: {c:?}"
        );
    }

    /// An error names the line and the key, never the value or the line itself: a secret
    /// could be on it, and the error goes to a log.
    #[test]
    fn errors_never_echo_the_line() {
        const SECRET: &str = "hunter2-s3cr3t-value-XYZ";
        for text in [
            SECRET.to_string(),
            format!("api_token {SECRET}"),
            format!("api_token = {SECRET} with spaces"),
            format!("logout_timeout_secs = {SECRET}"),
            format!("queue_depth = {SECRET}"),
            format!("portal_status_settable = {SECRET}"),
            format!("metrics_public = {SECRET}"),
            format!("api_hosts = {SECRET}/x"),
            format!("\n\nmax_burst_length = {SECRET}"),
        ] {
            let e = DaemonConfig::parse(&text).unwrap_err();
            assert!(!e.contains(SECRET), "{text:?} -> {e}");
            assert!(!e.contains("hunter2"), "{text:?} -> {e}");
            assert!(e.starts_with("line "), "names the line: {e}");
        }
        let e = DaemonConfig::parse(&format!("queue_depth = {SECRET}")).unwrap_err();
        assert_eq!(e, "line 1: queue_depth must be an integer in 1..=65536");
        let e = DaemonConfig::parse(&format!("# c\napi_token {SECRET}")).unwrap_err();
        assert_eq!(e, "line 2: expected `key = value`");
        let c = DaemonConfig::parse("api_hosts = Array.example, b.example\nmetrics_public = yes")
            .unwrap();
        assert_eq!(c.api_hosts, ["array.example", "b.example"]);
        assert!(c.metrics_public);
    }

    #[test]
    fn buffer_budget_keys_apply_and_are_range_checked() {
        let l = DaemonConfig::parse(
            "max_connection_buffer_bytes = 2097152
max_buffer_bytes = 8388608",
        )
        .unwrap()
        .target_limits();
        assert_eq!(l.connection.max_buffer_bytes, 2 << 20);
        assert_eq!(l.max_buffer_bytes, 8 << 20);
        let d = DaemonConfig::parse("").unwrap().target_limits();
        assert_eq!(d.connection.max_buffer_bytes, 16 << 20);
        assert_eq!(d.max_buffer_bytes, 256 << 20);
        for bad in [
            "max_connection_buffer_bytes = 1000",
            "max_connection_buffer_bytes = -1",
            "max_buffer_bytes = 0",
            "max_buffer_bytes = lots",
            // A connection's share larger than the whole.
            "max_connection_buffer_bytes = 33554432\nmax_buffer_bytes = 16777216",
            "max_buffer_bytes = 8388608",
        ] {
            assert!(DaemonConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_keys_apply_and_refuse_out_of_range_values() {
        let c = DaemonConfig::parse(
            "max_sessions_per_target = 2\nmax_connections_per_portal = 3\nlogin_timeout_secs = 4\n\
             queue_depth = 5\nmax_recv_data_segment_length = 4096\nmax_burst_length = 8192\n\
             first_burst_length = 4096\nmax_write_bytes = 65536\napi_body_limit_bytes = 2048\n\
             api_rate_limit_per_sec = 7\napi_rate_burst = 8\nio_threads = 3\n",
        )
        .unwrap();
        let l = c.target_limits();
        assert_eq!(l.sessions_per_target, 2);
        assert_eq!(l.connections_per_portal, 3);
        assert_eq!(l.login_timeout, Duration::from_secs(4));
        assert_eq!(l.negotiation.queue_depth, 5);
        assert_eq!(l.negotiation.max_recv_data_segment_length, 4096);
        assert_eq!(l.negotiation.max_burst_length, 8192);
        assert_eq!(l.negotiation.first_burst_length, 4096);
        assert_eq!(l.connection.max_write_len, 65536);
        assert_eq!(l.io_threads, 3);
        let a = c.api_limits();
        assert_eq!((a.body_limit, a.rate_per_sec, a.burst), (2048, 7, 8));
        // Only a max burst: the default first burst is clamped under it.
        let l = DaemonConfig::parse("max_burst_length = 1024")
            .unwrap()
            .target_limits();
        assert_eq!(l.negotiation.first_burst_length, 1024);

        for bad in [
            "max_sessions_per_target = 0",
            "queue_depth = -1",
            "max_recv_data_segment_length = 511",
            "max_burst_length = 16777216",
            "login_timeout_secs = forever",
            "io_threads = 0",
            "io_threads = 257",
            "api_body_limit_bytes = 10",
            "api_rate_burst = 0",
        ] {
            let e = DaemonConfig::parse(bad).unwrap_err();
            assert!(
                e.contains("line 1") && e.contains(bad.split(' ').next().unwrap()),
                "{e}"
            );
        }
        let e =
            DaemonConfig::parse("max_burst_length = 1024\nfirst_burst_length = 2048").unwrap_err();
        assert!(e.contains("first_burst_length"), "{e}");
    }
}
