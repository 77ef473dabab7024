//! BEHAVIOUR.md §4 "Addresses in SendTargets" against the real daemon: a portal's advertised
//! address (set through the API and `vdsctl`, checked, kept across a restart, cleared) is what
//! SendTargets reports, seen by the in-repo initiator and by libiscsi's `iscsi-ls`; a wildcard
//! portal reports the local address each discovery connection came in on.
//!
//! The wildcard test runs the daemon in a network namespace of its own (made by the test
//! thread with unshare(CLONE_NEWNET); every socket and child process of that thread lives
//! there), so nothing ever binds a wildcard address in the host's namespace. It needs root;
//! without it the test fails, it never passes early.
//!
//! Slots 64 and 65 of the harness's numbering; the wildcard portals use ports 45264 and
//! 45265, inside the namespace only.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const MODIFY: u64 = 125;

/// `iscsi-ls iscsi://addr/`: the `Portal:` entries it prints for the default target, sorted
/// (libiscsi lists them in reverse order of the answer).
fn iscsi_ls_portals(addr: &str) -> Vec<String> {
    let o = iscsi_tool("iscsi-ls", &[format!("iscsi://{addr}/")]);
    let t = text(&o);
    assert!(o.status.success(), "iscsi-ls through {addr}: {t}");
    let mut v: Vec<String> = t
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("Target:{TARGET} Portal:")))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn discovered(addr: &str, slot: u16) -> Vec<String> {
    let a: SocketAddr = addr.parse().expect("discovery address");
    send_targets(a, &initiator_name(slot))
}

#[test]
fn an_advertised_address_is_what_send_targets_reports() {
    let mut d = Daemon::start(64, Opts::default());
    let bind = d.portals[0];
    let id = d.portal_id(bind);
    let path = format!("/v1/portals/{id}");
    let own = vec![format!("{bind},1")];
    assert_eq!(discovered(&bind.to_string(), 64), own);
    let ev = d.events();

    // Through the API.
    let p = d.ok(
        "PATCH",
        &path,
        json!({"advertise": "gw.example:13260"}),
        200,
    );
    assert_eq!(p["advertise"], "gw.example:13260");
    assert_eq!(d.get(&path)["advertise"], "gw.example:13260");
    assert_eq!(count(&ev.drain(), &id, MODIFY), 1, "one MODIFY");
    assert_eq!(
        discovered(&bind.to_string(), 64),
        vec!["gw.example:13260,1".to_string()]
    );
    assert_eq!(
        iscsi_ls_portals(&bind.to_string()),
        vec!["gw.example:13260,1".to_string()]
    );

    // Bad values: E_INVALIDARG saying what is wrong, nothing changed, nothing announced.
    let long = format!("{}:1", "a".repeat(400));
    for (bad, why) in [
        (json!("gw.example:13260,2"), "','"),
        (json!("gw example:1"), "' '"),
        (json!("gw.example:1\r\nTargetAddress=evil:1"), "'\\r'"),
        (json!("fd00::1:3260"), "in brackets"),
        (json!("gw.example:65536"), "1 to 65535"),
        (json!("gw.example"), "no \":port\""),
        (json!(""), "empty"),
        (json!(long), "limit is 259"),
    ] {
        let got = d.call("PATCH", &path, Some(&json!({ "advertise": bad })));
        assert_error(&got, 400, "0x80070057", "E_INVALIDARG");
        let msg = got.1["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.starts_with("advertise: ") && msg.contains(why),
            "{bad}: {msg}"
        );
    }
    for bad in [
        json!({"advertise": 3260}),
        json!({"advertise": ["a:1"]}),
        json!({"advertize": "a:1"}),
    ] {
        let (s, v) = d.call("PATCH", &path, Some(&bad));
        assert_eq!(s, 400, "{bad}: {v}");
    }
    assert_eq!(d.get(&path)["advertise"], "gw.example:13260");
    assert_eq!(count(&ev.drain(), &id, MODIFY), 0, "nothing announced");

    // Through vdsctl.
    let o = d.vdsctl(&[
        "portal",
        "set",
        &bind.to_string(),
        "--advertise",
        "10.9.8.7:3260",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = d.vdsctl(&["portal", "show", &bind.to_string()]);
    assert!(text(&o).contains("10.9.8.7:3260"), "{}", text(&o));
    assert_eq!(
        discovered(&bind.to_string(), 64),
        vec!["10.9.8.7:3260,1".to_string()]
    );
    let o = d.vdsctl(&[
        "portal",
        "set",
        &bind.to_string(),
        "--advertise",
        "10.9.8.7",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("E_INVALIDARG"), "{}", text(&o));

    // Kept across a restart (kill -9: it was on disk when acknowledged).
    d.kill9();
    d.restart();
    assert_eq!(d.get(&path)["advertise"], "10.9.8.7:3260");
    assert_eq!(
        discovered(&bind.to_string(), 64),
        vec!["10.9.8.7:3260,1".to_string()]
    );

    // Cleared: the bind address again, and so after another restart.
    let p = d.ok("PATCH", &path, json!({"advertise": null}), 200);
    assert!(p["advertise"].is_null(), "{p}");
    assert_eq!(discovered(&bind.to_string(), 64), own);
    assert_eq!(iscsi_ls_portals(&bind.to_string()), own);
    d.kill9();
    d.restart();
    assert!(d.get(&path)["advertise"].is_null());
    assert_eq!(discovered(&bind.to_string(), 64), own);
}

// ----- wildcard portals, in a network namespace -----

/// The network namespace a task is in (`net:[inode]`).
fn netns(task: &str) -> String {
    std::fs::read_link(format!("/proc/{task}/ns/net"))
        .unwrap_or_else(|e| panic!("/proc/{task}/ns/net: {e}"))
        .display()
        .to_string()
}

/// Moves the calling thread into a new network namespace with `lo` up and returns the one it
/// left (the host's). Fails the test when
/// that is not possible (not root, no `ip`): the wildcard test must never bind in the host's
/// namespace, and must not pass without running.
fn enter_private_netns() -> String {
    let host = netns("thread-self");
    // SAFETY: unshare takes no pointers; CLONE_NEWNET moves only the calling thread (network
    // namespaces are per task), which is this test's own thread.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET) failed: {} (the wildcard test needs root)",
        std::io::Error::last_os_error()
    );
    let mine = netns("thread-self");
    assert_ne!(mine, host, "the thread is still in the host's namespace");
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("`ip` (iproute2) is needed to bring lo up in the test's namespace");
    let o = Command::new(ip)
        .args(["link", "set", "lo", "up"])
        .output()
        .expect("run ip");
    assert!(o.status.success(), "ip link set lo up: {}", text(&o));
    // IPv6 sockets default to IPv6-only here (a per-namespace sysctl, so the host's is
    // untouched): a `[::]` portal must still accept IPv4, because vdsd makes it dual-stack.
    std::fs::write("/proc/sys/net/ipv6/bindv6only", "1")
        .expect("set net.ipv6.bindv6only in the test's namespace");
    host
}

/// Creates a portal on `addr`, puts it in the default target's portal group and asks for it
/// ONLINE; returns its id and the answer of the status call.
fn add_portal(d: &Daemon, addr: SocketAddr) -> (String, (u16, Value)) {
    let sub = d.subsystem();
    let p = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/portals"),
        json!({"address": addr.ip().to_string(), "port": addr.port()}),
        201,
    );
    let id = p["id"].as_str().expect("id").to_string();
    let t = d.target();
    let pg = d.get(&format!("/v1/targets/{t}/portal-groups"))[0]["id"]
        .as_str()
        .expect("pg")
        .to_string();
    d.ok(
        "POST",
        &format!("/v1/portal-groups/{pg}/portals?wait=true"),
        json!({ "portal": id }),
        200,
    );
    let answer = d.set_portal_status(&id, json!("online"));
    (id, answer)
}

#[test]
fn a_wildcard_portal_reports_the_address_the_discovery_came_in_on() {
    std::thread::spawn(wildcard_in_private_netns)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

fn wildcard_in_private_netns() {
    let host = enter_private_netns();
    let mut d = Daemon::start(65, Opts::default());
    // Before anything binds a wildcard: the daemon is in this thread's namespace, not the
    // host's.
    let pid = d.pid().expect("vdsd runs").to_string();
    assert_eq!(netns(&pid), netns("thread-self"), "vdsd left the namespace");
    assert_ne!(netns(&pid), host, "vdsd is in the host's namespace");
    let specific = d.portals[0];

    let v4: SocketAddr = "0.0.0.0:45264".parse().unwrap();
    let (_, ok4) = add_portal(&d, v4);
    assert_eq!(ok4.0, 200, "0.0.0.0 online: {}", ok4.1);
    let v6: SocketAddr = "[::]:45265".parse().unwrap();
    let (_, ok6) = add_portal(&d, v6);
    assert_eq!(ok6.0, 200, "[::] online: {}", ok6.1);

    // Discovery through each address answers that address for the wildcard portals, the
    // bind address for the specific one.
    let listing = |local: &str| {
        let mut want = vec![format!("{specific},1")];
        want.push(format!("{local}:45264,1"));
        want.push(format!("{local}:45265,1"));
        want
    };
    for via in ["127.0.0.1:45264", "127.0.0.7:45264"] {
        let local = via.rsplit_once(':').unwrap().0;
        assert_eq!(discovered(via, 65), listing(local), "through {via}");
    }
    // Through the specific portal: the wildcard ones are listed at the address the host used.
    assert_eq!(
        discovered(&specific.to_string(), 65),
        listing(&specific.ip().to_string()),
        "through the specific portal"
    );
    // The dual-stack [::] portal, reached over IPv4, answers plain IPv4 (not ::ffff:a.b.c.d).
    assert_eq!(
        discovered("127.0.0.9:45265", 65),
        listing("127.0.0.9"),
        "through [::] over IPv4"
    );
    // Over IPv6 the 0.0.0.0 portal cannot be reached, so it is not listed.
    assert_eq!(
        discovered("[::1]:45265", 65),
        vec![format!("{specific},1"), "[::1]:45265,1".to_string()],
        "through [::] over IPv6"
    );
    // libiscsi sees the same.
    let mut want = listing("127.0.0.7");
    want.sort();
    assert_eq!(
        iscsi_ls_portals("127.0.0.7:45264"),
        want,
        "iscsi-ls through 127.0.0.7"
    );
    // A login through the address discovery gave works.
    let mut ini = login("127.0.0.7:45264".parse().unwrap(), &initiator_name(65), 1);
    assert_good(&tur(&mut ini, 0), "TUR through the wildcard portal");
    let _ = ini.logout();

    // An advertised address still wins over the wildcard rule.
    let id4 = d.portal_id(v4);
    d.ok(
        "PATCH",
        &format!("/v1/portals/{id4}"),
        json!({"advertise": "10.0.2.100:3260"}),
        200,
    );
    let got = discovered("127.0.0.7:45264", 65);
    assert_eq!(
        got,
        vec![
            format!("{specific},1"),
            "10.0.2.100:3260,1".to_string(),
            "127.0.0.7:45265,1".to_string()
        ]
    );

    // A specific address on a wildcard portal's port, or 0.0.0.0 on the port of the
    // dual-stack [::] portal, cannot listen: FAILED with the OS error as its HRESULT
    // (HRESULT_FROM_WIN32(WSAEADDRINUSE)) and a message naming the address; the rest keeps
    // serving.
    let mut clashing = Vec::new();
    for clash in ["127.0.0.7:45264", "0.0.0.0:45265"] {
        let (id, answer) = add_portal(&d, clash.parse().unwrap());
        assert_eq!(answer.0, 500, "{clash}: {}", answer.1);
        assert_eq!(answer.1["error"]["hresult"], "0x80072740", "{}", answer.1);
        let msg = answer.1["error"]["message"].as_str().unwrap();
        assert!(msg.contains(clash), "{msg}");
        assert_eq!(d.get(&format!("/v1/portals/{id}"))["status"], "failed");
        clashing.push(id);
    }
    let listed = discovered("127.0.0.7:45264", 65);
    assert_eq!(listed, got, "the failed portals are not listed");

    // At start the same: the portals created first listen, the clashing ones report FAILED
    // (their stored status stays ONLINE), and the daemon serves the rest.
    d.kill9();
    d.restart();
    let pid = d.pid().expect("vdsd runs").to_string();
    assert_eq!(netns(&pid), netns("thread-self"), "vdsd left the namespace");
    for id in &clashing {
        assert_eq!(d.get(&format!("/v1/portals/{id}"))["status"], "failed");
    }
    for a in [v4, v6, specific] {
        let id = d.portal_id(a);
        assert_eq!(
            d.get(&format!("/v1/portals/{id}"))["status"],
            "online",
            "{a}"
        );
    }
    assert_eq!(discovered("127.0.0.7:45264", 65), got);
    // An empty PATCH changes nothing.
    let p = d.ok("PATCH", &format!("/v1/portals/{id4}"), json!({}), 200);
    assert_eq!(p["advertise"], "10.0.2.100:3260");
}
