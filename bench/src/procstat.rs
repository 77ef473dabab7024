//! Resource use of a daemon from /proc: CPU time (utime + stime of every thread) and peak RSS.

use std::time::Duration;

/// CPU time used so far by process `pid` (user + system, all threads).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&s, clock_ticks())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime (field 14) + stime (field 15) of a /proc/PID/stat line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last ')'.
fn parse_stat_cpu(stat: &str, ticks_per_sec: u64) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14 -> index 11.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(
        ticks * 1_000_000_000 / ticks_per_sec.max(1),
    ))
}

/// Peak resident set size (VmHWM) of `pid`, bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&s, "VmHWM:").map(|kb| kb * 1024)
}

/// Current resident set size (VmRSS) of `pid`, bytes.
pub fn rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&s, "VmRSS:").map(|kb| kb * 1024)
}

fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let line = "1234 (tgtd (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 5";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn status_kilobytes() {
        let s = "Name:\tvdsd\nVmHWM:\t   20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(parse_status_kb(s, "VmHWM:"), Some(20480));
        assert_eq!(parse_status_kb(s, "VmRSS:"), Some(10240));
        assert_eq!(parse_status_kb(s, "VmSwap:"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(cpu_time(me).is_some());
        assert!(peak_rss(me).unwrap() > 0);
        assert!(rss(me).unwrap() > 0);
    }
}
