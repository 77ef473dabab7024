//! Fuzz target: the CDB parser and the SCSI engine. A sequence of commands (random CDBs, biased
//! towards the implemented opcodes, with random Data-Out and expected lengths) from four
//! nexuses goes through `LunMap::execute` on memory logical units (one masked, one failing its
//! writes), interleaved with nexus loss, LUN and target resets and status changes; the restored
//! persistent-reservation blob is fuzzed too. Nothing panics, CHECK CONDITION always carries
//! well-formed sense and GOOD never does, a masked LUN never answers another initiator, and
//! LUN 0 behaves as a disk: a shadow copy follows every GOOD WRITE (10/16), and every GOOD
//! READ (10/16) returns what the shadow holds (other commands that may change data make the
//! shadow forget).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vds_fuzz::{memory_map, nexus};
use vds_scsi::{LuState, ScsiCommand, ScsiStatus, TaskAttr};

const OPCODES: &[u8] = &[
    0x00, 0x03, 0x04, 0x08, 0x0A, 0x12, 0x15, 0x16, 0x17, 0x1A, 0x1B, 0x1C, 0x1D, 0x25, 0x28, 0x2A,
    0x2B, 0x2E, 0x2F, 0x34, 0x35, 0x37, 0x3B, 0x3C, 0x41, 0x42, 0x48, 0x4C, 0x4D, 0x55, 0x56, 0x57,
    0x5A, 0x5E, 0x5F, 0x83, 0x84, 0x88, 0x89, 0x8A, 0x8B, 0x8E, 0x8F, 0x90, 0x91, 0x93, 0x9C, 0x9E,
    0xA0, 0xA3, 0xA4, 0xA8, 0xAA, 0xAE, 0xAF, 0xB7,
];

/// Opcodes that may change LUN 0's data other than WRITE (10/16).
const MAY_WRITE: &[u8] = &[
    0x04, 0x0A, 0x2E, 0x41, 0x42, 0x48, 0x55, 0x83, 0x89, 0x8B, 0x8E, 0x93, 0x9C, 0xAA, 0xAE, 0x3B,
    0x9E, 0x9F, 0x8A, 0x2A,
];

/// (LBA, blocks) of a READ/WRITE (10) or (16) CDB.
fn lba_len(cdb: &[u8]) -> Option<(u64, u64)> {
    match cdb[0] {
        0x28 | 0x2A if cdb.len() >= 10 => Some((
            u64::from(u32::from_be_bytes(cdb[2..6].try_into().unwrap())),
            u64::from(u16::from_be_bytes([cdb[7], cdb[8]])),
        )),
        0x88 | 0x8A if cdb.len() >= 16 => Some((
            u64::from_be_bytes(cdb[2..10].try_into().unwrap()),
            u64::from(u32::from_be_bytes(cdb[10..14].try_into().unwrap())),
        )),
        _ => None,
    }
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let pr = if u.ratio(1, 8)? {
        Some(u.arbitrary::<Vec<u8>>()?)
    } else {
        None
    };
    let map = memory_map(pr);
    let mut data_in = Vec::new();
    // LUN 0 starts zeroed: every block known.
    let mut shadow: Vec<Option<Vec<u8>>> = vec![Some(vec![0u8; 512]); vds_fuzz::BLOCKS as usize];
    for _ in 0..u.int_in_range(1..=24u8)? {
        let n = nexus(u.int_in_range(0..=3)?);
        match u.int_in_range(0..=31u8)? {
            0 => map.nexus_lost(n.id),
            1 => {
                map.reset_lun(u.int_in_range(0..=3)?, Some(n.id));
            }
            2 => map.target_reset(Some(n.id)),
            3 => {
                let lu = &map.entries[u.int_in_range(0..=2usize)?].lu;
                let st = *u.choose(&[
                    LuState::Online,
                    LuState::NotReady,
                    LuState::Offline,
                    LuState::Failed,
                ])?;
                let _ = lu.set_state(st);
            }
            _ => {
                let lun = u.int_in_range(0..=3u64)?;
                let len = *u.choose(&[6usize, 10, 12, 16, 16, 16, 32])?;
                let mut cdb = vec![0u8; len];
                u.fill_buffer(&mut cdb)?;
                if u.ratio(4, 5)? {
                    cdb[0] = *u.choose(OPCODES)?;
                }
                if u.ratio(1, 2)? && len >= 10 {
                    // Small LBAs and lengths reach the data paths instead of the range checks.
                    for b in &mut cdb[2..len - 2] {
                        *b &= 0x01;
                    }
                }
                let dlen = u.int_in_range(0..=9000usize)?;
                let data_out = u.bytes(dlen.min(u.len()))?;
                let cmd = ScsiCommand {
                    cdb: &cdb,
                    data_out,
                    expected_in_len: u.int_in_range(0..=70_000)?,
                    attr: *u.choose(&[
                        TaskAttr::Simple,
                        TaskAttr::Ordered,
                        TaskAttr::HeadOfQueue,
                        TaskAttr::Aca,
                    ])?,
                };
                let out = map.execute(&n, lun, &cmd, &mut data_in);
                match out.status {
                    ScsiStatus::CheckCondition => {
                        let s = out.sense.as_deref().expect("CHECK CONDITION without sense");
                        assert!(s.len() >= 8, "short sense {s:02x?}");
                        assert!(matches!(s[0] & 0x7F, 0x70 | 0x72), "bad sense {s:02x?}");
                    }
                    ScsiStatus::Good => assert!(out.sense.is_none(), "GOOD with sense"),
                    _ => {}
                }
                assert!(
                    data_in.len() <= 16 << 20,
                    "Data-In of {} bytes",
                    data_in.len()
                );
                if lun == 0 {
                    let good = out.status == ScsiStatus::Good;
                    match (cdb[0], lba_len(&cdb)) {
                        (0x2A | 0x8A, Some((lba, n))) if good => {
                            // What was sent is written, up to what the CDB states.
                            for i in 0..n {
                                let b = (lba + i) as usize;
                                let at = (i * 512) as usize;
                                if b >= shadow.len() {
                                    break;
                                }
                                if data_out.len() >= at + 512 {
                                    shadow[b] = Some(data_out[at..at + 512].to_vec());
                                } else if data_out.len() > at {
                                    shadow[b] = None; // partly sent: either is possible
                                }
                                // Not sent at all: unchanged.
                            }
                        }
                        (0x28 | 0x88, Some((lba, n))) if good => {
                            for i in 0..n {
                                let b = (lba + i) as usize;
                                let at = (i * 512) as usize;
                                let (Some(Some(want)), Some(got)) =
                                    (shadow.get(b), data_in.get(at..at + 512))
                                else {
                                    continue;
                                };
                                assert!(want == got, "LBA {b} reads other data than was written");
                            }
                        }
                        (op, _) if MAY_WRITE.contains(&op) => {
                            shadow.iter_mut().for_each(|s| *s = None)
                        }
                        _ => {}
                    }
                }
                if lun == 1 && n.id != 1 && cdb[0] != 0xA0 && cdb[0] != 0x12 && cdb[0] != 0x03 {
                    // Masked away: LOGICAL UNIT NOT SUPPORTED, never an answer from the LU.
                    assert_eq!(out.status, ScsiStatus::CheckCondition);
                    let s = out.sense.as_deref().unwrap_or_default();
                    let (key, asc) = if s[0] & 0x7F == 0x72 {
                        (s[1] & 0x0F, s[2])
                    } else {
                        (s[2] & 0x0F, s[12])
                    };
                    assert_eq!((key, asc), (0x05, 0x25), "masked LUN answered");
                }
            }
        }
    }
    Ok(())
}

fuzz_target!(|input: &[u8]| {
    let mut u = Unstructured::new(input);
    let _ = run(&mut u);
});
