//! `vdsctl import targetcli FILE`: a targetcli-fb `saveconfig.json` (the `dump()` of
//! rtslib-fb's `RTSRoot`: `storage_objects`, `targets` with `tpgs`, `luns`, `portals`,
//! `node_acls` with `mapped_luns`, `fabric_modules`) turned into a configuration document
//! (INTERFACE.md "Configuration documents"), which the daemon applies in one commit.
//!
//! Everything vds cannot express is listed with its place in the file (`targets[0].tpgs[1]
//! .node_acls[0].mapped_luns[0]`) and why; the caller refuses the import unless `--partial`.
//! Notes are mappings that hold with a difference worth knowing (a CHAP user name vds does not
//! check, the unit serial vds gives anew).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde_json::{json, Map, Value};

/// What the translation made of the file.
#[derive(Debug, Default)]
pub struct Translation {
    /// The configuration document (`vds-config/1`).
    pub doc: Value,
    /// `(place, why)`: not mapped; refuses the import without `--partial`.
    pub unmapped: Vec<(String, String)>,
    /// `(place, what)`: mapped with a difference.
    pub notes: Vec<(String, String)>,
}

/// The most entries of any list the translator walks (a hostile file is refused, not walked).
const MAX_ENTRIES: usize = 4096;

/// Storage-object attributes whose value changes what an initiator sees, with LIO's default:
/// any other value is something vds does not do. Tuning attributes (queue depths, transfer and
/// unmap limits) carry no meaning vds could honour or break and are not listed.
const SO_ATTRIBUTES: &[(&str, i64)] = &[
    ("block_size", 512),
    ("emulate_3pc", 1),
    ("emulate_caw", 1),
    ("emulate_pr", 1),
    ("emulate_tas", 1),
    ("emulate_ua_intlck_ctrl", 0),
    ("force_pr_aptpl", 0),
    ("pi_prot_type", 0),
    ("pgr_support", 1),
    ("alua_support", 1),
];

/// TPG attributes with the values vds behaves as (others are listed);
/// `demo_mode_write_protect` counts only in demo mode (`generate_node_acls` = 1), where any
/// initiator is let in, read-write in vds.
const TPG_ATTRIBUTES: &[(&str, i64)] = &[
    ("demo_mode_write_protect", 0),
    ("prod_mode_write_protect", 0),
    ("t10_pi", 0),
    ("fabric_prot_type", 0),
    ("tpg_enabled_sendtargets", 1),
];

/// A string key of `v`, or a note of its absence.
fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(|x| {
        x.as_i64()
            .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            .or_else(|| x.as_bool().map(i64::from))
    })
}

/// A list under `key` (absent: empty); a wrong type or a huge list is an error at `place`.
fn list<'a>(v: &'a Value, key: &str, place: &str) -> Result<&'a [Value], String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) if a.len() <= MAX_ENTRIES => Ok(a),
        Some(Value::Array(a)) => Err(format!(
            "{place}.{key}: {} entries; the limit is {MAX_ENTRIES}",
            a.len()
        )),
        Some(_) => Err(format!("{place}.{key}: not a list")),
    }
}

fn object<'a>(v: &'a Value, place: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{place}: not an object"))
}

/// One backstore that became a LUN.
struct Lun {
    name: String,
    kind: &'static str,
    path: String,
    size: Option<u64>,
    read_only: bool,
    /// target IQN → LUN number.
    numbers: BTreeMap<String, u64>,
    /// The unmasking list each target asks for (`None`: any initiator).
    masks: BTreeMap<String, Option<BTreeSet<String>>>,
    place: String,
}

/// Translates a parsed `saveconfig.json`. `Err` is a file that is not a saveconfig at all.
pub fn from_targetcli(root: &Value) -> Result<Translation, String> {
    object(root, "(top)")?;
    let mut t = Translation::default();
    for (i, f) in list(root, "fabric_modules", "(top)")?.iter().enumerate() {
        t.unmapped.push((
            format!("fabric_modules[{i}]"),
            format!(
                "discovery authentication of {} (vds has no discovery CHAP)",
                text(f, "name").unwrap_or("a fabric")
            ),
        ));
    }
    let mut luns: BTreeMap<String, Lun> = BTreeMap::new();
    for (i, so) in list(root, "storage_objects", "(top)")?.iter().enumerate() {
        let place = format!("storage_objects[{i}]");
        object(so, &place)?;
        if let Some(l) = backstore(so, &place, &mut t) {
            luns.insert(format!("/backstores/{}", l.0), l.1);
        }
    }
    let mut portals: BTreeSet<SocketAddr> = BTreeSet::new();
    let mut targets = Vec::new();
    for (i, tg) in list(root, "targets", "(top)")?.iter().enumerate() {
        let place = format!("targets[{i}]");
        object(tg, &place)?;
        if text(tg, "fabric") != Some("iscsi") {
            t.unmapped.push((
                place,
                format!(
                    "a {} target (vds serves iSCSI only)",
                    text(tg, "fabric").unwrap_or("non-iSCSI")
                ),
            ));
            continue;
        }
        let Some(iqn) = text(tg, "wwn") else {
            return Err(format!("{place}.wwn: missing or not a string"));
        };
        if let Some(doc) = target(tg, iqn, &place, &mut luns, &mut portals, &mut t)? {
            targets.push(doc);
        }
    }
    let mut lun_docs = Vec::new();
    for l in luns.values() {
        let mut masks = l.masks.values();
        let mask = match masks.next() {
            None => String::new(),
            Some(first) => {
                if masks.any(|m| m != first) {
                    t.unmapped.push((
                        l.place.clone(),
                        format!(
                            "{} is shown by several targets to different initiators (vds has one \
                             unmasking list per LUN)",
                            l.name
                        ),
                    ));
                }
                match first {
                    None => "*".into(),
                    Some(set) => set.iter().cloned().collect::<Vec<_>>().join(";"),
                }
            }
        };
        let mut backing = json!({"kind": l.kind, "path": l.path});
        if l.path.is_empty() {
            backing = json!({"kind": l.kind});
        }
        let mut doc = json!({
            "name": l.name,
            "backing": backing,
            "unmasking_list": mask,
            "read_only": l.read_only,
            "targets": l.numbers.iter().map(|(iqn, n)| json!({"iscsi_name": iqn, "lun": n})).collect::<Vec<_>>(),
        });
        if let Some(s) = l.size {
            doc["size_bytes"] = json!(s);
        }
        lun_docs.push(doc);
    }
    t.doc = json!({
        "format": "vds-config/1",
        "portals": portals.iter().map(|a| json!({"address": a.to_string(), "status": "online"})).collect::<Vec<_>>(),
        "targets": targets,
        "luns": lun_docs,
    });
    Ok(t)
}

/// A storage object: `(plugin/name, LUN)` for fileio and block, else listed.
fn backstore(so: &Value, place: &str, t: &mut Translation) -> Option<(String, Lun)> {
    let plugin = text(so, "plugin").unwrap_or("");
    let Some(name) = text(so, "name") else {
        t.unmapped
            .push((format!("{place}.name"), "missing or not a string".into()));
        return None;
    };
    let kind = match plugin {
        "fileio" => "file",
        "block" | "iblock" => "block",
        "ramdisk" | "rd_mcp" => {
            t.unmapped.push((
                place.into(),
                format!("ramdisk {name}: vds has no RAM-backed LUN that keeps the LIO semantics (a memory LUN is lost at exit)"),
            ));
            return None;
        }
        "pscsi" => {
            t.unmapped.push((
                place.into(),
                format!("pscsi {name}: SCSI pass-through is not something vds does"),
            ));
            return None;
        }
        "user" => {
            t.unmapped.push((
                place.into(),
                format!("user-backed (TCMU) {name}: vds has no user-space handlers"),
            ));
            return None;
        }
        other => {
            t.unmapped.push((
                format!("{place}.plugin"),
                format!("{other:?} is not a backstore vds knows"),
            ));
            return None;
        }
    };
    let Some(dev) = text(so, "dev") else {
        t.unmapped
            .push((format!("{place}.dev"), "missing or not a string".into()));
        return None;
    };
    let size = match (kind, so.get("size")) {
        ("file", Some(v)) => match v.as_u64() {
            Some(s) => Some(s),
            None => {
                t.unmapped
                    .push((format!("{place}.size"), "not a size in bytes".into()));
                return None;
            }
        },
        _ => None,
    };
    let attrs = so.get("attributes").cloned().unwrap_or(Value::Null);
    for (key, default) in SO_ATTRIBUTES {
        if let Some(v) = int(&attrs, key).filter(|v| v != default) {
            t.unmapped.push((
                format!("{place}.attributes.{key}"),
                format!("{v}; vds behaves as {default}"),
            ));
        }
    }
    for (j, g) in so
        .get("alua_tpgs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if text(g, "name") != Some("default_tg_pt_gp") {
            t.unmapped.push((
                format!("{place}.alua_tpgs[{j}]"),
                "an ALUA target port group of its own (vds's are its controllers)".into(),
            ));
        }
    }
    if text(so, "wwn").is_some() {
        t.notes.push((
            format!("{place}.wwn"),
            format!(
                "{name} gets a unit serial number from vds; initiators see a new device identity"
            ),
        ));
    }
    Some((
        format!("{plugin}/{name}"),
        Lun {
            name: name.into(),
            kind,
            path: dev.into(),
            size,
            read_only: so.get("readonly").and_then(Value::as_bool).unwrap_or(false),
            numbers: BTreeMap::new(),
            masks: BTreeMap::new(),
            place: place.into(),
        },
    ))
}

/// `[addr]` or `addr` with a port.
fn portal_addr(p: &Value, place: &str) -> Result<SocketAddr, String> {
    let ip = text(p, "ip_address").ok_or_else(|| format!("{place}.ip_address: missing"))?;
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{place}.ip_address: {ip:?} is not an IP address"))?;
    let port = int(p, "port").unwrap_or(3260);
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{place}.port: {port} is not a TCP port"))?;
    Ok(SocketAddr::new(ip, port))
}

/// One iSCSI target: its document, the LUN numbers and masks it gives the backstores.
fn target(
    tg: &Value,
    iqn: &str,
    place: &str,
    luns: &mut BTreeMap<String, Lun>,
    portals: &mut BTreeSet<SocketAddr>,
    t: &mut Translation,
) -> Result<Option<Value>, String> {
    let mut pgs = Vec::new();
    let mut chap = json!({"initiators": [], "mutual": []});
    let mut chap_set = false;
    // backstore path → (LUN number, mask) as the first TPG gives it.
    let mut seen: BTreeMap<String, (u64, Option<BTreeSet<String>>)> = BTreeMap::new();
    for (j, tpg) in list(tg, "tpgs", place)?.iter().enumerate() {
        let tp = format!("{place}.tpgs[{j}]");
        object(tpg, &tp)?;
        let tag = int(tpg, "tag")
            .and_then(|x| u16::try_from(x).ok())
            .filter(|x| *x != 0)
            .ok_or_else(|| format!("{tp}.tag: missing or not 1 to 65535"))?;
        if tpg
            .get("enable")
            .is_some_and(|e| e == &json!(false) || e == &json!(0))
        {
            t.unmapped.push((
                format!("{tp}.enable"),
                "a disabled TPG (vds serves every portal group of a target)".into(),
            ));
        }
        let attrs = tpg.get("attributes").cloned().unwrap_or(Value::Null);
        let demo = int(&attrs, "generate_node_acls").unwrap_or(0) == 1;
        for (key, want) in TPG_ATTRIBUTES {
            if let Some(v) = int(&attrs, key) {
                if v != *want && (demo || *key != "demo_mode_write_protect") {
                    t.unmapped.push((
                        format!("{tp}.attributes.{key}"),
                        format!("{v}; vds behaves as {want}"),
                    ));
                }
            }
        }
        let mut addrs = Vec::new();
        for (k, p) in list(tpg, "portals", &tp)?.iter().enumerate() {
            let pp = format!("{tp}.portals[{k}]");
            let a = portal_addr(p, &pp)?;
            for key in ["iser", "offload"] {
                if p.get(key).and_then(Value::as_bool) == Some(true) {
                    t.unmapped.push((
                        format!("{pp}.{key}"),
                        format!("{key}: vds serves iSCSI over TCP only"),
                    ));
                }
            }
            portals.insert(a);
            addrs.push(a.to_string());
        }
        pgs.push(json!({"tag": tag, "portals": addrs}));
        // TPG-level CHAP (demo mode): the target-wide secret.
        let count = |c: &Value| c["initiators"].as_array().map_or(0, Vec::len);
        let acl_secrets_before = count(&chap);
        let mut tpg_secret = false;
        if let Some(pw) = text(tpg, "chap_password") {
            if secret_ok(pw, &format!("{tp}.chap_password"), t) {
                tpg_secret = true;
                chap["shared"] = json!(pw);
                chap_set = true;
                if text(tpg, "chap_userid").is_some() {
                    t.notes.push((
                        format!("{tp}.chap_userid"),
                        "vds accepts the target-wide secret under any CHAP_N".into(),
                    ));
                }
            }
        }
        if text(tpg, "chap_mutual_password").is_some() {
            t.unmapped.push((
                format!("{tp}.chap_mutual_password"),
                "a mutual secret for every initiator (vds keeps mutual secrets per initiator)"
                    .into(),
            ));
        }
        // ACLs: who may see each TPG LUN.
        let mut acl_masks: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
        for (k, acl) in list(tpg, "node_acls", &tp)?.iter().enumerate() {
            let ap = format!("{tp}.node_acls[{k}]");
            object(acl, &ap)?;
            let who = text(acl, "node_wwn").ok_or_else(|| format!("{ap}.node_wwn: missing"))?;
            for (m, ml) in list(acl, "mapped_luns", &ap)?.iter().enumerate() {
                let mp = format!("{ap}.mapped_luns[{m}]");
                let (Some(index), Some(tpg_lun)) = (int(ml, "index"), int(ml, "tpg_lun")) else {
                    return Err(format!("{mp}: index or tpg_lun missing"));
                };
                if index != tpg_lun {
                    t.unmapped.push((
                        mp.clone(),
                        format!("{who} sees TPG LUN {tpg_lun} as LUN {index}; vds gives a LUN one number per target"),
                    ));
                }
                if ml.get("write_protect").and_then(Value::as_bool) == Some(true) {
                    t.unmapped.push((
                        format!("{mp}.write_protect"),
                        format!("read-only for {who} alone (vds's read-only is per LUN)"),
                    ));
                }
                acl_masks
                    .entry(tpg_lun as u64)
                    .or_default()
                    .insert(who.to_string());
            }
            acl_chap(acl, who, &ap, &mut chap, &mut chap_set, t);
        }
        // vds asks for CHAP exactly when the target has a secret (BEHAVIOUR.md §10).
        let secret = tpg_secret || count(&chap) > acl_secrets_before;
        match (int(&attrs, "authentication"), secret) {
            (Some(0), true) => t.unmapped.push((
                format!("{tp}.attributes.authentication"),
                "0: LIO lets initiators in without CHAP here, vds asks for CHAP whenever the \
                 target has a secret"
                    .into(),
            )),
            (Some(1), false) => t.unmapped.push((
                format!("{tp}.attributes.authentication"),
                "1 without a secret vds can take: LIO asks for CHAP here, vds would not".into(),
            )),
            _ => {}
        }
        for (k, l) in list(tpg, "luns", &tp)?.iter().enumerate() {
            let lp = format!("{tp}.luns[{k}]");
            let so =
                text(l, "storage_object").ok_or_else(|| format!("{lp}.storage_object: missing"))?;
            let index = int(l, "index").ok_or_else(|| format!("{lp}.index: missing"))? as u64;
            if let Some(g) = text(l, "alua_tg_pt_gp_name").filter(|g| *g != "default_tg_pt_gp") {
                t.unmapped.push((
                    format!("{lp}.alua_tg_pt_gp_name"),
                    format!("ALUA group {g:?} (vds's are its controllers)"),
                ));
            }
            let key = so.to_string();
            let Some(lun) = luns.get_mut(&key) else {
                t.unmapped.push((
                    format!("{lp}.storage_object"),
                    format!("{so} is not a backstore that was mapped"),
                ));
                continue;
            };
            let mask = if demo {
                None
            } else {
                Some(acl_masks.get(&index).cloned().unwrap_or_default())
            };
            match seen.get(&key) {
                Some((n, m)) if *n != index || *m != mask => t.unmapped.push((
                    lp.clone(),
                    format!("{so} differs between the TPGs of {iqn} (number or ACLs); vds's LUNs are per target"),
                )),
                Some(_) => {}
                None => {
                    seen.insert(key.clone(), (index, mask.clone()));
                    lun.numbers.insert(iqn.to_string(), index);
                    lun.masks.insert(iqn.to_string(), mask);
                }
            }
        }
    }
    let mut doc = json!({
        "iscsi_name": iqn,
        "friendly_name": iqn.rsplit(':').next().unwrap_or(iqn),
        "portal_groups": pgs,
    });
    if chap_set {
        doc["chap"] = chap;
    }
    Ok(Some(doc))
}

/// A per-ACL CHAP secret (and mutual secret) of initiator `who`.
fn acl_chap(
    acl: &Value,
    who: &str,
    ap: &str,
    chap: &mut Value,
    chap_set: &mut bool,
    t: &mut Translation,
) {
    if let Some(pw) = text(acl, "chap_password") {
        let user = text(acl, "chap_userid").unwrap_or(who);
        if !user.eq_ignore_ascii_case(who) {
            t.unmapped.push((
                format!("{ap}.chap_userid"),
                format!("{user:?}: vds takes an initiator's secret only under CHAP_N = its name ({who})"),
            ));
        } else if secret_ok(pw, &format!("{ap}.chap_password"), t) {
            push(chap, "initiators", who, pw);
            *chap_set = true;
        }
    }
    if let Some(pw) = text(acl, "chap_mutual_password") {
        if secret_ok(pw, &format!("{ap}.chap_mutual_password"), t) {
            push(chap, "mutual", who, pw);
            *chap_set = true;
            if text(acl, "chap_mutual_userid").is_some() {
                t.notes.push((
                    format!("{ap}.chap_mutual_userid"),
                    "vds answers with the target's IQN as CHAP_N".into(),
                ));
            }
        }
    }
}

fn push(chap: &mut Value, key: &str, who: &str, secret: &str) {
    if let Some(a) = chap[key].as_array_mut() {
        a.push(json!({"initiator": who, "secret": secret}));
    }
}

/// vds's secrets are 12 to 16 bytes (BEHAVIOUR.md §10).
fn secret_ok(pw: &str, place: &str, t: &mut Translation) -> bool {
    if (12..=16).contains(&pw.len()) {
        return true;
    }
    t.unmapped.push((
        place.into(),
        format!("a {}-byte secret; vds's are 12 to 16 bytes", pw.len()),
    ));
    false
}

/// Adds the imported document's objects to `current` (an export): portals not there yet, and
/// targets and LUNs, which must be new (an IQN or LUN name vds already has is refused: an
/// import never changes what is there).
pub fn merge(current: &mut Value, imported: Value) -> Result<(), String> {
    let names = |v: &Value, list: &str, key: &str| -> BTreeSet<String> {
        v[list]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x[key].as_str().map(str::to_ascii_lowercase))
                    .collect()
            })
            .unwrap_or_default()
    };
    let have_portals = names(current, "portals", "address");
    let have_targets = names(current, "targets", "iscsi_name");
    let have_luns = names(current, "luns", "name");
    for (list, key, have, what) in [
        ("portals", "address", &have_portals, ""),
        ("targets", "iscsi_name", &have_targets, "target"),
        ("luns", "name", &have_luns, "LUN"),
    ] {
        for x in imported[list].as_array().cloned().unwrap_or_default() {
            let name = x[key].as_str().unwrap_or_default().to_ascii_lowercase();
            if have.contains(&name) {
                if what.is_empty() {
                    continue;
                }
                return Err(format!(
                    "vds already has a {what} {name:?}; an import only adds (delete or rename it first)"
                ));
            }
            if let Some(a) = current[list].as_array_mut() {
                a.push(x);
            } else {
                current[list] = Value::Array(vec![x]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(acl_index: u64, demo: i64) -> Value {
        json!({
            "storage_objects": [
                {"plugin": "fileio", "name": "d1", "dev": "/srv/d1.img", "size": 1048576},
                {"plugin": "block", "name": "b1", "dev": "/dev/sdz", "readonly": true}
            ],
            "targets": [{"fabric": "iscsi", "wwn": "iqn.2003-01.org.x:t1", "tpgs": [{
                "tag": 1, "enable": true,
                "attributes": {"generate_node_acls": demo},
                "portals": [{"ip_address": "[::1]", "port": 3261}],
                "luns": [
                    {"index": 0, "storage_object": "/backstores/fileio/d1"},
                    {"index": 1, "storage_object": "/backstores/block/b1"}
                ],
                "node_acls": [{"node_wwn": "iqn.1994-05.com.x:h1",
                    "mapped_luns": [{"index": acl_index, "tpg_lun": 0, "write_protect": false}]}]
            }]}]
        })
    }

    #[test]
    fn acls_become_masks_and_numbers_stay() {
        let t = from_targetcli(&small(0, 0)).unwrap();
        assert!(t.unmapped.is_empty(), "{:?}", t.unmapped);
        let luns = t.doc["luns"].as_array().unwrap();
        let d1 = luns.iter().find(|l| l["name"] == "d1").unwrap();
        assert_eq!(d1["unmasking_list"], "iqn.1994-05.com.x:h1");
        assert_eq!(d1["size_bytes"], 1048576);
        assert_eq!(
            d1["targets"],
            json!([{"iscsi_name": "iqn.2003-01.org.x:t1", "lun": 0}])
        );
        let b1 = luns.iter().find(|l| l["name"] == "b1").unwrap();
        // No ACL maps TPG LUN 1: nobody sees it; a block LUN takes the device's size.
        assert_eq!(b1["unmasking_list"], "");
        assert_eq!(b1["read_only"], true);
        assert!(b1.get("size_bytes").is_none());
        assert_eq!(
            t.doc["portals"],
            json!([{"address": "[::1]:3261", "status": "online"}])
        );
    }

    #[test]
    fn chap_asked_for_exactly_as_lio_asks() {
        let mut v = small(0, 0);
        v["targets"][0]["tpgs"][0]["attributes"]["authentication"] = json!(0);
        v["targets"][0]["tpgs"][0]["node_acls"][0]["chap_password"] = json!("client1secret");
        let t = from_targetcli(&v).unwrap();
        assert_eq!(
            t.unmapped[0].0, "targets[0].tpgs[0].attributes.authentication",
            "{:?}",
            t.unmapped
        );
        v["targets"][0]["tpgs"][0]["attributes"]["authentication"] = json!(1);
        assert!(from_targetcli(&v).unwrap().unmapped.is_empty());
    }

    #[test]
    fn demo_mode_is_everyone() {
        let t = from_targetcli(&small(0, 1)).unwrap();
        for l in t.doc["luns"].as_array().unwrap() {
            assert_eq!(l["unmasking_list"], "*");
        }
    }

    #[test]
    fn a_renumbered_mapped_lun_is_listed_by_place() {
        let t = from_targetcli(&small(7, 0)).unwrap();
        assert_eq!(t.unmapped.len(), 1, "{:?}", t.unmapped);
        assert_eq!(
            t.unmapped[0].0,
            "targets[0].tpgs[0].node_acls[0].mapped_luns[0]"
        );
        assert!(t.unmapped[0].1.contains("as LUN 7"), "{}", t.unmapped[0].1);
    }

    #[test]
    fn wrong_shapes_are_errors_with_their_place() {
        for (v, want) in [
            (json!("x"), "(top): not an object"),
            (json!({"targets": 3}), "(top).targets: not a list"),
            (
                json!({"targets": [{"fabric": "iscsi", "wwn": "iqn.2003-01.org.x:t", "tpgs": [{"tag": 1, "portals": [{"ip_address": "nowhere"}]}]}]}),
                "targets[0].tpgs[0].portals[0].ip_address",
            ),
        ] {
            let e = from_targetcli(&v).unwrap_err();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }

    #[test]
    fn merge_adds_and_refuses_what_exists() {
        let mut cur = json!({"format": "vds-config/1", "portals": [{"address": "127.0.0.1:3260"}],
            "targets": [{"iscsi_name": "iqn.2003-01.org.x:t1"}], "luns": [{"name": "lun0"}]});
        let new = json!({"portals": [{"address": "127.0.0.1:3260"}, {"address": "127.0.0.2:3260"}],
            "targets": [{"iscsi_name": "iqn.2003-01.org.x:t2"}], "luns": [{"name": "d1"}]});
        merge(&mut cur, new).unwrap();
        assert_eq!(cur["portals"].as_array().unwrap().len(), 2);
        assert_eq!(cur["targets"].as_array().unwrap().len(), 2);
        let clash = json!({"luns": [{"name": "LUN0"}]});
        assert!(merge(&mut cur, clash).unwrap_err().contains("LUN"));
    }
}
