//! PERSISTENT RESERVE OUT with APTPL is acknowledged only once its state is stored: a
//! provider dropped right after the GOOD (as `kill -9` would) finds the registration and the
//! reservation on the next start (found by the reliability crash test).

use super::Fixture;
use vds_scsi::{ItNexus, ScsiCommand, ScsiStatus, TaskAttr};

fn nexus() -> ItNexus {
    ItNexus {
        id: 42,
        initiator_name: "iqn.2026-01.test:aptpl".into(),
        initiator_port: "iqn.2026-01.test:aptpl,i,0x230000000042".into(),
        target_port: "iqn.2026-11.local.vds:default,t,0x0001".into(),
        relative_target_port: 1,
    }
}

fn run(lu: &vds_scsi::LogicalUnit, cdb: &[u8], data: &[u8], data_in: &mut Vec<u8>) -> ScsiStatus {
    let cmd = ScsiCommand {
        cdb,
        data_out: data,
        expected_in_len: 4096,
        attr: TaskAttr::Simple,
    };
    let mut out = lu.execute(&nexus(), &cmd, data_in);
    // A new nexus may meet a unit attention first.
    if out.status == ScsiStatus::CheckCondition {
        out = lu.execute(&nexus(), &cmd, data_in);
    }
    out.status
}

/// PR OUT: 5F | service action | scope/type | 00 00 00 00 | parameter list length 24 | 00.
fn pr_out(sa: u8, ty: u8, key: u64, sa_key: u64, aptpl: bool) -> ([u8; 10], [u8; 24]) {
    let cdb = [0x5F, sa, ty, 0, 0, 0, 0, 0, 24, 0];
    let mut p = [0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    (cdb, p)
}

#[test]
fn acknowledged_aptpl_reservation_survives_an_immediate_drop() {
    let mut f = Fixture::new(47098, false);
    let id = f.luns()[0].id;
    let lu = f.p.logical_unit(id).unwrap();
    let mut din = Vec::new();
    // REGISTER AND IGNORE EXISTING KEY (06) with APTPL, then RESERVE (01) WRITE EXCLUSIVE.
    let (c, p) = pr_out(0x06, 0, 0, 0xABCD, true);
    assert_eq!(run(&lu, &c, &p, &mut din), ScsiStatus::Good);
    let (c, p) = pr_out(0x01, 0x01, 0xABCD, 0, false);
    assert_eq!(run(&lu, &c, &p, &mut din), ScsiStatus::Good);
    drop(lu);
    f.restart();
    let lu = f.p.logical_unit(id).unwrap();
    // READ RESERVATION: generation, length 16, key 0xABCD, type 1.
    let read_res = [0x5E, 0x01, 0, 0, 0, 0, 0, 0x10, 0, 0];
    assert_eq!(run(&lu, &read_res, &[], &mut din), ScsiStatus::Good);
    assert_eq!(
        u32::from_be_bytes(din[4..8].try_into().unwrap()),
        16,
        "{din:02x?}"
    );
    assert_eq!(u64::from_be_bytes(din[8..16].try_into().unwrap()), 0xABCD);
    assert_eq!(din[21] & 0x0F, 0x01);
}
