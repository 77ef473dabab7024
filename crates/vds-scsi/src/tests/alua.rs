//! Asymmetric logical unit access on the wire (BEHAVIOUR.md §14): INQUIRY TPGS, the target
//! port group designator of VPD 83, REPORT TARGET PORT GROUPS bytes decoded by SPC-4 6.37,
//! which commands run through a Standby or Unavailable port, and the unit attention a change
//! raises.

use super::*;
use AccessState::{
    ActiveNonOptimized as AN, ActiveOptimized as AO, Standby as S, Unavailable as U,
};

const STATES: [AccessState; 4] = [AO, AN, S, U];

/// A rig whose map says: target port group 1 is relative ports 1 and 3, group 2 is port 2.
fn two_group_rig() -> Rig {
    let mut r = rig();
    r.map.port_groups = TargetPortGroups::new([(1, 1), (2, 2), (1, 3)]);
    r
}

/// A nexus through relative target port `rel` of target port group `tpg`.
fn nexus_at(id: u64, rel: u16, tpg: u16) -> ItNexus {
    ItNexus {
        relative_target_port: rel,
        target_port: format!("iqn.2026-01.test:target,t,0x{rel:04x}"),
        target_port_group: tpg,
        ..nexus(id)
    }
}

/// opcode 0xA3 MAINTENANCE IN, SA 0x0A REPORT TARGET PORT GROUPS, parameter data format in
/// bits 7..5 of byte 1, allocation length in bytes 6..9.
fn rtpg(extended: bool, alloc: u32) -> [u8; 12] {
    let a = alloc.to_be_bytes();
    let pdf = if extended { 0x20 } else { 0 };
    [0xA3, pdf | 0x0A, 0, 0, 0, 0, a[0], a[1], a[2], a[3], 0, 0]
}

/// The parameter data SPC-4 6.37 prescribes for the two groups of [`two_group_rig`], written
/// out field by field.
fn expected_rtpg(extended: bool, g1: (AccessState, u8), g2: (AccessState, u8)) -> Vec<u8> {
    let mut d = Vec::new();
    let len: u32 = if extended { 4 + 16 + 12 } else { 16 + 12 };
    d.extend_from_slice(&len.to_be_bytes()); // RETURN DATA LENGTH
    if extended {
        // FORMAT TYPE 001b in bits 6..4; IMPLICIT TRANSITION TIME 0; reserved.
        d.extend_from_slice(&[0x10, 0, 0, 0]);
    }
    // Group 1: PREF 0 | state; T_SUP O_SUP LBD_SUP 0, U_SUP S_SUP AN_SUP AO_SUP 1; id 0001;
    // reserved; status code; vendor specific; 2 ports: relative target ports 1 and 3.
    d.extend_from_slice(&[g1.0.code(), 0x0F, 0x00, 0x01, 0, g1.1, 0, 2]);
    d.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 3]);
    // Group 2: id 0002, 1 port: relative target port 2.
    d.extend_from_slice(&[g2.0.code(), 0x0F, 0x00, 0x02, 0, g2.1, 0, 1]);
    d.extend_from_slice(&[0, 0, 0, 2]);
    d
}

/// The designators of a VPD 83 page: (protocol id, code set, PIV, association, type, value).
fn designators(page: &[u8]) -> Vec<(u8, u8, bool, u8, u8, Vec<u8>)> {
    assert_eq!(page[1], 0x83);
    let end = 4 + u16::from_be_bytes([page[2], page[3]]) as usize;
    assert_eq!(end, page.len());
    let mut out = Vec::new();
    let mut i = 4;
    while i < end {
        let (b0, b1, len) = (page[i], page[i + 1], page[i + 3] as usize);
        out.push((
            b0 >> 4,
            b0 & 0x0F,
            b1 & 0x80 != 0,
            (b1 >> 4) & 0x03,
            b1 & 0x0F,
            page[i + 4..i + 4 + len].to_vec(),
        ));
        i += 4 + len;
    }
    assert_eq!(i, end, "designators fill the page exactly");
    out
}

#[test]
fn inquiry_reports_implicit_alua_only_and_set_target_port_groups_is_not_supported() {
    let r = rig();
    let n = nexus(1);
    // opcode 0x12 INQUIRY, allocation length 96
    let d = r.x(&n, &[0x12, 0, 0, 0, 96, 0], &[]).good().data.clone();
    assert_eq!(d[5] & 0x30, 0x10, "TPGS 01b: implicit only");
    assert_eq!(d[5] & 0x08, 0x08, "3PC still set");
    // opcode 0xA4 MAINTENANCE OUT, SA 0x0A SET TARGET PORT GROUPS, parameter list length 8
    let stpg = [0xA4, 0x0A, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0];
    check(&r.x(&n, &stpg, &[0; 8]), (5, 0x20, 0x00));
    // REPORT SUPPORTED OPERATION CODES (opcode 0xA3 SA 0x0C), one command (A3/0A): supported,
    // 12-byte CDB whose usage data allows parameter data formats 000b and 001b only.
    let d = r
        .x(
            &n,
            &[0xA3, 0x0C, 0x02, 0xA3, 0, 0x0A, 0, 0, 1, 0, 0, 0],
            &[],
        )
        .good()
        .data
        .clone();
    assert_eq!((d[1] & 7, &d[2..4]), (3, &[0u8, 12][..]));
    assert_eq!(&d[4..8], &[0xA3, 0x3F, 0, 0]);
    // opcode 0xA4 is not reported as supported.
    let d = r
        .x(&n, &[0xA3, 0x0C, 0x01, 0xA4, 0, 0, 0, 0, 1, 0, 0, 0], &[])
        .data;
    assert_eq!(d[1] & 7, 1, "SUPPORT 001b: not supported");
}

#[test]
fn vpd_83_carries_the_relative_target_port_and_the_target_port_group() {
    let r = rig();
    let n = nexus_at(1, 3, 2);
    // opcode 0x12 INQUIRY, EVPD 1, page 0x83
    let d = r
        .x(&n, &[0x12, 1, 0x83, 0, 0xFF, 0], &[])
        .good()
        .data
        .clone();
    let des = designators(&d);
    // iSCSI (5), binary (1), PIV, target port (01b), relative target port (4): 0003.
    assert!(
        des.contains(&(5, 1, true, 1, 4, vec![0, 0, 0, 3])),
        "{des:02x?}"
    );
    // iSCSI, binary, PIV, target port, target port group (5): 0002.
    assert!(
        des.contains(&(5, 1, true, 1, 5, vec![0, 0, 0, 2])),
        "{des:02x?}"
    );
    assert_eq!(des.iter().filter(|x| x.4 == 5).count(), 1);
    // The logical unit's NAA designator is still first.
    assert_eq!((des[0].3, des[0].4), (0, 3));
}

#[test]
fn rtpg_bytes_for_two_groups_in_every_state_and_both_formats() {
    for s1 in STATES {
        for s2 in STATES {
            let r = two_group_rig();
            r.lu.set_access_states(AccessStates::new(vec![(1, s1), (2, s2)]));
            for extended in [false, true] {
                let want = expected_rtpg(extended, (s1, 0), (s2, 0));
                // The same bytes through every port of the target (whatever its state).
                for n in [nexus_at(1, 1, 1), nexus_at(2, 2, 2), nexus_at(3, 3, 1)] {
                    let got = r.x(&n, &rtpg(extended, 4096), &[]);
                    assert_eq!(got.good().data, want, "{s1:?} {s2:?} {extended}");
                }
            }
        }
    }
}

#[test]
fn rtpg_truncates_to_the_allocation_length_and_refuses_other_formats() {
    let r = two_group_rig();
    let n = nexus_at(1, 1, 1);
    let full = expected_rtpg(false, (AO, 0), (AO, 0));
    for alloc in [0u32, 3, 4, 10, 31, 32] {
        let got = r.x(&n, &rtpg(false, alloc), &[]);
        assert_eq!(got.good().data, &full[..alloc as usize], "alloc {alloc}");
    }
    let ext = expected_rtpg(true, (AO, 0), (AO, 0));
    assert_eq!(r.x(&n, &rtpg(true, 9), &[]).good().data, &ext[..9]);
    // Parameter data format 010b: INVALID FIELD IN CDB, pointing at byte 1 bit 6.
    let mut cdb = rtpg(false, 64);
    cdb[1] |= 0x40;
    let rep = r.x(&n, &cdb, &[]);
    check(&rep, (5, 0x24, 0));
    assert_eq!(field_pointer(&rep), (0xC8 | 6, 1));
    // Without a map that knows the target's ports: the nexus's own group and port.
    let lu_only = LunMap {
        entries: r.map.entries.clone(),
        port_groups: Default::default(),
    };
    let d = run(&lu_only, &nexus_at(1, 7, 4), 0, &rtpg(false, 64), &[]).data;
    assert_eq!(d, [0, 0, 0, 12, 0, 0x0F, 0, 4, 0, 0, 0, 1, 0, 0, 0, 7]);
}

#[test]
fn a_change_raises_asymmetric_access_state_changed_once_and_marks_the_groups_altered() {
    let r = two_group_rig();
    let (a, b) = (nexus_at(1, 1, 1), nexus_at(2, 2, 2));
    // Both nexuses known to the LU, their power-on attentions (if any) consumed.
    for n in [&a, &b] {
        r.x(n, &TUR, &[]);
        r.x(n, &TUR, &[]).good();
    }
    // The first setting is no change to announce.
    assert!(r
        .lu
        .set_access_states(AccessStates::new(vec![(1, AO), (2, S)])));
    r.x(&a, &TUR, &[]).good();
    check(&r.x(&b, &TUR, &[]), (2, 0x04, 0x0B));
    let d = r.x(&a, &rtpg(false, 64), &[]).good().data.clone();
    assert_eq!(d, expected_rtpg(false, (AO, 0), (S, 0)));
    // Setting the same states again changes nothing.
    assert!(!r
        .lu
        .set_access_states(AccessStates::new(vec![(2, S), (1, AO)])));
    r.x(&a, &TUR, &[]).good();
    // Failover: group 2 optimized, group 1 standby. Every nexus gets 06/2A/06 once, before
    // (SPC-4 order) the refusal its port's new state brings.
    assert!(r
        .lu
        .set_access_states(AccessStates::new(vec![(1, S), (2, AO)])));
    check(&r.x(&a, &read10(0, 1), &[]), (6, 0x2A, 0x06));
    check(&r.x(&a, &read10(0, 1), &[]), (2, 0x04, 0x0B));
    check(&r.x(&b, &TUR, &[]), (6, 0x2A, 0x06));
    r.x(&b, &read10(0, 1), &[]).good();
    // Both groups were altered by the target: status code 02h.
    let d = r.x(&b, &rtpg(true, 64), &[]).good().data.clone();
    assert_eq!(d, expected_rtpg(true, (S, 2), (AO, 2)));
    // Group 2 alone changes: group 1 keeps its 02h (its state was last set by the target).
    assert!(r
        .lu
        .set_access_states(AccessStates::new(vec![(1, S), (2, AN)])));
    let d = r.x(&a, &rtpg(false, 64), &[]).data;
    assert_eq!(d.len(), 0, "the unit attention comes first");
    let d = r.x(&a, &rtpg(false, 64), &[]).good().data.clone();
    assert_eq!(d, expected_rtpg(false, (S, 2), (AN, 2)));
}

/// What a command through a port in each state answers: `None` runs, else the ASCQ of
/// NOT READY, LOGICAL UNIT NOT ACCESSIBLE.
#[test]
fn commands_through_standby_and_unavailable_ports_are_gated_by_the_table() {
    let inq = [0x12, 0, 0, 0, 36, 0];
    let report_luns = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0];
    let request_sense = [0x03, 0, 0, 0, 18, 0];
    let mode_sense = [0x1A, 0, 0x3F, 0, 0xFF, 0];
    let read_keys = [0x5E, 0x00, 0, 0, 0, 0, 0, 0, 64, 0];
    let read_capacity = [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let rsoc = [0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
    let sync = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let rt = rtpg(false, 64);
    let (w, r10) = (write10(0, 1), read10(0, 1));
    // (cdb, data-out, runs in Standby, runs in Unavailable)
    let table: [(&[u8], &[u8], bool, bool); 11] = [
        (&inq, &[], true, true),
        (&report_luns, &[], true, true),
        (&request_sense, &[], true, true),
        (&rt, &[], true, true),
        (&mode_sense, &[], true, false),
        (&read_keys, &[], true, false),
        (&TUR, &[], false, false),
        (&r10, &[], false, false),
        (&w, &[7; 512], false, false),
        (&read_capacity, &[], false, false),
        (&rsoc, &[], false, false),
    ];
    for state in STATES {
        let r = two_group_rig();
        let n = nexus_at(1, 2, 2);
        r.x(&n, &TUR, &[]);
        r.lu.set_access_states(AccessStates::new(vec![(1, AO), (2, state)]));
        for (cdb, out, standby, unavailable) in table
            .iter()
            .chain([(&sync[..], &[][..], false, false)].iter())
        {
            let runs = match state {
                AO | AN => true,
                S => *standby,
                U => *unavailable,
            };
            let rep = r.x(&n, cdb, out);
            if runs {
                rep.good();
            } else {
                let ascq = if state == S { 0x0B } else { 0x0C };
                check(&rep, (2, 0x04, ascq));
            }
        }
        // REQUEST SENSE reports the port's condition as data (fixed format, 04/0B or 04/0C).
        let d = r.x(&n, &request_sense, &[]).good().data.clone();
        let want = match state {
            AO | AN => (0, 0, 0),
            S => (2, 0x04, 0x0B),
            U => (2, 0x04, 0x0C),
        };
        assert_eq!((d[2] & 0x0F, d[12], d[13]), want, "{state:?}");
        // Nothing was written through a refused port.
        let mut block = vec![0u8; 512];
        r.lu.backing().read_at(&mut block, 0).unwrap();
        let wrote = matches!(state, AO | AN);
        assert_eq!(block == [7; 512], wrote, "{state:?}");
    }
}

#[test]
fn an_inline_read_through_a_standby_port_is_answered_inline() {
    let r = two_group_rig();
    let n = nexus_at(1, 2, 2);
    r.x(&n, &TUR, &[]);
    r.lu.set_access_states(AccessStates::new(vec![(1, AO), (2, S)]));
    let mut data = Vec::new();
    let cmd = ScsiCommand {
        cdb: &read10(0, 1),
        data_out: &[],
        expected_in_len: 512,
        attr: TaskAttr::Simple,
    };
    let done = r
        .map
        .dispatch(Mode::Inline, &n, 0, &cmd, &mut data)
        .expect("answered on the inline path, no wait");
    assert_eq!(done.outcome.status, ScsiStatus::CheckCondition);
    let s = done.outcome.sense.unwrap();
    assert_eq!((s[2] & 0x0F, s[12], s[13]), (2, 0x04, 0x0B));
    assert!(data.is_empty());
    // The active port reads inline.
    let a = nexus_at(2, 1, 1);
    r.x(&a, &TUR, &[]);
    let done = r
        .map
        .dispatch(Mode::Inline, &a, 0, &cmd, &mut data)
        .unwrap();
    assert_eq!((done.outcome, data.len()), (ScsiOutcome::GOOD, 512));
}

#[test]
fn a_group_the_states_do_not_name_is_unavailable_and_no_states_is_all_active() {
    let r = two_group_rig();
    let n = nexus_at(1, 9, 9);
    r.x(&n, &TUR, &[]);
    r.x(&n, &read10(0, 1), &[]).good();
    r.lu.set_access_states(AccessStates::new(vec![(1, AO), (2, AO)]));
    check(&r.x(&n, &read10(0, 1), &[]), (2, 0x04, 0x0C));
    // A nexus that first appears after the setting starts with its group's state.
    let late = nexus_at(2, 2, 2);
    r.x(&late, &TUR, &[]);
    r.x(&late, &read10(0, 1), &[]).good();
    // A replacement LU (Refresh) inherits the states and the altered groups.
    r.lu.set_access_states(AccessStates::new(vec![(1, AO), (2, U)]));
    let (lu2, _) = lu_with(r.lu.backing().clone(), None);
    lu2.inherit(&r.lu);
    let map2 = LunMap {
        entries: vec![LunEntry {
            number: 0,
            lu: lu2,
            mask: Mask::Everyone,
        }],
        port_groups: r.map.port_groups.clone(),
    };
    check(&run(&map2, &late, 0, &TUR, &[]), (6, 0x2A, 0x06));
    check(&run(&map2, &late, 0, &read10(0, 1), &[]), (2, 0x04, 0x0C));
    let d = run(&map2, &late, 0, &rtpg(false, 64), &[]).data;
    assert_eq!(d, expected_rtpg(false, (AO, 0), (U, 2)));
}

#[test]
fn extended_copy_does_not_reach_a_lu_its_port_cannot_access() {
    let a = rig();
    let b = rig();
    let map = map_of_two(&a, &b);
    let n = nexus_at(1, 1, 1);
    let data: Vec<u8> = (0..8 * 512).map(|i| (i % 251) as u8).collect();
    a.x(&n, &write10(10, 8), &data).good();
    // `b` is Standby through group 1 (the nexus's), Active through group 2.
    b.lu.set_access_states(AccessStates::new(vec![(1, S), (2, AO)]));
    let p = xcopy_param(&a.lu, &b.lu, 8, 10, 100);
    check(&run(&map, &n, 0, &xcopy_cdb(p.len()), &p), (5, 0x0D, 0x02));
    b.lu.set_access_states(AccessStates::new(vec![(1, AN), (2, AO)]));
    run(&map, &n, 0, &xcopy_cdb(p.len()), &p).good();
    // (The copy did not make the nexus known to `b`: no unit attention waits there.)
    assert_eq!(b.x(&n, &read10(100, 8), &[]).good().data, data);
}
