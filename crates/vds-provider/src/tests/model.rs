//! Property test: random sequences of commands against a small model of the rules (status
//! judgement, names, the unmasking grammar, deletion and tombstones, restarts). The model
//! predicts the HRESULT of every call; the provider must agree, and at the end its LUNs must
//! match the model's.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use uuid::Uuid;
use vds_model::{Hresult, JobOutput, JobState, LunStatus};

use super::TestPlane;
use crate::{Command, Outcome, Provider, VdsError};

#[derive(Debug, Clone)]
enum Op {
    Create { name: u8, size: u8 },
    Delete { pick: u8 },
    SetStatus { pick: u8, raw: i64 },
    Mask { pick: u8, mask: u8 },
    Rename { pick: u8, name: u8 },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, 0u8..3).prop_map(|(name, size)| Op::Create { name, size }),
        (0u8..8).prop_map(|pick| Op::Delete { pick }),
        (0u8..8, -1i64..8).prop_map(|(pick, raw)| Op::SetStatus { pick, raw }),
        (0u8..8, 0u8..5).prop_map(|(pick, mask)| Op::Mask { pick, mask }),
        (0u8..8, 0u8..4).prop_map(|(pick, name)| Op::Rename { pick, name }),
        Just(Op::Restart),
    ]
}

const MASKS: [(&str, Option<&str>); 5] = [
    ("*", Some("*")),
    ("", Some("")),
    (
        "iqn.2001-04.com.a;IQN.2001-04.com.A",
        Some("iqn.2001-04.com.a"),
    ),
    ("*;iqn.2001-04.com.a", None),
    ("iqn.2001-04.com.a;;", None),
];

#[derive(Debug, Clone, PartialEq)]
struct MLun {
    name: String,
    status: LunStatus,
    mask: String,
}

struct World {
    dir: tempfile::TempDir,
    p: Provider,
    sub: Uuid,
    live: HashMap<Uuid, MLun>,
    deleted: Vec<Uuid>,
    /// Every id ever seen plus a few that never existed, in a stable order for `pick`.
    ids: Vec<Uuid>,
}

fn open(dir: &std::path::Path) -> Provider {
    let mut c = crate::ProviderConfig::new(dir.join("data"));
    c.first_start_portals = Vec::new();
    c.default_lun_size = 1 << 20;
    Provider::open(c, Arc::new(TestPlane::default())).unwrap()
}

fn code(r: &Result<Outcome, VdsError>) -> Hresult {
    match r {
        Ok(o) => o.hresult(),
        Err(e) => e.hresult,
    }
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path());
        let sub = match p.apply(Command::ListSubsystems).unwrap() {
            Outcome::Subsystems(s) => s[0].id,
            o => panic!("{o:?}"),
        };
        let mut live = HashMap::new();
        let mut ids = vec![Uuid::new_v4(), Uuid::new_v4()];
        if let Outcome::Luns(l) = p.apply(Command::ListLuns { subsystem: None }).unwrap() {
            for l in l {
                ids.push(l.id);
                live.insert(
                    l.id,
                    MLun {
                        name: l.friendly_name,
                        status: l.status,
                        mask: l.unmasking_list,
                    },
                );
            }
        }
        World {
            dir,
            p,
            sub,
            live,
            deleted: Vec::new(),
            ids,
        }
    }

    fn pick(&self, n: u8) -> Uuid {
        self.ids[n as usize % self.ids.len()]
    }

    /// Steps 1-2 of the check order, as the model sees them.
    fn existence(&self, id: Uuid) -> Option<Hresult> {
        if self.live.contains_key(&id) {
            None
        } else if self.deleted.contains(&id) {
            Some(Hresult::VDS_E_OBJECT_DELETED)
        } else {
            Some(Hresult::VDS_E_OBJECT_NOT_FOUND)
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Create { name, size } => {
                let name = format!("n{name}");
                let size = [0u64, 1 << 20, 3000][*size as usize];
                let expect = if size == 0 {
                    Hresult::E_INVALIDARG
                } else if self.live.values().any(|l| l.name == name) {
                    Hresult::VDS_E_OBJECT_EXISTS
                } else {
                    Hresult::S_OK
                };
                let r = self.p.apply(Command::CreateLun(crate::CreateLunArgs {
                    subsystem: self.sub,
                    size_bytes: size,
                    friendly_name: Some(name.clone()),
                    lun_type: None,
                    thin: None,
                    drive: None,
                    unmasking_list: None,
                    targets: None,
                    read_only: None,
                    hints: None,
                    drives: None,
                    plexes: None,
                    stripe_size: None,
                    load_balance: None,
                    backing: None,
                }));
                assert_eq!(code(&r), expect, "{op:?}: {r:?}");
                if let Ok(Outcome::Job(j)) = r {
                    let j = match self
                        .p
                        .apply(Command::WaitJob {
                            id: j.id,
                            timeout: None,
                        })
                        .unwrap()
                    {
                        Outcome::Job(j) => j,
                        o => panic!("{o:?}"),
                    };
                    assert_eq!(j.state, JobState::Succeeded, "{j:?}");
                    let Some(JobOutput::Lun(l)) = j.output else {
                        panic!("{j:?}")
                    };
                    assert_eq!(l.size_bytes, size.div_ceil(512) * 512);
                    self.ids.push(l.id);
                    self.live.insert(
                        l.id,
                        MLun {
                            name,
                            status: LunStatus::Online,
                            mask: "*".into(),
                        },
                    );
                }
            }
            Op::Delete { pick } => {
                let id = self.pick(*pick);
                let expect = self.existence(id).unwrap_or(Hresult::S_OK);
                let r = self.p.apply(Command::DeleteLun { id });
                assert_eq!(code(&r), expect, "{op:?}: {r:?}");
                if r.is_ok() {
                    self.live.remove(&id);
                    self.deleted.push(id);
                }
            }
            Op::SetStatus { pick, raw } => {
                let id = self.pick(*pick);
                let wanted = LunStatus::from_i64(*raw);
                let expect = self.existence(id).unwrap_or(match wanted {
                    None | Some(LunStatus::Unknown) => Hresult::E_INVALIDARG,
                    Some(LunStatus::Failed) => Hresult::VDS_E_NOT_SUPPORTED,
                    Some(_) => Hresult::S_OK,
                });
                let r = self.p.apply(Command::SetLunStatus { id, status: *raw });
                assert_eq!(code(&r), expect, "{op:?}: {r:?}");
                if r.is_ok() {
                    self.live.get_mut(&id).unwrap().status = wanted.unwrap();
                }
            }
            Op::Mask { pick, mask } => {
                let id = self.pick(*pick);
                let (given, canonical) = MASKS[*mask as usize];
                let expect = self.existence(id).unwrap_or(match canonical {
                    Some(_) => Hresult::S_OK,
                    None => Hresult::E_INVALIDARG,
                });
                let r = self.p.apply(Command::PatchLun {
                    id,
                    friendly_name: None,
                    unmasking_list: Some(given.into()),
                    read_only: None,
                });
                assert_eq!(code(&r), expect, "{op:?}: {r:?}");
                if r.is_ok() {
                    self.live.get_mut(&id).unwrap().mask = canonical.unwrap().into();
                }
            }
            Op::Rename { pick, name } => {
                let id = self.pick(*pick);
                let name = format!("n{name}");
                let expect = self.existence(id).unwrap_or(
                    if self.live.iter().any(|(o, l)| *o != id && l.name == name) {
                        Hresult::VDS_E_OBJECT_EXISTS
                    } else {
                        Hresult::S_OK
                    },
                );
                let r = self.p.apply(Command::PatchLun {
                    id,
                    friendly_name: Some(name.clone()),
                    unmasking_list: None,
                    read_only: None,
                });
                assert_eq!(code(&r), expect, "{op:?}: {r:?}");
                if r.is_ok() {
                    self.live.get_mut(&id).unwrap().name = name;
                }
            }
            Op::Restart => {
                self.p = open(self.dir.path());
            }
        }
    }

    fn check(&self) {
        let luns = match self.p.apply(Command::ListLuns { subsystem: None }).unwrap() {
            Outcome::Luns(l) => l,
            o => panic!("{o:?}"),
        };
        let got: HashMap<Uuid, MLun> = luns
            .into_iter()
            .map(|l| {
                (
                    l.id,
                    MLun {
                        name: l.friendly_name,
                        status: l.status,
                        mask: l.unmasking_list,
                    },
                )
            })
            .collect();
        assert_eq!(got, self.live);
        for id in &self.deleted {
            assert_eq!(
                self.p
                    .apply(Command::GetLun { id: *id })
                    .unwrap_err()
                    .hresult,
                Hresult::VDS_E_OBJECT_DELETED
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_follow_the_model(ops in proptest::collection::vec(op(), 1..24)) {
        let mut w = World::new();
        for op in &ops {
            w.step(op);
        }
        w.check();
        w.p = open(w.dir.path());
        w.check();
    }
}
