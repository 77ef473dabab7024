//! Prometheus metrics (`GET /metrics`, text format 0.0.4): requests by route, method and
//! status with their latency; open event streams and events sent; and, read from the provider
//! at scrape time, object counts, LUN and portal statuses, job states and the cache state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use vds_model::CacheState;
use vds_provider::{Command, Outcome, Provider};

#[derive(Debug, Default, Clone, Copy)]
struct Latency {
    sum_seconds: f64,
    count: u64,
}

/// Counters kept by the API itself.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Latency>>,
    event_streams: AtomicI64,
    events_sent: AtomicU64,
}

/// Decrements the open-stream gauge when an event stream ends.
pub struct StreamGuard(Arc<Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.event_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, route: &str, method: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .entry((route.to_string(), method.to_string(), status))
            .or_insert(0) += 1;
        let mut lat = self.latency.lock();
        let l = lat
            .entry((route.to_string(), method.to_string()))
            .or_default();
        l.sum_seconds += seconds;
        l.count += 1;
    }

    /// Marks an event stream open until the guard is dropped.
    pub fn stream_opened(self: &Arc<Self>) -> StreamGuard {
        self.event_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// Counts one event written to a stream.
    pub fn event_sent(&self) {
        self.events_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far for `route`/`method`/`status`.
    pub fn request_count(&self, route: &str, method: &str, status: u16) -> u64 {
        self.requests
            .lock()
            .get(&(route.to_string(), method.to_string(), status))
            .copied()
            .unwrap_or(0)
    }

    /// The API's own series.
    pub fn render_api(&self, out: &mut String) {
        out.push_str(
            "# HELP vds_api_requests_total HTTP requests answered, by route, method and status.\n",
        );
        out.push_str("# TYPE vds_api_requests_total counter\n");
        for ((route, method, status), n) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "vds_api_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        out.push_str("# HELP vds_api_request_duration_seconds Time to answer HTTP requests.\n");
        out.push_str("# TYPE vds_api_request_duration_seconds summary\n");
        for ((route, method), l) in self.latency.lock().iter() {
            let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
            let _ = writeln!(
                out,
                "vds_api_request_duration_seconds_sum{{{labels}}} {}",
                l.sum_seconds
            );
            let _ = writeln!(
                out,
                "vds_api_request_duration_seconds_count{{{labels}}} {}",
                l.count
            );
        }
        gauge(
            out,
            "vds_api_event_streams",
            "Open GET /v1/events streams.",
            &[(
                None,
                self.event_streams.load(Ordering::Relaxed).max(0) as u64,
            )],
        );
        out.push_str("# HELP vds_api_events_sent_total Events written to event streams.\n");
        out.push_str("# TYPE vds_api_events_sent_total counter\n");
        let _ = writeln!(
            out,
            "vds_api_events_sent_total {}",
            self.events_sent.load(Ordering::Relaxed)
        );
    }
}

/// Escapes a label value.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one gauge family; each sample is `(Some((label, value)) | None, number)`.
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(Option<(&str, &str)>, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (label, n) in samples {
        match label {
            Some((k, v)) => {
                let _ = writeln!(out, "{name}{{{k}=\"{}\"}} {n}", escape(v));
            }
            None => {
                let _ = writeln!(out, "{name} {n}");
            }
        }
    }
}

fn count_by<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, u64> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// The provider's series, read now. Blocking (call from a blocking thread). While the cache
/// is corrupt, object calls fail: then only the cache state is reported.
pub fn render_provider(provider: &Provider, out: &mut String) {
    let cache_corrupt = match provider.apply(Command::GetProvider) {
        Ok(Outcome::Provider(p)) => u64::from(p.cache == CacheState::Corrupt),
        _ => 1,
    };
    gauge(
        out,
        "vds_provider_cache_corrupt",
        "1 while the provider cache is corrupt (Reenumerate then Refresh).",
        &[(None, cache_corrupt)],
    );

    let mut objects: Vec<(&str, u64)> = Vec::new();
    let mut lun_status = BTreeMap::new();
    let mut portal_status = BTreeMap::new();
    let list = |cmd| provider.apply(cmd).ok();
    if let Some(Outcome::Subsystems(v)) = list(Command::ListSubsystems) {
        objects.push(("subsystem", v.len() as u64));
    }
    if let Some(Outcome::Controllers(v)) = list(Command::ListControllers { subsystem: None }) {
        objects.push(("controller", v.len() as u64));
    }
    if let Some(Outcome::Drives(v)) = list(Command::ListDrives { subsystem: None }) {
        objects.push(("drive", v.len() as u64));
    }
    if let Some(Outcome::Luns(v)) = list(Command::ListLuns { subsystem: None }) {
        objects.push(("lun", v.len() as u64));
        lun_status = count_by(v.iter().map(|l| l.status.short_name()));
    }
    if let Some(Outcome::Targets(v)) = list(Command::ListTargets { subsystem: None }) {
        objects.push(("target", v.len() as u64));
    }
    if let Some(Outcome::PortalGroups(v)) = list(Command::ListPortalGroups { target: None }) {
        objects.push(("portal_group", v.len() as u64));
    }
    if let Some(Outcome::Portals(v)) = list(Command::ListPortals { subsystem: None }) {
        objects.push(("portal", v.len() as u64));
        portal_status = count_by(v.iter().map(|p| p.status.short_name()));
    }
    let samples: Vec<_> = objects
        .iter()
        .map(|(k, n)| (Some(("kind", *k)), *n))
        .collect();
    gauge(
        out,
        "vds_objects",
        "Objects the provider manages, by kind.",
        &samples,
    );
    let samples: Vec<_> = lun_status
        .iter()
        .map(|(k, n)| (Some(("status", *k)), *n))
        .collect();
    gauge(out, "vds_luns", "LUNs by status.", &samples);
    let samples: Vec<_> = portal_status
        .iter()
        .map(|(k, n)| (Some(("status", *k)), *n))
        .collect();
    gauge(out, "vds_portals", "Portals by status.", &samples);

    if let Some(Outcome::Jobs(jobs)) = list(Command::ListJobs) {
        let by_state = count_by(jobs.iter().map(|j| j.state.short_name()));
        let samples: Vec<_> = ["running", "succeeded", "failed", "canceled"]
            .iter()
            .map(|s| (Some(("state", *s)), by_state.get(s).copied().unwrap_or(0)))
            .collect();
        gauge(
            out,
            "vds_jobs",
            "Jobs the provider remembers, by state.",
            &samples,
        );
    }
}

/// Middleware: times and counts every request by its route template (not its path, so ids
/// do not explode the label set).
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    metrics.record(
        &route,
        &method,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_series_are_prometheus_text() {
        let m = Arc::new(Metrics::default());
        m.record("/v1/luns/{id}", "GET", 200, 0.5);
        m.record("/v1/luns/{id}", "GET", 200, 0.25);
        m.record("/v1/luns/{id}", "GET", 410, 0.25);
        let g = m.stream_opened();
        m.event_sent();
        let mut out = String::new();
        m.render_api(&mut out);
        assert!(out.contains(
            "vds_api_requests_total{route=\"/v1/luns/{id}\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(out.contains(
            "vds_api_requests_total{route=\"/v1/luns/{id}\",method=\"GET\",status=\"410\"} 1\n"
        ));
        assert!(out.contains(
            "vds_api_request_duration_seconds_count{route=\"/v1/luns/{id}\",method=\"GET\"} 3\n"
        ));
        assert!(out.contains(
            "vds_api_request_duration_seconds_sum{route=\"/v1/luns/{id}\",method=\"GET\"} 1\n"
        ));
        assert!(out.contains("vds_api_event_streams 1\n"));
        assert!(out.contains("vds_api_events_sent_total 1\n"));
        drop(g);
        let mut out = String::new();
        m.render_api(&mut out);
        assert!(out.contains("vds_api_event_streams 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
