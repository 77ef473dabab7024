//! Fuzz target: the login state machine and key negotiation. A sequence of Login Requests
//! (header fields and key text chosen by the input: known RFC 7143 keys with plausible or wild
//! values, CHAP exchanges, or raw bytes) goes to one `Login` on a target that requires CHAP
//! for one name and not for another. Nothing panics; a login that completes has negotiated
//! values within the target's limits, and a CHAP target is never entered without a correct
//! CHAP response.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vds_iscsi::chap::ChapAlg;
use vds_iscsi::login::{ChapSecrets, Login, LoginEnv, LoginStep, LoginTarget};
use vds_iscsi::pdu::{Header, LoginRequest};
use vds_iscsi::{LoginStatus, SessionParams, TargetLimits};

const OPEN: &str = "iqn.2026-01.fuzz:open";
const CHAP: &str = "iqn.2026-01.fuzz:chap";
const SECRET: &[u8] = b"fuzz-secret-123";

struct Env {
    counter: u8,
    /// The last challenge handed out, to answer it correctly sometimes.
    challenges: Vec<Vec<u8>>,
}

impl LoginEnv for Env {
    fn find_target(&mut self, name: &str) -> Option<LoginTarget> {
        let chap = if name == CHAP {
            ChapSecrets {
                default_secret: Some(SECRET.to_vec()),
                initiator_secrets: vec![],
                mutual_secrets: vec![(String::new(), b"mutual-secret-12".to_vec())],
            }
        } else if name == OPEN {
            ChapSecrets::default()
        } else {
            return None;
        };
        Some(LoginTarget {
            name: name.to_string(),
            alias: "fuzz".into(),
            tpgt: 1,
            chap,
        })
    }
    fn instate(&mut self, p: &SessionParams) -> std::result::Result<u16, LoginStatus> {
        if p.tsih == 0 {
            Ok(7)
        } else if p.tsih == 7 {
            Ok(7)
        } else {
            Err(LoginStatus::SESSION_DOES_NOT_EXIST)
        }
    }
    fn random(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            self.counter = self.counter.wrapping_mul(31).wrapping_add(7);
            *b = self.counter;
        }
        self.challenges.push(buf.to_vec());
    }
}

const KEYS: &[&str] = &[
    "InitiatorName",
    "TargetName",
    "SessionType",
    "AuthMethod",
    "CHAP_A",
    "CHAP_N",
    "CHAP_R",
    "CHAP_I",
    "CHAP_C",
    "HeaderDigest",
    "DataDigest",
    "MaxRecvDataSegmentLength",
    "MaxBurstLength",
    "FirstBurstLength",
    "MaxOutstandingR2T",
    "InitialR2T",
    "ImmediateData",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "ErrorRecoveryLevel",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
    "MaxConnections",
    "InitiatorAlias",
    "TargetAlias",
    "TargetPortalGroupTag",
    "OFMarker",
    "IFMarker",
    "X-com.example.private",
    "TaskReporting",
];

const VALUES: &[&str] = &[
    "iqn.2026-01.fuzz:init",
    OPEN,
    CHAP,
    "Normal",
    "Discovery",
    "None",
    "CHAP",
    "CHAP,None",
    "5",
    "7,6,5",
    "CRC32C",
    "None,CRC32C",
    "Yes",
    "No",
    "0",
    "1",
    "512",
    "8192",
    "16777215",
    "16777216",
    "4294967296",
    "0x00",
    "0b",
    "",
    "Irrelevant",
    "NotUnderstood",
    "Reject",
    "99999999999999999999999",
];

fn key_text(u: &mut Unstructured<'_>, env: &Env) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match u.int_in_range(0..=3u8)? {
        0 => out.extend_from_slice(u.arbitrary::<&[u8]>()?),
        1 => {
            // A CHAP answer, correct or not, to the last challenge.
            let Some(c) = env.challenges.last() else {
                return Ok(b"CHAP_A=5\0".to_vec());
            };
            let id = env.challenges.iter().rev().nth(1).map_or(0, |v| v[0]);
            let secret: &[u8] = if u.arbitrary()? {
                SECRET
            } else {
                b"wrong-secret-12"
            };
            let r = ChapAlg::Md5.response(id, secret, c);
            let mut s = format!(
                "CHAP_N=iqn.2026-01.fuzz:init\0CHAP_R={}\0",
                vds_iscsi::text::encode_hex(&r)
            );
            if u.arbitrary()? {
                s.push_str("CHAP_I=9\0CHAP_C=0x0102030405060708090a0b0c0d0e0f10\0");
            }
            out.extend_from_slice(s.as_bytes());
        }
        _ => {
            for _ in 0..u.int_in_range(0..=12u8)? {
                let k = if u.ratio(1, 8)? {
                    String::from_utf8_lossy(u.arbitrary::<&[u8]>()?).into_owned()
                } else {
                    u.choose(KEYS)?.to_string()
                };
                let v = if u.ratio(1, 6)? {
                    String::from_utf8_lossy(u.arbitrary::<&[u8]>()?).into_owned()
                } else {
                    u.choose(VALUES)?.to_string()
                };
                out.extend_from_slice(k.as_bytes());
                out.push(b'=');
                out.extend_from_slice(v.as_bytes());
                out.push(0);
            }
        }
    }
    Ok(out)
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let limits = TargetLimits::default();
    let mut login = Login::new(limits.clone());
    let mut env = Env {
        counter: u.arbitrary()?,
        challenges: Vec::new(),
    };
    let isid: [u8; 6] = u.arbitrary()?;
    let mut target_named: Option<String> = None;
    let mut correct_chap = false;
    for _ in 0..u.int_in_range(1..=10u8)? {
        let req = LoginRequest {
            transit: u.arbitrary()?,
            cont: u.ratio(1, 6)?,
            csg: u.int_in_range(0..=3)?,
            nsg: u.int_in_range(0..=3)?,
            version_max: u.ratio(1, 10)?.then_some(1).unwrap_or(0),
            version_min: 0,
            isid,
            tsih: if u.ratio(1, 8)? { u.arbitrary()? } else { 0 },
            itt: 1,
            cid: 0,
            cmd_sn: 1,
            exp_stat_sn: 0,
        };
        let data = key_text(u, &env)?;
        if let Ok(p) = vds_iscsi::text::parse(&data) {
            for (k, v) in p {
                if k == "TargetName" {
                    target_named = Some(v.clone());
                }
                if k == "CHAP_R" {
                    // Whether this response answers the outstanding challenge with SECRET.
                    correct_chap |= env.challenges.last().is_some_and(|c| {
                        let id = env.challenges.iter().rev().nth(1).map_or(0, |v| v[0]);
                        vds_iscsi::text::decode_binary(&v)
                            .is_some_and(|r| r == ChapAlg::Md5.response(id, SECRET, c))
                    });
                }
            }
        }
        match login.handle(&req, &data, &mut env) {
            LoginStep::Continue(p) => {
                assert!(matches!(p.header, Header::LoginResponse(_)));
                assert!(p.data.len() <= vds_iscsi::login::LOGIN_MAX_DATA);
            }
            LoginStep::Fail(p, st) => {
                assert!(matches!(p.header, Header::LoginResponse(_)));
                assert_ne!(st.class(), 0);
                return Ok(());
            }
            LoginStep::Done(p, params, target) => {
                assert!(matches!(p.header, Header::LoginResponse(_)));
                assert!(params.max_burst_length <= limits.max_burst_length);
                assert!(params.first_burst_length <= params.max_burst_length);
                assert!(params.max_recv_data_segment_length <= limits.max_recv_data_segment_length);
                assert!(params.max_xmit_data_segment_length >= 512);
                if let Some(t) = target {
                    if t.chap.required() {
                        assert_eq!(t.name, CHAP);
                        assert!(
                            correct_chap,
                            "CHAP target entered without a correct response"
                        );
                    }
                } else if target_named.as_deref() == Some(CHAP) {
                    // A normal login to the CHAP target must name it on completion.
                    assert!(params.session_type == vds_iscsi::SessionType::Discovery);
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

fuzz_target!(|input: &[u8]| {
    let mut u = Unstructured::new(input);
    let _ = run(&mut u);
});
