//! Tidy checks that hold the invariants of ARCHITECTURE.md: which crates may depend on an async
//! runtime, sockets, files, the clock or serde. They read the workspace's manifests and sources,
//! so a change that breaks a seam fails `cargo test` with the rule it broke.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/vdsd sits two levels below the workspace root")
        .to_path_buf()
}

/// Names of the `[dependencies]` (not dev-dependencies) of a crate.
fn dependencies(krate: &str) -> Vec<String> {
    let manifest = workspace().join("crates").join(krate).join("Cargo.toml");
    let text = fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{manifest:?}: {e}"));
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or("").trim();
            out.push(name.to_string());
        }
    }
    out
}

/// Every non-test Rust source of a crate's `src/`.
fn sources(krate: &str) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tests") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push((p.clone(), fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &workspace().join("crates").join(krate).join("src"),
        &mut out,
    );
    out
}

/// Lines of `src` outside `#[cfg(test)]` modules and comments that contain `needle`.
fn offending_lines(src: &str, needle: &str) -> Vec<String> {
    let code = src.split("#[cfg(test)]").next().unwrap_or(src);
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| l.contains(needle))
        .map(|l| l.trim().to_string())
        .collect()
}

const SANS_IO: &[&str] = &["vds-model", "vds-iscsi", "vds-scsi"];

#[test]
fn sans_io_crates_depend_on_no_runtime_socket_or_database() {
    for krate in SANS_IO {
        for dep in dependencies(krate) {
            for banned in ["tokio", "axum", "rusqlite", "ureq", "mio"] {
                assert_ne!(
                    dep, banned,
                    "{krate} must stay sans-IO but depends on {dep}"
                );
            }
        }
    }
}

#[test]
fn sans_io_crates_read_no_clock_and_open_no_files_or_sockets() {
    let banned = [
        "Instant::now",
        "SystemTime::now",
        "std::fs::",
        "TcpStream",
        "TcpListener",
        "UdpSocket",
    ];
    for krate in SANS_IO {
        for (path, src) in sources(krate) {
            for needle in banned {
                let hits = offending_lines(&src, needle);
                assert!(
                    hits.is_empty(),
                    "{} uses {needle} (sans-IO crates take time and I/O from their caller): {hits:?}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn wire_serde_lives_only_at_the_edge() {
    let edge = ["vds-api", "vdsctl"];
    let crates = fs::read_dir(workspace().join("crates")).unwrap();
    for e in crates.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if edge.contains(&name.as_str()) || !e.path().join("Cargo.toml").exists() {
            continue;
        }
        for dep in dependencies(&name) {
            assert!(
                dep != "serde" && dep != "serde_json",
                "{name} depends on {dep}: JSON belongs to vds-api and vdsctl only"
            );
        }
    }
}

#[test]
fn only_the_store_touches_sqlite() {
    let crates = fs::read_dir(workspace().join("crates")).unwrap();
    for e in crates.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name == "vds-store" || !e.path().join("Cargo.toml").exists() {
            continue;
        }
        assert!(
            !dependencies(&name).iter().any(|d| d == "rusqlite"),
            "{name} depends on rusqlite: persistence goes through vds-store"
        );
    }
}

#[test]
fn the_tidy_checks_see_the_crates_they_guard() {
    // Guards the guards: a parsing slip must not turn every check above into a no-op.
    assert!(dependencies("vds-scsi")
        .iter()
        .any(|d| d == "vds-backstore"));
    assert!(dependencies("vds-api").iter().any(|d| d == "serde"));
    assert!(sources("vds-iscsi").len() > 3);
    assert_eq!(
        offending_lines(
            "let t = Instant::now();\n#[cfg(test)]\nInstant::now",
            "Instant::now"
        )
        .len(),
        1
    );
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
