//! Property tests of the codec and the engines: every header survives encode/decode, and no
//! byte string makes the decoder, the key parser or the login/connection engines panic.

use std::time::Instant;

use proptest::prelude::*;
use vds_iscsi::conn::{ConnConfig, ConnEnv, Connection};
use vds_iscsi::login::{Login, LoginEnv, LoginTarget};
use vds_iscsi::pdu::*;
use vds_iscsi::{LoginStatus, SessionParams, TargetLimits};

fn sns() -> impl Strategy<Value = Sns> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| Sns {
        stat_sn: a,
        exp_cmd_sn: b,
        max_cmd_sn: c,
    })
}

fn attr() -> impl Strategy<Value = TaskAttr> {
    prop_oneof![
        Just(TaskAttr::Untagged),
        Just(TaskAttr::Simple),
        Just(TaskAttr::Ordered),
        Just(TaskAttr::HeadOfQueue),
        Just(TaskAttr::Aca)
    ]
}

fn header() -> impl Strategy<Value = Header> {
    prop_oneof![
        (
            any::<bool>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(i, l, a, b, c, d)| Header::NopOut(NopOut {
                immediate: i,
                lun: l,
                itt: a,
                ttt: b,
                cmd_sn: c,
                exp_stat_sn: d
            })),
        (
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                attr()
            ),
            (
                any::<u64>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>()
            ),
            (16usize..=64).prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
            proptest::option::of(any::<u32>())
        )
            .prop_map(|((i, f, r, w, at), (l, itt, e, c, x), cdb, bidi)| {
                Header::ScsiCommand(ScsiCommand {
                    immediate: i,
                    final_: f,
                    read: r,
                    write: w,
                    attr: at,
                    lun: l,
                    itt,
                    edtl: e,
                    cmd_sn: c,
                    exp_stat_sn: x,
                    cdb,
                    bidi_read_len: bidi,
                })
            }),
        (0u8..128, any::<u64>(), any::<[u32; 6]>()).prop_map(|(f, l, v)| {
            Header::TaskMgmtRequest(TaskMgmtRequest {
                immediate: true,
                function: f,
                lun: l,
                itt: v[0],
                rtt: v[1],
                cmd_sn: v[2],
                exp_stat_sn: v[3],
                ref_cmd_sn: v[4],
                exp_data_sn: v[5],
            })
        }),
        (
            any::<bool>(),
            0u8..4,
            0u8..4,
            any::<[u8; 6]>(),
            any::<u16>(),
            any::<[u32; 3]>()
        )
            .prop_map(
                |(c, csg, nsg, isid, tsih, v)| Header::LoginRequest(LoginRequest {
                    transit: !c,
                    cont: c,
                    csg,
                    nsg,
                    version_max: 0,
                    version_min: 0,
                    isid,
                    tsih,
                    itt: v[0],
                    cid: tsih,
                    cmd_sn: v[1],
                    exp_stat_sn: v[2],
                })
            ),
        (any::<bool>(), any::<u64>(), any::<[u32; 5]>()).prop_map(|(f, l, v)| {
            Header::DataOut(DataOut {
                final_: f,
                lun: l,
                itt: v[0],
                ttt: v[1],
                exp_stat_sn: v[2],
                data_sn: v[3],
                buffer_offset: v[4],
            })
        }),
        (
            any::<[bool; 4]>(),
            any::<u8>(),
            any::<u8>(),
            sns(),
            any::<[u32; 5]>()
        )
            .prop_map(|(b, r, s, sns, v)| Header::ScsiResponse(ScsiResponse {
                bidi_overflow: b[0],
                bidi_underflow: b[1],
                overflow: b[2],
                underflow: b[3],
                response: r,
                status: s,
                itt: v[0],
                snack_tag: v[1],
                sns,
                exp_data_sn: v[2],
                bidi_residual: v[3],
                residual: v[4],
            })),
        (
            any::<[bool; 4]>(),
            proptest::option::of(any::<u8>()),
            any::<u64>(),
            sns(),
            any::<[u32; 5]>()
        )
            .prop_map(|(b, st, l, sns, v)| Header::DataIn(DataIn {
                final_: b[0],
                ack: b[1],
                overflow: b[2],
                underflow: b[3],
                status: st,
                lun: l,
                itt: v[0],
                ttt: v[1],
                sns,
                data_sn: v[2],
                buffer_offset: v[3],
                residual: v[4],
            })),
        (any::<u64>(), sns(), any::<[u32; 5]>()).prop_map(|(l, sns, v)| Header::R2t(R2t {
            lun: l,
            itt: v[0],
            ttt: v[1],
            sns,
            r2t_sn: v[2],
            buffer_offset: v[3],
            desired_len: v[4],
        })),
        (any::<u64>(), sns(), any::<u8>(), any::<[u16; 3]>()).prop_map(|(l, sns, e, p)| {
            Header::AsyncMessage(AsyncMessage {
                lun: l,
                sns,
                event: e,
                vcode: 0,
                param1: p[0],
                param2: p[1],
                param3: p[2],
            })
        }),
        (any::<u8>(), sns(), any::<u32>()).prop_map(|(r, sns, d)| Header::Reject(Reject {
            reason: r,
            sns,
            data_sn: d
        })),
    ]
}

struct NoTargets;
impl LoginEnv for NoTargets {
    fn find_target(&mut self, name: &str) -> Option<LoginTarget> {
        Some(LoginTarget {
            name: name.to_string(),
            alias: String::new(),
            tpgt: 1,
            chap: Default::default(),
        })
    }
    fn instate(&mut self, _: &SessionParams) -> Result<u16, LoginStatus> {
        Ok(1)
    }
    fn random(&mut self, buf: &mut [u8]) {
        buf.fill(3);
    }
}
impl ConnEnv for NoTargets {
    fn send_targets(&mut self, _: &str, _: &SessionParams) -> Vec<(String, Vec<String>)> {
        vec![]
    }
}

proptest! {
    #[test]
    fn headers_round_trip(h in header(), data in proptest::collection::vec(any::<u8>(), 0..300),
                          hd in any::<bool>(), dd in any::<bool>()) {
        let pdu = Pdu::new(h, data);
        let d = Digests { header: hd, data: dd };
        let bytes = pdu.to_bytes(d).unwrap();
        let (back, used) = Pdu::from_bytes(&bytes, d, 1 << 20).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, pdu);
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400),
                            hd in any::<bool>(), dd in any::<bool>()) {
        let _ = Pdu::from_bytes(&bytes, Digests { header: hd, data: dd }, 8192);
        let _ = vds_iscsi::text::parse(&bytes);
    }

    #[test]
    fn engines_never_panic_on_any_pdu(h in header(), data in proptest::collection::vec(any::<u8>(), 0..200),
                                      text_data in "[A-Za-z=,0-9\\x00]{0,80}") {
        let mut login = Login::new(TargetLimits::default());
        if let Header::LoginRequest(r) = &h {
            let _ = login.handle(r, text_data.as_bytes(), &mut NoTargets);
            let _ = login.handle(r, &data, &mut NoTargets);
        }
        let p = SessionParams::defaults(&TargetLimits::default());
        let mut c = Connection::new(p, TargetLimits::default(), ConnConfig::default());
        c.handle_pdu(Pdu::new(h.clone(), data.clone()), Instant::now(), &mut NoTargets);
        c.handle_pdu(Pdu::new(h, text_data.into_bytes()), Instant::now(), &mut NoTargets);
        while c.poll_event().is_some() {}
    }
}
