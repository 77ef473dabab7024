//! Tidy checks that hold the invariants of ARCHITECTURE.md, run inside `cargo test`:
//!
//! 1. the dependency graph as `cargo metadata` resolves it (transitive, features unified): which
//!    workspace crate may reach which, and where runtimes, sockets, SQLite and serde may appear;
//! 2. the sans-IO crates (`vds-model`, `vds-iscsi`, `vds-scsi`) name no files, sockets, clock,
//!    sleep, statics, thread-locals or libc calls, checked on tokens of their production code;
//! 3. every `.rs` file of the repository starts with a `//!` header;
//! 4. every `unsafe` block, fn, impl or trait carries a `SAFETY:` comment (or `# Safety` doc).
//!
//! Each check is a function over a metadata JSON value or over (path, source text), so the
//! `planted_*` tests below feed it a violation and see it reported. Known violations that other
//! work is removing are listed in a `PENDING` table, each by file or edge; an entry that no
//! longer matches anything fails the test too, so the table only shrinks.
//!
//! The tokenizer and the module-tree walk the source checks stand on live in `tidy/mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod tidy;

use tidy::{
    is, lex, mod_decls, production_sources, rs_files, skip_group, strip_cfg_test, Kind, Lexed, Tok,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/vdsd sits two levels below the workspace root")
        .to_path_buf()
}

/// A path relative to the workspace root, with `/` separators, for messages and `PENDING`.
fn rel(p: &Path) -> String {
    p.strip_prefix(workspace())
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

// ---------------------------------------------------------------------------------------------
// 1. The dependency graph
// ---------------------------------------------------------------------------------------------

/// The workspace crates each workspace crate may reach through normal and build dependencies,
/// directly or not (the picture in ARCHITECTURE.md). A workspace crate missing here fails the
/// check: a new crate states its place in the picture. `vds-dataplane` is the seam between the
/// management engine and the data path, which both depend on.
const MAY_REACH: &[(&str, &[&str])] = &[
    ("vds-model", &[]),
    ("vds-rbd-sys", &[]),
    ("vds-backstore", &["vds-rbd-sys"]),
    ("vds-scsi", &["vds-model", "vds-backstore", "vds-rbd-sys"]),
    ("vds-iscsi", &["vds-model"]),
    ("vds-store", &["vds-model"]),
    (
        "vds-dataplane",
        &["vds-model", "vds-scsi", "vds-backstore", "vds-rbd-sys"],
    ),
    (
        "vds-provider",
        &[
            "vds-model",
            "vds-store",
            "vds-backstore",
            "vds-rbd-sys",
            "vds-scsi",
            "vds-dataplane",
        ],
    ),
    (
        "vds-target",
        &[
            "vds-model",
            "vds-iscsi",
            "vds-scsi",
            "vds-backstore",
            "vds-rbd-sys",
            "vds-dataplane",
        ],
    ),
    (
        "vds-api",
        &[
            "vds-model",
            "vds-provider",
            "vds-store",
            "vds-backstore",
            "vds-rbd-sys",
            "vds-scsi",
            "vds-dataplane",
        ],
    ),
    ("vds-testkit", &["vds-model", "vds-iscsi"]),
    ("vdsctl", &["vds-model"]),
    (
        "vdsd",
        &[
            "vds-model",
            "vds-store",
            "vds-provider",
            "vds-api",
            "vds-target",
            "vds-backstore",
            "vds-rbd-sys",
            "vds-scsi",
            "vds-iscsi",
            "vds-dataplane",
        ],
    ),
    ("vds-bench", &[]),
];

/// Third-party crates that only some workspace crates may reach (transitively): the async
/// runtime and sockets stay out of the sans-IO crates, SQLite stays behind `vds-store` and out of
/// the data path, HTTP stays in the API, and serde (`serde` is the package that carries the
/// `derive` feature as resolved; `serde_core` alone is a data-model trait that `uuid` implements)
/// stays at the edge.
const RESTRICTED: &[(&str, &[&str])] = &[
    (
        "tokio",
        &["vds-provider", "vds-target", "vds-api", "vdsd", "vds-bench"],
    ),
    (
        "mio",
        &["vds-provider", "vds-target", "vds-api", "vdsd", "vds-bench"],
    ),
    (
        "socket2",
        &["vds-provider", "vds-target", "vds-api", "vdsd", "vds-bench"],
    ),
    (
        "rusqlite",
        &["vds-store", "vds-provider", "vds-api", "vdsd"],
    ),
    (
        "libsqlite3-sys",
        &["vds-store", "vds-provider", "vds-api", "vdsd"],
    ),
    ("axum", &["vds-api", "vdsd"]),
    ("hyper", &["vds-api", "vdsd"]),
    ("tower", &["vds-api", "vdsd"]),
    ("ureq", &["vdsctl", "vds-bench"]),
    ("serde", EDGE),
    ("serde_derive", EDGE),
    ("serde_json", EDGE),
];

/// The crates at the edge, where wire serde lives.
const EDGE: &[&str] = &["vds-api", "vdsctl", "vdsd", "vds-bench"];

/// Third-party crates that only the listed workspace crates may name as a direct (normal or
/// build) dependency: persistence goes through `vds-store`, and JSON is written by the API, the
/// CLI and the benchmark only (the daemon reaches serde through `vds-api` without naming it).
const DIRECT_ONLY: &[(&str, &[&str])] = &[
    ("rusqlite", &["vds-store"]),
    ("serde", &["vds-api", "vdsctl", "vds-bench"]),
    ("serde_json", &["vds-api", "vdsctl", "vds-bench"]),
    ("serde_derive", &["vds-api", "vdsctl", "vds-bench"]),
];

/// Edges (`from`, `reached`) that break the rules today and are being removed by work in
/// flight; the entry goes when that work merges. Empty since the data-plane seam moved into
/// `vds-dataplane` (issue 11).
const PENDING_EDGES: &[(&str, &str)] = &[];

/// One broken rule of the graph: `from` reaches (or names) `reached`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    reached: String,
    why: String,
}

/// Runs `cargo metadata` on the workspace for the host platform (so target-specific
/// dependencies of other platforms, and `cfg(any())` ones, do not count).
fn metadata() -> Value {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let vv = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let vv = String::from_utf8_lossy(&vv.stdout).to_string();
    let host = vv
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string();
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &host,
        ])
        .arg("--manifest-path")
        .arg(workspace().join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Package id → name, for every package of the metadata.
fn package_names(meta: &Value) -> BTreeMap<String, String> {
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Package id → ids of its normal and build dependencies, from `resolve` (features unified).
fn resolved_edges(meta: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for n in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
        let deps = n["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null() || k["kind"].as_str() == Some("build"))
            })
            .map(|d| d["pkg"].as_str().unwrap().to_string())
            .collect();
        out.insert(n["id"].as_str().unwrap().to_string(), deps);
    }
    out
}

/// Names of every package `id` reaches through normal and build dependencies.
fn reach(
    id: &str,
    edges: &BTreeMap<String, Vec<String>>,
    names: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![id.to_string()];
    while let Some(x) = stack.pop() {
        for d in edges.get(&x).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen.iter().map(|i| names[i].clone()).collect()
}

/// Every rule of the graph that `meta` (the output of `cargo metadata`) breaks.
fn graph_violations(meta: &Value) -> Vec<Edge> {
    let names = package_names(meta);
    let edges = resolved_edges(meta);
    let allowed: BTreeMap<&str, &[&str]> = MAY_REACH.iter().copied().collect();
    let members: BTreeSet<String> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .map(|m| names[m.as_str().unwrap()].clone())
        .collect();
    let mut out = Vec::new();
    let mut bad = |from: &str, reached: &str, why: &str| {
        out.push(Edge {
            from: from.into(),
            reached: reached.into(),
            why: why.into(),
        })
    };
    for id in meta["workspace_members"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        let from = names[id].as_str();
        let Some(may) = allowed.get(from) else {
            bad(
                from,
                "-",
                "is not in MAY_REACH: state which workspace crates it may reach",
            );
            continue;
        };
        for r in reach(id, &edges, &names) {
            if members.contains(&r) && !may.contains(&r.as_str()) {
                bad(
                    from,
                    &r,
                    "reaches a workspace crate outside its MAY_REACH row",
                );
            }
            if let Some((_, who)) = RESTRICTED.iter().find(|(c, _)| *c == r) {
                if !who.contains(&from) {
                    bad(from, &r, "reaches a crate RESTRICTED to other crates");
                }
            }
        }
    }
    out.extend(declared_violations(meta, &members));
    out.sort();
    out.dedup();
    out
}

/// Rules on the dependencies as each workspace crate declares them (after workspace
/// inheritance): `DIRECT_ONLY` crates, and no `serde` feature of any dependency enabled outside
/// the edge (a model whose `uuid` derives serde has serde, whatever the rest of the graph does).
fn declared_violations(meta: &Value, members: &BTreeSet<String>) -> Vec<Edge> {
    let mut out = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let from = p["name"].as_str().unwrap();
        if !members.contains(from) {
            continue;
        }
        for d in p["dependencies"].as_array().into_iter().flatten() {
            if d["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep = d["name"].as_str().unwrap();
            if let Some((_, only)) = DIRECT_ONLY.iter().find(|(c, _)| *c == dep) {
                if !only.contains(&from) {
                    out.push(Edge {
                        from: from.into(),
                        reached: dep.into(),
                        why: format!("names {dep} directly; only {only:?} may"),
                    });
                }
            }
            let serde_feature = d["features"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f.as_str().is_some_and(|f| f.starts_with("serde")));
            if serde_feature && !EDGE.contains(&from) {
                out.push(Edge {
                    from: from.into(),
                    reached: format!("{dep}/serde"),
                    why: "enables a serde feature outside the edge".into(),
                });
            }
        }
    }
    out
}

/// Splits `found` into the violations not excused by `pending` and the pending entries that
/// excuse nothing any more (stale: remove them).
fn apply_pending<T: Clone>(
    found: &[T],
    pending: &[(&str, &str)],
    key: impl Fn(&T) -> (String, String),
) -> (Vec<T>, Vec<(String, String)>) {
    let excused = |k: &(String, String), p: &(&str, &str)| k.0 == p.0 && k.1 == p.1;
    let left = found
        .iter()
        .filter(|v| !pending.iter().any(|p| excused(&key(v), p)))
        .cloned()
        .collect();
    let stale = pending
        .iter()
        .filter(|p| !found.iter().any(|v| excused(&key(v), p)))
        .map(|p| (p.0.to_string(), p.1.to_string()))
        .collect();
    (left, stale)
}

#[test]
fn the_dependency_graph_matches_the_picture() {
    let meta = metadata();
    let found = graph_violations(&meta);
    let (left, stale) = apply_pending(&found, PENDING_EDGES, |e| {
        (e.from.clone(), e.reached.clone())
    });
    assert!(
        left.is_empty() && stale.is_empty(),
        "dependency rules broken (ARCHITECTURE.md, Invariants): {left:#?}\n\
         PENDING_EDGES entries that no longer occur, remove them: {stale:?}"
    );
}

#[test]
fn the_graph_check_sees_the_workspace() {
    // Guards the guard: a metadata-reading slip must not turn the rules above into a no-op.
    let meta = metadata();
    let names = package_names(&meta);
    let edges = resolved_edges(&meta);
    let id = |n: &str| {
        names
            .iter()
            .find(|(_, v)| *v == n)
            .map(|(k, _)| k.clone())
            .unwrap()
    };
    assert!(reach(&id("vds-scsi"), &edges, &names).contains("vds-backstore"));
    assert!(reach(&id("vds-api"), &edges, &names).contains("serde_derive"));
    assert!(reach(&id("vdsd"), &edges, &names).contains("rusqlite"));
    let members = meta["workspace_members"].as_array().unwrap().len();
    assert!(members >= 10, "only {members} workspace members seen");
}

/// A synthetic `cargo metadata` value: `members` are workspace crates, `edges` their normal
/// dependencies by name, `declared` the features a member enables on a dependency.
fn synthetic(
    members: &[&str],
    edges: &[(&str, &str)],
    declared: &[(&str, &str, &[&str])],
) -> Value {
    let mut all: BTreeSet<&str> = members.iter().copied().collect();
    for (a, b) in edges {
        all.insert(a);
        all.insert(b);
    }
    let packages: Vec<Value> = all
        .iter()
        .map(|n| {
            let deps: Vec<Value> = declared
                .iter()
                .filter(|(f, _, _)| f == n)
                .map(
                    |(_, d, feats)| serde_json::json!({"name": d, "kind": null, "features": feats}),
                )
                .collect();
            serde_json::json!({"id": format!("id:{n}"), "name": n, "dependencies": deps})
        })
        .collect();
    let nodes: Vec<Value> = all
        .iter()
        .map(|n| {
            let deps: Vec<Value> = edges
                .iter()
                .filter(|(a, _)| a == n)
                .map(|(_, b)| {
                    serde_json::json!({"pkg": format!("id:{b}"), "dep_kinds": [{"kind": null}]})
                })
                .collect();
            serde_json::json!({"id": format!("id:{n}"), "deps": deps})
        })
        .collect();
    let ids: Vec<String> = members.iter().map(|m| format!("id:{m}")).collect();
    serde_json::json!({"packages": packages, "resolve": {"nodes": nodes}, "workspace_members": ids})
}

#[test]
fn planted_runtime_under_scsi_is_caught() {
    // vds-scsi → vds-backstore → tokio: transitive, so a direct-dependency check would miss it.
    let ok = synthetic(
        &["vds-scsi", "vds-backstore"],
        &[("vds-scsi", "vds-backstore")],
        &[],
    );
    assert_eq!(graph_violations(&ok), vec![]);
    let bad = synthetic(
        &["vds-scsi", "vds-backstore"],
        &[
            ("vds-scsi", "vds-backstore"),
            ("vds-backstore", "tokio"),
            ("tokio", "mio"),
        ],
        &[],
    );
    let found: Vec<_> = graph_violations(&bad)
        .into_iter()
        .map(|e| (e.from, e.reached))
        .collect();
    for want in [
        ("vds-scsi", "tokio"),
        ("vds-scsi", "mio"),
        ("vds-backstore", "tokio"),
    ] {
        assert!(
            found.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {found:?}"
        );
    }
}

#[test]
fn planted_data_path_edges_are_caught() {
    let bad = synthetic(
        &[
            "vds-target",
            "vds-provider",
            "vds-store",
            "vds-dataplane",
            "vds-api",
        ],
        &[
            ("vds-target", "vds-dataplane"),
            ("vds-target", "vds-api"),
            ("vds-provider", "vds-store"),
            ("vds-store", "rusqlite"),
            ("vds-dataplane", "vds-provider"),
            ("vds-api", "serde"),
        ],
        &[
            ("vds-model", "uuid", &["v4"]),
            ("vds-target", "rusqlite", &[]),
        ],
    );
    let found: Vec<_> = graph_violations(&bad)
        .into_iter()
        .map(|e| (e.from, e.reached))
        .collect();
    for want in [
        ("vds-target", "vds-provider"),
        ("vds-target", "vds-store"),
        ("vds-target", "vds-api"),
        ("vds-target", "rusqlite"),
        ("vds-target", "serde"),
        ("vds-dataplane", "vds-provider"),
    ] {
        assert!(
            found.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {found:?}"
        );
    }
    assert!(
        !found
            .iter()
            .any(|(f, _)| f == "vds-provider" || f == "vds-api"),
        "{found:?}"
    );
}

#[test]
fn planted_serde_outside_the_edge_is_caught() {
    let bad = synthetic(
        &["vds-model", "vds-api", "unknown-crate"],
        &[("vds-api", "serde"), ("vds-model", "serde_json")],
        &[
            ("vds-model", "uuid", &["v4", "serde"]),
            ("vds-api", "uuid", &["serde"]),
        ],
    );
    let found: Vec<_> = graph_violations(&bad)
        .into_iter()
        .map(|e| (e.from, e.reached))
        .collect();
    assert_eq!(
        found,
        vec![
            ("unknown-crate".to_string(), "-".to_string()),
            ("vds-model".into(), "serde_json".into()),
            ("vds-model".into(), "uuid/serde".into()),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Sans-IO crates
// ---------------------------------------------------------------------------------------------

const SANS_IO: &[&str] = &["vds-model", "vds-iscsi", "vds-scsi"];

/// Address value types of `std::net`: plain data, no socket. Everything else in `std::net` opens
/// or resolves something.
const NET_VALUES: &[&str] = &[
    "IpAddr",
    "Ipv4Addr",
    "Ipv6Addr",
    "SocketAddr",
    "SocketAddrV4",
    "SocketAddrV6",
    "AddrParseError",
];

/// One forbidden token sequence found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hit {
    file: String,
    rule: &'static str,
    line: usize,
}

/// The rule a sans-IO token stream breaks at `i`, if any.
fn sans_io_rule(t: &[Tok], i: usize) -> Option<&'static str> {
    let at = |k: usize, s: &str| is(t.get(i + k), s);
    let id = t[i].kind == Kind::Ident;
    let word = t[i].text.as_str();
    if !id {
        return None;
    }
    Some(match word {
        "std" if at(1, "::") && at(2, "fs") => "std::fs",
        "fs" if at(1, "::") => "fs::",
        "thread" if at(1, "::") && at(2, "sleep") => "thread::sleep",
        "sleep" if at(1, "(") => "sleep(",
        // Lifetimes are their own tokens, so `static` here is the item keyword.
        "static" => "static",
        "thread_local" if at(1, "!") => "thread_local!",
        "OnceLock" | "LazyLock" | "lazy_static" | "OnceCell" => "lazy global",
        // libc constants (errno values the model converts) are data; a lower-case name is a
        // function or an OS structure, i.e. a system call in the making.
        "libc"
            if at(1, "::")
                && t.get(i + 2)
                    .is_some_and(|n| n.text.starts_with(|c: char| c.is_lowercase())) =>
        {
            "libc call"
        }
        "std" if at(1, "::") && at(2, "net") && !net_values_only(t, i + 3) => "std::net",
        "TcpStream" | "TcpListener" | "UdpSocket" | "UnixStream" | "UnixListener"
        | "UnixDatagram" | "ToSocketAddrs" => "socket",
        "Instant" if at(1, "::") && at(2, "now") => "Instant::now",
        "SystemTime" if at(1, "::") && at(2, "now") => "SystemTime::now",
        // `elapsed()` reads the clock as surely as `now()` does.
        "elapsed" if at(1, "(") => "elapsed(",
        "std" if at(1, "::") && (at(2, "env") || at(2, "process")) => "std::env/process",
        "thread" if at(1, "::") && at(2, "spawn") => "thread::spawn",
        "println" | "eprintln" | "print" | "eprint" | "dbg" if at(1, "!") => "print!",
        _ => return None,
    })
}

/// Does the path after `std::net` (starting at `i`, at its `::`) name only address values?
fn net_values_only(t: &[Tok], i: usize) -> bool {
    if !is(t.get(i), "::") {
        return false;
    }
    match t.get(i + 1) {
        Some(n) if n.text == "{" => {
            let end = skip_group(t, i + 1);
            t[i + 2..end - 1]
                .iter()
                .filter(|x| x.kind == Kind::Ident)
                .all(|x| NET_VALUES.contains(&x.text.as_str()))
        }
        Some(n) => NET_VALUES.contains(&n.text.as_str()),
        None => false,
    }
}

/// Every forbidden token sequence in the production code of `src` (items under
/// `#[cfg(test)]` are left out: tests may sleep and read the clock).
fn sans_io_violations(file: &str, src: &str) -> Vec<Hit> {
    let toks = strip_cfg_test(&lex(src).toks);
    (0..toks.len())
        .filter_map(|i| {
            sans_io_rule(&toks, i).map(|rule| Hit {
                file: file.into(),
                rule,
                line: toks[i].line,
            })
        })
        .collect()
}

/// (file, rule) pairs that break the sans-IO rules today and are being removed by work in
/// flight; the entry goes when that work merges. Empty since issue 11.
const PENDING_SANS_IO: &[(&str, &str)] = &[];

#[test]
fn sans_io_crates_name_no_files_sockets_clock_sleep_or_globals() {
    let mut found = Vec::new();
    let mut files = 0;
    for krate in SANS_IO {
        for path in production_sources(&workspace().join("crates").join(krate)) {
            files += 1;
            found.extend(sans_io_violations(
                &rel(&path),
                &fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    assert!(files > 20, "only {files} sans-IO sources seen");
    let (left, stale) = apply_pending(&found, PENDING_SANS_IO, |h| {
        (h.file.clone(), h.rule.to_string())
    });
    assert!(
        left.is_empty() && stale.is_empty(),
        "sans-IO crates take time, files and sockets from their caller and hold no globals \
         (ARCHITECTURE.md, Invariants): {left:#?}\n\
         PENDING_SANS_IO entries that no longer occur, remove them: {stale:?}"
    );
}

/// Are the brackets of `src` balanced once comments and literals are set aside? A tokenizer
/// slip (a string or char literal read too far or too short) almost always unbalances them, and
/// would otherwise hide the rest of a file from the checks.
fn brackets_balance(src: &str) -> bool {
    let mut stack = Vec::new();
    for t in lex(src).toks.iter().filter(|t| t.kind == Kind::Punct) {
        match t.text.as_str() {
            "(" | "[" | "{" => stack.push(t.text.clone()),
            ")" | "]" | "}" => {
                let want = match t.text.as_str() {
                    ")" => "(",
                    "]" => "[",
                    _ => "{",
                };
                if stack.pop().as_deref() != Some(want) {
                    return false;
                }
            }
            _ => {}
        }
    }
    stack.is_empty()
}

#[test]
fn the_tokenizer_reads_every_source_to_its_end() {
    let unbalanced: Vec<String> = all_sources()
        .iter()
        .filter(|p| !brackets_balance(&fs::read_to_string(p).unwrap()))
        .map(|p| rel(p))
        .collect();
    assert!(
        unbalanced.is_empty(),
        "mis-tokenized sources: {unbalanced:?}"
    );
}

#[test]
fn planted_tricky_literals_tokenize() {
    let tricky = r###"
        fn f<'a>(x: &'a [u8]) -> (char, char, char, &'static str) {
            let _b = b'}';
            let _s = b"\"}";
            let _r = r##"a "# } b"##;
            let _e = '\u{7D}';
            'outer: loop { break 'outer; }
            ('"', '\'', '{', "}\"{")
        }
    "###;
    assert!(brackets_balance(tricky));
    assert_eq!(rules(tricky), Vec::<&str>::new());
    // A slip the check exists for: an unclosed string hides the rest of the file.
    assert!(!brackets_balance("fn f() { \"}"));
    assert!(!brackets_balance("fn f() { ("));
}

#[test]
fn the_module_walk_leaves_out_test_modules_only() {
    let scsi = production_sources(&workspace().join("crates/vds-scsi"));
    let names: Vec<String> = scsi.iter().map(|p| rel(p)).collect();
    assert!(
        names.contains(&"crates/vds-scsi/src/lu.rs".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"crates/vds-scsi/src/spc/pr.rs".to_string()),
        "{names:?}"
    );
    assert!(!names
        .iter()
        .any(|n| n.ends_with("src/tests.rs") || n.contains("src/tests/")));
    let iscsi = production_sources(&workspace().join("crates/vds-iscsi"));
    assert!(!iscsi.iter().any(|p| p.ends_with("conn/tests.rs")));
    assert!(iscsi.iter().any(|p| p.ends_with("conn/budget.rs")));
}

fn rules(src: &str) -> Vec<&'static str> {
    sans_io_violations("planted.rs", src)
        .into_iter()
        .map(|h| h.rule)
        .collect()
}

#[test]
fn planted_static_is_caught() {
    assert_eq!(rules("static X: Mutex<u8> = Mutex::new(0);"), ["static"]);
    assert_eq!(rules("pub(crate) static mut N: u32 = 0;"), ["static"]);
    // `'static` is a lifetime and a "static" in a string or comment is text, not code.
    let clean = r##"
        const A: &'static str = "static X: u8 = 0;";
        fn f<'a>(x: &'a str) -> &'static str { let _c = 'x'; let _q = '\''; "static" }
        // static Y: u8 = 0;
        /* static Z: u8 = 0; /* nested */ static W */
        const R: &str = r#"static " thread_local! { }"#;
        const B: &[u8] = b"fs::read";
        fn g() -> char { 's' }
    "##;
    assert_eq!(rules(clean), Vec::<&str>::new());
}

#[test]
fn planted_thread_local_and_lazy_globals_are_caught() {
    assert_eq!(
        rules("thread_local! { static M: Cell<u8> = Cell::new(0); }"),
        ["thread_local!", "static"]
    );
    assert_eq!(rules("use std::sync::OnceLock;"), ["lazy global"]);
    assert_eq!(
        rules("fn f() { let _ = LazyLock::new(|| 1); }"),
        ["lazy global"]
    );
}

#[test]
fn planted_io_clock_and_sleep_are_caught() {
    assert_eq!(rules("use std::fs;"), ["std::fs"]);
    assert_eq!(rules("fn f() { fs::read(p); }"), ["fs::"]);
    assert_eq!(rules("fn f() { std::fs::read(p); }"), ["std::fs", "fs::"]);
    assert_eq!(
        rules("fn f() { std::thread::sleep(d); }"),
        ["thread::sleep", "sleep("]
    );
    assert_eq!(
        rules("async fn f() { tokio::time::sleep(d).await; }"),
        ["sleep("]
    );
    assert_eq!(
        rules("fn f() { let t = Instant::now(); }"),
        ["Instant::now"]
    );
    assert_eq!(rules("fn f() { SystemTime::now(); }"), ["SystemTime::now"]);
    assert_eq!(
        rules("fn f(t: Instant) -> bool { t.elapsed() > D }"),
        ["elapsed("]
    );
    assert_eq!(
        rules("fn f() { std::env::var(\"X\"); }"),
        ["std::env/process"]
    );
    assert_eq!(
        rules("fn f() { std::thread::spawn(g); }"),
        ["thread::spawn"]
    );
    assert_eq!(rules("fn f() { eprintln!(\"x\"); }"), ["print!"]);
    assert_eq!(
        rules("fn f() { unsafe { libc::pread(fd, p, n, o) }; }"),
        ["libc call"]
    );
    assert_eq!(rules("use std::net::TcpStream;"), ["std::net", "socket"]);
    assert_eq!(
        rules("use std::net::{IpAddr, UdpSocket};"),
        ["std::net", "socket"]
    );
    // Data, not I/O: errno constants and address values.
    assert_eq!(
        rules("fn f(e: i32) -> u32 { match e { libc::EIO => 1, _ => 0 } }"),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules("use std::net::{IpAddr, SocketAddr}; fn a() -> std::net::SocketAddr { todo() }"),
        Vec::<&str>::new()
    );
}

#[test]
fn planted_violations_in_test_modules_are_left_out() {
    let src = "
        fn prod() {}
        #[cfg(test)]
        #[allow(dead_code)]
        mod tests {
            fn t() { std::thread::sleep(d); let _ = Instant::now(); }
        }
        #[cfg(test)]
        mod more;
        #[cfg(test)]
        fn helper() -> u8 { static Q: u8 = 0; Q }
        static AFTER: u8 = 0;
    ";
    assert_eq!(
        rules(src),
        ["static"],
        "the item after the test items is still checked"
    );
    assert_eq!(mod_decls(&lex(src).toks), vec![vec!["more".to_string()]]);
    assert!(mod_decls(&strip_cfg_test(&lex(src).toks)).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 3. `//!` headers
// ---------------------------------------------------------------------------------------------

/// Does `src` start with a `//!` (or `/*!`) header, after optional `#![...]` inner attributes?
fn has_header(src: &str) -> bool {
    let mut s = src.trim_start();
    while let Some(rest) = s.strip_prefix("#![") {
        let mut depth = 1;
        let mut end = rest.len();
        for (k, ch) in rest.char_indices() {
            match ch {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        s = rest[end..].trim_start();
    }
    s.starts_with("//!") || s.starts_with("/*!")
}

/// Every Rust source of the repository: workspace crates, the benchmark, the fuzz targets.
fn all_sources() -> Vec<PathBuf> {
    let root = workspace();
    ["crates", "bench", "fuzz"]
        .iter()
        .flat_map(|d| rs_files(&root.join(d)))
        .collect()
}

#[test]
fn every_rust_file_starts_with_a_header() {
    let files = all_sources();
    assert!(files.len() > 100, "only {} sources seen", files.len());
    assert!(files
        .iter()
        .any(|p| rel(p).starts_with("fuzz/fuzz_targets/")));
    let missing: Vec<String> = files
        .iter()
        .filter(|p| !has_header(&fs::read_to_string(p).unwrap()))
        .map(|p| rel(p))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` header saying what lives there: {missing:#?}"
    );
}

#[test]
fn planted_file_without_header_is_caught() {
    assert!(!has_header("use std::fs;\n"));
    assert!(!has_header(
        "/// An item doc is not a file header.\nfn f() {}\n"
    ));
    assert!(!has_header(
        "// A plain comment is not one either.\n//! late\n"
    ));
    assert!(!has_header("#![no_main]\nfn f() {}\n"));
    assert!(has_header("//! What lives here.\nuse std::fs;\n"));
    assert!(has_header(
        "#![no_main]\n#![allow(unused, reason = \"x[]\")]\n\n//! Fuzz target.\n"
    ));
    assert!(has_header("//! Fuzz target.\n#![no_main]\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. `unsafe` carries its reason
// ---------------------------------------------------------------------------------------------

/// Does a comment covering `line` say why the unsafe code is sound?
fn safety_comment_on(lexed: &Lexed, line: usize) -> bool {
    lexed.comments.iter().any(|c| {
        c.start <= line
            && line <= c.end
            && (c.text.contains("SAFETY:") || c.text.contains("# Safety"))
    })
}

/// Index of the first token of the statement or item that holds token `i`: walking back to
/// the `;`, `{` or `}` that ends the previous one (bracketed groups in between are skipped).
/// The flag says whether token `i` sits inside an argument list (`f(.., unsafe { .. })`).
fn statement_start(toks: &[Tok], i: usize) -> (usize, bool) {
    let mut depth = 0i32;
    let mut nested = false;
    let mut k = i;
    while k > 0 {
        let t = &toks[k - 1];
        if t.kind == Kind::Punct {
            match t.text.as_str() {
                ")" | "]" => depth += 1,
                "(" | "[" if depth == 0 => nested = true,
                "(" | "[" => depth -= 1,
                "}" if depth > 0 => depth += 1,
                "{" if depth > 0 => depth -= 1,
                ";" | "{" | "}" => break,
                _ => {}
            }
        }
        k -= 1;
    }
    (k, nested)
}

/// Does the run of comment and attribute lines just above `line` hold a `SAFETY:` comment?
fn safety_above(lexed: &Lexed, first_tok: &BTreeMap<usize, &Tok>, line: usize) -> bool {
    let mut l = line;
    while l > 1 {
        l -= 1;
        let attribute = first_tok.get(&l).is_some_and(|t| t.text == "#");
        let comment_only = !first_tok.contains_key(&l)
            && lexed.comments.iter().any(|c| c.start <= l && l <= c.end);
        if !(attribute || comment_only) {
            return false;
        }
        if safety_comment_on(lexed, l) {
            return true;
        }
    }
    false
}

/// Is the `unsafe` at token `i` documented, the way clippy's `undocumented_unsafe_blocks`
/// accepts it: a `SAFETY:` comment (or `# Safety` doc) in the run of comment and attribute lines
/// just above the line of the `unsafe`, or just above its statement (`let x =\n unsafe {..}`)
/// unless it is an argument (`assert_eq!(\n unsafe {..}, ..)` needs it just above itself); the
/// first line inside a block that opens at the end of its line counts too.
fn unsafe_documented(lexed: &Lexed, i: usize) -> bool {
    let toks = &lexed.toks;
    let line = toks[i].line;
    let first_tok: BTreeMap<usize, &Tok> = toks.iter().rev().map(|t| (t.line, t)).collect();
    if safety_above(lexed, &first_tok, line) {
        return true;
    }
    let (start, nested) = statement_start(toks, i);
    if !nested && safety_above(lexed, &first_tok, toks[start].line) {
        return true;
    }
    let opens_block = is(toks.get(i + 1), "{") && toks.get(i + 2).map(|t| t.line) != Some(line);
    opens_block && safety_comment_on(lexed, line + 1)
}

/// Lines of `src` with an `unsafe` block, fn, impl, trait or extern block that says nowhere why
/// it is sound. `unsafe fn(..)` / `unsafe extern "C" fn(..)` pointer types and `#[unsafe(..)]`
/// attributes promise nothing and need no comment.
fn undocumented_unsafe(src: &str) -> Vec<usize> {
    let lexed = lex(src);
    let t = &lexed.toks;
    let mut out = Vec::new();
    for i in 0..t.len() {
        if t[i].kind != Kind::Ident || t[i].text != "unsafe" {
            continue;
        }
        let mut k = i + 1;
        if is(t.get(k), "extern") {
            k += 1;
            if t.get(k).is_some_and(|x| x.kind == Kind::Literal) {
                k += 1;
            }
        }
        let pointer_type = is(t.get(k), "fn") && is(t.get(k + 1), "(");
        if pointer_type || is(t.get(i + 1), "(") {
            continue;
        }
        if !unsafe_documented(&lexed, i) {
            out.push(t[i].line);
        }
    }
    out
}

#[test]
fn every_unsafe_says_why_it_is_sound() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for p in all_sources() {
        let src = fs::read_to_string(&p).unwrap();
        seen += lex(&src).toks.iter().filter(|t| t.text == "unsafe").count();
        for line in undocumented_unsafe(&src) {
            missing.push(format!("{}:{line}", rel(&p)));
        }
    }
    assert!(seen > 10, "only {seen} unsafe keywords seen");
    assert!(
        missing.is_empty(),
        "`unsafe` without a `// SAFETY:` comment just above: {missing:#?}"
    );
}

#[test]
fn planted_unsafe_without_safety_is_caught() {
    assert_eq!(
        undocumented_unsafe("fn f() {\n    let n = unsafe { libc::getpid() };\n}\n"),
        [2]
    );
    // A SAFETY comment for one block does not cover the next statement's.
    let two = "fn f() {\n    // SAFETY: no preconditions.\n    let a = unsafe { g() };\n    let b = 1;\n    unsafe {\n        h();\n    }\n}\n";
    assert_eq!(undocumented_unsafe(two), [5]);
    assert_eq!(undocumented_unsafe("unsafe impl Send for X {}\n"), [1]);
    // Above the macro call is not above the argument (clippy agrees).
    let arg = "fn f() {\n    // SAFETY: no preconditions.\n    assert_eq!(\n        unsafe { g() },\n        0\n    );\n}\n";
    assert_eq!(undocumented_unsafe(arg), [4]);
    assert_eq!(
        undocumented_unsafe("/// Does things.\npub unsafe fn f() {}\n"),
        [2]
    );
    // The word in a string or a plain comment is not code, a pointer type promises nothing.
    assert!(undocumented_unsafe(
        "// unsafe { }\nconst S: &str = \"unsafe {\";\ntype F = unsafe extern \"C\" fn(i32);\n"
    )
    .is_empty());
}

#[test]
fn documented_unsafe_passes() {
    let ok = r#"
fn f() {
    // SAFETY: getpid has no preconditions.
    let n = unsafe { libc::getpid() };
    assert_eq!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() },
        0
    );
    // SAFETY: kill(2) on our own child,
    // which has not been reaped.
    unsafe {
        libc::kill(pid, 9);
    }
    // SAFETY: getppid has no preconditions.
    let p =
        unsafe { libc::getppid() };
    let r = unsafe {
        // SAFETY: fsync on a valid fd.
        libc::fsync(fd)
    };
}
/// Reads it.
///
/// # Safety
/// `p` points at a live `u8`.
#[inline]
pub unsafe fn read(p: *const u8) -> u8 {
    // SAFETY: the caller promises `p` is valid (see # Safety).
    unsafe { *p }
}
// SAFETY: X holds no thread-bound state.
unsafe impl Send for X {}
"#;
    assert_eq!(undocumented_unsafe(ok), Vec::<usize>::new());
}

/// Does the manifest `text` take the workspace's lints (`[lints]` with `workspace = true`)?
/// Without it a crate silently drops `undocumented_unsafe_blocks` and the rest.
fn inherits_workspace_lints(text: &str) -> bool {
    let mut in_lints = false;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_lints = line == "[lints]";
        } else if in_lints && line.replace(' ', "") == "workspace=true" {
            return true;
        }
    }
    false
}

#[test]
fn every_workspace_crate_takes_the_workspace_lints() {
    let meta = metadata();
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let mut seen = 0;
    for p in meta["packages"].as_array().unwrap() {
        if !members.contains(p["id"].as_str().unwrap()) {
            continue;
        }
        seen += 1;
        let manifest = Path::new(p["manifest_path"].as_str().unwrap());
        assert!(
            inherits_workspace_lints(&fs::read_to_string(manifest).unwrap()),
            "{} lacks `[lints] workspace = true`: clippy would not hold it to the workspace lints",
            rel(manifest)
        );
    }
    assert!(seen >= 10, "only {seen} workspace members seen");
    let root = fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    assert!(
        root.lines()
            .any(|l| l.replace(' ', "") == "undocumented_unsafe_blocks=\"deny\""),
        "the workspace no longer denies clippy::undocumented_unsafe_blocks"
    );
}

#[test]
fn planted_manifest_without_workspace_lints_is_caught() {
    assert!(inherits_workspace_lints(
        "[package]\nname = \"x\"\n\n[lints]\nworkspace = true\n"
    ));
    assert!(!inherits_workspace_lints(
        "[package]\nname = \"x\"\n[dependencies]\nfoo.workspace = true\n"
    ));
    assert!(!inherits_workspace_lints(
        "[lints]\n# workspace = true\n[lints.clippy]\nx = \"deny\"\n"
    ));
    assert!(!inherits_workspace_lints(
        "[dependencies]\nworkspace = true\n"
    ));
}

/// The release profile keeps overflow checks (issue 10): a length or offset that wraps panics,
/// ending one connection, instead of being used. This test binary is built with the profile
/// the daemon is (`scripts/test` builds and tests in release), so it checks the real setting.
#[test]
fn arithmetic_overflow_panics_in_this_profile() {
    let x: u32 = std::hint::black_box(u32::MAX);
    let wrapped = std::panic::catch_unwind(|| std::hint::black_box(x) + 1);
    assert!(
        wrapped.is_err(),
        "u32::MAX + 1 did not panic: overflow-checks is off in this profile (Cargo.toml)"
    );
}
