//! The data path's series in `GET /metrics` (docs/INTERFACE.md "Metrics"): per-LUN commands,
//! bytes, errors by sense key, latency histograms and commands in flight; sessions,
//! connections, logins and CHAP failures per target and portal; rejected PDUs, task
//! management functions and unit attentions. The counts come from `Provider::telemetry`
//! (merged from the I/O threads at this moment); this file only writes them out.
//!
//! Bounded by construction: a LUN is written only while the provider lists it (a deleted
//! LUN's series go away), targets and portals only while configured, and every other label
//! comes from a fixed table.

use std::collections::HashMap;
use std::fmt::Write as _;

use uuid::Uuid;
use vds_provider::{
    Command, Histogram, LunTelemetry, Outcome, Provider, Telemetry, LATENCY_BUCKETS_SECONDS,
    SENSE_KEY_NAMES,
};

use crate::metrics::escape;

/// Writes `# HELP` and `# TYPE` of one family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The labels of a LUN: its id and (escaped) friendly name.
fn lun_labels(l: &LunTelemetry, names: &HashMap<Uuid, String>) -> Option<String> {
    let name = names.get(&l.lun)?;
    Some(format!("lun=\"{}\",name=\"{}\"", l.lun, escape(name)))
}

/// One histogram's samples (cumulative buckets, `+Inf`, sum in seconds, count).
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut acc = 0u64;
    for (i, le) in LATENCY_BUCKETS_SECONDS.iter().enumerate() {
        acc += h.buckets[i];
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {acc}");
    }
    let count = h.count();
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_nanos as f64 / 1e9);
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// The per-LUN families, for the LUNs in `names` (id → friendly name). A listed LUN that no
/// command has reached yet is written with zeros, so its series exist from its creation (a
/// `rate()` or a console sparkline starts at zero, not at its first command).
pub fn render_luns(t: &Telemetry, names: &HashMap<Uuid, String>, out: &mut String) {
    let idle: Vec<LunTelemetry> = names
        .keys()
        .filter(|id| !t.luns.iter().any(|l| l.lun == **id))
        .map(|&lun| LunTelemetry {
            lun,
            ..LunTelemetry::default()
        })
        .collect();
    let mut luns: Vec<(String, &LunTelemetry)> = t
        .luns
        .iter()
        .chain(idle.iter())
        .filter_map(|l| Some((lun_labels(l, names)?, l)))
        .collect();
    luns.sort_by(|a, b| a.0.cmp(&b.0));
    family(
        out,
        "vds_lun_commands_total",
        "counter",
        "SCSI commands answered by a LUN, by kind (read, write, flush = SYNCHRONIZE CACHE, other).",
    );
    for (lab, l) in &luns {
        for (op, n) in [
            ("read", l.reads),
            ("write", l.writes),
            ("flush", l.flushes),
            ("other", l.others),
        ] {
            let _ = writeln!(out, "vds_lun_commands_total{{{lab},op=\"{op}\"}} {n}");
        }
    }
    family(
        out,
        "vds_lun_read_bytes_total",
        "counter",
        "Data-In bytes a LUN's commands sent to initiators.",
    );
    for (lab, l) in &luns {
        let _ = writeln!(out, "vds_lun_read_bytes_total{{{lab}}} {}", l.bytes_read);
    }
    family(
        out,
        "vds_lun_written_bytes_total",
        "counter",
        "Data-Out bytes a LUN's commands received from initiators.",
    );
    for (lab, l) in &luns {
        let _ = writeln!(
            out,
            "vds_lun_written_bytes_total{{{lab}}} {}",
            l.bytes_written
        );
    }
    family(
        out,
        "vds_lun_errors_total",
        "counter",
        "A LUN's commands answered CHECK CONDITION, by sense key (keys never seen are absent).",
    );
    for (lab, l) in &luns {
        for (k, n) in l.errors_by_sense_key.iter().enumerate() {
            if *n != 0 {
                let _ = writeln!(
                    out,
                    "vds_lun_errors_total{{{lab},sense_key=\"{}\"}} {n}",
                    SENSE_KEY_NAMES[k]
                );
            }
        }
    }
    family(
        out,
        "vds_lun_in_flight_commands",
        "gauge",
        "A LUN's commands handed to it and not yet answered.",
    );
    for (lab, l) in &luns {
        let _ = writeln!(out, "vds_lun_in_flight_commands{{{lab}}} {}", l.in_flight);
    }
    family(
        out,
        "vds_lun_command_duration_seconds",
        "histogram",
        "Time from the socket read that made a READ or WRITE whole (its last PDU) to the queueing of its answer.",
    );
    for (lab, l) in &luns {
        histogram(
            out,
            "vds_lun_command_duration_seconds",
            &format!("{lab},op=\"read\""),
            &l.read_latency,
        );
        histogram(
            out,
            "vds_lun_command_duration_seconds",
            &format!("{lab},op=\"write\""),
            &l.write_latency,
        );
    }
    family(
        out,
        "vds_lun_flush_duration_seconds",
        "histogram",
        "Backing-store flushes (SYNCHRONIZE CACHE) of a LUN and their time; _count is the number of flushes.",
    );
    for (lab, l) in &luns {
        histogram(out, "vds_lun_flush_duration_seconds", lab, &l.flush_latency);
    }
}

/// `None` as the empty label value (discovery sessions, unknown targets).
fn id_or_empty(id: Option<Uuid>) -> String {
    id.map(|u| u.to_string()).unwrap_or_default()
}

/// The per-target, per-portal and protocol families.
pub fn render_ports(t: &Telemetry, out: &mut String) {
    family(
        out,
        "vds_target_sessions",
        "gauge",
        "Logged-in normal sessions of a target through a portal.",
    );
    for p in &t.ports {
        let _ = writeln!(
            out,
            "vds_target_sessions{{target=\"{}\",portal=\"{}\"}} {}",
            p.target, p.portal, p.sessions
        );
    }
    family(
        out,
        "vds_portal_connections",
        "gauge",
        "Open iSCSI TCP connections through a portal (logged in or not).",
    );
    for (p, n) in &t.portal_connections {
        let _ = writeln!(out, "vds_portal_connections{{portal=\"{p}\"}} {n}");
    }
    family(
        out,
        "vds_logins_total",
        "counter",
        "Login attempts through a portal, accepted or refused, by login status (target empty: discovery or unknown target).",
    );
    for l in &t.logins {
        let result = if l.status == 0 { "accepted" } else { "refused" };
        let _ = writeln!(
            out,
            "vds_logins_total{{target=\"{}\",portal=\"{}\",result=\"{result}\",status=\"{}\"}} {}",
            id_or_empty(l.target),
            l.portal,
            l.status_name,
            l.count
        );
    }
    family(
        out,
        "vds_chap_failures_total",
        "counter",
        "Logins refused because CHAP authentication failed (status authentication_failure).",
    );
    for l in t.logins.iter().filter(|l| l.status == 0x0201) {
        let _ = writeln!(
            out,
            "vds_chap_failures_total{{target=\"{}\",portal=\"{}\"}} {}",
            id_or_empty(l.target),
            l.portal,
            l.count
        );
    }
    family(
        out,
        "vds_pdus_rejected_total",
        "counter",
        "PDUs answered with a Reject, by reason.",
    );
    for (r, n) in &t.rejects {
        let _ = writeln!(out, "vds_pdus_rejected_total{{reason=\"{r}\"}} {n}");
    }
    family(
        out,
        "vds_task_management_total",
        "counter",
        "Task management functions answered, by function and response.",
    );
    for (f, r, n) in &t.tmfs {
        let _ = writeln!(
            out,
            "vds_task_management_total{{function=\"{f}\",response=\"{r}\"}} {n}"
        );
    }
    family(
        out,
        "vds_unit_attentions_total",
        "counter",
        "Unit attention conditions reported to initiators, by ASC/ASCQ.",
    );
    for (c, n) in &t.unit_attentions {
        let _ = writeln!(out, "vds_unit_attentions_total{{condition=\"{c}\"}} {n}");
    }
}

/// The data path's series, read now. Blocking (call from a blocking thread). LUN names come
/// from the provider's list; a LUN it no longer lists is left out.
pub fn render(provider: &Provider, out: &mut String) {
    let t = provider.telemetry();
    let names: HashMap<Uuid, String> = match provider.apply(Command::ListLuns { subsystem: None }) {
        Ok(Outcome::Luns(v)) => v.into_iter().map(|l| (l.id, l.friendly_name)).collect(),
        _ => HashMap::new(),
    };
    render_luns(&t, &names, out);
    render_ports(&t, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use vds_provider::{LoginTelemetry, PortTelemetry};

    fn sample() -> (Telemetry, HashMap<Uuid, String>) {
        let lun = Uuid::from_u128(0xA);
        let mut read_latency = Histogram::default();
        read_latency.buckets[0] = 2; // <= 50 us
        read_latency.buckets[4] = 1; // <= 1 ms
        read_latency.buckets[14] = 1; // > 1 s
        read_latency.sum_nanos = 1_500_000_000;
        let mut errors = [0u64; 16];
        errors[5] = 3;
        let t = Telemetry {
            luns: vec![
                LunTelemetry {
                    lun,
                    reads: 4,
                    writes: 1,
                    bytes_read: 16384,
                    bytes_written: 512,
                    errors_by_sense_key: errors,
                    in_flight: 2,
                    read_latency,
                    ..Default::default()
                },
                // Not listed by the provider (deleted): never written.
                LunTelemetry {
                    lun: Uuid::from_u128(0xB),
                    reads: 9,
                    ..Default::default()
                },
            ],
            ports: vec![PortTelemetry {
                target: Uuid::from_u128(1),
                portal: Uuid::from_u128(2),
                sessions: 1,
            }],
            portal_connections: vec![(Uuid::from_u128(2), 3)],
            logins: vec![
                LoginTelemetry {
                    target: Some(Uuid::from_u128(1)),
                    portal: Uuid::from_u128(2),
                    status: 0x0201,
                    status_name: "authentication_failure",
                    count: 2,
                },
                LoginTelemetry {
                    target: None,
                    portal: Uuid::from_u128(2),
                    status: 0,
                    status_name: "success",
                    count: 1,
                },
            ],
            rejects: vec![("protocol_error", 1)],
            tmfs: vec![("abort_task", "task_does_not_exist", 1)],
            unit_attentions: vec![("power_on_reset", 4)],
        };
        let names = HashMap::from([
            (lun, "db \"main\"\\1\n".to_string()),
            // Listed, never reached by a command: written with zeros.
            (Uuid::from_u128(0xC), "idle".to_string()),
        ]);
        (t, names)
    }

    #[test]
    fn lun_series_are_exact_cumulative_and_escaped() {
        let (t, names) = sample();
        let mut out = String::new();
        render_luns(&t, &names, &mut out);
        let lab = "lun=\"00000000-0000-0000-0000-00000000000a\",name=\"db \\\"main\\\"\\\\1\\n\"";
        for want in [
            format!("vds_lun_commands_total{{{lab},op=\"read\"}} 4\n"),
            format!("vds_lun_commands_total{{{lab},op=\"write\"}} 1\n"),
            format!("vds_lun_read_bytes_total{{{lab}}} 16384\n"),
            format!("vds_lun_written_bytes_total{{{lab}}} 512\n"),
            format!("vds_lun_errors_total{{{lab},sense_key=\"illegal_request\"}} 3\n"),
            format!("vds_lun_in_flight_commands{{{lab}}} 2\n"),
            format!(
                "vds_lun_command_duration_seconds_bucket{{{lab},op=\"read\",le=\"0.00005\"}} 2\n"
            ),
            format!(
                "vds_lun_command_duration_seconds_bucket{{{lab},op=\"read\",le=\"0.0005\"}} 2\n"
            ),
            format!(
                "vds_lun_command_duration_seconds_bucket{{{lab},op=\"read\",le=\"0.001\"}} 3\n"
            ),
            format!("vds_lun_command_duration_seconds_bucket{{{lab},op=\"read\",le=\"1\"}} 3\n"),
            format!("vds_lun_command_duration_seconds_bucket{{{lab},op=\"read\",le=\"+Inf\"}} 4\n"),
            format!("vds_lun_command_duration_seconds_sum{{{lab},op=\"read\"}} 1.5\n"),
            format!("vds_lun_command_duration_seconds_count{{{lab},op=\"read\"}} 4\n"),
            format!("vds_lun_flush_duration_seconds_count{{{lab}}} 0\n"),
        ] {
            assert!(out.contains(&want), "missing {want:?} in\n{out}");
        }
        assert!(
            !out.contains("0000000b"),
            "a deleted LUN is written:\n{out}"
        );
        let idle = "lun=\"00000000-0000-0000-0000-00000000000c\",name=\"idle\"";
        for want in [
            format!("vds_lun_commands_total{{{idle},op=\"read\"}} 0\n"),
            format!("vds_lun_read_bytes_total{{{idle}}} 0\n"),
            format!("vds_lun_written_bytes_total{{{idle}}} 0\n"),
            format!("vds_lun_in_flight_commands{{{idle}}} 0\n"),
            format!("vds_lun_command_duration_seconds_count{{{idle},op=\"write\"}} 0\n"),
        ] {
            assert!(out.contains(&want), "missing {want:?} in\n{out}");
        }
        assert!(!out.contains("sense_key=\"no_sense\""), "{out}");
        assert_help_and_type(&out);
    }

    #[test]
    fn port_and_protocol_series() {
        let (t, _) = sample();
        let mut out = String::new();
        render_ports(&t, &mut out);
        let (tg, po) = (Uuid::from_u128(1), Uuid::from_u128(2));
        for want in [
            format!("vds_target_sessions{{target=\"{tg}\",portal=\"{po}\"}} 1\n"),
            format!("vds_portal_connections{{portal=\"{po}\"}} 3\n"),
            format!("vds_logins_total{{target=\"{tg}\",portal=\"{po}\",result=\"refused\",status=\"authentication_failure\"}} 2\n"),
            format!("vds_logins_total{{target=\"\",portal=\"{po}\",result=\"accepted\",status=\"success\"}} 1\n"),
            format!("vds_chap_failures_total{{target=\"{tg}\",portal=\"{po}\"}} 2\n"),
            "vds_pdus_rejected_total{reason=\"protocol_error\"} 1\n".to_string(),
            "vds_task_management_total{function=\"abort_task\",response=\"task_does_not_exist\"} 1\n".to_string(),
            "vds_unit_attentions_total{condition=\"power_on_reset\"} 4\n".to_string(),
        ] {
            assert!(out.contains(&want), "missing {want:?} in\n{out}");
        }
        assert_help_and_type(&out);
    }

    /// Every sample's family has HELP and TYPE before it.
    fn assert_help_and_type(out: &str) {
        let mut declared = Vec::new();
        for line in out.lines() {
            if let Some(r) = line.strip_prefix("# TYPE ") {
                declared.push(r.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                declared.iter().any(|d| name == d
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{d}{s}"))),
                "{name} has no TYPE"
            );
        }
        for d in &declared {
            assert!(out.contains(&format!("# HELP {d} ")), "{d} has no HELP");
        }
    }
}
