//! Executes one parsed command: resolves references, calls the API, prints the answer.
//!
//! Every noun/verb maps onto the endpoints of INTERFACE.md. Calls that start a job are waited
//! for (progress bar on a terminal, `POST /v1/jobs/{id}/wait` otherwise) unless `--no-wait`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use vds_model::Hresult;

use crate::cli::*;
use crate::client::{Client, Reply};
use crate::error::{parse_hresult, CliError};
use crate::render::{self, Kind};
use crate::resolve::{parse_endpoint, require_uuid, resolve_id, Naming};

/// Writes to stdout; a closed pipe (`vdsctl ... | head`) ends the program quietly.
pub fn emit(text: &str) {
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

fn emit_line(text: &str) {
    if text.ends_with('\n') {
        emit(text);
    } else {
        emit(&format!("{text}\n"));
    }
}

/// An enumerated value from the command line: integers go as JSON numbers, everything else as
/// the string given. The provider judges it (INTERFACE.md: "passes it through unchanged").
pub fn enum_value(s: &str) -> Value {
    match s.trim().parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(s),
    }
}

/// The body of a subsystem/controller/drive SetStatus: a value that names no member of the
/// enumeration is a usage error (exit 2) here; a member goes to the provider as given, which
/// judges whether it may be requested.
pub fn status_body<T>(
    s: &str,
    parse: fn(&str) -> Result<T, vds_model::EnumParseError>,
) -> Result<Value, CliError> {
    parse(s).map_err(|e| {
        CliError::Usage(format!(
            "status {:?} is not a {} value; online and offline may be requested (as names, \
             VDS constants or integers)",
            e.value, e.type_name
        ))
    })?;
    Ok(json!({"status": enum_value(s)}))
}

fn as_array(v: Value, what: &str) -> Result<Vec<Value>, CliError> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(CliError::Protocol(format!(
            "expected a list of {what}, got {}",
            truncate(&other.to_string())
        ))),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

fn id_of(v: &Value) -> Result<String, CliError> {
    v.get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            CliError::Protocol(format!(
                "an object without id: {}",
                truncate(&v.to_string())
            ))
        })
}

/// Reads a secret: the argument itself, or one line of stdin for `-`.
fn read_secret(s: &str) -> Result<String, CliError> {
    if s != "-" {
        return Ok(s.to_string());
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("reading the secret from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Builds the `filters` array of `PUT /v1/luns/{id}/faults` from the command line.
pub fn fault_filters(f: &SetFaults) -> Result<Vec<Value>, CliError> {
    let mut filters = Vec::new();
    if f.delay_read_ms.is_some() || f.delay_write_ms.is_some() || f.delay_flush_ms.is_some() {
        filters.push(json!({"delay": {
            "read_ms": f.delay_read_ms.unwrap_or(0),
            "write_ms": f.delay_write_ms.unwrap_or(0),
            "flush_ms": f.delay_flush_ms.unwrap_or(0),
        }}));
    }
    if let Some(ops) = &f.error_ops {
        let ops: Vec<&str> = ops
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if ops.is_empty() {
            return Err(CliError::Usage(
                "--error-ops needs read, write or flush".into(),
            ));
        }
        filters.push(json!({"error": {"ops": ops, "after": f.error_after.unwrap_or(0)}}));
    }
    for raw in &f.filters {
        filters.push(parse_json_arg("--filter", raw)?);
    }
    Ok(filters)
}

fn parse_json_arg(flag: &str, raw: &str) -> Result<Value, CliError> {
    serde_json::from_str(raw)
        .map_err(|e| CliError::Usage(format!("{flag} {raw:?} is not JSON: {e}")))
}

/// Builds the body of `POST /v1/subsystems/{id}/luns` (references already resolved).
/// `s` as a query-string value: every byte but the unreserved ones percent-encoded.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn lun_create_body(
    c: &LunCreate,
    drive: Option<String>,
    drives: Vec<String>,
    targets: Vec<String>,
) -> Result<Value, CliError> {
    let mut body = Map::new();
    body.insert("size_bytes".into(), json!(c.size));
    if !drives.is_empty() {
        body.insert("drives".into(), json!(drives));
    }
    if let Some(p) = c.plexes {
        body.insert("plexes".into(), json!(p));
    }
    if let Some(s) = c.stripe_size {
        body.insert("stripe_size".into(), json!(s));
    }
    if let Some(p) = &c.load_balance {
        body.insert("load_balance".into(), enum_value(p));
    }
    if let Some(n) = &c.name {
        body.insert("friendly_name".into(), json!(n));
    }
    if let Some(t) = &c.lun_type {
        body.insert("type".into(), enum_value(t));
    }
    if c.thin || c.thick {
        body.insert("thin".into(), json!(c.thin));
    }
    if let Some(d) = drive {
        body.insert("drive".into(), json!(d));
    }
    if let Some(m) = &c.mask {
        body.insert("unmasking_list".into(), json!(m));
    }
    if !targets.is_empty() {
        body.insert("targets".into(), json!(targets));
    }
    if c.backing.is_some() || c.path.is_some() || c.image.is_some() || !c.faults.is_empty() {
        let mut b = Map::new();
        // `--image POOL/IMAGE` alone means an rbd backing.
        let kind = match (&c.backing, &c.image) {
            (Some(k), _) => k.as_str(),
            (None, Some(_)) => "rbd",
            (None, None) => "file",
        };
        b.insert("kind".into(), json!(kind));
        if let Some(p) = &c.path {
            b.insert("path".into(), json!(p));
        }
        if let Some(spec) = &c.image {
            let (pool, image) = spec
                .split_once('/')
                .ok_or_else(|| CliError::Usage(format!("--image {spec:?}: expected POOL/IMAGE")))?;
            b.insert("pool".into(), json!(pool));
            b.insert("image".into(), json!(image));
        }
        if !c.faults.is_empty() {
            let f: Result<Vec<Value>, CliError> = c
                .faults
                .iter()
                .map(|r| parse_json_arg("--fault", r))
                .collect();
            b.insert("filters".into(), Value::Array(f?));
        }
        body.insert("backing".into(), Value::Object(b));
    }
    if !c.hints.is_empty() {
        let hints: Map<String, Value> = c.hints.iter().cloned().collect();
        body.insert("hints".into(), Value::Object(hints));
    }
    if c.read_only {
        body.insert("read_only".into(), json!(true));
    }
    Ok(Value::Object(body))
}

/// The error a finished job reports, or `None` if it succeeded.
pub fn job_error(job: &Value) -> Option<CliError> {
    let state = job.get("state").and_then(Value::as_str).unwrap_or("");
    if state != "failed" && state != "canceled" {
        return None;
    }
    // A job that ended without naming its code was canceled; a code without its name gets the
    // model's name for it.
    let hresult = job
        .get("hresult")
        .and_then(parse_hresult)
        .map_or(Hresult::VDS_E_OPERATION_CANCELED, Hresult);
    let message = job
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("job {state}"));
    let name = job
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| hresult.name().into_owned(), str::to_string);
    Some(CliError::Provider {
        hresult: hresult.value(),
        name,
        message,
    })
}

/// The state of one invocation.
pub struct Ctx {
    pub client: Client,
    pub json: bool,
    pub no_wait: bool,
}

impl Ctx {
    fn show_reply(&self, r: &Reply) -> Result<(), CliError> {
        if self.json {
            if !r.body.trim().is_empty() {
                emit_line(&r.body);
            }
            return Ok(());
        }
        let v = r.json()?;
        if !v.is_null() {
            emit(&render::block(&v));
        }
        Ok(())
    }

    fn show_value(&self, v: &Value) {
        if self.json {
            emit_line(&v.to_string());
        } else if !v.is_null() {
            emit(&render::block(v));
        }
    }

    fn show_list(&self, kind: Kind, items: &[Value], raw: Option<&str>) {
        if self.json {
            match raw {
                Some(r) => emit_line(r),
                None => emit_line(&Value::Array(items.to_vec()).to_string()),
            }
        } else {
            emit(&render::list(kind, items));
        }
    }

    fn get(&self, path: &str) -> Result<Reply, CliError> {
        self.client.get(path)
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Reply, CliError> {
        self.client.call(method, path, body.as_ref())
    }

    // ---- references ------------------------------------------------------------------------

    fn subsystems(&self) -> Result<(Vec<Value>, String), CliError> {
        let r = self.get("/v1/subsystems")?;
        Ok((as_array(r.json()?, "subsystems")?, r.body))
    }

    fn subsystem_id(&self, s: &str) -> Result<String, CliError> {
        resolve_id("subsystem", Naming::FriendlyName, s, || {
            Ok(self.subsystems()?.0)
        })
    }

    /// The subsystem to create in: the one named, or the only one there is.
    fn one_subsystem(&self, s: Option<&str>) -> Result<String, CliError> {
        if let Some(s) = s {
            return self.subsystem_id(s);
        }
        let (subs, _) = self.subsystems()?;
        match subs.as_slice() {
            [one] => id_of(one),
            [] => Err(CliError::not_found("the provider has no subsystem".into())),
            _ => Err(CliError::Usage(
                "there are several subsystems; choose one with --subsystem".into(),
            )),
        }
    }

    fn subsystem_ids(&self, s: Option<&str>) -> Result<Vec<String>, CliError> {
        match s {
            Some(s) => Ok(vec![self.subsystem_id(s)?]),
            None => self.subsystems()?.0.iter().map(id_of).collect(),
        }
    }

    /// The objects of one kind (`luns`, `targets`, ...) in the given subsystems (all if none);
    /// with the raw body when a single call answered (what `--json` prints).
    fn children(
        &self,
        subsystem: Option<&str>,
        what: &str,
    ) -> Result<(Vec<Value>, Option<String>), CliError> {
        let ids = self.subsystem_ids(subsystem)?;
        let mut all = Vec::new();
        let mut raw = None;
        for id in &ids {
            let r = self.get(&format!("/v1/subsystems/{id}/{what}"))?;
            all.extend(as_array(r.json()?, what)?);
            if ids.len() == 1 {
                raw = Some(r.body);
            }
        }
        Ok((all, raw))
    }

    fn lun_id(&self, s: &str) -> Result<String, CliError> {
        resolve_id("LUN", Naming::FriendlyName, s, || {
            Ok(self.children(None, "luns")?.0)
        })
    }

    fn target_id(&self, s: &str) -> Result<String, CliError> {
        resolve_id("target", Naming::Target, s, || {
            Ok(self.children(None, "targets")?.0)
        })
    }

    fn portal_id(&self, s: &str) -> Result<String, CliError> {
        resolve_id("portal", Naming::Portal, s, || {
            Ok(self.children(None, "portals")?.0)
        })
    }

    fn controller_id(&self, s: &str) -> Result<String, CliError> {
        resolve_id("controller", Naming::FriendlyName, s, || {
            Ok(self.children(None, "controllers")?.0)
        })
    }

    fn pool_id(&self, s: &str) -> Result<String, CliError> {
        resolve_id("pool", Naming::FriendlyName, s, || {
            Ok(self.children(None, "pools")?.0)
        })
    }

    /// The query of a max-lun-size call.
    fn max_size_query(&self, a: &MaxSizeOpts) -> Result<String, CliError> {
        let mut q = Vec::new();
        if let Some(t) = &a.lun_type {
            q.push(format!("type={}", query_escape(t)));
        }
        if !a.drives.is_empty() {
            let ids = a
                .drives
                .iter()
                .map(|d| self.drive_id(d))
                .collect::<Result<Vec<_>, _>>()?;
            q.push(format!("drives={}", ids.join(",")));
        }
        if let Some(p) = a.plexes {
            q.push(format!("plexes={p}"));
        }
        if let Some(s) = a.stripe_size {
            q.push(format!("stripe_size={s}"));
        }
        Ok(if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        })
    }

    fn pool(&self, verb: PoolVerb) -> Result<(), CliError> {
        match verb {
            PoolVerb::List(o) => {
                let (items, raw) = self.children(o.subsystem.as_deref(), "pools")?;
                self.show_list(Kind::Pool, &items, raw.as_deref());
                Ok(())
            }
            PoolVerb::Show { pool } => {
                let id = self.pool_id(&pool)?;
                self.show_reply(&self.get(&format!("/v1/pools/{id}"))?)
            }
            PoolVerb::Create {
                name,
                drives,
                subsystem,
                description,
                default_type,
                raid_type,
                thin_provisioned,
                no_single_point_of_failure,
                stripe_size,
                columns,
                intended_usage,
            } => {
                let sub = self.one_subsystem(subsystem.as_deref())?;
                let ids = drives
                    .iter()
                    .map(|d| self.drive_id(d))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut body = json!({"friendly_name": name, "drives": ids});
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                if let Some(t) = default_type {
                    body["default_type"] = enum_value(&t);
                }
                let mut attrs = Map::new();
                if let Some(r) = raid_type {
                    attrs.insert("raid_type".into(), enum_value(&r));
                }
                if let Some(b) = thin_provisioned {
                    attrs.insert("thin_provisioned".into(), json!(b));
                }
                if let Some(b) = no_single_point_of_failure {
                    attrs.insert("no_single_point_of_failure".into(), json!(b));
                }
                if let Some(s) = stripe_size {
                    attrs.insert("stripe_size".into(), json!(s));
                }
                if let Some(c) = columns {
                    attrs.insert("number_of_columns".into(), json!(c));
                }
                if let Some(u) = intended_usage {
                    attrs.insert("intended_usage".into(), json!(u));
                }
                if !attrs.is_empty() {
                    body["attributes"] = Value::Object(attrs);
                }
                self.show_reply(&self.send(
                    "POST",
                    &format!("/v1/subsystems/{sub}/pools"),
                    Some(body),
                )?)
            }
            PoolVerb::Delete { pool } => {
                let id = self.pool_id(&pool)?;
                self.show_reply(&self.send("DELETE", &format!("/v1/pools/{id}"), None)?)
            }
            PoolVerb::Drives { pool } => {
                let id = self.pool_id(&pool)?;
                let r = self.get(&format!("/v1/pools/{id}/drives"))?;
                let items = as_array(r.json()?, "drives")?;
                self.show_list(Kind::Drive, &items, Some(&r.body));
                Ok(())
            }
            PoolVerb::DriveExtents { pool } => {
                let id = self.pool_id(&pool)?;
                let r = self.get(&format!("/v1/pools/{id}/drive-extents"))?;
                let items = as_array(r.json()?, "drive extents")?;
                self.show_list(Kind::PoolExtent, &items, Some(&r.body));
                Ok(())
            }
            PoolVerb::Luns { pool } => {
                let id = self.pool_id(&pool)?;
                let r = self.get(&format!("/v1/pools/{id}/luns"))?;
                let items = as_array(r.json()?, "LUNs")?;
                self.show_list(Kind::Lun, &items, Some(&r.body));
                Ok(())
            }
            PoolVerb::MaxLunSize { pool, args } => {
                let id = self.pool_id(&pool)?;
                let q = self.max_size_query(&args)?;
                self.show_reply(&self.get(&format!("/v1/pools/{id}/max-lun-size{q}"))?)
            }
        }
    }

    fn drive_id(&self, s: &str) -> Result<String, CliError> {
        resolve_id("drive", Naming::FriendlyName, s, || {
            Ok(self.children(None, "drives")?.0)
        })
    }

    // ---- jobs ------------------------------------------------------------------------------

    /// Handles the answer of a call that starts a job: `202` + job, waited for unless
    /// `--no-wait`. Any other 2xx answer (e.g. an existing object) is printed as it is.
    fn job_started(&self, r: Reply) -> Result<(), CliError> {
        if r.status != 202 {
            return self.show_reply(&r);
        }
        if self.no_wait {
            return self.show_reply(&r);
        }
        let job = r.json()?;
        let done = self.wait_for(&job)?;
        if let Some(e) = job_error(&done) {
            return Err(e);
        }
        match done.get("output") {
            Some(out) if !out.is_null() => self.show_value(out),
            _ if self.json => self.show_value(&done),
            _ => {}
        }
        Ok(())
    }

    /// Waits until the job has ended and returns its final JSON.
    fn wait_for(&self, job: &Value) -> Result<Value, CliError> {
        if job.get("state").and_then(Value::as_str) != Some("running") {
            return Ok(job.clone());
        }
        let id = id_of(job)?;
        if !std::io::stderr().is_terminal() {
            return self
                .send("POST", &format!("/v1/jobs/{id}/wait"), None)?
                .json();
        }
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos:>3}%")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(
            job.get("operation")
                .map(render::scalar)
                .unwrap_or_else(|| "job".into()),
        );
        loop {
            let j = self.get(&format!("/v1/jobs/{id}"))?.json()?;
            bar.set_position(j.get("percent").and_then(Value::as_u64).unwrap_or(0));
            if j.get("state").and_then(Value::as_str) != Some("running") {
                bar.finish_and_clear();
                return Ok(j);
            }
            bar.tick();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // ---- nouns -----------------------------------------------------------------------------

    pub fn run(&self, noun: Noun) -> Result<(), CliError> {
        match noun {
            Noun::Provider { verb } => self.provider(verb),
            Noun::Subsystem { verb } => match verb {
                SubsystemVerb::Simple(SimpleVerb::List(o)) => {
                    let (mut subs, raw) = self.subsystems()?;
                    if let Some(s) = o.subsystem {
                        let id = self.subsystem_id(&s)?;
                        subs.retain(|x| x.get("id").and_then(Value::as_str) == Some(&id));
                        self.show_list(Kind::Subsystem, &subs, None);
                    } else {
                        self.show_list(Kind::Subsystem, &subs, Some(&raw));
                    }
                    Ok(())
                }
                SubsystemVerb::Simple(SimpleVerb::Show { object }) => {
                    let id = self.subsystem_id(&object)?;
                    self.show_reply(&self.get(&format!("/v1/subsystems/{id}"))?)
                }
                other => self.subsystem(other),
            },
            Noun::Controller { verb } => match verb {
                ControllerVerb::Simple(v) => {
                    self.listed(v, "controllers", "controller", Kind::Controller)
                }
                ControllerVerb::Add { subsystem, name } => {
                    let sub = self.one_subsystem(subsystem.as_deref())?;
                    let body = match name {
                        Some(n) => json!({ "friendly_name": n }),
                        None => json!({}),
                    };
                    self.show_reply(&self.send(
                        "POST",
                        &format!("/v1/subsystems/{sub}/controllers"),
                        Some(body),
                    )?)
                }
                ControllerVerb::Luns { controller } => {
                    let id = self.controller_id(&controller)?;
                    let r = self.get(&format!("/v1/controllers/{id}/luns"))?;
                    let items = as_array(r.json()?, "LUNs")?;
                    self.show_list(Kind::Lun, &items, Some(&r.body));
                    Ok(())
                }
                ControllerVerb::SetStatus { object, status } => {
                    let body = status_body(&status, vds_model::ControllerStatus::parse)?;
                    let id = self.controller_id(&object)?;
                    self.show_reply(&self.send(
                        "POST",
                        &format!("/v1/controllers/{id}/status"),
                        Some(body),
                    )?)
                }
            },
            Noun::Drive { verb } => match verb {
                DriveVerb::Simple(v) => self.listed(v, "drives", "drive", Kind::Drive),
                DriveVerb::Add {
                    path,
                    kind,
                    subsystem,
                    name,
                    force,
                } => {
                    let sub = self.one_subsystem(subsystem.as_deref())?;
                    let mut body = json!({ "kind": kind, "path": path, "force": force });
                    if let Some(n) = name {
                        body["friendly_name"] = json!(n);
                    }
                    self.show_reply(&self.send(
                        "POST",
                        &format!("/v1/subsystems/{sub}/drives"),
                        Some(body),
                    )?)
                }
                DriveVerb::Remove { drive } => {
                    let id = self.drive_id(&drive)?;
                    self.show_reply(&self.send("DELETE", &format!("/v1/drives/{id}"), None)?)
                }
                DriveVerb::SetFaults(f) => {
                    let filters = fault_filters(&f)?;
                    let id = self.drive_id(&f.lun)?;
                    let body = json!({"filters": filters});
                    self.show_reply(&self.send(
                        "PUT",
                        &format!("/v1/drives/{id}/faults"),
                        Some(body),
                    )?)
                }
                DriveVerb::Extents { drive } => {
                    let id = self.drive_id(&drive)?;
                    let r = self.get(&format!("/v1/drives/{id}/extents"))?;
                    let items = as_array(r.json()?, "extents")?;
                    self.show_list(Kind::Extent, &items, Some(&r.body));
                    Ok(())
                }
                DriveVerb::Flags { drive, hotspare } => {
                    let id = self.drive_id(&drive)?;
                    self.show_reply(&self.send(
                        "PUT",
                        &format!("/v1/drives/{id}/flags"),
                        Some(json!({ "hotspare": hotspare })),
                    )?)
                }
                DriveVerb::SetStatus { object, status } => {
                    let body = status_body(&status, vds_model::DriveStatus::parse)?;
                    let id = self.drive_id(&object)?;
                    self.show_reply(&self.send(
                        "POST",
                        &format!("/v1/drives/{id}/status"),
                        Some(body),
                    )?)
                }
            },
            Noun::Lun { verb } => self.lun(verb),
            Noun::Target { verb } => self.target(verb),
            Noun::PortalGroup { verb } => self.portal_group(verb),
            Noun::Portal { verb } => self.portal(verb),
            Noun::Pool { verb } => self.pool(verb),
            Noun::Session { verb } => self.session(verb),
            Noun::Plex { verb } => match verb {
                PlexVerb::Remove { plex } => {
                    let id = require_uuid("plex", &plex)?;
                    self.job_started(self.send("DELETE", &format!("/v1/plexes/{id}"), None)?)
                }
                PlexVerb::Hints { plex, set } => {
                    let id = require_uuid("plex", &plex)?;
                    let path = format!("/v1/plexes/{id}/hints");
                    if set.is_empty() {
                        return self.show_reply(&self.get(&path)?);
                    }
                    let body: serde_json::Map<String, Value> = set.into_iter().collect();
                    self.show_reply(&self.send("PUT", &path, Some(Value::Object(body)))?)
                }
            },
            Noun::Job { verb } => self.job(verb),
            Noun::Maintenance(m) => self.maintenance(m),
            Noun::Events => {
                let json = self.json;
                crate::events::follow(&self.client, json, &mut |l| emit_line(l))
            }
            Noun::Export { include_secrets } => {
                let q = if include_secrets {
                    "?include_secrets=true"
                } else {
                    ""
                };
                let doc = self.get(&format!("/v1/config{q}"))?.json()?;
                emit_line(&serde_json::to_string_pretty(&doc).unwrap_or_default());
                Ok(())
            }
            Noun::Apply { file, dry_run } => {
                let doc: Value = serde_json::from_slice(&read_document(&file)?)
                    .map_err(|e| CliError::Usage(format!("{}: not JSON: {e}", file.display())))?;
                self.apply_doc(doc, dry_run)
            }
            Noun::Import {
                from:
                    ImportFrom::Targetcli {
                        file,
                        partial,
                        dry_run,
                    },
            } => self.import_targetcli(&file, partial, dry_run),
        }
    }

    /// `PUT /v1/config`: the plan with `dry_run`, else the job (waited for).
    fn apply_doc(&self, doc: Value, dry_run: bool) -> Result<(), CliError> {
        if dry_run {
            let plan = self.send("PUT", "/v1/config?dry_run=true", Some(doc))?;
            if self.json {
                return self.show_reply(&plan);
            }
            let steps = plan.json()?;
            let steps = steps
                .get("steps")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if steps.is_empty() {
                emit_line("nothing to do: the array matches the document");
            }
            for s in steps {
                emit_line(&format!("plan: {}", s.as_str().unwrap_or_default()));
            }
            return Ok(());
        }
        let r = self.send("PUT", "/v1/config", Some(doc))?;
        self.job_started(r)
    }

    /// `vdsctl import targetcli FILE`: translated here, applied by the daemon in one commit.
    fn import_targetcli(
        &self,
        file: &std::path::Path,
        partial: bool,
        dry_run: bool,
    ) -> Result<(), CliError> {
        let raw = read_document(file)?;
        let root: Value = serde_json::from_slice(&raw)
            .map_err(|e| CliError::Usage(format!("{}: not JSON: {e}", file.display())))?;
        let t = crate::import::from_targetcli(&root)
            .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
        for (place, why) in &t.unmapped {
            eprintln!("not mapped: {place}: {why}");
        }
        for (place, what) in &t.notes {
            eprintln!("note: {place}: {what}");
        }
        if !t.unmapped.is_empty() && !partial && !dry_run {
            return Err(CliError::Usage(format!(
                "{} part(s) of {} cannot be mapped (listed above); nothing was changed (--partial \
                 imports the rest)",
                t.unmapped.len(),
                file.display()
            )));
        }
        // An import adds to the array: the current configuration (secrets left out, so left
        // as they are) with the imported objects added, applied as one document.
        let mut doc = self.get("/v1/config")?.json()?;
        crate::import::merge(&mut doc, t.doc).map_err(CliError::Usage)?;
        if self.json && dry_run {
            emit_line(&serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        self.apply_doc(doc, dry_run)
    }

    fn provider(&self, verb: ProviderVerb) -> Result<(), CliError> {
        let r = match verb {
            ProviderVerb::Show => self.get("/v1/provider")?,
            ProviderVerb::Reenumerate => self.send("POST", "/v1/provider/reenumerate", None)?,
            ProviderVerb::Refresh => self.send("POST", "/v1/provider/refresh", None)?,
            ProviderVerb::VersionSupport => self.get("/v1/provider/version-support")?,
        };
        self.show_reply(&r)
    }

    /// `vdsctl maintenance`: the operation is checked here as the daemon would (a misspelt
    /// one exits 2 without a call), the object resolved, then the daemon answers.
    fn maintenance(&self, m: MaintenanceArgs) -> Result<(), CliError> {
        let op = vds_model::MaintenanceOperation::parse(&m.operation)
            .map_err(|e| CliError::Usage(format!("operation: {e}")))?;
        let (path, id) = match m.kind {
            MaintenanceKind::Subsystem => ("subsystems", self.subsystem_id(&m.object)?),
            MaintenanceKind::Controller => ("controllers", self.controller_id(&m.object)?),
            MaintenanceKind::Drive => ("drives", self.drive_id(&m.object)?),
            MaintenanceKind::Lun => ("luns", self.lun_id(&m.object)?),
        };
        let action = match m.action {
            MaintenanceActionCli::Start => "start",
            MaintenanceActionCli::Stop => "stop",
            MaintenanceActionCli::Pulse => "pulse",
        };
        let mut body = json!({"operation": op.short_name(), "action": action});
        if let Some(n) = m.count {
            body["count"] = json!(n);
        }
        self.show_reply(&self.send("POST", &format!("/v1/{path}/{id}/maintenance"), Some(body))?)
    }

    /// The subsystem verbs that change it or ask it something (list and show are in `run`).
    fn subsystem(&self, verb: SubsystemVerb) -> Result<(), CliError> {
        match verb {
            SubsystemVerb::Simple(_) => Err(CliError::Usage("unexpected subsystem verb".into())),
            SubsystemVerb::ReplaceDrive {
                subsystem,
                old,
                new,
            } => {
                let id = self.subsystem_id(&subsystem)?;
                let body = json!({ "old": self.drive_id(&old)?, "new": self.drive_id(&new)? });
                self.job_started(self.send(
                    "POST",
                    &format!("/v1/subsystems/{id}/replace-drive"),
                    Some(body),
                )?)
            }
            SubsystemVerb::SetStatus { subsystem, status } => {
                let body = status_body(&status, vds_model::SubsystemStatus::parse)?;
                let id = self.subsystem_id(&subsystem)?;
                self.show_reply(&self.send(
                    "POST",
                    &format!("/v1/subsystems/{id}/status"),
                    Some(body),
                )?)
            }
            SubsystemVerb::Rename { subsystem, name } => {
                let id = self.subsystem_id(&subsystem)?;
                let body = json!({"friendly_name": name});
                self.show_reply(&self.send("PATCH", &format!("/v1/subsystems/{id}"), Some(body))?)
            }
            SubsystemVerb::SetControllerStatus {
                subsystem,
                online,
                offline,
            } => {
                let id = self.subsystem_id(&subsystem)?;
                let ids = |names: &[String]| {
                    names
                        .iter()
                        .map(|c| self.controller_id(c))
                        .collect::<Result<Vec<_>, _>>()
                };
                let body = json!({"online": ids(&online)?, "offline": ids(&offline)?});
                let r = self.send(
                    "POST",
                    &format!("/v1/subsystems/{id}/controller-status"),
                    Some(body),
                )?;
                if self.json {
                    return self.show_reply(&r);
                }
                self.show_list(Kind::Controller, &as_array(r.json()?, "controllers")?, None);
                Ok(())
            }
            SubsystemVerb::Interconnects { subsystem } => {
                let id = self.subsystem_id(&subsystem)?;
                self.show_reply(&self.get(&format!("/v1/subsystems/{id}/interconnects"))?)
            }
            SubsystemVerb::Drive {
                subsystem,
                bus,
                slot,
            } => {
                let id = self.subsystem_id(&subsystem)?;
                self.show_reply(&self.get(&format!("/v1/subsystems/{id}/drives/{bus}/{slot}"))?)
            }
            SubsystemVerb::MaxLunSize { subsystem, args } => {
                let id = self.subsystem_id(&subsystem)?;
                let q = self.max_size_query(&args)?;
                self.show_reply(&self.get(&format!("/v1/subsystems/{id}/max-lun-size{q}"))?)
            }
        }
    }

    /// Controllers and drives have no endpoint of their own: list and show come from the
    /// subsystem's lists.
    fn listed(&self, verb: SimpleVerb, what: &str, one: &str, kind: Kind) -> Result<(), CliError> {
        match verb {
            SimpleVerb::List(o) => {
                let (items, raw) = self.children(o.subsystem.as_deref(), what)?;
                self.show_list(kind, &items, raw.as_deref());
            }
            SimpleVerb::Show { object } => {
                let (items, _) = self.children(None, what)?;
                let item = if crate::resolve::is_uuid(&object) {
                    items
                        .iter()
                        .find(|i| {
                            i.get("id")
                                .and_then(Value::as_str)
                                .is_some_and(|id| id.eq_ignore_ascii_case(&object))
                        })
                        .ok_or_else(|| CliError::not_found(format!("no {one} has id {object}")))?
                } else {
                    crate::resolve::pick(one, Naming::FriendlyName, &object, &items)?
                };
                self.show_value(item);
            }
        }
        Ok(())
    }

    fn session(&self, verb: SessionVerb) -> Result<(), CliError> {
        let SessionVerb::List { target } = verb;
        let path = match target {
            Some(t) => format!("/v1/targets/{}/sessions", self.target_id(&t)?),
            None => "/v1/sessions".to_string(),
        };
        let r = self.get(&path)?;
        let items = as_array(r.json()?, "sessions")?;
        self.show_list(Kind::Session, &items, Some(&r.body));
        Ok(())
    }

    fn lun(&self, verb: LunVerb) -> Result<(), CliError> {
        match verb {
            LunVerb::Plexes { lun } => {
                let id = self.lun_id(&lun)?;
                let r = self.get(&format!("/v1/luns/{id}/plexes"))?;
                let items = as_array(r.json()?, "plexes")?;
                self.show_list(Kind::Plex, &items, Some(&r.body));
                Ok(())
            }
            LunVerb::Paths { lun } => {
                let id = self.lun_id(&lun)?;
                let r = self.get(&format!("/v1/luns/{id}/paths"))?;
                let items = as_array(r.json()?, "paths")?;
                self.show_list(Kind::Path, &items, Some(&r.body));
                Ok(())
            }
            LunVerb::List(LunList {
                subsystem,
                identifier: None,
            }) => {
                let (items, raw) = self.children(subsystem.as_deref(), "luns")?;
                self.show_list(Kind::Lun, &items, raw.as_deref());
                Ok(())
            }
            LunVerb::List(LunList {
                subsystem,
                identifier: Some(d),
            }) => {
                let r = self.get(&format!("/v1/luns?identifier={}", query_escape(&d)))?;
                let mut items = as_array(r.json()?, "luns")?;
                match subsystem {
                    Some(sub) => {
                        let id = self.subsystem_id(&sub)?;
                        items.retain(|l| l.get("subsystem").and_then(Value::as_str) == Some(&id));
                        self.show_list(Kind::Lun, &items, None);
                    }
                    None => self.show_list(Kind::Lun, &items, Some(&r.body)),
                }
                Ok(())
            }
            LunVerb::Show { lun } => {
                let id = self.lun_id(&lun)?;
                self.show_reply(&self.get(&format!("/v1/luns/{id}"))?)
            }
            LunVerb::Create(c) => {
                // In a pool (CreateLunInStoragePool: the pool picks the drives) or in a
                // subsystem, on a drive or drives given.
                let (path, drive) = match c.pool.as_deref() {
                    Some(pool) => (format!("/v1/pools/{}/luns", self.pool_id(pool)?), None),
                    None => {
                        let sub = self.one_subsystem(c.subsystem.as_deref())?;
                        let drive = c.drive.as_deref().map(|d| self.drive_id(d)).transpose()?;
                        (format!("/v1/subsystems/{sub}/luns"), drive)
                    }
                };
                let drives = c
                    .drives
                    .iter()
                    .map(|d| self.drive_id(d))
                    .collect::<Result<Vec<_>, _>>()?;
                let targets = c
                    .targets
                    .iter()
                    .map(|t| self.target_id(t))
                    .collect::<Result<Vec<_>, _>>()?;
                let body = lun_create_body(&c, drive, drives, targets)?;
                self.job_started(self.send("POST", &path, Some(body))?)
            }
            LunVerb::Delete { lun } => {
                let id = self.lun_id(&lun)?;
                self.show_reply(&self.send("DELETE", &format!("/v1/luns/{id}"), None)?)
            }
            LunVerb::SetStatus { lun, status } => {
                let id = self.lun_id(&lun)?;
                let body = json!({"status": enum_value(&status)});
                self.show_reply(&self.send("POST", &format!("/v1/luns/{id}/status"), Some(body))?)
            }
            LunVerb::Extend { lun, size, drives } => {
                let id = self.lun_id(&lun)?;
                let mut body = json!({"bytes": size});
                if !drives.is_empty() {
                    let ids = drives
                        .iter()
                        .map(|d| self.drive_id(d))
                        .collect::<Result<Vec<_>, _>>()?;
                    body["drives"] = json!(ids);
                }
                self.job_started(self.send("POST", &format!("/v1/luns/{id}/extend"), Some(body))?)
            }
            LunVerb::MaxExtendSize { lun, drives } => {
                let id = self.lun_id(&lun)?;
                let q = if drives.is_empty() {
                    String::new()
                } else {
                    let ids = drives
                        .iter()
                        .map(|d| self.drive_id(d))
                        .collect::<Result<Vec<_>, _>>()?;
                    format!("?drives={}", ids.join(","))
                };
                self.show_reply(&self.get(&format!("/v1/luns/{id}/max-extend-size{q}"))?)
            }
            LunVerb::Shrink { lun, size } => {
                let id = self.lun_id(&lun)?;
                let body = json!({"bytes": size});
                self.job_started(self.send("POST", &format!("/v1/luns/{id}/shrink"), Some(body))?)
            }
            LunVerb::Recover { lun } => {
                let id = self.lun_id(&lun)?;
                self.job_started(self.send("POST", &format!("/v1/luns/{id}/recover"), None)?)
            }
            LunVerb::AddPlex { lun, other } => {
                let id = self.lun_id(&lun)?;
                let other = self.lun_id(&other)?;
                let body = json!({ "lun": other });
                self.job_started(self.send("POST", &format!("/v1/luns/{id}/plexes"), Some(body))?)
            }
            LunVerb::SetMask { lun, mask } => {
                let id = self.lun_id(&lun)?;
                let body = json!({"unmasking_list": mask});
                self.show_reply(&self.send("PATCH", &format!("/v1/luns/{id}"), Some(body))?)
            }
            LunVerb::Rename { lun, name } => {
                let id = self.lun_id(&lun)?;
                let body = json!({"friendly_name": name});
                self.show_reply(&self.send("PATCH", &format!("/v1/luns/{id}"), Some(body))?)
            }
            LunVerb::SetReadOnly { lun, read_only } => {
                let id = self.lun_id(&lun)?;
                let body = json!({"read_only": read_only});
                self.show_reply(&self.send("PATCH", &format!("/v1/luns/{id}"), Some(body))?)
            }
            LunVerb::SetTargets { lun, targets } => {
                let id = self.lun_id(&lun)?;
                let ids = targets
                    .iter()
                    .map(|t| self.target_id(t))
                    .collect::<Result<Vec<_>, _>>()?;
                let body = json!({"targets": ids});
                self.show_reply(&self.send("PUT", &format!("/v1/luns/{id}/targets"), Some(body))?)
            }
            LunVerb::Identification { lun } => {
                let id = self.lun_id(&lun)?;
                self.show_reply(&self.get(&format!("/v1/luns/{id}/identification"))?)
            }
            LunVerb::Hints { lun, set } => {
                let id = self.lun_id(&lun)?;
                let path = format!("/v1/luns/{id}/hints");
                if set.is_empty() {
                    return self.show_reply(&self.get(&path)?);
                }
                let body: serde_json::Map<String, Value> = set.into_iter().collect();
                self.show_reply(&self.send("PUT", &path, Some(Value::Object(body)))?)
            }
            LunVerb::Controllers { lun } => {
                let id = self.lun_id(&lun)?;
                let r = self.get(&format!("/v1/luns/{id}/controllers"))?;
                let items = as_array(r.json()?, "controllers")?;
                self.show_list(Kind::Controller, &items, Some(&r.body));
                Ok(())
            }
            LunVerb::AssociateControllers {
                lun,
                active,
                inactive,
            } => {
                let ids = |names: &[String]| {
                    names
                        .iter()
                        .map(|c| self.controller_id(c.trim()))
                        .collect::<Result<Vec<_>, _>>()
                };
                let body = json!({"active": ids(&active)?, "inactive": ids(&inactive)?});
                let id = self.lun_id(&lun)?;
                let r = self.send("PUT", &format!("/v1/luns/{id}/controllers"), Some(body))?;
                let items = as_array(r.json()?, "controllers")?;
                self.show_list(Kind::Controller, &items, Some(&r.body));
                Ok(())
            }
            LunVerb::LoadBalance { lun, set } => {
                let id = self.lun_id(&lun)?;
                let path = format!("/v1/luns/{id}/load-balance");
                let r = match set {
                    Some(p) => self.send("PUT", &path, Some(json!({"policy": enum_value(&p)})))?,
                    None => self.get(&path)?,
                };
                self.show_reply(&r)
            }
            LunVerb::SetFaults(f) => {
                let filters = fault_filters(&f)?;
                let id = self.lun_id(&f.lun)?;
                let body = json!({"filters": filters});
                self.show_reply(&self.send("PUT", &format!("/v1/luns/{id}/faults"), Some(body))?)
            }
        }
    }

    fn target(&self, verb: TargetVerb) -> Result<(), CliError> {
        match verb {
            TargetVerb::List(o) => {
                let (items, raw) = self.children(o.subsystem.as_deref(), "targets")?;
                self.show_list(Kind::Target, &items, raw.as_deref());
                Ok(())
            }
            TargetVerb::Show { target } => {
                let id = self.target_id(&target)?;
                self.show_reply(&self.get(&format!("/v1/targets/{id}"))?)
            }
            TargetVerb::Create {
                name,
                iqn,
                subsystem,
            } => {
                let sub = self.one_subsystem(subsystem.as_deref())?;
                let mut body = json!({"friendly_name": name});
                if let Some(iqn) = iqn {
                    body["iscsi_name"] = json!(iqn);
                }
                self.job_started(self.send(
                    "POST",
                    &format!("/v1/subsystems/{sub}/targets"),
                    Some(body),
                )?)
            }
            TargetVerb::Delete { target } => {
                let id = self.target_id(&target)?;
                self.job_started(self.send("DELETE", &format!("/v1/targets/{id}"), None)?)
            }
            TargetVerb::SetSecret {
                target,
                secret,
                initiator,
            } => {
                let id = self.target_id(&target)?;
                let mut body = Map::new();
                if let Some(s) = secret {
                    body.insert("secret".into(), json!(read_secret(&s)?));
                }
                if let Some(i) = initiator {
                    body.insert("initiator_name".into(), json!(i));
                }
                let path = format!("/v1/targets/{id}/shared-secret");
                self.show_reply(&self.send("PUT", &path, Some(Value::Object(body)))?)
            }
            TargetVerb::RememberSecret {
                target,
                initiator,
                secret,
            } => {
                let id = self.target_id(&target)?;
                let body = json!({"secret": read_secret(&secret)?});
                let path = format!(
                    "/v1/targets/{id}/initiator-secrets/{}",
                    encode_segment(&initiator)
                );
                self.show_reply(&self.send("PUT", &path, Some(body))?)
            }
            TargetVerb::Initiators { target } => {
                let id = self.target_id(&target)?;
                let r = self.get(&format!("/v1/targets/{id}/initiators"))?;
                if self.json {
                    emit_line(&r.body);
                } else {
                    emit(&render::lines(&as_array(r.json()?, "initiators")?));
                }
                Ok(())
            }
            TargetVerb::Rename { target, name } => {
                let id = self.target_id(&target)?;
                let body = json!({"friendly_name": name});
                self.show_reply(&self.send("PATCH", &format!("/v1/targets/{id}"), Some(body))?)
            }
        }
    }

    fn portal_group(&self, verb: PortalGroupVerb) -> Result<(), CliError> {
        match verb {
            PortalGroupVerb::List { target } => {
                let targets = match target {
                    Some(t) => vec![self.target_id(&t)?],
                    None => self
                        .children(None, "targets")?
                        .0
                        .iter()
                        .map(id_of)
                        .collect::<Result<_, _>>()?,
                };
                let mut groups = Vec::new();
                for t in targets {
                    let target = self.get(&format!("/v1/targets/{t}"))?.json()?;
                    let ids = target
                        .get("portal_groups")
                        .cloned()
                        .map(|v| as_array(v, "portal groups"))
                        .transpose()?
                        .unwrap_or_default();
                    for pg in ids {
                        let pg = pg.as_str().unwrap_or_default().to_string();
                        groups.push(self.get(&format!("/v1/portal-groups/{pg}"))?.json()?);
                    }
                }
                self.show_list(Kind::PortalGroup, &groups, None);
                Ok(())
            }
            PortalGroupVerb::Show { group } => {
                let id = require_uuid("portal group", &group)?;
                self.show_reply(&self.get(&format!("/v1/portal-groups/{id}"))?)
            }
            PortalGroupVerb::Create { target } => {
                let id = self.target_id(&target)?;
                self.job_started(self.send(
                    "POST",
                    &format!("/v1/targets/{id}/portal-groups"),
                    None,
                )?)
            }
            PortalGroupVerb::Delete { group } => {
                let id = require_uuid("portal group", &group)?;
                self.job_started(self.send("DELETE", &format!("/v1/portal-groups/{id}"), None)?)
            }
            PortalGroupVerb::AddPortal { group, portal } => {
                let id = require_uuid("portal group", &group)?;
                let p = self.portal_id(&portal)?;
                let body = json!({"portal": p});
                self.job_started(self.send(
                    "POST",
                    &format!("/v1/portal-groups/{id}/portals"),
                    Some(body),
                )?)
            }
            PortalGroupVerb::RemovePortal { group, portal } => {
                let id = require_uuid("portal group", &group)?;
                let p = self.portal_id(&portal)?;
                self.job_started(self.send(
                    "DELETE",
                    &format!("/v1/portal-groups/{id}/portals/{p}"),
                    None,
                )?)
            }
        }
    }

    fn portal(&self, verb: PortalVerb) -> Result<(), CliError> {
        match verb {
            PortalVerb::List(o) => {
                let (items, raw) = self.children(o.subsystem.as_deref(), "portals")?;
                self.show_list(Kind::Portal, &items, raw.as_deref());
                Ok(())
            }
            PortalVerb::Show { portal } => {
                let id = self.portal_id(&portal)?;
                self.show_reply(&self.get(&format!("/v1/portals/{id}"))?)
            }
            PortalVerb::Add {
                endpoint,
                subsystem,
                advertise,
                controller,
            } => {
                let sa = parse_endpoint(&endpoint).ok_or_else(|| {
                    CliError::Usage(format!(
                        "{endpoint:?} is not ADDR[:PORT] (e.g. 127.0.0.2:3260)"
                    ))
                })?;
                let sub = self.one_subsystem(subsystem.as_deref())?;
                let mut body = json!({"address": sa.ip().to_string(), "port": sa.port()});
                if let Some(a) = advertise {
                    body["advertise"] = json!(a);
                }
                if let Some(c) = controller {
                    body["controller"] = json!(self.controller_id(&c)?);
                }
                self.show_reply(&self.send(
                    "POST",
                    &format!("/v1/subsystems/{sub}/portals"),
                    Some(body),
                )?)
            }
            PortalVerb::Set {
                portal,
                advertise,
                no_advertise,
            } => {
                let id = self.portal_id(&portal)?;
                // clap's group makes exactly one of the two present: no --advertise is
                // --no-advertise, sent as null (clear).
                debug_assert_ne!(advertise.is_some(), no_advertise);
                let body = json!({ "advertise": advertise });
                self.show_reply(&self.send("PATCH", &format!("/v1/portals/{id}"), Some(body))?)
            }
            PortalVerb::Delete { portal } => {
                let id = self.portal_id(&portal)?;
                self.show_reply(&self.send("DELETE", &format!("/v1/portals/{id}"), None)?)
            }
            PortalVerb::SetStatus { portal, status } => {
                let id = self.portal_id(&portal)?;
                let body = json!({"status": enum_value(&status)});
                self.show_reply(&self.send(
                    "POST",
                    &format!("/v1/portals/{id}/status"),
                    Some(body),
                )?)
            }
        }
    }

    fn job(&self, verb: JobVerb) -> Result<(), CliError> {
        match verb {
            JobVerb::Show { job } => {
                let id = require_uuid("job", &job)?;
                self.show_reply(&self.get(&format!("/v1/jobs/{id}"))?)
            }
            JobVerb::Wait { job } => {
                let id = require_uuid("job", &job)?;
                let current = self.get(&format!("/v1/jobs/{id}"))?.json()?;
                let done = self.wait_for(&current)?;
                self.show_value(&done);
                match job_error(&done) {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
            JobVerb::Cancel { job } => {
                let id = require_uuid("job", &job)?;
                self.show_reply(&self.send("POST", &format!("/v1/jobs/{id}/cancel"), None)?)
            }
        }
    }
}

/// Percent-encodes one path segment (initiator names contain ':' which is fine, but a name may
/// hold anything the provider will judge; only unreserved characters go through as they are).
/// The largest document `apply` and `import` read (a bigger file is refused unread).
const MAX_DOCUMENT: u64 = 64 << 20;

/// Reads a document file (`-`: stdin), at most [`MAX_DOCUMENT`] bytes.
fn read_document(file: &std::path::Path) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let mut buf = Vec::new();
    let r: Box<dyn Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(file)
                .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?,
        )
    };
    r.take(MAX_DOCUMENT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    if buf.len() as u64 > MAX_DOCUMENT {
        return Err(CliError::Usage(format!(
            "{}: larger than {MAX_DOCUMENT} bytes",
            file.display()
        )));
    }
    Ok(buf)
}

pub fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn statuses_pass_through_unchanged() {
        assert_eq!(enum_value("offline"), json!("offline"));
        assert_eq!(enum_value("VDS_LS_OFFLINE"), json!("VDS_LS_OFFLINE"));
        assert_eq!(enum_value("4"), json!(4));
        assert_eq!(enum_value("-1"), json!(-1));
        assert_eq!(enum_value("99999999999"), json!(99_999_999_999i64));
        assert_eq!(enum_value("Bogus"), json!("Bogus"));
    }

    fn create(args: &[&str]) -> LunCreate {
        let mut v = vec!["vdsctl", "lun", "create"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().noun {
            Noun::Lun {
                verb: LunVerb::Create(c),
            } => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lun_create_body_sends_only_what_was_given() {
        let c = create(&["--size", "1GiB"]);
        assert_eq!(
            lun_create_body(&c, None, vec![], vec![]).unwrap(),
            json!({"size_bytes": 1u64 << 30})
        );
        let c = create(&[
            "--size",
            "10M",
            "--name",
            "db",
            "--type",
            "simple",
            "--thick",
            "--mask",
            "*",
            "--path",
            "/tmp/x",
            "--fault",
            r#"{"delay":{"flush_ms":5}}"#,
            "--read-only",
        ]);
        assert_eq!(
            lun_create_body(&c, Some("d".into()), vec![], vec!["t".into()]).unwrap(),
            json!({"size_bytes": 10u64 << 20, "friendly_name": "db", "type": "simple",
                   "thin": false, "drive": "d", "unmasking_list": "*", "targets": ["t"],
                   "backing": {"kind": "file", "path": "/tmp/x",
                               "filters": [{"delay": {"flush_ms": 5}}]},
                   "read_only": true})
        );
        let c = create(&[
            "--size",
            "1MiB",
            "--hint",
            "write_caching_enabled=false",
            "--hint",
            "optimal_write_size=64KiB",
        ]);
        assert_eq!(
            lun_create_body(&c, None, vec![], vec![]).unwrap(),
            json!({"size_bytes": 1u64 << 20,
                   "hints": {"write_caching_enabled": false, "optimal_write_size": 65536}})
        );
        assert!(
            Cli::try_parse_from(["vdsctl", "lun", "create", "--size", "1", "--hint", "bogus=1"])
                .is_err(),
            "an unknown hint is a usage error"
        );
        assert_eq!(query_escape("VDS     a-b"), "VDS%20%20%20%20%20a-b");
        assert_eq!(query_escape("naa.6005&x=1"), "naa.6005%26x%3D1");
        let c = create(&["--size", "1", "--fault", "{nope"]);
        assert_eq!(
            lun_create_body(&c, None, vec![], vec![])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    fn faults(args: &[&str]) -> SetFaults {
        let mut v = vec!["vdsctl", "lun", "set-faults", "db"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().noun {
            Noun::Lun {
                verb: LunVerb::SetFaults(f),
            } => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fault_filters_from_flags() {
        assert_eq!(fault_filters(&faults(&[])).unwrap(), Vec::<Value>::new());
        assert_eq!(
            fault_filters(&faults(&[
                "--delay-flush-ms",
                "3000",
                "--error-ops",
                "read, write",
                "--error-after",
                "2"
            ]))
            .unwrap(),
            vec![
                json!({"delay": {"read_ms": 0, "write_ms": 0, "flush_ms": 3000}}),
                json!({"error": {"ops": ["read", "write"], "after": 2}}),
            ]
        );
        assert_eq!(
            fault_filters(&faults(&["--error-ops", ","]))
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn failed_and_canceled_jobs_are_provider_errors() {
        assert_eq!(job_error(&json!({"state": "succeeded"})), None);
        assert_eq!(job_error(&json!({"state": "running"})), None);
        let e = job_error(&json!({"state": "failed", "hresult": "0x8004240F",
                                   "name": "VDS_E_NOT_ENOUGH_SPACE", "message": "full"}))
        .unwrap();
        assert_eq!(
            e.to_string(),
            "error: VDS_E_NOT_ENOUGH_SPACE (0x8004240F): full"
        );
        let e = job_error(&json!({"state": "canceled"})).unwrap();
        assert_eq!(
            e.to_string(),
            "error: VDS_E_OPERATION_CANCELED (0x8004240D): job canceled"
        );
    }

    #[test]
    fn a_job_code_without_its_name_is_named_by_the_model() {
        let e = job_error(&json!({"state": "failed", "hresult": "0x8004240F"})).unwrap();
        assert_eq!(
            e.to_string(),
            "error: VDS_E_NOT_ENOUGH_SPACE (0x8004240F): job failed"
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            encode_segment("iqn.1991-05.com.microsoft:host"),
            "iqn.1991-05.com.microsoft:host"
        );
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
