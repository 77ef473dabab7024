//! The configuration document (INTERFACE.md "Configuration documents"): `ExportConfig` writes
//! the array of the subsystem as one [`ConfigDoc`]; `ApplyConfig` judges a document against the
//! array, works out the array it describes (objects matched by name: LUNs by friendly name,
//! targets by IQN, portals by address, portal groups by target and tag), and makes it true in
//! one job with one commit, or changes nothing. New LUNs' storage is made or adopted and new
//! ONLINE portals bound before the commit (undone when it fails); listeners of deleted or
//! OFFLINE portals are closed and deleted LUNs drained and freed after it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::{BackingStore, Filtered};
use vds_model::{
    AdvertisedAddress, AsyncOutputType, BackingKind, EventKind, Hresult, Lun, LunHints, LunType,
    ObjectKind, Portal, PortalGroup, PortalStatus, SubsystemStatus, Target, UnmaskingList,
};
use vds_store::{LunRecord, SecretKind, SecretRow, StoreError};

use crate::command::{
    BackingSpec, ConfigChap, ConfigDoc, ConfigLun, ConfigPortal, ConfigTarget, HintsRequest,
    SecretBytes,
};
use crate::commit::Change;
use crate::engine::{naa_hex, new_lun_model, round_up, Inner, BLOCK_SIZE, MAX_LUN_SIZE};
use crate::jobs::JobHandle;
use crate::state::{LunEntry, PortalEntry, State, TargetEntry, MAX_LUN_NUMBER};
use crate::storage::{default_lun_path, identity_of, open_backing, prepare_storage, Prep};
use crate::{Outcome, Provider, VdsError};

use super::drive::is_data_dir_drive;
use super::lun::set_size;
use super::portal::check_advertise;
use super::{canceled, check_initiator, check_name, storage_err, JobResult};

/// The most objects of each kind a document may hold (a hostile document is refused before
/// any work is done for it).
const MAX_OBJECTS: usize = 65536;

impl Provider {
    pub(super) fn export_config(&self, include_secrets: bool) -> Result<Outcome, VdsError> {
        let st = self.inner.state.lock();
        Inner::cache_ok(&st)?;
        let sub = only_subsystem(&st)?;
        Ok(Outcome::Config(Box::new(export(&st, sub, include_secrets))))
    }

    pub(super) fn apply_config(&self, doc: ConfigDoc, dry_run: bool) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        Inner::cache_ok(st)?;
        let sub = only_subsystem(st)?;
        if st.subsystems[&sub].status == SubsystemStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("subsystem {sub} is FAILED"),
            ));
        }
        let plan = judge(inner, st, sub, &doc)?;
        if dry_run {
            return Ok(Outcome::ConfigPlan(plan.steps));
        }
        // Every object of the array is held: the document speaks for all of them.
        let mut ids: Vec<(ObjectKind, Uuid)> = vec![(ObjectKind::Subsystem, sub)];
        ids.extend(st.luns.keys().map(|i| (ObjectKind::Lun, *i)));
        ids.extend(st.targets.keys().map(|i| (ObjectKind::Target, *i)));
        ids.extend(st.pgs.keys().map(|i| (ObjectKind::PortalGroup, *i)));
        ids.extend(st.portals.keys().map(|i| (ObjectKind::Portal, *i)));
        st.check_free(&ids)?;
        // Names and paths of new LUNs are reserved until the job ends.
        for l in &plan.new_luns {
            st.lun_names.insert(l.lun.friendly_name.clone(), l.lun.id);
            if let Some(p) = &l.lun.backing.path {
                st.backing_paths.insert(p.clone(), l.lun.id);
            }
        }
        let mut slot_ids: Vec<Uuid> = ids.iter().map(|(_, i)| *i).collect();
        slot_ids.extend(plan.new_luns.iter().map(|l| l.lun.id));
        let slots = inner.claim(st, &slot_ids);
        drop(g);
        self.spawn_job(
            AsyncOutputType::Unknown,
            sub,
            slots,
            move |inner, job, slots| {
                let reserved: Vec<(String, Option<String>)> = plan
                    .new_luns
                    .iter()
                    .map(|l| (l.lun.friendly_name.clone(), l.lun.backing.path.clone()))
                    .collect();
                let r = apply_work(inner, job, plan, slots);
                if r.is_err() {
                    let mut st = inner.state.lock();
                    for (name, path) in reserved {
                        st.lun_names.remove(&name);
                        if let Some(p) = path {
                            st.backing_paths.remove(&p);
                        }
                    }
                }
                r
            },
        )
    }
}

/// The one subsystem a document describes.
fn only_subsystem(st: &State) -> Result<Uuid, VdsError> {
    let mut subs: Vec<Uuid> = st.subsystems.keys().copied().collect();
    subs.sort();
    match subs.as_slice() {
        [one] => Ok(*one),
        _ => Err(VdsError::not_supported(format!(
            "a configuration document describes one subsystem; this provider has {}",
            subs.len()
        ))),
    }
}

/// The array of `sub` as a document (sorted, so two exports of one array are equal).
fn export(st: &State, sub: Uuid, include_secrets: bool) -> ConfigDoc {
    let mut portals: Vec<ConfigPortal> = st
        .portals
        .values()
        .filter(|pe| pe.p.subsystem == sub)
        .map(|pe| ConfigPortal {
            address: pe.p.socket_addr(),
            advertise: pe.p.advertise.as_ref().map(|a| a.to_string()),
            online: pe.p.status == PortalStatus::Online,
        })
        .collect();
    portals.sort_by_key(|p| p.address);
    let addr_of = |p: &Uuid| st.portals.get(p).map(|pe| pe.p.socket_addr());
    let mut targets: Vec<ConfigTarget> = st
        .targets
        .values()
        .filter(|te| te.t.subsystem == sub)
        .map(|te| {
            let mut pgs: Vec<(u16, Vec<SocketAddr>)> =
                te.t.portal_groups
                    .iter()
                    .filter_map(|pg| st.pgs.get(pg))
                    .map(|(g, _)| {
                        let mut a: Vec<SocketAddr> = g.portals.iter().filter_map(addr_of).collect();
                        a.sort();
                        (g.tag, a)
                    })
                    .collect();
            pgs.sort();
            ConfigTarget {
                iscsi_name: te.t.iscsi_name.clone(),
                friendly_name: te.t.friendly_name.clone(),
                chap: include_secrets.then(|| chap_of(&te.secrets)),
                portal_groups: pgs,
            }
        })
        .collect();
    targets.sort_by(|a, b| a.iscsi_name.cmp(&b.iscsi_name));
    let iqn_of = |t: &Uuid| st.targets.get(t).map(|te| te.t.iscsi_name.clone());
    let mut luns: Vec<ConfigLun> = st
        .luns
        .values()
        .filter(|e| e.rec.lun.subsystem == sub)
        .map(|e| {
            let l = &e.rec.lun;
            let mut targets: Vec<(String, u64)> = l
                .lun_numbers
                .iter()
                .filter_map(|(t, n)| iqn_of(t).map(|i| (i, *n)))
                .collect();
            targets.sort();
            // vds's own file is not the document's business: applied elsewhere, a new one.
            let own = e.rec.owns_file && l.backing.kind == BackingKind::File;
            ConfigLun {
                name: l.friendly_name.clone(),
                size_bytes: Some(l.size_bytes),
                kind: l.backing.kind,
                path: if own { None } else { l.backing.path.clone() },
                thin: l.thin,
                unmasking_list: l.unmasking_list.clone(),
                read_only: l.read_only,
                targets,
                hints: Some(request_of(&e.hints)),
            }
        })
        .collect();
    luns.sort_by(|a, b| a.name.cmp(&b.name));
    ConfigDoc {
        subsystem: st.subsystems.get(&sub).map(|s| s.friendly_name.clone()),
        portals,
        targets,
        luns,
    }
}

/// Every hint as a request that asks for it as it is.
fn request_of(h: &LunHints) -> HintsRequest {
    HintsRequest {
        write_caching_enabled: Some(h.write_caching_enabled),
        write_through_caching_enabled: Some(h.write_through_caching_enabled),
        read_back_verify_enabled: Some(h.read_back_verify_enabled),
        optimal_read_size: Some(h.optimal_read_size.into()),
        optimal_read_alignment: Some(h.optimal_read_alignment.into()),
        optimal_write_size: Some(h.optimal_write_size.into()),
        optimal_write_alignment: Some(h.optimal_write_alignment.into()),
        rebuild_priority: Some(h.rebuild_priority.into()),
        fast_crash_recovery_required: Some(h.fast_crash_recovery_required),
        other: Vec::new(),
    }
}

/// The hints a document gives over `cur`, judged as ApplyHints2 judges them, the fields named
/// under `f`.
fn judge_doc_hints(f: &str, req: &HintsRequest, cur: LunHints) -> Result<LunHints, VdsError> {
    let (h, _, not_applied) = super::lun_info::judge_hints(req, cur, BLOCK_SIZE as u32)
        .map_err(|e| under(&format!("{f}.hints"), e))?;
    if let Some(n) = not_applied.first() {
        return Err(bad(&format!("{f}.hints.{}", n.field), n.reason));
    }
    Ok(h)
}

/// A target's secrets as a document holds them.
fn chap_of(secrets: &[SecretRow]) -> ConfigChap {
    let mut c = ConfigChap::default();
    for s in secrets {
        let v = SecretBytes(s.secret.clone());
        match s.kind {
            SecretKind::Default => c.shared = Some(v),
            SecretKind::Initiator => c.initiators.push((s.initiator.clone(), v)),
            SecretKind::Mutual => c.mutual.push((s.initiator.clone(), v)),
        }
    }
    c.initiators.sort_by(|a, b| a.0.cmp(&b.0));
    c.mutual.sort_by(|a, b| a.0.cmp(&b.0));
    c
}

/// A LUN to be made by the job.
struct NewLun {
    lun: Lun,
    hints: LunHints,
    owns_file: bool,
    prep: Prep,
    /// The size the document asked for when an existing file or device is adopted (it keeps
    /// its own; they must agree).
    adopted_size: Option<u64>,
    field: String,
}

/// What the document makes of the array: every object as it will be (new ones with new ids),
/// what goes, and the steps for a person.
struct Plan {
    sub: Uuid,
    rename: Option<String>,
    portals: HashMap<Uuid, Portal>,
    targets: HashMap<Uuid, (Target, Option<Vec<SecretRow>>)>,
    pgs: HashMap<Uuid, PortalGroup>,
    /// Existing LUNs as they will be.
    luns: HashMap<Uuid, Lun>,
    new_luns: Vec<NewLun>,
    gone_luns: Vec<Uuid>,
    gone_targets: Vec<Uuid>,
    gone_pgs: Vec<Uuid>,
    gone_portals: Vec<Uuid>,
    steps: Vec<String>,
}

/// `E_INVALIDARG` for `field` of the document.
fn bad(field: &str, why: impl std::fmt::Display) -> VdsError {
    VdsError::invalid_arg(field, why)
}

/// An error of a shared check (which names its own field) put under `prefix`.
fn under(prefix: &str, e: VdsError) -> VdsError {
    VdsError::new(e.hresult, format!("{prefix}.{}", e.message))
}

/// Judges the whole document (every field, every reference, every conflict) and plans it.
fn judge(inner: &Inner, st: &State, sub: Uuid, doc: &ConfigDoc) -> Result<Plan, VdsError> {
    for (n, field) in [
        (doc.portals.len(), "portals"),
        (doc.targets.len(), "targets"),
        (doc.luns.len(), "luns"),
    ] {
        if n > MAX_OBJECTS {
            return Err(bad(
                field,
                format!("{n} entries; the limit is {MAX_OBJECTS}"),
            ));
        }
    }
    let mut plan = Plan {
        sub,
        rename: None,
        portals: HashMap::new(),
        targets: HashMap::new(),
        pgs: HashMap::new(),
        luns: HashMap::new(),
        new_luns: Vec::new(),
        gone_luns: Vec::new(),
        gone_targets: Vec::new(),
        gone_pgs: Vec::new(),
        gone_portals: Vec::new(),
        steps: Vec::new(),
    };
    if let Some(n) = &doc.subsystem {
        let n = check_name("subsystem", n)?;
        if st.subsystems[&sub].friendly_name != n {
            plan.steps.push(format!("rename the subsystem to {n:?}"));
            plan.rename = Some(n);
        }
    }
    let by_addr = judge_portals(st, sub, doc, &mut plan)?;
    let by_iqn = judge_targets(st, sub, doc, &by_addr, &mut plan)?;
    judge_luns(inner, st, sub, doc, &by_iqn, &mut plan)?;
    Ok(plan)
}

fn judge_portals(
    st: &State,
    sub: Uuid,
    doc: &ConfigDoc,
    plan: &mut Plan,
) -> Result<HashMap<SocketAddr, Uuid>, VdsError> {
    let controller = st
        .controllers_of(sub)
        .first()
        .map(|c| c.id)
        .ok_or_else(|| {
            VdsError::new(
                Hresult::VDS_E_PROVIDER_CACHE_CORRUPT,
                format!("subsystem {sub} has no controller"),
            )
        })?;
    let mut by_addr = HashMap::new();
    for (i, dp) in doc.portals.iter().enumerate() {
        let f = format!("portals[{i}]");
        let a = dp.address;
        if a.port() == 0 {
            return Err(bad(&format!("{f}.address"), "the port must be 1 to 65535"));
        }
        if a.ip().is_multicast() {
            return Err(bad(&format!("{f}.address"), format!("{a} is multicast")));
        }
        let advertise: Option<AdvertisedAddress> = dp
            .advertise
            .as_deref()
            .map(check_advertise)
            .transpose()
            .map_err(|e| under(&f, e))?;
        let status = if dp.online {
            PortalStatus::Online
        } else {
            PortalStatus::Offline
        };
        let p = match st.portal_addrs.get(&a) {
            Some(id) => {
                let mut p = st.portals[id].p.clone();
                if p.advertise != advertise {
                    plan.steps
                        .push(format!("set portal {a}'s advertised address"));
                }
                if p.status != status && !st.subsystems[&sub].portal_status_settable {
                    return Err(VdsError::not_supported(format!(
                        "{f}.status: subsystem {sub} does not implement IVdsIscsiPortal::SetStatus \
                         (portal_status_settable = false)"
                    )));
                }
                if p.status != status {
                    plan.steps.push(format!(
                        "set portal {a} {}",
                        status.short_name().to_uppercase()
                    ));
                }
                p.advertise = advertise;
                p.status = status;
                p
            }
            None => {
                plan.steps.push(format!(
                    "create portal {a} ({})",
                    status.short_name().to_uppercase()
                ));
                Portal {
                    id: Uuid::new_v4(),
                    subsystem: sub,
                    address: a.ip(),
                    port: a.port(),
                    status,
                    advertise,
                    controller,
                    portal_groups: Vec::new(),
                }
            }
        };
        if by_addr.insert(a, p.id).is_some() {
            return Err(bad(&format!("{f}.address"), format!("{a} is listed twice")));
        }
        plan.portals.insert(
            p.id,
            Portal {
                portal_groups: Vec::new(),
                ..p
            },
        );
    }
    for pe in st.portals.values().filter(|pe| pe.p.subsystem == sub) {
        if !plan.portals.contains_key(&pe.p.id) {
            plan.steps
                .push(format!("delete portal {}", pe.p.socket_addr()));
            plan.gone_portals.push(pe.p.id);
        }
    }
    Ok(by_addr)
}

fn judge_targets(
    st: &State,
    sub: Uuid,
    doc: &ConfigDoc,
    by_addr: &HashMap<SocketAddr, Uuid>,
    plan: &mut Plan,
) -> Result<HashMap<String, Uuid>, VdsError> {
    let mut by_iqn = HashMap::new();
    for (i, dt) in doc.targets.iter().enumerate() {
        let f = format!("targets[{i}]");
        let iqn = dt.iscsi_name.trim().to_string();
        vds_model::validate_iscsi_name(&iqn).map_err(|e| bad(&format!("{f}.iscsi_name"), e))?;
        let friendly = check_name(&format!("{f}.friendly_name"), &dt.friendly_name)?;
        let key = iqn.to_ascii_lowercase();
        let existing = st.iqns.get(&key).copied();
        let id = existing.unwrap_or_else(Uuid::new_v4);
        if by_iqn.insert(key, id).is_some() {
            return Err(bad(
                &format!("{f}.iscsi_name"),
                format!("{iqn} is listed twice"),
            ));
        }
        let secrets = dt
            .chap
            .as_ref()
            .map(|c| secret_rows(&f, id, c))
            .transpose()?;
        let mut t = match existing {
            Some(id) => {
                let te = &st.targets[&id];
                if te.t.friendly_name != friendly {
                    plan.steps
                        .push(format!("rename target {iqn} to {friendly:?}"));
                }
                if let Some(rows) = &secrets {
                    if !same_secrets(rows, &te.secrets) {
                        plan.steps
                            .push(format!("set the CHAP secrets of target {iqn}"));
                    }
                }
                te.t.clone()
            }
            None => {
                plan.steps.push(format!("create target {iqn}"));
                Target {
                    id,
                    subsystem: sub,
                    iscsi_name: iqn.clone(),
                    friendly_name: friendly.clone(),
                    chap_enabled: false,
                    portal_groups: Vec::new(),
                    luns: Vec::new(),
                }
            }
        };
        t.friendly_name = friendly;
        t.portal_groups = judge_pgs(st, &f, &t, dt, by_addr, plan)?;
        t.luns = Vec::new();
        plan.targets.insert(id, (t, secrets));
    }
    for te in st.targets.values().filter(|te| te.t.subsystem == sub) {
        if !plan.targets.contains_key(&te.t.id) {
            plan.steps
                .push(format!("delete target {}", te.t.iscsi_name));
            plan.gone_targets.push(te.t.id);
        }
    }
    for (id, (g, _)) in &st.pgs {
        if !plan.pgs.contains_key(id) {
            if !plan.gone_targets.contains(&g.target) {
                plan.steps.push(format!(
                    "delete portal group {} of target {}",
                    g.tag, st.targets[&g.target].t.iscsi_name
                ));
            }
            plan.gone_pgs.push(*id);
        }
    }
    Ok(by_iqn)
}

/// The portal groups of target `t` as the document gives them; returns their ids.
fn judge_pgs(
    st: &State,
    f: &str,
    t: &Target,
    dt: &ConfigTarget,
    by_addr: &HashMap<SocketAddr, Uuid>,
    plan: &mut Plan,
) -> Result<Vec<Uuid>, VdsError> {
    let mut ids = Vec::new();
    let mut in_target: HashSet<Uuid> = HashSet::new();
    let mut tags = HashSet::new();
    for (j, (tag, addrs)) in dt.portal_groups.iter().enumerate() {
        let pf = format!("{f}.portal_groups[{j}]");
        if *tag == 0 {
            return Err(bad(&format!("{pf}.tag"), "must be 1 to 65535"));
        }
        if !tags.insert(*tag) {
            return Err(bad(
                &format!("{pf}.tag"),
                format!("tag {tag} is listed twice"),
            ));
        }
        let existing = t
            .portal_groups
            .iter()
            .find(|pg| st.pgs.get(pg).is_some_and(|(g, _)| g.tag == *tag))
            .copied();
        let id = existing.unwrap_or_else(Uuid::new_v4);
        let mut portals = Vec::new();
        let mut controller = None;
        for (k, a) in addrs.iter().enumerate() {
            let af = format!("{pf}.portals[{k}]");
            let Some(p) = by_addr.get(a) else {
                return Err(bad(
                    &af,
                    format!("{a} is not one of the document's portals"),
                ));
            };
            if !in_target.insert(*p) {
                return Err(bad(
                    &af,
                    format!(
                        "{a} is already in another portal group of the target (or listed twice)"
                    ),
                ));
            }
            let c = plan.portals[p].controller;
            if controller.is_some_and(|x| x != c) {
                return Err(VdsError::new(
                    Hresult::VDS_E_INVALID_PORT_PATH,
                    format!("{af}: the portals of a portal group belong to one controller"),
                ));
            }
            controller = Some(c);
            portals.push(*p);
            if let Some(pp) = plan.portals.get_mut(p) {
                pp.portal_groups.push(id);
            }
        }
        match existing {
            Some(id) => {
                let mut have = st.pgs[&id].0.portals.clone();
                have.sort();
                let mut want = portals.clone();
                want.sort();
                if have != want {
                    plan.steps.push(format!(
                        "set the portals of portal group {tag} of target {}",
                        t.iscsi_name
                    ));
                }
            }
            None => plan.steps.push(format!(
                "create portal group {tag} of target {}",
                t.iscsi_name
            )),
        }
        plan.pgs.insert(
            id,
            PortalGroup {
                id,
                target: t.id,
                tag: *tag,
                portals,
            },
        );
        ids.push(id);
    }
    Ok(ids)
}

/// The secret rows of a target's `chap`, each secret and name checked.
fn secret_rows(f: &str, target: Uuid, c: &ConfigChap) -> Result<Vec<SecretRow>, VdsError> {
    let mut rows = Vec::new();
    let secret = |field: String, s: &SecretBytes| {
        vds_model::ChapSecret::new(s.0.clone())
            .map(|s| s.into_bytes())
            .map_err(|e| bad(&field, e))
    };
    if let Some(s) = &c.shared {
        rows.push(SecretRow {
            target,
            kind: SecretKind::Default,
            initiator: String::new(),
            secret: secret(format!("{f}.chap.shared"), s)?,
        });
    }
    for (list, name, kind) in [
        (&c.initiators, "initiators", SecretKind::Initiator),
        (&c.mutual, "mutual", SecretKind::Mutual),
    ] {
        let mut seen = HashSet::new();
        for (i, (who, s)) in list.iter().enumerate() {
            let field = format!("{f}.chap.{name}[{i}]");
            let who = check_initiator(&format!("{field}.initiator"), who)?;
            if !seen.insert(who.to_ascii_lowercase()) {
                return Err(bad(
                    &format!("{field}.initiator"),
                    format!("{who} is listed twice"),
                ));
            }
            rows.push(SecretRow {
                target,
                kind,
                initiator: who,
                secret: secret(format!("{field}.secret"), s)?,
            });
        }
    }
    Ok(rows)
}

/// Whether two sets of secret rows say the same.
fn same_secrets(a: &[SecretRow], b: &[SecretRow]) -> bool {
    let key = |r: &SecretRow| {
        (
            r.kind as u8,
            r.initiator.to_ascii_lowercase(),
            r.secret.clone(),
        )
    };
    let mut x: Vec<_> = a.iter().map(key).collect();
    let mut y: Vec<_> = b.iter().map(key).collect();
    x.sort();
    y.sort();
    x == y
}

fn judge_luns(
    inner: &Inner,
    st: &State,
    sub: Uuid,
    doc: &ConfigDoc,
    by_iqn: &HashMap<String, Uuid>,
    plan: &mut Plan,
) -> Result<(), VdsError> {
    let data_dir = &inner.config.data_dir;
    let drive = st
        .drives
        .values()
        .find(|d| d.subsystem == sub && is_data_dir_drive(d, data_dir))
        .map(|d| d.id);
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    let mut numbers: HashSet<(Uuid, u64)> = HashSet::new();
    for (i, dl) in doc.luns.iter().enumerate() {
        let f = format!("luns[{i}]");
        let name = check_name(&format!("{f}.name"), &dl.name)?;
        if !names.insert(name.clone()) {
            return Err(bad(
                &format!("{f}.name"),
                format!("{name:?} is listed twice"),
            ));
        }
        let mask = UnmaskingList::parse(&dl.unmasking_list)
            .map_err(|e| bad(&format!("{f}.unmasking_list"), e))?
            .to_string();
        let mut lun_numbers = Vec::new();
        for (j, (iqn, n)) in dl.targets.iter().enumerate() {
            let tf = format!("{f}.targets[{j}]");
            let Some(t) = by_iqn.get(&iqn.trim().to_ascii_lowercase()) else {
                return Err(bad(
                    &format!("{tf}.iscsi_name"),
                    format!("{iqn} is not one of the document's targets"),
                ));
            };
            if *n > MAX_LUN_NUMBER {
                return Err(bad(
                    &format!("{tf}.lun"),
                    format!("{n} is above the highest LUN number, {MAX_LUN_NUMBER}"),
                ));
            }
            if !numbers.insert((*t, *n)) {
                return Err(bad(
                    &format!("{tf}.lun"),
                    format!("LUN number {n} of target {iqn} is given twice"),
                ));
            }
            if lun_numbers.iter().any(|(x, _)| x == t) {
                return Err(bad(
                    &format!("{tf}.iscsi_name"),
                    format!("{iqn} is listed twice"),
                ));
            }
            lun_numbers.push((*t, *n));
        }
        match st.lun_names.get(&name).and_then(|id| st.luns.get(id)) {
            Some(e) => {
                let l = judge_existing_lun(&f, e, dl, &mask, lun_numbers, plan)?;
                if let Some(p) = &l.backing.path {
                    paths.insert(p.clone());
                }
                plan.luns.insert(l.id, l);
            }
            None => {
                let Some(drive) = drive else {
                    return Err(VdsError::new(
                        Hresult::VDS_E_NOT_ENOUGH_DRIVE,
                        format!("subsystem {sub} has no drive for its LUN files"),
                    ));
                };
                let n = judge_new_lun(inner, st, &f, dl, name, mask, lun_numbers, (sub, drive))?;
                if let Some(p) = &n.lun.backing.path {
                    if !paths.insert(p.clone()) {
                        return Err(VdsError::new(
                            Hresult::VDS_E_DEVICE_IN_USE,
                            format!("{f}.backing.path: {p} is the storage of another LUN of the document"),
                        ));
                    }
                }
                plan.steps.push(format!(
                    "create LUN {:?} ({} bytes, {} {})",
                    n.lun.friendly_name,
                    n.lun.size_bytes,
                    n.lun.backing.kind.short_name(),
                    n.lun.backing.path.as_deref().unwrap_or("in the data dir")
                ));
                plan.new_luns.push(n);
            }
        }
    }
    for e in st.luns.values().filter(|e| e.rec.lun.subsystem == sub) {
        if !plan.luns.contains_key(&e.rec.lun.id) && e.rec.lun.backing.kind == BackingKind::Extents
        {
            // Its extents, journal and bitmap are freed by DeleteLun alone (ops/lun.rs).
            return Err(VdsError::not_supported(format!(
                "luns: LUN {:?} is on drives and not in the document; delete it with \
                 `vdsctl lun delete` first",
                e.rec.lun.friendly_name
            )));
        }
        if !plan.luns.contains_key(&e.rec.lun.id) {
            plan.steps
                .push(format!("delete LUN {:?}", e.rec.lun.friendly_name));
            plan.gone_luns.push(e.rec.lun.id);
        }
    }
    Ok(())
}

/// An existing LUN as the document leaves it: mask, write protection and targets may change;
/// its size and storage are its own (resize and other storage are separate operations).
fn judge_existing_lun(
    f: &str,
    e: &LunEntry,
    dl: &ConfigLun,
    mask: &str,
    lun_numbers: Vec<(Uuid, u64)>,
    plan: &mut Plan,
) -> Result<Lun, VdsError> {
    let mut l = e.rec.lun.clone();
    let own = e.rec.owns_file && l.backing.kind == BackingKind::File;
    if dl.kind != l.backing.kind {
        return Err(bad(
            &format!("{f}.backing.kind"),
            format!(
                "LUN {:?} is {}; its storage is not changed by a document",
                l.friendly_name,
                l.backing.kind.short_name()
            ),
        ));
    }
    if !own && dl.path != l.backing.path {
        return Err(bad(
            &format!("{f}.backing.path"),
            format!(
                "LUN {:?} is stored at {}; its storage is not changed by a document",
                l.friendly_name,
                l.backing.path.as_deref().unwrap_or("(none)")
            ),
        ));
    }
    if dl.size_bytes.is_some_and(|s| round_up(s) != l.size_bytes) {
        return Err(bad(
            &format!("{f}.size_bytes"),
            format!(
                "LUN {:?} is {} bytes; a document does not resize (use `vdsctl lun extend`/`shrink`)",
                l.friendly_name, l.size_bytes
            ),
        ));
    }
    if let Some(req) = &dl.hints {
        if judge_doc_hints(f, req, e.hints)? != e.hints {
            return Err(bad(
                &format!("{f}.hints"),
                format!(
                    "differ from LUN {:?}'s; a document gives hints to new LUNs only (use \
                     `vdsctl lun hints --set`)",
                    l.friendly_name
                ),
            ));
        }
    }
    let mut have = l.lun_numbers.clone();
    have.sort();
    let mut want = lun_numbers.clone();
    want.sort();
    if l.unmasking_list != mask || l.read_only != dl.read_only || have != want {
        plan.steps.push(format!("change LUN {:?}", l.friendly_name));
    }
    l.unmasking_list = mask.to_string();
    l.read_only = dl.read_only;
    l.targets = lun_numbers.iter().map(|(t, _)| *t).collect();
    l.lun_numbers = lun_numbers;
    Ok(l)
}

#[allow(clippy::too_many_arguments)]
fn judge_new_lun(
    inner: &Inner,
    st: &State,
    f: &str,
    dl: &ConfigLun,
    name: String,
    mask: String,
    lun_numbers: Vec<(Uuid, u64)>,
    (sub, drive): (Uuid, Uuid),
) -> Result<NewLun, VdsError> {
    if dl.size_bytes.is_some_and(|s| s == 0 || s > MAX_LUN_SIZE) {
        return Err(bad(
            &format!("{f}.size_bytes"),
            format!("must be 1 to {MAX_LUN_SIZE}"),
        ));
    }
    if !matches!(
        dl.kind,
        BackingKind::File | BackingKind::Block | BackingKind::Memory | BackingKind::Null
    ) {
        return Err(VdsError::not_supported(format!(
            "{f}.backing.kind: a {} LUN is not made from a document",
            dl.kind.short_name()
        )));
    }
    let spec = BackingSpec {
        kind: dl.kind,
        path: dl.path.clone(),
        ..BackingSpec::default()
    };
    let judged =
        crate::storage::check_backing(&spec, dl.size_bytes.unwrap_or(0), &inner.config.data_dir)
            .map_err(|e| VdsError::new(e.hresult, format!("{f}.{}", e.message)))?;
    if let Some(j) = &judged {
        if let Some(other) = st.backing_paths.get(&j.path) {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("{f}.backing.path: {} already backs LUN {other}", j.path),
            ));
        }
        if super::drive::drive_at(st, &inner.config.data_dir, std::path::Path::new(&j.path))
            .is_some()
        {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("{f}.backing.path: {} is a drive", j.path),
            ));
        }
        if let Some((want, _)) = j.existing {
            let same = st.luns.values().find(|l| {
                l.rec.lun.backing.kind == dl.kind
                    && l.rec.identity.is_some_and(|have| match dl.kind {
                        BackingKind::Block => have.0 == want.0,
                        _ => have == want,
                    })
            });
            if let Some(other) = same {
                return Err(VdsError::new(
                    Hresult::VDS_E_DEVICE_IN_USE,
                    format!(
                        "{f}.path: {} is already the storage of LUN {}",
                        j.path, other.rec.lun.id
                    ),
                ));
            }
        }
    }
    let id = Uuid::new_v4();
    let adopted = judged.as_ref().and_then(|j| j.existing);
    let size = match (dl.size_bytes, adopted) {
        (Some(s), _) => round_up(s),
        (None, Some((_, have))) => have,
        (None, None) => {
            return Err(bad(
                &format!("{f}.size_bytes"),
                "required unless an existing file or device is adopted",
            ))
        }
    };
    let (path, owns_file) = match (dl.kind, &judged) {
        (BackingKind::File, None) => (
            Some(
                default_lun_path(&inner.config.data_dir, id)
                    .display()
                    .to_string(),
            ),
            true,
        ),
        (BackingKind::File, Some(j)) => (Some(j.path.clone()), adopted.is_none()),
        (_, j) => (j.as_ref().map(|j| j.path.clone()), false),
    };
    let mut lun = new_lun_model(
        id,
        sub,
        drive,
        name,
        size,
        mask,
        LunType::Simple,
        dl.thin,
        lun_numbers,
        vds_model::Backing {
            kind: dl.kind,
            path,
        },
        Vec::new(),
    );
    lun.read_only = dl.read_only;
    let hints = match &dl.hints {
        Some(req) => judge_doc_hints(f, req, LunHints::default())?,
        None => LunHints::default(),
    };
    lun.flags = hints.lun_flags();
    lun.rebuild_priority = hints.rebuild_priority;
    Ok(NewLun {
        hints,
        lun,
        owns_file,
        prep: Prep {
            user_path: judged.is_some(),
            adopted: adopted.map(|(identity, _)| identity),
            wipe: false,
        },
        adopted_size: adopted.and(dl.size_bytes).map(round_up),
        field: f.to_string(),
    })
}

/// A new LUN with its storage open.
struct Made {
    lun: Lun,
    hints: LunHints,
    owns_file: bool,
    filtered: Arc<Filtered>,
    identity: Option<(u64, u64)>,
}

/// What was done before the commit, for the commit and for its undo.
struct Prepared {
    made: Result<Vec<Made>, VdsError>,
    bound: Vec<Uuid>,
    bind_error: Option<VdsError>,
    protected: Vec<Arc<vds_scsi::LogicalUnit>>,
}

/// The job: storage and listeners first, then the one commit, then what follows it.
fn apply_work(
    inner: &Arc<Inner>,
    job: &JobHandle,
    plan: Plan,
    slots: crate::engine::Slots,
) -> JobResult {
    let g = inner.state.lock();
    // Portals to start listening: new ONLINE ones and OFFLINE ones going ONLINE.
    let to_bind: Vec<(Uuid, SocketAddr)> = plan
        .portals
        .values()
        .filter(|p| p.status == PortalStatus::Online)
        .filter(|p| !g.portals.get(&p.id).is_some_and(|pe| pe.bound))
        .map(|p| (p.id, p.socket_addr()))
        .collect();
    let to_unbind: Vec<Uuid> = g
        .portals
        .values()
        .filter(|pe| pe.bound)
        .filter(|pe| {
            plan.portals
                .get(&pe.p.id)
                .is_none_or(|p| p.status != PortalStatus::Online)
        })
        .map(|pe| pe.p.id)
        .collect();
    let to_protect: Vec<Arc<vds_scsi::LogicalUnit>> = plan
        .luns
        .values()
        .filter(|l| l.read_only && g.luns.get(&l.id).is_some_and(|e| !e.rec.lun.read_only))
        .filter_map(|l| g.luns.get(&l.id).map(|e| e.lu.clone()))
        .collect();
    let new_luns = &plan.new_luns;
    let prepare = || {
        let made = make_storage(job, new_luns);
        let mut bound = Vec::new();
        let mut bind_error = None;
        if made.is_ok() {
            for (id, addr) in &to_bind {
                match inner.dataplane.bind_portal(*id, *addr) {
                    Ok(()) => bound.push(*id),
                    Err(e) => {
                        bind_error = Some(VdsError::new(
                            Hresult::from_io_error(&e),
                            format!("portal {addr}: cannot listen: {e}"),
                        ));
                        break;
                    }
                }
            }
        }
        for lu in &to_protect {
            lu.set_write_protected(true);
        }
        job.set_percent(80);
        Prepared {
            made,
            bound,
            bind_error,
            protected: to_protect.clone(),
        }
    };
    let undo = |_: &mut State, p: &Prepared| {
        for id in &p.bound {
            inner
                .dataplane
                .unbind_portal(*id, inner.config.logout_timeout);
        }
        for lu in &p.protected {
            lu.set_write_protected(false);
        }
        if let Ok(made) = &p.made {
            for m in made {
                remove_own(m);
            }
        }
        Change::new()
    };
    let gone_luns: Vec<LunEntry> = plan
        .gone_luns
        .iter()
        .filter_map(|id| g.luns.get(id).cloned())
        .collect();
    let build = |st: &mut State, p: &Prepared| -> Result<Change<'_>, VdsError> {
        let made = p.made.clone_made()?;
        if let Some(e) = &p.bind_error {
            return Err(e.clone());
        }
        recheck(st, &plan)?;
        if !job.begin_commit() {
            return Err(canceled());
        }
        Ok(build_change(inner, st, &plan, made))
    };
    let (g, _prepared, r) = inner.commit_prepared(g, slots, prepare, undo, build);
    drop(g);
    r?;
    // The configuration is durable: close what it no longer serves.
    for id in to_unbind {
        inner
            .dataplane
            .unbind_portal(id, inner.config.logout_timeout);
    }
    for e in &gone_luns {
        let _ = e.lu.set_state(vds_scsi::LuState::Offline);
        crate::storage::free_storage(e);
    }
    Ok((Hresult::S_OK, None))
}

/// The objects the job holds cannot change meanwhile, but a portal or a target made by another
/// call while the storage was prepared may have taken an address or IQN the document gives a
/// new object (LUN names and paths are reserved at the call).
fn recheck(st: &State, plan: &Plan) -> Result<(), VdsError> {
    for p in plan.portals.values() {
        if let Some(other) = st
            .portal_addrs
            .get(&p.socket_addr())
            .filter(|o| **o != p.id)
        {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_EXISTS,
                format!("portal {} was created meanwhile ({other})", p.socket_addr()),
            ));
        }
    }
    for (id, (t, _)) in &plan.targets {
        let key = t.iscsi_name.to_ascii_lowercase();
        if let Some(other) = st.iqns.get(&key).filter(|o| *o != id) {
            return Err(VdsError::new(
                Hresult::VDS_E_NAME_NOT_UNIQUE,
                format!("target {} was created meanwhile ({other})", t.iscsi_name),
            ));
        }
    }
    Ok(())
}

/// `Result<Vec<Made>>` is not `Clone` (a store is shared, not copied): the commit takes shared
/// handles of the same stores.
trait CloneMade {
    fn clone_made(&self) -> Result<Vec<Made>, VdsError>;
}

impl CloneMade for Result<Vec<Made>, VdsError> {
    fn clone_made(&self) -> Result<Vec<Made>, VdsError> {
        match self {
            Ok(v) => Ok(v
                .iter()
                .map(|m| Made {
                    lun: m.lun.clone(),
                    hints: m.hints,
                    owns_file: m.owns_file,
                    filtered: m.filtered.clone(),
                    identity: m.identity,
                })
                .collect()),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Removes the file of a LUN that was not created (when vds made it).
fn remove_own(m: &Made) {
    if m.owns_file {
        if let Some(p) = &m.lun.backing.path {
            let _ = vds_backstore::lifecycle::remove_file(std::path::Path::new(p));
        }
    }
}

/// Makes or adopts the storage of every new LUN (BEHAVIOUR.md §12) and opens it; on the
/// first failure, what was made is removed again.
fn make_storage(job: &JobHandle, new_luns: &[NewLun]) -> Result<Vec<Made>, VdsError> {
    let mut made: Vec<Made> = Vec::new();
    let fail = |made: &[Made], e: VdsError| {
        for m in made {
            remove_own(m);
        }
        e
    };
    for (i, n) in new_luns.iter().enumerate() {
        if job.cancel_requested() {
            return Err(fail(&made, canceled()));
        }
        let mut lun = n.lun.clone();
        let opened = prepare_storage(&lun, n.owns_file, n.prep).and_then(|()| {
            open_backing(&lun).map_err(|e| {
                storage_err(
                    format!(
                        "{}: opening {}",
                        n.field,
                        lun.backing.path.as_deref().unwrap_or_default()
                    ),
                    &e,
                )
            })
        });
        let filtered = match opened {
            Ok(f) => f,
            Err(e) => {
                if let Some(p) = lun.backing.path.as_ref().filter(|_| n.owns_file) {
                    let _ = vds_backstore::lifecycle::remove_file(std::path::Path::new(p));
                }
                return Err(fail(&made, under(&n.field, e)));
            }
        };
        set_size(&mut lun, filtered.size());
        let identity = identity_of(&lun.backing).ok().flatten();
        let m = Made {
            lun,
            hints: n.hints,
            owns_file: n.owns_file,
            filtered,
            identity,
        };
        if let Some(want) = n.prep.adopted {
            if m.identity != Some(want) || m.filtered.probe().is_err() {
                let e = VdsError::new(
                    Hresult::E_ACCESSDENIED,
                    format!(
                        "{}.backing.path: replaced while the document was applied",
                        n.field
                    ),
                );
                return Err(fail(&made, e));
            }
        }
        if let Some(size) = n.adopted_size.filter(|s| *s != m.lun.size_bytes) {
            let e = bad(
                &format!("{}.size_bytes", n.field),
                format!(
                    "{size}, but {} is {} bytes (an adopted file or device keeps its size)",
                    m.lun.backing.path.as_deref().unwrap_or_default(),
                    m.lun.size_bytes
                ),
            );
            return Err(fail(&made, e));
        }
        made.push(m);
        job.set_percent((10 + 60 * (i + 1) / new_luns.len().max(1)) as u32);
    }
    Ok(made)
}

/// The one change of the document: every row written or deleted in one transaction, the
/// state made to match, one view published, one event per object that came, changed or went.
fn build_change<'a>(
    inner: &'a Arc<Inner>,
    st: &mut State,
    plan: &'a Plan,
    made: Vec<Made>,
) -> Change<'a> {
    let new_entries = new_entries(inner, st, plan, made);
    let fin = final_targets(st, plan, &new_entries);
    let rows = rows_of(st, plan, &fin, &new_entries);
    let events = events_of(st, plan, &rows);
    let unprotect: Vec<Arc<vds_scsi::LogicalUnit>> = rows
        .luns
        .iter()
        .filter(|r| !r.lun.read_only)
        .filter_map(|r| st.luns.get(&r.lun.id))
        .filter(|e| e.rec.lun.read_only)
        .map(|e| e.lu.clone())
        .collect();
    let written = rows.clone();
    let lun_set_changed = fin.lun_set_changed.clone();
    let mut change = Change::new()
        .store(move |tx| write_rows(tx, plan, &written))
        .apply(move |st| {
            install(st, plan, rows, fin, new_entries);
            // Writable again only once the store says so.
            for lu in unprotect {
                lu.set_write_protected(false);
            }
        })
        .publish_then(move |st| {
            for t in &lun_set_changed {
                for lu in st.lus_of_target(*t) {
                    lu.luns_changed();
                }
            }
        });
    for (k, e, id) in events {
        change = change.event(k, e, id);
    }
    change
}

/// The engines of the new LUNs (active on every controller of the subsystem).
fn new_entries(inner: &Inner, st: &State, plan: &Plan, made: Vec<Made>) -> Vec<LunEntry> {
    let controllers: Vec<Uuid> = st.controllers_of(plan.sub).iter().map(|c| c.id).collect();
    let mut out = Vec::new();
    for m in made {
        let mut lun = m.lun;
        lun.active_controllers = controllers.clone();
        let lu = inner.make_lu(&lun, m.filtered.clone(), st.lu_state(&lun), None);
        crate::engine::apply_hints(&lu, &m.hints);
        st.first_access_states(&lun, &lu);
        lun.identification = naa_hex(&lu);
        out.push(LunEntry {
            rec: LunRecord {
                lun,
                identity: m.identity,
                owns_file: m.owns_file,
            },
            seq: 0,
            lu,
            filtered: Some(m.filtered),
            hints: m.hints,
            raid: None,
        });
    }
    out
}

/// The targets as they will be, with their LUN numbers.
struct Final {
    targets: BTreeMap<Uuid, Target>,
    numbers: HashMap<Uuid, Vec<u64>>,
    /// Targets whose LUNs or LUN numbers change (REPORTED LUNS DATA HAS CHANGED).
    lun_set_changed: Vec<Uuid>,
}

/// A target's `(LUN, number)` pairs among `luns`, sorted.
fn numbered<'l>(luns: impl Iterator<Item = &'l Lun>, target: Uuid) -> Vec<(Uuid, u64)> {
    let mut v: Vec<(Uuid, u64)> = luns
        .filter_map(|l| {
            l.lun_numbers
                .iter()
                .find(|(x, _)| *x == target)
                .map(|(_, n)| (l.id, *n))
        })
        .collect();
    v.sort();
    v
}

fn final_targets(st: &State, plan: &Plan, new: &[LunEntry]) -> Final {
    let mut targets: BTreeMap<Uuid, Target> = plan
        .targets
        .iter()
        .map(|(id, (t, _))| (*id, t.clone()))
        .collect();
    let mut numbers: HashMap<Uuid, Vec<u64>> = HashMap::new();
    let all = || plan.luns.values().chain(new.iter().map(|e| &e.rec.lun));
    for l in all() {
        for (t, n) in &l.lun_numbers {
            if let Some(x) = targets.get_mut(t) {
                x.luns.push(l.id);
            }
            numbers.entry(*t).or_default().push(*n);
        }
    }
    let mut lun_set_changed = Vec::new();
    for (id, t) in targets.iter_mut() {
        t.luns.sort();
        let before = st.targets.get(id).map(|te| {
            numbered(
                te.t.luns
                    .iter()
                    .filter_map(|l| st.luns.get(l))
                    .map(|e| &e.rec.lun),
                *id,
            )
        });
        if before != Some(numbered(all(), *id)) {
            lun_set_changed.push(*id);
        }
        // Keep the order of an unchanged list (no spurious MODIFY).
        if let Some(te) = st.targets.get(id) {
            let mut old = te.t.luns.clone();
            old.sort();
            if old == t.luns {
                t.luns = te.t.luns.clone();
            }
        }
        t.chap_enabled = match &plan.targets[id].1 {
            Some(rows) => chap_required(rows),
            None => st.targets.get(id).is_some_and(|te| te.t.chap_enabled),
        };
    }
    Final {
        targets,
        numbers,
        lun_set_changed,
    }
}

/// The rows the commit writes: what is new or differs from the state.
#[derive(Clone)]
struct Rows {
    subsystem: Option<vds_model::Subsystem>,
    controllers: Vec<vds_model::Controller>,
    portals: Vec<Portal>,
    targets: Vec<Target>,
    /// `(target, rows now, rows to be)`.
    secrets: Vec<(Uuid, Vec<SecretRow>, Vec<SecretRow>)>,
    pgs: Vec<PortalGroup>,
    luns: Vec<LunRecord>,
    new_luns: Vec<LunRecord>,
    /// The hints of new LUNs that are not the defaults.
    new_hints: Vec<(Uuid, LunHints)>,
    gone_plexes: Vec<Uuid>,
}

fn rows_of(st: &State, plan: &Plan, fin: &Final, new: &[LunEntry]) -> Rows {
    // Controllers: their ports are their portals.
    let mut ports: HashMap<Uuid, u32> = HashMap::new();
    for p in plan.portals.values() {
        *ports.entry(p.controller).or_default() += 1;
    }
    let controllers = st
        .controllers
        .values()
        .filter(|c| c.subsystem == plan.sub)
        .filter_map(|c| {
            let n = ports.get(&c.id).copied().unwrap_or(0) as i32;
            (c.number_of_ports != n as _).then(|| vds_model::Controller {
                number_of_ports: n as _,
                ..c.clone()
            })
        })
        .collect();
    let secrets = plan
        .targets
        .iter()
        .filter_map(|(id, (_, rows))| {
            let rows = rows.as_ref()?;
            let old = st
                .targets
                .get(id)
                .map(|te| te.secrets.clone())
                .unwrap_or_default();
            (!same_secrets(rows, &old)).then(|| (*id, old, rows.clone()))
        })
        .collect();
    Rows {
        subsystem: plan.rename.as_ref().map(|n| vds_model::Subsystem {
            friendly_name: n.clone(),
            ..st.subsystems[&plan.sub].clone()
        }),
        controllers,
        portals: plan
            .portals
            .values()
            .filter(|p| {
                st.portals
                    .get(&p.id)
                    .is_none_or(|pe| !same_portal(&pe.p, p))
            })
            .cloned()
            .collect(),
        targets: fin
            .targets
            .values()
            .filter(|t| st.targets.get(&t.id).is_none_or(|te| te.t != **t))
            .cloned()
            .collect(),
        secrets,
        pgs: plan
            .pgs
            .values()
            .filter(|g| st.pgs.get(&g.id).is_none_or(|(o, _)| o != *g))
            .cloned()
            .collect(),
        luns: plan
            .luns
            .values()
            .filter_map(|l| {
                let e = st.luns.get(&l.id).filter(|e| e.rec.lun != *l)?;
                Some(LunRecord {
                    lun: l.clone(),
                    ..e.rec.clone()
                })
            })
            .collect(),
        new_luns: new.iter().map(|e| e.rec.clone()).collect(),
        new_hints: new
            .iter()
            .filter(|e| e.hints != LunHints::default())
            .map(|e| (e.rec.lun.id, e.hints))
            .collect(),
        gone_plexes: plan
            .gone_luns
            .iter()
            .filter_map(|id| st.luns.get(id))
            .flat_map(|e| e.rec.lun.plexes.iter().map(|p| p.id))
            .collect(),
    }
}

/// One event per object that goes, changes or comes, in the order of the writes.
fn events_of(st: &State, plan: &Plan, rows: &Rows) -> Vec<(ObjectKind, EventKind, Uuid)> {
    let mut events: Vec<(ObjectKind, EventKind, Uuid)> = Vec::new();
    for (kind, ids) in [
        (ObjectKind::Lun, &plan.gone_luns),
        (ObjectKind::PortalGroup, &plan.gone_pgs),
        (ObjectKind::Target, &plan.gone_targets),
        (ObjectKind::Portal, &plan.gone_portals),
    ] {
        events.extend(ids.iter().map(|i| (kind, EventKind::Depart, *i)));
    }
    let came_or_changed = |exists: bool| {
        if exists {
            EventKind::Modify
        } else {
            EventKind::Arrive
        }
    };
    if rows.subsystem.is_some() {
        events.push((ObjectKind::Subsystem, EventKind::Modify, plan.sub));
    }
    for c in &rows.controllers {
        events.push((ObjectKind::Controller, EventKind::Modify, c.id));
    }
    for p in &rows.portals {
        let e = came_or_changed(st.portals.contains_key(&p.id));
        events.push((ObjectKind::Portal, e, p.id));
    }
    let mut targets: Vec<Uuid> = rows.targets.iter().map(|t| t.id).collect();
    for (id, _, _) in &rows.secrets {
        if !targets.contains(id) {
            targets.push(*id);
        }
    }
    for t in targets {
        let e = came_or_changed(st.targets.contains_key(&t));
        events.push((ObjectKind::Target, e, t));
    }
    for g in &rows.pgs {
        let e = came_or_changed(st.pgs.contains_key(&g.id));
        events.push((ObjectKind::PortalGroup, e, g.id));
    }
    for r in &rows.luns {
        events.push((ObjectKind::Lun, EventKind::Modify, r.lun.id));
    }
    for r in &rows.new_luns {
        events.push((ObjectKind::Lun, EventKind::Arrive, r.lun.id));
    }
    events
}

/// The store half: deletes first (LUNs before the targets they name), then every new or
/// changed row (portals and targets before the groups and LUNs that name them).
fn write_rows(tx: &mut vds_store::Tx<'_>, plan: &Plan, rows: &Rows) -> Result<(), StoreError> {
    for id in &plan.gone_luns {
        tx.delete_lun(*id)?;
        tx.add_tombstone(*id, ObjectKind::Lun)?;
    }
    for p in &rows.gone_plexes {
        tx.add_tombstone(*p, ObjectKind::Lun)?;
    }
    for id in &plan.gone_pgs {
        tx.delete_portal_group(*id)?;
        tx.add_tombstone(*id, ObjectKind::PortalGroup)?;
    }
    for id in &plan.gone_targets {
        tx.delete_target(*id)?;
        tx.add_tombstone(*id, ObjectKind::Target)?;
    }
    for id in &plan.gone_portals {
        tx.delete_portal(*id)?;
        tx.add_tombstone(*id, ObjectKind::Portal)?;
    }
    if let Some(s) = &rows.subsystem {
        tx.put_subsystem(s)?;
    }
    for c in &rows.controllers {
        tx.put_controller(c)?;
    }
    for p in &rows.portals {
        tx.put_portal(&Inner::portal_row(p))?;
    }
    for t in &rows.targets {
        tx.put_target(t)?;
    }
    for (id, old, new) in &rows.secrets {
        for r in old {
            tx.set_secret(*id, r.kind, &r.initiator, None)?;
        }
        for r in new {
            tx.set_secret(*id, r.kind, &r.initiator, Some(&r.secret))?;
        }
    }
    for g in &rows.pgs {
        tx.put_portal_group(g)?;
    }
    for r in rows.luns.iter().chain(&rows.new_luns) {
        tx.put_lun(r)?;
    }
    for (id, h) in &rows.new_hints {
        tx.set_lun_hints(*id, h)?;
    }
    Ok(())
}

/// The state half, once the store holds the change.
fn install(st: &mut State, plan: &Plan, rows: Rows, mut fin: Final, new_entries: Vec<LunEntry>) {
    for id in &plan.gone_luns {
        st.luns.remove(id);
        st.tombstones.insert(*id, ObjectKind::Lun);
    }
    st.tombstones
        .extend(rows.gone_plexes.iter().map(|p| (*p, ObjectKind::Lun)));
    for id in &plan.gone_pgs {
        st.pgs.remove(id);
        st.tombstones.insert(*id, ObjectKind::PortalGroup);
    }
    for id in &plan.gone_targets {
        st.targets.remove(id);
        st.lunmaps.remove(id);
        st.tombstones.insert(*id, ObjectKind::Target);
    }
    for id in &plan.gone_portals {
        st.portals.remove(id);
        st.tombstones.insert(*id, ObjectKind::Portal);
    }
    if let Some(s) = rows.subsystem {
        st.subsystems.insert(s.id, s);
    }
    for c in rows.controllers {
        st.controllers.insert(c.id, c);
    }
    for p in plan.portals.values() {
        let online = p.status == PortalStatus::Online;
        if let Some(pe) = st.portals.get_mut(&p.id) {
            pe.p = p.clone();
            // A portal going OFFLINE is unbound right after the commit.
            pe.bound = pe.bound && online;
        } else {
            let seq = st.next_seq();
            let p = p.clone();
            st.portals.insert(
                p.id,
                PortalEntry {
                    p,
                    seq,
                    bound: online,
                },
            );
        }
    }
    for (id, t) in fin.targets {
        let old = st.targets.get(&id);
        let secrets = match &plan.targets[&id].1 {
            Some(rows) => rows.clone(),
            None => old.map(|te| te.secrets.clone()).unwrap_or_default(),
        };
        let seq = match old {
            Some(te) => te.seq,
            None => st.next_seq(),
        };
        let numbers = fin
            .numbers
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .collect();
        st.targets.insert(
            id,
            TargetEntry {
                t,
                seq,
                secrets,
                numbers,
                next_free: 0,
            },
        );
    }
    for g in plan.pgs.values() {
        let seq = match st.pgs.get(&g.id) {
            Some((_, s)) => *s,
            None => st.next_seq(),
        };
        st.pgs.insert(g.id, (g.clone(), seq));
    }
    for r in rows.luns {
        if let Some(e) = st.luns.get_mut(&r.lun.id) {
            e.rec = r;
        }
    }
    for mut e in new_entries {
        e.seq = st.next_seq();
        st.luns.insert(e.rec.lun.id, e);
    }
    st.reindex();
}

/// Whether a portal's stored properties are the same (its listener aside).
fn same_portal(a: &Portal, b: &Portal) -> bool {
    let mut x = a.portal_groups.clone();
    let mut y = b.portal_groups.clone();
    x.sort();
    y.sort();
    a.status == b.status && a.advertise == b.advertise && x == y && a.controller == b.controller
}

/// Whether CHAP is required with these secrets (as `TargetEntry::chap`).
fn chap_required(rows: &[SecretRow]) -> bool {
    let te = TargetEntry {
        t: Target {
            id: Uuid::nil(),
            subsystem: Uuid::nil(),
            iscsi_name: String::new(),
            friendly_name: String::new(),
            chap_enabled: false,
            portal_groups: Vec::new(),
            luns: Vec::new(),
        },
        seq: 0,
        secrets: rows.to_vec(),
        numbers: Default::default(),
        next_free: 0,
    };
    te.chap().required()
}
