//! ALUA on the wire (BEHAVIOUR.md §14): one target with two portal groups on two portals, in
//! target port groups 1 and 2, and a LU whose access states the test sets directly. REPORT
//! TARGET PORT GROUPS answers the same bytes through both ports, a READ through a Standby port
//! ends 02/04/0B and through an Unavailable one 02/04/0C, after the unit attention 06/2A/06 the
//! change raised; I/O continues through the Active/Optimized port.
//! Addresses: 127.0.33.13:44130, 127.0.33.14:44130.

mod common;

use std::sync::Arc;

use common::{Harness, TARGET};
use uuid::Uuid;
use vds_dataplane::{ChapConfig, DataPlane, DataView, PortalGroupView, TargetView};
use vds_scsi::{AccessState, AccessStates, LunMap, TargetPortGroups};
use vds_target::Limits;
use vds_testkit::initiator::{Initiator, LoginOptions, ScsiResult};

fn rw10(opcode: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let b = blocks.to_be_bytes();
    [opcode, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
}

/// opcode 0xA3 MAINTENANCE IN, SA 0x0A REPORT TARGET PORT GROUPS, extended header (parameter
/// data format 001b), allocation length 4096.
const RTPG_EXT: [u8; 12] = [0xA3, 0x2A, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];

/// (sense key, ASC, ASCQ) of fixed-format sense.
fn kcq(r: &ScsiResult) -> (u8, u8, u8) {
    assert_eq!(r.status, 0x02, "CHECK CONDITION expected");
    assert_eq!(r.sense[0] & 0x7F, 0x70, "fixed format sense");
    (r.sense[2] & 0x0F, r.sense[12], r.sense[13])
}

fn cmd(i: &mut Initiator, cdb: &[u8], out: &[u8], read_len: u32) -> ScsiResult {
    i.command(0, cdb, out, read_len).expect("command")
}

/// The descriptors of REPORT TARGET PORT GROUPS parameter data with the extended header:
/// (group id, state code, status code, relative target ports).
fn decode_rtpg(d: &[u8]) -> Vec<(u16, u8, u8, Vec<u16>)> {
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len + 4, d.len(), "RETURN DATA LENGTH");
    assert_eq!(d[4] & 0x70, 0x10, "extended header, format type 001b");
    let mut out = Vec::new();
    let mut i = 8;
    while i < d.len() {
        assert_eq!(d[i] & 0x80, 0, "PREF 0");
        assert_eq!(d[i + 1], 0x0F, "supports AO, AN, S, U only");
        let count = d[i + 7] as usize;
        let ports = (0..count)
            .map(|k| u16::from_be_bytes([d[i + 10 + 4 * k], d[i + 11 + 4 * k]]))
            .collect();
        out.push((
            u16::from_be_bytes([d[i + 2], d[i + 3]]),
            d[i] & 0x0F,
            d[i + 5],
            ports,
        ));
        i += 8 + 4 * count;
    }
    out
}

#[test]
fn rtpg_is_the_same_through_both_ports_and_standby_and_unavailable_ports_refuse_io() {
    let addrs = ["127.0.33.13:44130", "127.0.33.14:44130"];
    let h = Harness::start(&addrs, ChapConfig::default(), Limits::default());
    let base = common::lun_map(1, 16 << 20);
    let lu = base.entries[0].lu.clone();
    // Portal 0 is relative target port 1 in group 1; portal 1 is relative port 2 in group 2.
    h.dp.publish(Arc::new(DataView {
        targets: vec![TargetView {
            id: h.target_id,
            iqn: TARGET.into(),
            alias: "test".into(),
            chap: ChapConfig::default(),
            portal_groups: vec![
                PortalGroupView {
                    id: Uuid::new_v4(),
                    tag: 1,
                    portals: vec![h.portals[0].id],
                    tpg: 1,
                },
                PortalGroupView {
                    id: Uuid::new_v4(),
                    tag: 2,
                    portals: vec![h.portals[1].id],
                    tpg: 2,
                },
            ],
            luns: Arc::new(LunMap {
                entries: base.entries.clone(),
                port_groups: TargetPortGroups::new([(1, 1), (2, 2)]),
            }),
        }],
        portals: h.portals.clone(),
    }));
    lu.set_access_states(AccessStates::new(vec![
        (1, AccessState::ActiveOptimized),
        (2, AccessState::Standby),
    ]));
    let login = |at: usize, name: &str| {
        Initiator::connect(h.addr(at), &LoginOptions::normal(name, TARGET)).expect("login")
    };
    let mut a = login(0, "iqn.2026-12.test.alua:a");
    let mut b = login(1, "iqn.2026-12.test.alua:b");

    // opcode 0x12 INQUIRY, EVPD 1, page 0x83: each port names its own group (type 5).
    for (i, tpg) in [(&mut a, 1u16), (&mut b, 2)] {
        let d = cmd(i, &[0x12, 1, 0x83, 0, 0xFF, 0], &[], 255).data;
        let mut at = 4;
        let mut found = None;
        while at + 4 <= d.len() {
            let len = d[at + 3] as usize;
            if d[at + 1] & 0x3F == 0x15 {
                found = Some(u16::from_be_bytes([d[at + 6], d[at + 7]]));
            }
            at += 4 + len;
        }
        assert_eq!(found, Some(tpg), "target port group designator");
    }

    // The same answer through both ports: group 1 AO on port 1, group 2 Standby on port 2.
    let ra = cmd(&mut a, &RTPG_EXT, &[], 4096);
    let rb = cmd(&mut b, &RTPG_EXT, &[], 4096);
    assert_eq!((ra.status, rb.status), (0, 0));
    assert_eq!(ra.data, rb.data);
    assert_eq!(
        decode_rtpg(&ra.data),
        vec![(1, 0x0, 0, vec![1]), (2, 0x2, 0, vec![2])]
    );

    // I/O through the Active/Optimized port; the Standby port refuses it with 02/04/0B.
    let block = vec![0x5Au8; 512];
    assert_eq!(cmd(&mut a, &rw10(0x2A, 0, 1), &block, 0).status, 0);
    assert_eq!(
        kcq(&cmd(&mut b, &rw10(0x28, 0, 1), &[], 512)),
        (2, 0x04, 0x0B)
    );
    assert_eq!(
        kcq(&cmd(&mut b, &rw10(0x2A, 0, 1), &[0; 512], 0)),
        (2, 0x04, 0x0B)
    );

    // Group 2 becomes Unavailable: each nexus is told once (06/2A/06), then port 2 refuses
    // with 02/04/0C while port 1 goes on reading what it wrote.
    lu.set_access_states(AccessStates::new(vec![
        (1, AccessState::ActiveOptimized),
        (2, AccessState::Unavailable),
    ]));
    assert_eq!(
        kcq(&cmd(&mut b, &rw10(0x28, 0, 1), &[], 512)),
        (6, 0x2A, 0x06)
    );
    assert_eq!(
        kcq(&cmd(&mut b, &rw10(0x28, 0, 1), &[], 512)),
        (2, 0x04, 0x0C)
    );
    assert_eq!(
        kcq(&cmd(&mut a, &rw10(0x28, 0, 1), &[], 512)),
        (6, 0x2A, 0x06)
    );
    let r = cmd(&mut a, &rw10(0x28, 0, 1), &[], 512);
    assert_eq!((r.status, r.data), (0, block));
    let ra = cmd(&mut a, &RTPG_EXT, &[], 4096);
    let rb = cmd(&mut b, &RTPG_EXT, &[], 4096);
    assert_eq!(ra.data, rb.data);
    assert_eq!(
        decode_rtpg(&rb.data),
        vec![(1, 0x0, 0, vec![1]), (2, 0x3, 2, vec![2])],
        "group 2 altered by implicit ALUA behaviour"
    );
    a.logout().expect("logout");
    b.logout().expect("logout");
}
