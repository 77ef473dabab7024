//! Who may manage the array (BEHAVIOUR §11) and what a backing path may touch (§12), against
//! the real daemon: the bearer token on every route (events and metrics included), its file
//! (0600, kept across restarts), `--insecure-loopback-api`, `metrics_public`, `api_hosts`,
//! DNS rebinding (a foreign `Host`), non-JSON bodies; existing files and block devices adopted
//! byte for byte, `wipe`, the data dir's own files and links into it refused, block devices
//! held exclusively (a loop device), and deletion that leaves adopted storage alone.
//! Ports: API 47170-47179, portals 47070-47079 (127.0.0.1).

mod reliability_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reliability_common::*;
use serde_json::{json, Value};

/// One request on its own connection (`Connection: close`); the whole answer.
fn raw(api: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5)).expect("connect API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn status_of(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A GET with these extra header lines (each ending in CRLF).
fn get(d: &Daemon, path: &str, headers: &str) -> String {
    let host = if headers.to_ascii_lowercase().contains("host:") {
        String::new()
    } else {
        format!("Host: {}\r\n", d.api)
    };
    raw(
        d.api,
        &format!("GET {path} HTTP/1.1\r\n{host}{headers}Connection: close\r\n\r\n"),
    )
}

fn assert_unauthorised(resp: &str, what: &str) {
    assert_eq!(status_of(resp), 401, "{what}: {resp}");
    let lower = resp.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nwww-authenticate: bearer"),
        "{what}: {resp}"
    );
    assert!(
        resp.contains("\"0x80070005\"") && resp.contains("E_ACCESSDENIED"),
        "{what}: {resp}"
    );
}

#[test]
fn every_route_needs_the_token_which_is_private_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = Opts::new(&data, 47170, 47070);
    let mut d = Daemon::start(&o);
    let file = data.join("api-token");
    let md = std::fs::symlink_metadata(&file).expect("api-token written on first start");
    assert!(md.file_type().is_file());
    assert_eq!(md.permissions().mode() & 0o777, 0o600, "api-token mode");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "32 random bytes in hex: {token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        d.log_text()
            .contains(&format!("vdsd: api token in {}", file.display())),
        "the start-up lines say where the token is:\n{}",
        d.log_text()
    );
    let lun = d.create_lun(json!({"size_bytes": 1 << 20, "friendly_name": "guarded"}));
    let id = lun["id"].as_str().unwrap().to_string();

    // No token, a wrong one, another scheme: 401 everywhere, events and metrics included.
    for path in ["/v1/provider", "/v1/events", "/metrics", "/v1/openapi.json"] {
        assert_unauthorised(&get(&d, path, ""), path);
        assert_unauthorised(
            &get(&d, path, "Authorization: Bearer 0123456789abcdef\r\n"),
            path,
        );
        assert_unauthorised(
            &get(&d, path, &format!("Authorization: Basic {token}\r\n")),
            path,
        );
    }
    let r = raw(
        d.api,
        &format!(
            "DELETE /v1/luns/{id} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            d.api
        ),
    );
    assert_unauthorised(&r, "DELETE");
    let r = raw(
        d.api,
        &format!(
            "POST /v1/luns/{id}/status HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: 20\r\nConnection: close\r\n\r\n{{\"status\":\"offline\"}}",
            d.api
        ),
    );
    assert_unauthorised(&r, "SetStatus");

    // DNS rebinding: the right token under a foreign name is still refused.
    let auth = format!("Authorization: Bearer {token}\r\n");
    for host in ["evil.example:47170", "evil.example", "localhost:80"] {
        let r = get(&d, "/v1/provider", &format!("Host: {host}\r\n{auth}"));
        assert_eq!(status_of(&r), 403, "Host {host}: {r}");
        assert!(r.contains("E_ACCESSDENIED"), "{r}");
    }
    for host in ["127.0.0.1:47170", "localhost:47170"] {
        let r = get(&d, "/v1/provider", &format!("Host: {host}\r\n{auth}"));
        assert_eq!(status_of(&r), 200, "Host {host}: {r}");
    }

    // Bodies that are not declared JSON (an HTML form, a text/plain fetch): 415.
    for ct in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data",
    ] {
        let r = raw(
            d.api,
            &format!(
                "POST /v1/luns/{id}/status HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: {ct}\r\n\
                 Content-Length: 20\r\nConnection: close\r\n\r\n{{\"status\":\"offline\"}}",
                d.api
            ),
        );
        assert_eq!(status_of(&r), 415, "{ct}: {r}");
        assert!(
            r.contains("\"0x80070057\"") && r.contains("application/json"),
            "{r}"
        );
    }
    let l = d.ok("GET", &format!("/v1/luns/{id}"), None);
    assert_eq!(l["status"], "online", "nothing changed: {l}");

    // A restart keeps the token (and its mode); the old token still works.
    assert_eq!(d.stop(), Some(0));
    let d = Daemon::start(&o);
    assert_eq!(d.token, token);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        token,
        "kept across restarts"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        d.ok("GET", &format!("/v1/luns/{id}"), None)["id"],
        id.as_str()
    );
}

#[test]
fn insecure_loopback_api_serves_without_a_token_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Opts::new(&dir.path().join("data"), 47171, 47071);
    o.extra_args = vec!["--insecure-loopback-api".into()];
    let d = Daemon::start(&o);
    let r = get(&d, "/v1/provider", "");
    assert_eq!(status_of(&r), 200, "{r}");
    let log = d.log_text();
    assert!(
        log.contains("vdsd: WARNING: the API needs no token (--insecure-loopback-api)"),
        "{log}"
    );
    // The warning at warn level once requests are served so (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !d
        .log_text()
        .contains("serving requests WITHOUT authentication")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no warning:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still not a rebinding target.
    let r = get(&d, "/v1/provider", "Host: evil.example:47171\r\n");
    assert_eq!(status_of(&r), 403, "{r}");
}

#[test]
fn configured_token_metrics_public_and_api_hosts() {
    const TOKEN: &str = "configured-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut o = Opts::new(&data, 47172, 47072);
    o.config = Some(format!(
        "api_token = {TOKEN}\nmetrics_public = true\napi_hosts = array.example, other.example\n"
    ));
    let d = Daemon::start(&o);
    assert_eq!(d.token, TOKEN);
    assert!(
        !data.join("api-token").exists(),
        "no file when the config gives the token"
    );
    assert!(!d.log_text().contains(TOKEN), "the token is never printed");
    assert_eq!(status_of(&get(&d, "/metrics", "")), 200, "metrics_public");
    assert_unauthorised(&get(&d, "/v1/provider", ""), "only metrics is public");
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    for host in [
        "array.example",
        "array.example:47172",
        "OTHER.example:47172",
    ] {
        let r = get(&d, "/v1/provider", &format!("Host: {host}\r\n{auth}"));
        assert_eq!(status_of(&r), 200, "{host}: {r}");
    }
    let r = get(
        &d,
        "/v1/provider",
        &format!("Host: third.example\r\n{auth}"),
    );
    assert_eq!(status_of(&r), 403, "{r}");
}

/// A recognisable pattern of `len` bytes.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ ((i >> 12) as u8))
        .collect()
}

fn create(d: &Daemon, body: Value) -> (u16, Value) {
    let ss = d.subsystem();
    d.call(
        "POST",
        &format!("/v1/subsystems/{ss}/luns?wait=true"),
        Some(body),
    )
}

fn assert_error(got: (u16, Value), status: u16, name: &str, what: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert_eq!(got.1["error"]["name"], name, "{what}: {}", got.1);
}

/// READ(10) of the first `blocks` blocks of LUN `lun`, past any unit attention.
fn read_blocks(ini: &mut vds_testkit::Initiator, lun: u64, blocks: u16) -> Vec<u8> {
    let b = blocks.to_be_bytes();
    let cdb = [0x28, 0, 0, 0, 0, 0, 0, b[0], b[1], 0];
    for _ in 0..4 {
        let r = ini
            .command(lun, &cdb, &[], u32::from(blocks) * 512)
            .expect("READ(10)");
        if r.status == 0 {
            return r.data;
        }
    }
    panic!("READ(10) never succeeded");
}

#[test]
fn existing_files_are_adopted_never_overwritten_and_the_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outside = std::fs::canonicalize(dir.path()).unwrap().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let d = Daemon::start(&Opts::new(&data, 47173, 47073));
    let tid = d.default_target()["id"].as_str().unwrap().to_string();
    let s = |p: &Path| p.display().to_string();

    // An existing file full of data: adopted as it is, served as it is.
    let a = outside.join("a.img");
    let a_bytes = pattern(1, 4 << 20);
    std::fs::write(&a, &a_bytes).unwrap();
    let (st, lun) = create(
        &d,
        json!({"size_bytes": 4 << 20, "friendly_name": "adopted", "targets": [tid],
               "backing": {"kind": "file", "path": s(&a)}}),
    );
    assert_eq!(st, 201, "{lun}");
    assert_eq!(lun["backing"]["path"], s(&a));
    assert!(
        std::fs::read(&a).unwrap() == a_bytes,
        "adopting changed the file"
    );
    let n = lun["lun_numbers"][&tid].as_u64().unwrap();
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    assert_eq!(read_blocks(&mut ini, n, 8), a_bytes[..8 * 512]);
    let _ = ini.logout();

    // A size that is not the file's: E_INVALIDARG, the file untouched.
    let b = outside.join("b.img");
    let b_bytes = pattern(2, 4 << 20);
    std::fs::write(&b, &b_bytes).unwrap();
    for size in [8u64 << 20, 2 << 20] {
        let got = create(
            &d,
            json!({"size_bytes": size, "backing": {"kind": "file", "path": s(&b)}}),
        );
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("size_bytes"),
            "{}",
            got.1
        );
        assert_error(got, 400, "E_INVALIDARG", "wrong size");
        assert!(
            std::fs::read(&b).unwrap() == b_bytes,
            "size {size}: file changed"
        );
    }

    // "wipe": true zeroes the first and last MiB, and only those.
    let c = outside.join("c.img");
    std::fs::write(&c, pattern(3, 4 << 20)).unwrap();
    let (st, v) = create(
        &d,
        json!({"size_bytes": 4 << 20, "backing": {"kind": "file", "path": s(&c), "wipe": true}}),
    );
    assert_eq!(st, 201, "{v}");
    let now = std::fs::read(&c).unwrap();
    assert!(now[..1 << 20].iter().all(|&x| x == 0), "first MiB wiped");
    assert!(now[3 << 20..].iter().all(|&x| x == 0), "last MiB wiped");
    assert!(now[1 << 20..3 << 20] == pattern(3, 4 << 20)[1 << 20..3 << 20]);

    // The data dir's own files, directly or through links: E_ACCESSDENIED, nothing changed.
    let token_before = std::fs::read(data.join("api-token")).unwrap();
    let db_len = std::fs::metadata(data.join("vds.sqlite")).unwrap().len();
    let link_token = outside.join("innocent.img");
    std::os::unix::fs::symlink(data.join("api-token"), &link_token).unwrap();
    let link_db = outside.join("disk.img");
    std::os::unix::fs::symlink(data.join("vds.sqlite"), &link_db).unwrap();
    let link_dir = outside.join("dir");
    std::os::unix::fs::symlink(&data, &link_dir).unwrap();
    for p in [
        data.join("vds.sqlite"),
        data.join("vds.sqlite-wal"),
        data.join("api-token"),
        data.join("new.img"),
        link_token.clone(),
        link_db.clone(),
        link_dir.join("api-token"),
    ] {
        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(1 << 20);
        for wipe in [false, true] {
            let got = create(
                &d,
                json!({"size_bytes": size.max(512),
                       "backing": {"kind": "file", "path": s(&p), "wipe": wipe}}),
            );
            assert_error(got, 403, "E_ACCESSDENIED", &s(&p));
        }
    }
    assert_eq!(std::fs::read(data.join("api-token")).unwrap(), token_before);
    assert!(std::fs::metadata(data.join("vds.sqlite")).unwrap().len() >= db_len);
    assert!(!data.join("new.img").exists());
    assert_eq!(d.ok("GET", "/v1/provider", None)["type"], "iscsi");

    // Deleting the adopted LUN leaves its file exactly as it was.
    let id = lun["id"].as_str().unwrap();
    d.ok("DELETE", &format!("/v1/luns/{id}"), None);
    assert!(
        std::fs::read(&a).unwrap() == a_bytes,
        "delete changed the file"
    );

    // A path that does not exist is created (sparse, 0600) and is vds's to remove.
    let fresh = outside.join("fresh.img");
    let (st, v) = create(
        &d,
        json!({"size_bytes": 2 << 20, "backing": {"kind": "file", "path": s(&fresh)}}),
    );
    assert_eq!(st, 201, "{v}");
    let md = std::fs::metadata(&fresh).unwrap();
    assert_eq!(md.len(), 2 << 20);
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    assert!(md.blocks() * 512 < 1 << 20, "sparse");
    d.ok(
        "DELETE",
        &format!("/v1/luns/{}", v["id"].as_str().unwrap()),
        None,
    );
    assert!(!fresh.exists(), "vds removes the file it created");
}

/// A loop device attached for the test, detached on drop.
struct Loop {
    dev: PathBuf,
}

impl Loop {
    fn attach(file: &Path) -> Loop {
        assert_eq!(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() },
            0,
            "this test attaches a loop device: run it as root"
        );
        let out = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .expect("losetup (util-linux) is required for this test");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop {
            dev: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.dev)
            .status();
    }
}

/// Opens `dev` exclusively as another user of the device would (a mount, md, LVM).
fn open_excl(dev: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(dev)
}

#[test]
fn block_devices_are_adopted_and_held_exclusively() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("dev.img");
    let bytes = pattern(7, 8 << 20);
    std::fs::write(&img, &bytes).unwrap();
    let lo = Loop::attach(&img);
    let d = Daemon::start(&Opts::new(&dir.path().join("data"), 47174, 47074));
    let dev = lo.dev.display().to_string();
    let body = |size: u64| json!({"size_bytes": size, "backing": {"kind": "block", "path": dev}});

    // Held exclusively by someone else (as a mounted filesystem holds it): in use.
    let held = open_excl(&lo.dev).unwrap();
    assert_error(
        create(&d, body(8 << 20)),
        409,
        "VDS_E_DEVICE_IN_USE",
        "held device",
    );
    drop(held);
    // Its size is the LUN's.
    assert_error(create(&d, body(4 << 20)), 400, "E_INVALIDARG", "wrong size");

    let (st, lun) = create(&d, body(8 << 20));
    assert_eq!(st, 201, "{lun}");
    assert_eq!(lun["size_bytes"], 8u64 << 20);
    assert!(
        std::fs::read(&img).unwrap() == bytes,
        "adopting changed the device"
    );
    // vds holds it exclusively now.
    let e = open_excl(&lo.dev).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
    // The same device cannot back a second LUN.
    assert_error(
        create(&d, body(8 << 20)),
        409,
        "VDS_E_DEVICE_IN_USE",
        "second LUN",
    );

    // Deleting the LUN releases the device and leaves its data alone.
    d.ok(
        "DELETE",
        &format!("/v1/luns/{}", lun["id"].as_str().unwrap()),
        None,
    );
    assert!(
        std::fs::read(&img).unwrap() == bytes,
        "delete changed the device"
    );
    open_excl(&lo.dev).expect("released after the delete");

    // "wipe": true zeroes the device's first and last MiB through the pinned descriptor, and
    // only those.
    let (st, lun) = create(
        &d,
        json!({"size_bytes": 8 << 20, "backing": {"kind": "block", "path": dev, "wipe": true}}),
    );
    assert_eq!(st, 201, "{lun}");
    let now = std::fs::read(&img).unwrap();
    assert!(now[..1 << 20].iter().all(|&x| x == 0), "first MiB wiped");
    assert!(now[7 << 20..].iter().all(|&x| x == 0), "last MiB wiped");
    assert!(
        now[1 << 20..7 << 20] == bytes[1 << 20..7 << 20],
        "middle kept"
    );
    d.ok(
        "DELETE",
        &format!("/v1/luns/{}", lun["id"].as_str().unwrap()),
        None,
    );
}
