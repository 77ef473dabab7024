//! The provider's flushes across a simulated power cut: a LUN's LU is rebuilt by the
//! provider's own `make_lu` over `vds_backstore::PowerCut` (which drops every unflushed write
//! at the cut), then SetStatus OFFLINE / NOT_READY, a subsystem going OFFLINE and the daemon
//! shutdown must each leave every completed write durable before they answer (BEHAVIOUR §3,
//! ARCHITECTURE.md "Acknowledged means durable").

use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::{BackingStore, Filtered, Loss, PowerCut};
use vds_model::{LunStatus, SubsystemStatus};
use vds_scsi::{ItNexus, ScsiCommand, ScsiStatus, TaskAttr};

use super::Fixture;
use crate::Command;

const BLOCKS: u64 = 64;

/// Put the default LUN on a fresh power-cut store, through the same factory and the same entry
/// the provider uses for every LUN, in the state the provider wants it in; returns the store.
fn on_power_cut_store(f: &Fixture, loss: Loss) -> (Uuid, Arc<PowerCut>) {
    let id = f.luns()[0].id;
    let mut st = f.p.inner.state.lock();
    let lun = st.luns[&id].rec.lun.clone();
    let pc = Arc::new(PowerCut::new(lun.size_bytes, loss));
    let filtered = Arc::new(Filtered::new(pc.clone(), vec![]));
    let state = st.lu_state(&lun);
    let lu = f.p.inner.make_lu(&lun, filtered.clone(), state, None);
    let e = st.luns.get_mut(&id).expect("present");
    e.lu = lu;
    e.filtered = Some(filtered);
    (id, pc)
}

fn nexus() -> ItNexus {
    ItNexus {
        id: 9,
        initiator_name: "iqn.2026-01.test:power".into(),
        initiator_port: "iqn.2026-01.test:power,i,0x230000000009".into(),
        target_port: "iqn.2026-11.local.vds:default,t,0x0001".into(),
        relative_target_port: 1,
        target_port_group: 1,
    }
}

/// Plain WRITE(10)s (no FUA) of one block each, block k holding k+1, through the LU the
/// provider serves.
fn write_blocks(f: &Fixture, id: Uuid) {
    let lu = f.p.logical_unit(id).expect("served");
    let bs = lu.block_size() as usize;
    for k in 0..BLOCKS {
        let mut cdb = [0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        cdb[2..6].copy_from_slice(&(k as u32).to_be_bytes());
        let data = vec![k as u8 + 1; bs];
        let mut din = Vec::new();
        let o = lu.execute(
            &nexus(),
            &ScsiCommand {
                cdb: &cdb,
                data_out: &data,
                expected_in_len: 0,
                attr: TaskAttr::Simple,
            },
            &mut din,
        );
        assert_eq!(o.status, ScsiStatus::Good, "WRITE {k}: {:02x?}", o.sense);
    }
}

/// After the cut, every block written holds its value.
fn survived(pc: &PowerCut, bs: usize, what: &str) {
    let back = pc.restart();
    let mut b = vec![0u8; bs];
    for k in 0..BLOCKS {
        back.read_at(&mut b, k * bs as u64).unwrap();
        assert!(
            b.iter().all(|&x| x == k as u8 + 1),
            "{what}: block {k} holds {:#04x} after the power cut",
            b[0]
        );
    }
}

#[test]
fn offline_and_not_ready_flush_before_they_are_acknowledged() {
    let f = Fixture::new(41050, false);
    let bs = f.luns()[0].block_size as usize;
    for loss in [Loss::Unflushed, Loss::Sectors { seed: 5 }] {
        for (status, name) in [
            (LunStatus::Offline, "OFFLINE"),
            (LunStatus::NotReady, "NOT_READY"),
        ] {
            let (id, pc) = on_power_cut_store(&f, loss);
            f.ok(Command::SetLunStatus {
                id,
                status: i64::from(LunStatus::Online.value()),
            });
            write_blocks(&f, id);
            f.ok(Command::SetLunStatus {
                id,
                status: i64::from(status.value()),
            });
            survived(&pc, bs, &format!("{loss:?}, SetStatus {name}"));
        }
    }
    // The store really loses what nobody flushed (so the checks above can fail).
    let (id, pc) = on_power_cut_store(&f, Loss::Unflushed);
    f.ok(Command::SetLunStatus {
        id,
        status: i64::from(LunStatus::Online.value()),
    });
    write_blocks(&f, id);
    let back = pc.restart();
    assert_eq!(pc.lost(), BLOCKS);
    let mut b = vec![0u8; bs];
    back.read_at(&mut b, 0).unwrap();
    assert!(b.iter().all(|&x| x == 0), "an unflushed write survived");
}

#[test]
fn subsystem_offline_and_shutdown_flush_every_lun() {
    let f = Fixture::new(41051, false);
    let bs = f.luns()[0].block_size as usize;
    let (id, pc) = on_power_cut_store(&f, Loss::Unflushed);
    write_blocks(&f, id);
    let sub = f.subsystem();
    f.ok(Command::SetSubsystemStatus {
        id: sub,
        status: i64::from(SubsystemStatus::Offline.value()),
    });
    survived(&pc, bs, "subsystem OFFLINE");
    let (id, pc) = on_power_cut_store(&f, Loss::Subset { seed: 3 });
    f.ok(Command::SetSubsystemStatus {
        id: sub,
        status: i64::from(SubsystemStatus::Online.value()),
    });
    write_blocks(&f, id);
    f.p.shutdown().unwrap();
    survived(&pc, bs, "shutdown");
}
