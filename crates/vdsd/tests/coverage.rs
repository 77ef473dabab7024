//! `docs/VDS_COVERAGE.md` stays true: every endpoint it names is in the OpenAPI document, every
//! operation of the OpenAPI document is named in it, every `vdsctl` verb it names exists, every
//! method that is not implemented says why, and its counts are the counts of its tables.
//! The checks of the parser have planted violations of their own at the end.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const STATUSES: [&str; 5] = [
    "implemented",
    "partial",
    "planned",
    "not supported",
    "not applicable",
];

/// One method row: interface section, method, status, endpoint cell, vdsctl cell, note.
#[derive(Debug)]
struct Row {
    section: String,
    method: String,
    status: String,
    endpoint: String,
    verb: String,
    note: String,
}

/// What the document says.
#[derive(Debug, Default)]
struct Coverage {
    rows: Vec<Row>,
    /// Every `METHOD /path` in backticks, anywhere in a table.
    endpoints: BTreeSet<(String, String)>,
    /// Every vdsctl cell, of method rows and of the extensions.
    verbs: Vec<String>,
    /// The counts line, as status → number (and "methods" → total).
    counts: BTreeMap<String, usize>,
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// Every backticked `METHOD /path` of a text.
fn endpoints_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        if let Some((m, p)) = part.split_once(' ') {
            if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m) && p.starts_with('/') {
                out.push((m.to_lowercase(), p.to_string()));
            }
        }
    }
    out
}

fn parse(doc: &str) -> Result<Coverage, String> {
    let mut c = Coverage::default();
    let mut section = String::new();
    for (n, line) in doc.lines().enumerate() {
        let n = n + 1;
        if let Some(h) = line.strip_prefix("### ") {
            section = h.to_string();
            continue;
        }
        if let Some(rest) = line.strip_prefix("Counts: ") {
            for part in rest.trim_end_matches('.').split([':', ',']) {
                let part = part.trim();
                let (num, what) = part
                    .split_once(' ')
                    .ok_or_else(|| format!("line {n}: count {part:?}"))?;
                let num: usize = num
                    .parse()
                    .map_err(|e| format!("line {n}: count {part:?}: {e}"))?;
                c.counts.insert(what.to_string(), num);
            }
            continue;
        }
        if !line.starts_with('|') || line.starts_with("| ---") || line.starts_with("| method ") {
            continue;
        }
        if line.starts_with("| endpoint ") {
            continue;
        }
        let cs = cells(line);
        c.endpoints.extend(endpoints_in(line));
        match cs.len() {
            5 => {
                if !STATUSES.contains(&cs[1].as_str()) {
                    return Err(format!("line {n}: unknown status {:?}", cs[1]));
                }
                c.verbs.push(cs[3].clone());
                c.rows.push(Row {
                    section: section.clone(),
                    method: cs[0].clone(),
                    status: cs[1].clone(),
                    endpoint: cs[2].clone(),
                    verb: cs[3].clone(),
                    note: cs[4].clone(),
                });
            }
            // The extensions: endpoint, vdsctl, what.
            3 => {
                if endpoints_in(&cs[0]).len() != 1 {
                    return Err(format!("line {n}: an extension names one endpoint"));
                }
                c.verbs.push(cs[1].clone());
            }
            k => return Err(format!("line {n}: a table row of {k} cells")),
        }
    }
    Ok(c)
}

/// What is wrong with the rows themselves (endpoints, reasons, counts).
fn check_rows(c: &Coverage) -> Vec<String> {
    let mut bad = Vec::new();
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for r in &c.rows {
        *counted.entry(r.status.clone()).or_default() += 1;
        if !seen.insert((r.section.clone(), r.method.clone())) {
            bad.push(format!("{} {} is listed twice", r.section, r.method));
        }
        let has_endpoint = !endpoints_in(&r.endpoint).is_empty();
        match r.status.as_str() {
            "implemented" | "partial" if !has_endpoint => bad.push(format!(
                "{} {}: {} without an endpoint",
                r.section, r.method, r.status
            )),
            "partial" | "planned" | "not supported" | "not applicable" if r.note.is_empty() => bad
                .push(format!(
                    "{} {}: {} without a reason",
                    r.section, r.method, r.status
                )),
            "planned" | "not applicable" if has_endpoint || !r.verb.is_empty() => {
                bad.push(format!(
                    "{} {}: {} but names an endpoint or verb",
                    r.section, r.method, r.status
                ))
            }
            _ => {}
        }
    }
    counted.insert("methods".into(), c.rows.len());
    if counted != c.counts {
        bad.push(format!(
            "the counts line says {:?}, the tables have {counted:?}",
            c.counts
        ));
    }
    bad
}

/// The operations of the OpenAPI document.
fn openapi_operations() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(&vds_api::openapi::document()).unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.insert((method.clone(), path.clone()));
            }
        }
    }
    ops
}

/// The words of a vdsctl cell that name the command: up to the first placeholder (upper
/// case) or option; and the options it uses.
fn verb_words(cell: &str) -> (Vec<String>, Vec<String>) {
    let cell = cell.trim_matches('`');
    let mut words = Vec::new();
    let mut options = Vec::new();
    let mut in_words = true;
    for w in cell.split_whitespace() {
        if w.starts_with("--") {
            options.push(w.to_string());
            in_words = false;
        } else if in_words && w.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-') {
            words.push(w.to_string());
        } else {
            in_words = false;
        }
    }
    (words, options)
}

fn doc_text() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/VDS_COVERAGE.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_coverage_table_is_complete_counted_and_reasoned() {
    let c = parse(&doc_text()).unwrap();
    assert!(c.rows.len() > 100, "only {} methods parsed", c.rows.len());
    let bad = check_rows(&c);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_endpoint_of_the_table_is_in_the_openapi_document_and_back() {
    let c = parse(&doc_text()).unwrap();
    let ops = openapi_operations();
    let missing: Vec<_> = c.endpoints.difference(&ops).collect();
    assert!(
        missing.is_empty(),
        "named in VDS_COVERAGE.md, not in OpenAPI: {missing:?}"
    );
    let unlisted: Vec<_> = ops.difference(&c.endpoints).collect();
    assert!(
        unlisted.is_empty(),
        "in OpenAPI, not in VDS_COVERAGE.md: {unlisted:?}"
    );
}

#[test]
fn every_vdsctl_verb_of_the_table_exists() {
    let c = parse(&doc_text()).unwrap();
    let vdsctl = common::vdsctl_path();
    let mut checked = BTreeSet::new();
    for cell in &c.verbs {
        if cell.is_empty() {
            continue;
        }
        let (words, options) = verb_words(cell);
        assert!(!words.is_empty(), "{cell:?} names no command");
        if !checked.insert((words.clone(), options.clone())) {
            continue;
        }
        let out = Command::new(&vdsctl)
            .args(&words)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "vdsctl {} --help: {}{}",
            words.join(" "),
            help,
            String::from_utf8_lossy(&out.stderr)
        );
        for o in &options {
            assert!(
                help.contains(o.as_str()),
                "vdsctl {} has no {o}:\n{help}",
                words.join(" ")
            );
        }
    }
    assert!(checked.len() > 50, "only {} verbs checked", checked.len());
}

/// The checks above catch what they are for.
#[test]
fn planted_violations_are_caught() {
    let good = "Counts: 2 methods: 1 implemented, 1 planned.\n\
                ### IX\n\
                | method | status | endpoint | vdsctl | note |\n\
                | --- | --- | --- | --- | --- |\n\
                | A | implemented | `GET /v1/provider` | `provider show` | |\n\
                | B | planned | | | issue 14 |\n";
    let c = parse(good).unwrap();
    assert!(check_rows(&c).is_empty(), "{:?}", check_rows(&c));
    assert_eq!(
        c.endpoints,
        BTreeSet::from([("get".to_string(), "/v1/provider".to_string())])
    );
    assert_eq!(
        verb_words("`lun hints --set K=V`"),
        (
            vec!["lun".to_string(), "hints".to_string()],
            vec!["--set".to_string()]
        )
    );
    for (from, to, why) in [
        ("1 implemented, 1 planned", "2 implemented", "counts"),
        ("| issue 14 |", "| |", "without a reason"),
        (
            "`GET /v1/provider` | `provider",
            " | `provider",
            "without an endpoint",
        ),
        (
            "| B | planned | |",
            "| B | planned | `GET /v1/x` |",
            "names an endpoint",
        ),
        ("| B |", "| A |", "listed twice"),
    ] {
        let planted = good.replace(from, to);
        assert_ne!(planted, good, "{why}");
        let bad = check_rows(&parse(&planted).unwrap());
        assert!(
            bad.iter()
                .any(|b| b.contains(why) || why == "counts" && b.contains("counts")),
            "{why}: {bad:?}"
        );
    }
    assert!(parse(&good.replace("| planned |", "| maybe |")).is_err());
    assert!(parse(&good.replace("| issue 14 |", "| issue 14 | x |")).is_err());
}
