//! Target side of the login phase (RFC 7143 §6, §11.12–11.13): stages and T/C bits, the
//! security stage (AuthMethod None or CHAP, one-way or mutual), operational key negotiation with
//! the result function of each key, login status for every failure, and long responses split
//! with C=1. Sans-IO: it consumes Login Request PDUs and returns what to send; lookups (which
//! targets this portal reaches, session instatement) and randomness go through [`LoginEnv`].

use crate::chap::ChapAlg;
use crate::codes::{stage, LoginStatus};
use crate::params::{SessionParams, SessionType, TargetLimits};
use crate::pdu::{Header, LoginRequest, LoginResponse, Pdu, Sns};
use crate::text;

/// Data segment limit during login (RFC 7143: 8192 until MaxRecvDataSegmentLength applies).
pub const LOGIN_MAX_DATA: usize = 8192;
/// Upper bound on the key text one login may accumulate across C=1 PDUs.
const LOGIN_MAX_TEXT: usize = 64 * 1024;

/// CHAP secrets of one target (the data path's copy of the provider's configuration).
/// `Debug` shows names and lengths, never the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChapSecrets {
    /// The target-wide secret: authenticates any initiator without a secret of its own, under
    /// any CHAP_N.
    pub default_secret: Option<Vec<u8>>,
    /// Per-initiator secrets, keyed by InitiatorName: each authenticates only that initiator,
    /// and only with CHAP_N equal to its name (BEHAVIOUR §13).
    pub initiator_secrets: Vec<(String, Vec<u8>)>,
    /// For mutual CHAP, keyed by initiator name (`""` for any).
    pub mutual_secrets: Vec<(String, Vec<u8>)>,
}

/// A secret in `Debug` output: its length only.
struct Redacted(usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

fn redacted(list: &[(String, Vec<u8>)]) -> Vec<(&str, Redacted)> {
    list.iter()
        .map(|(n, s)| (n.as_str(), Redacted(s.len())))
        .collect()
}

impl std::fmt::Debug for ChapSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChapSecrets")
            .field(
                "default_secret",
                &self.default_secret.as_ref().map(|s| Redacted(s.len())),
            )
            .field("initiator_secrets", &redacted(&self.initiator_secrets))
            .field("mutual_secrets", &redacted(&self.mutual_secrets))
            .finish()
    }
}

impl ChapSecrets {
    pub fn required(&self) -> bool {
        self.default_secret.is_some() || !self.initiator_secrets.is_empty()
    }

    /// The secret a login by `initiator` calling itself `chap_n` must prove, or `None` when
    /// no secret may authenticate it. An initiator with a secret of its own is authenticated
    /// by that secret only, and only under its own name: holding A's secret must not let
    /// anyone log in as B (BEHAVIOUR §13). Any other initiator proves the target-wide secret
    /// under any CHAP_N (RFC 7143 §12.1.3 leaves CHAP_N to the initiator's configuration;
    /// open-iscsi's `username` is often not the InitiatorName), except a CHAP_N that is the
    /// name of an initiator with its own secret: that is A's identity, which only A's secret
    /// proves.
    fn secret_for(&self, initiator: &str, chap_n: &str) -> Option<&[u8]> {
        let own = |name: &str| {
            self.initiator_secrets
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, s)| s.as_slice())
        };
        match own(initiator) {
            Some(secret) => chap_n.eq_ignore_ascii_case(initiator).then_some(secret),
            None if own(chap_n).is_some() => None,
            None => self.default_secret.as_deref(),
        }
    }

    fn mutual_for(&self, initiator: &str) -> Option<&[u8]> {
        self.mutual_secrets
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(initiator))
            .or_else(|| self.mutual_secrets.iter().find(|(n, _)| n.is_empty()))
            .map(|(_, s)| s.as_slice())
    }
}

/// A target as a login needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginTarget {
    pub name: String,
    pub alias: String,
    /// TargetPortalGroupTag of the portal group through which the login came.
    pub tpgt: u16,
    pub chap: ChapSecrets,
}

/// What the login asks of its surroundings.
pub trait LoginEnv {
    /// The target named `name` if it is reachable through the portal of this connection.
    fn find_target(&mut self, name: &str) -> Option<LoginTarget>;
    /// Admit the session at the end of the login: assign a TSIH for a new session (TSIH 0,
    /// reinstating any session with the same initiator name and ISID) or check the one given.
    /// An `Err` is the login status to fail with (0x020A, 0x0301, 0x0302, ...).
    fn instate(&mut self, params: &SessionParams) -> Result<u16, LoginStatus>;
    /// Fill `buf` with unpredictable bytes (CHAP identifiers and challenges).
    fn random(&mut self, buf: &mut [u8]);
}

/// What to do after one Login Request.
#[derive(Debug)]
pub enum LoginStep {
    /// Send this response and wait for the next request.
    Continue(Pdu),
    /// Send this (failure) response and close the connection.
    Fail(Pdu, LoginStatus),
    /// Send this response; the connection is now in full-feature phase.
    Done(Pdu, Box<SessionParams>, Option<LoginTarget>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    /// AuthMethod not settled yet.
    Pending,
    None,
    /// CHAP chosen; waiting for CHAP_A.
    ChapWaitAlg,
    /// Challenge sent; waiting for CHAP_N/CHAP_R.
    ChapWaitResponse {
        alg: ChapAlg,
        id: u8,
        challenge: Vec<u8>,
    },
    Done,
}

/// The login state machine of one connection.
pub struct Login {
    limits: TargetLimits,
    params: SessionParams,
    target: Option<LoginTarget>,
    started: bool,
    stage: u8,
    auth: Auth,
    /// Keys already negotiated in this login (a key offered twice is an error).
    seen: Vec<String>,
    /// Request text gathered over C=1 PDUs.
    partial: Vec<u8>,
    /// Response text still to send (a response split with C=1), with its final T/NSG.
    pending_out: Vec<u8>,
    pending_final: Option<(bool, u8)>,
    declared_mrdsl: bool,
    declared_tpgt: bool,
    first_done: bool,
    itt: u32,
}

impl Login {
    pub fn new(limits: TargetLimits) -> Self {
        let params = SessionParams::defaults(&limits);
        Login {
            limits,
            params,
            target: None,
            started: false,
            stage: stage::SECURITY,
            auth: Auth::Pending,
            seen: Vec::new(),
            partial: Vec::new(),
            pending_out: Vec::new(),
            pending_final: None,
            declared_mrdsl: false,
            declared_tpgt: false,
            first_done: false,
            itt: 0,
        }
    }

    /// The parameters negotiated so far.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    fn response(&mut self, transit: bool, nsg: u8, cont: bool, data: Vec<u8>) -> Pdu {
        let sns = self.sns();
        self.params.stat_sn = self.params.stat_sn.wrapping_add(1);
        Pdu::new(
            Header::LoginResponse(LoginResponse {
                transit,
                cont,
                csg: self.stage,
                nsg: if transit { nsg } else { 0 },
                version_max: 0,
                version_active: 0,
                isid: self.params.isid,
                tsih: self.params.tsih,
                itt: self.itt,
                sns,
                status_class: 0,
                status_detail: 0,
            }),
            data,
        )
    }

    fn sns(&self) -> Sns {
        Sns {
            stat_sn: self.params.stat_sn,
            exp_cmd_sn: self.params.exp_cmd_sn,
            max_cmd_sn: self
                .params
                .exp_cmd_sn
                .wrapping_add(self.limits.queue_depth.max(1) - 1),
        }
    }

    /// A failure response with `status`.
    pub fn failure(&mut self, status: LoginStatus) -> LoginStep {
        let sns = self.sns();
        let pdu = Pdu::new(
            Header::LoginResponse(LoginResponse {
                transit: false,
                cont: false,
                csg: self.stage,
                nsg: 0,
                version_max: 0,
                version_active: 0,
                isid: self.params.isid,
                tsih: self.params.tsih,
                itt: self.itt,
                sns,
                status_class: status.class(),
                status_detail: status.detail(),
            }),
            Vec::new(),
        );
        LoginStep::Fail(pdu, status)
    }

    /// Handle one Login Request.
    pub fn handle(&mut self, req: &LoginRequest, data: &[u8], env: &mut dyn LoginEnv) -> LoginStep {
        self.itt = req.itt;
        if !self.started {
            self.started = true;
            self.params.isid = req.isid;
            self.params.tsih = req.tsih;
            self.params.cid = req.cid;
            self.params.exp_cmd_sn = req.cmd_sn;
            self.params.stat_sn = req.exp_stat_sn;
            if req.version_min > 0 {
                return self.failure(LoginStatus::UNSUPPORTED_VERSION);
            }
        } else if req.isid != self.params.isid
            || req.tsih != self.params.tsih
            || req.cid != self.params.cid
        {
            return self.failure(LoginStatus::INITIATOR_ERROR);
        }
        if data.len() > LOGIN_MAX_DATA {
            return self.failure(LoginStatus::INITIATOR_ERROR);
        }
        // A response we split with C=1: the initiator answers each part with an empty request.
        if !self.pending_out.is_empty() {
            if !data.is_empty() {
                return self.failure(LoginStatus::INITIATOR_ERROR);
            }
            return self.next_chunk(env);
        }
        if req.csg == 2 || req.csg == stage::FULL_FEATURE {
            return self.failure(LoginStatus::INITIATOR_ERROR);
        }
        if req.transit && (req.nsg <= req.csg || req.nsg == 2) {
            return self.failure(LoginStatus::INITIATOR_ERROR);
        }
        if req.cont && req.transit {
            return self.failure(LoginStatus::INITIATOR_ERROR);
        }
        if self.partial.len() + data.len() > LOGIN_MAX_TEXT {
            return self.failure(LoginStatus::OUT_OF_RESOURCES);
        }
        self.partial.extend_from_slice(data);
        if req.cont {
            // More keys follow; acknowledge with an empty response.
            let r = self.response(false, 0, false, Vec::new());
            return LoginStep::Continue(r);
        }
        let raw = std::mem::take(&mut self.partial);
        let keys = match text::parse(&raw) {
            Ok(k) => k,
            Err(_) => return self.failure(LoginStatus::INITIATOR_ERROR),
        };
        for (k, _) in &keys {
            if self.seen.contains(k) && !k.starts_with("CHAP_") {
                return self.failure(LoginStatus::INITIATOR_ERROR);
            }
        }
        if !self.first_done {
            self.first_done = true;
            if let Err(st) = self.first_keys(&keys, env) {
                return self.failure(st);
            }
        }
        if req.csg != self.stage {
            // The first request may start in the operational stage (no security phase).
            if !(req.csg == stage::OPERATIONAL
                && self.stage == stage::SECURITY
                && self.seen.is_empty()
                && matches!(self.auth, Auth::Pending))
            {
                return self.failure(LoginStatus::INITIATOR_ERROR);
            }
            if self.auth_required() {
                return self.failure(LoginStatus::AUTHENTICATION_FAILURE);
            }
            self.stage = stage::OPERATIONAL;
            self.auth = Auth::Done;
        }
        let mut out: Vec<(String, String)> = Vec::new();
        if self.stage == stage::SECURITY {
            if let Err(st) = self.security(&keys, &mut out, env) {
                return self.failure(st);
            }
        }
        if let Err(st) = self.operational(&keys, &mut out) {
            return self.failure(st);
        }
        for (k, _) in &keys {
            if !k.starts_with("CHAP_") {
                self.seen.push(k.clone());
            }
        }
        // Declarations of our own.
        if self.params.session_type == SessionType::Normal && !self.declared_tpgt {
            if let Some(t) = &self.target {
                out.push(("TargetPortalGroupTag".into(), t.tpgt.to_string()));
                if !t.alias.is_empty() {
                    out.push(("TargetAlias".into(), t.alias.clone()));
                }
            }
            self.declared_tpgt = true;
        }
        // Our MaxRecvDataSegmentLength goes in the first response of the operational stage, never
        // in a security-stage one (CSG 0), even the one that agrees to move on: open-iscsi refuses
        // any operational key there ("can't accept MaxRecvDataSegmentLength in security stage")
        // and fails every CHAP login. An initiator that skips the operational stage keeps the
        // 8192-byte default, which is what the session assumes until this is sent.
        if self.stage == stage::OPERATIONAL && !self.declared_mrdsl {
            out.push((
                "MaxRecvDataSegmentLength".into(),
                self.limits.max_recv_data_segment_length.to_string(),
            ));
            self.params.max_recv_data_segment_length = self.limits.max_recv_data_segment_length;
            self.declared_mrdsl = true;
        }
        // Transit: agree when the initiator asks and the security stage is complete.
        let mut transit = false;
        let mut nsg = 0;
        if req.transit {
            let auth_ok =
                self.stage != stage::SECURITY || matches!(self.auth, Auth::None | Auth::Done);
            if auth_ok {
                transit = true;
                nsg = req.nsg;
            } else if matches!(self.auth, Auth::Pending) {
                return self.failure(LoginStatus::AUTHENTICATION_FAILURE);
            }
        }
        if transit && nsg == stage::FULL_FEATURE {
            if self.params.first_burst_length > self.params.max_burst_length {
                self.params.first_burst_length = self.params.max_burst_length;
            }
            match env.instate(&self.params) {
                Ok(tsih) => self.params.tsih = tsih,
                Err(st) => return self.failure(st),
            }
        }
        self.pending_out = text::encode(&out);
        self.pending_final = Some((transit, nsg));
        self.next_chunk(env)
    }

    fn auth_required(&self) -> bool {
        self.params.session_type == SessionType::Normal
            && self
                .target
                .as_ref()
                .map(|t| t.chap.required())
                .unwrap_or(false)
    }

    /// Send the next part of the pending response; the last part carries the real T/NSG.
    fn next_chunk(&mut self, _env: &mut dyn LoginEnv) -> LoginStep {
        let (transit, nsg) = self.pending_final.unwrap_or((false, 0));
        if self.pending_out.len() > LOGIN_MAX_DATA {
            let rest = self.pending_out.split_off(LOGIN_MAX_DATA);
            let chunk = std::mem::replace(&mut self.pending_out, rest);
            return LoginStep::Continue(self.response(false, 0, true, chunk));
        }
        let chunk = std::mem::take(&mut self.pending_out);
        self.pending_final = None;
        let pdu = self.response(transit, nsg, false, chunk);
        if transit {
            self.stage = nsg;
            if nsg == stage::FULL_FEATURE {
                let params = Box::new(self.params.clone());
                return LoginStep::Done(pdu, params, self.target.clone());
            }
        }
        LoginStep::Continue(pdu)
    }

    /// Keys of the first request: InitiatorName, SessionType, TargetName.
    fn first_keys(
        &mut self,
        keys: &[(String, String)],
        env: &mut dyn LoginEnv,
    ) -> Result<(), LoginStatus> {
        let get = |k: &str| keys.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let initiator = get("InitiatorName").ok_or(LoginStatus::MISSING_PARAMETER)?;
        if initiator.is_empty() {
            return Err(LoginStatus::MISSING_PARAMETER);
        }
        valid_name(initiator)?;
        self.params.initiator_name = initiator.to_string();
        self.params.initiator_alias = get("InitiatorAlias").map(str::to_string);
        self.params.session_type = match get("SessionType").unwrap_or("Normal") {
            "Normal" => SessionType::Normal,
            "Discovery" => SessionType::Discovery,
            _ => return Err(LoginStatus::SESSION_TYPE_NOT_SUPPORTED),
        };
        match self.params.session_type {
            SessionType::Normal => {
                let name = get("TargetName").ok_or(LoginStatus::MISSING_PARAMETER)?;
                valid_name(name)?;
                let t = env.find_target(name).ok_or(LoginStatus::TARGET_NOT_FOUND)?;
                self.params.target_name = Some(t.name.clone());
                self.target = Some(t);
            }
            SessionType::Discovery => {
                if self.params.tsih != 0 {
                    // Discovery sessions take no additional connections.
                    return Err(LoginStatus::SESSION_DOES_NOT_EXIST);
                }
            }
        }
        Ok(())
    }

    fn security(
        &mut self,
        keys: &[(String, String)],
        out: &mut Vec<(String, String)>,
        env: &mut dyn LoginEnv,
    ) -> Result<(), LoginStatus> {
        let get = |k: &str| keys.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if let Some(methods) = get("AuthMethod") {
            if !matches!(self.auth, Auth::Pending) {
                return Err(LoginStatus::INITIATOR_ERROR);
            }
            let offered: Vec<&str> = methods.split(',').collect();
            let required = self.auth_required();
            let have_secret = self
                .target
                .as_ref()
                .map(|t| t.chap.required())
                .unwrap_or(false);
            let choice = if required {
                offered.iter().find(|m| **m == "CHAP").copied()
            } else if offered.contains(&"None") {
                Some("None")
            } else if have_secret {
                offered.iter().find(|m| **m == "CHAP").copied()
            } else {
                None
            };
            match choice {
                Some("CHAP") => {
                    self.auth = Auth::ChapWaitAlg;
                    out.push(("AuthMethod".into(), "CHAP".into()));
                }
                Some(_) => {
                    self.auth = Auth::None;
                    out.push(("AuthMethod".into(), "None".into()));
                }
                None => return Err(LoginStatus::AUTHENTICATION_FAILURE),
            }
        }
        let chap_a = get("CHAP_A");
        let chap_n = get("CHAP_N");
        let chap_r = get("CHAP_R");
        match (&self.auth, chap_a, chap_n, chap_r) {
            (Auth::ChapWaitAlg, Some(algs), None, None) => {
                let alg = algs
                    .split(',')
                    .filter_map(text::parse_number)
                    .find_map(ChapAlg::from_number)
                    .ok_or(LoginStatus::AUTHENTICATION_FAILURE)?;
                let mut id = [0u8; 1];
                env.random(&mut id);
                let mut challenge = vec![0u8; alg.challenge_len()];
                env.random(&mut challenge);
                out.push(("CHAP_A".into(), alg.number().to_string()));
                out.push(("CHAP_I".into(), id[0].to_string()));
                out.push(("CHAP_C".into(), text::encode_hex(&challenge)));
                self.auth = Auth::ChapWaitResponse {
                    alg,
                    id: id[0],
                    challenge,
                };
            }
            (Auth::ChapWaitResponse { alg, id, challenge }, None, Some(n), Some(r)) => {
                let (alg, id, challenge) = (*alg, *id, challenge.clone());
                let target = self
                    .target
                    .clone()
                    .ok_or(LoginStatus::AUTHENTICATION_FAILURE)?;
                let resp = text::decode_binary(r).ok_or(LoginStatus::AUTHENTICATION_FAILURE)?;
                // A name no secret may authenticate is checked like a wrong secret (against a
                // throwaway one): same status, same work, so the answer does not tell which
                // of the two was wrong.
                let secret = target.chap.secret_for(&self.params.initiator_name, n);
                let verified = alg.verify(id, secret.unwrap_or(&[0; 16]), &challenge, &resp);
                if secret.is_none() || !verified {
                    return Err(LoginStatus::AUTHENTICATION_FAILURE);
                }
                self.params.chap_name = Some(n.to_string());
                // Mutual CHAP: the initiator challenges us back.
                match (get("CHAP_I"), get("CHAP_C")) {
                    (Some(i2), Some(c2)) => {
                        let i2 = text::parse_number(i2)
                            .filter(|v| *v <= 255)
                            .ok_or(LoginStatus::AUTHENTICATION_FAILURE)?
                            as u8;
                        let c2 =
                            text::decode_binary(c2).ok_or(LoginStatus::AUTHENTICATION_FAILURE)?;
                        // A reflected challenge would make us answer our own question.
                        if c2 == challenge || c2.is_empty() || c2.len() > 1024 {
                            return Err(LoginStatus::AUTHENTICATION_FAILURE);
                        }
                        let ms = target
                            .chap
                            .mutual_for(&self.params.initiator_name)
                            .ok_or(LoginStatus::AUTHENTICATION_FAILURE)?;
                        out.push(("CHAP_N".into(), target.name.clone()));
                        out.push((
                            "CHAP_R".into(),
                            text::encode_hex(&alg.response(i2, ms, &c2)),
                        ));
                    }
                    (None, None) => {}
                    _ => return Err(LoginStatus::AUTHENTICATION_FAILURE),
                }
                self.auth = Auth::Done;
            }
            (_, None, None, None) => {
                if get("CHAP_I").is_some() || get("CHAP_C").is_some() {
                    return Err(LoginStatus::AUTHENTICATION_FAILURE);
                }
            }
            _ => return Err(LoginStatus::AUTHENTICATION_FAILURE),
        }
        Ok(())
    }

    /// Answer every non-security key (declarative ones are recorded, negotiated ones get the
    /// result of their function, unknown ones NotUnderstood).
    fn operational(
        &mut self,
        keys: &[(String, String)],
        out: &mut Vec<(String, String)>,
    ) -> Result<(), LoginStatus> {
        let discovery = self.params.session_type == SessionType::Discovery;
        let l = self.limits.clone();
        for (k, v) in keys {
            let k = k.as_str();
            let answer: Option<String> = match k {
                "AuthMethod" | "CHAP_A" | "CHAP_I" | "CHAP_C" | "CHAP_N" | "CHAP_R" => {
                    if self.stage != stage::SECURITY {
                        return Err(LoginStatus::INITIATOR_ERROR);
                    }
                    None
                }
                "InitiatorName" | "SessionType" | "TargetName" | "InitiatorAlias" => None,
                "HeaderDigest" | "DataDigest" => {
                    let pick = v.split(',').find(|o| {
                        *o == "None" || (*o == "CRC32C" && l.allow_digests && !discovery)
                    });
                    match pick {
                        Some(p) => {
                            let on = p == "CRC32C";
                            if k == "HeaderDigest" {
                                self.params.header_digest = on;
                            } else {
                                self.params.data_digest = on;
                            }
                            Some(p.to_string())
                        }
                        None => Some("Reject".into()),
                    }
                }
                "MaxConnections" => num(v, 1, 65535).map(|_| {
                    self.params.max_connections = 1;
                    "1".to_string()
                }),
                "InitialR2T" if !discovery => text::parse_bool(v).map(|b| {
                    self.params.initial_r2t = b || l.initial_r2t;
                    text::bool_str(self.params.initial_r2t).to_string()
                }),
                "ImmediateData" if !discovery => text::parse_bool(v).map(|b| {
                    self.params.immediate_data = b && l.immediate_data;
                    text::bool_str(self.params.immediate_data).to_string()
                }),
                "MaxRecvDataSegmentLength" => match num(v, 512, (1 << 24) - 1) {
                    Some(n) => {
                        self.params.max_xmit_data_segment_length = n as u32;
                        // Declarative: no answer to the initiator's value.
                        continue;
                    }
                    None => Some("Reject".into()),
                },
                "MaxBurstLength" if !discovery => num(v, 512, (1 << 24) - 1).map(|n| {
                    self.params.max_burst_length = (n as u32).min(l.max_burst_length);
                    self.params.max_burst_length.to_string()
                }),
                "FirstBurstLength" if !discovery => num(v, 512, (1 << 24) - 1).map(|n| {
                    self.params.first_burst_length = (n as u32).min(l.first_burst_length);
                    self.params.first_burst_length.to_string()
                }),
                "DefaultTime2Wait" => num(v, 0, 3600).map(|n| {
                    self.params.default_time2wait = (n as u16).max(l.default_time2wait);
                    self.params.default_time2wait.to_string()
                }),
                "DefaultTime2Retain" => num(v, 0, 3600).map(|n| {
                    self.params.default_time2retain = (n as u16).min(l.default_time2retain);
                    self.params.default_time2retain.to_string()
                }),
                "MaxOutstandingR2T" if !discovery => num(v, 1, 65535).map(|n| {
                    self.params.max_outstanding_r2t = (n as u16).min(l.max_outstanding_r2t);
                    self.params.max_outstanding_r2t.to_string()
                }),
                "DataPDUInOrder" if !discovery => text::parse_bool(v).map(|_| {
                    // OR with our Yes: always in order.
                    self.params.data_pdu_in_order = true;
                    "Yes".to_string()
                }),
                "DataSequenceInOrder" if !discovery => text::parse_bool(v).map(|_| {
                    self.params.data_sequence_in_order = true;
                    "Yes".to_string()
                }),
                "ErrorRecoveryLevel" => num(v, 0, 2).map(|_| {
                    self.params.error_recovery_level = 0;
                    "0".to_string()
                }),
                "IFMarker" | "OFMarker" => text::parse_bool(v).map(|_| "No".to_string()),
                "IFMarkInt" | "OFMarkInt" => Some("Irrelevant".into()),
                "TaskReporting" => Some(
                    if v.split(',').any(|o| o == "RFC3720") {
                        "RFC3720"
                    } else {
                        "Reject"
                    }
                    .to_string(),
                ),
                "iSCSIProtocolLevel" => num(v, 0, 31).map(|n| n.min(1).to_string()),
                "InitialR2T"
                | "ImmediateData"
                | "MaxBurstLength"
                | "FirstBurstLength"
                | "MaxOutstandingR2T"
                | "DataPDUInOrder"
                | "DataSequenceInOrder" => Some("Irrelevant".into()),
                "TargetAlias" | "TargetAddress" | "TargetPortalGroupTag" | "SendTargets" => {
                    Some("Irrelevant".into())
                }
                _ => Some("NotUnderstood".into()),
            };
            let answer = answer.unwrap_or_else(|| "Reject".to_string());
            let answer = match k {
                "AuthMethod" | "CHAP_A" | "CHAP_I" | "CHAP_C" | "CHAP_N" | "CHAP_R"
                | "InitiatorName" | "SessionType" | "TargetName" | "InitiatorAlias" => continue,
                _ => answer,
            };
            out.push((k.to_string(), answer));
        }
        Ok(())
    }
}

/// An InitiatorName or TargetName must be an iSCSI name (RFC 7143 §4.2.7: `iqn.`, `eui.` or
/// `naa.` format, at most 223 bytes, after stringprep only a-z, 0-9, '-', '.' and ':'). Names
/// are case-folded first, as stringprep would; names outside ASCII are refused (vds compares
/// names byte for byte). A malformed one is the initiator's error (0x0200): it is not missing
/// (0x0207), and a TargetName that cannot be a name is not merely unknown (0x0203).
fn valid_name(name: &str) -> Result<(), LoginStatus> {
    vds_model::validate_iscsi_name(&name.to_ascii_lowercase())
        .map_err(|_| LoginStatus::INITIATOR_ERROR)
}

fn num(v: &str, lo: u64, hi: u64) -> Option<u64> {
    text::parse_number(v).filter(|n| (lo..=hi).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::LoginResponse;

    struct Env {
        target: Option<LoginTarget>,
        next_tsih: u16,
        instated: Vec<SessionParams>,
    }
    impl LoginEnv for Env {
        fn find_target(&mut self, name: &str) -> Option<LoginTarget> {
            self.target.clone().filter(|t| t.name == name)
        }
        fn instate(&mut self, p: &SessionParams) -> Result<u16, LoginStatus> {
            self.instated.push(p.clone());
            if p.tsih != 0 {
                return Err(LoginStatus::SESSION_DOES_NOT_EXIST);
            }
            self.next_tsih += 1;
            Ok(self.next_tsih)
        }
        fn random(&mut self, buf: &mut [u8]) {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = i as u8 + 1;
            }
        }
    }

    fn env(chap: ChapSecrets) -> Env {
        Env {
            target: Some(LoginTarget {
                name: "iqn.2026-01.test:t".into(),
                alias: "".into(),
                tpgt: 1,
                chap,
            }),
            next_tsih: 0,
            instated: vec![],
        }
    }

    fn req(csg: u8, nsg: u8, transit: bool) -> LoginRequest {
        LoginRequest {
            transit,
            cont: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0, 0, 0, 0, 1],
            tsih: 0,
            itt: 1,
            cid: 0,
            cmd_sn: 10,
            exp_stat_sn: 0,
        }
    }

    fn keys(p: &Pdu) -> Vec<(String, String)> {
        text::parse(&p.data).unwrap()
    }
    fn resp(p: &Pdu) -> &LoginResponse {
        match &p.header {
            Header::LoginResponse(r) => r,
            _ => panic!("not a login response"),
        }
    }
    fn val<'a>(k: &'a [(String, String)], key: &str) -> Option<&'a str> {
        k.iter().find(|(n, _)| n == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn no_auth_login_negotiates_operational_keys() {
        let mut e = env(ChapSecrets::default());
        let mut l = Login::new(TargetLimits::default());
        let step = l.handle(
            &req(0, 1, true),
            b"InitiatorName=iqn.2026-01.test:i\0TargetName=iqn.2026-01.test:t\0AuthMethod=None\0",
            &mut e,
        );
        let LoginStep::Continue(p) = step else {
            panic!("{step:?}")
        };
        let k = keys(&p);
        assert_eq!(val(&k, "AuthMethod"), Some("None"));
        assert_eq!(val(&k, "TargetPortalGroupTag"), Some("1"));
        assert!(resp(&p).transit);
        assert_eq!(resp(&p).nsg, 1);
        let step = l.handle(
            &req(1, 3, true),
            b"HeaderDigest=CRC32C,None\0DataDigest=None\0InitialR2T=No\0ImmediateData=Yes\0\
MaxBurstLength=16776192\0FirstBurstLength=16776192\0MaxRecvDataSegmentLength=65536\0\
MaxOutstandingR2T=4\0ErrorRecoveryLevel=2\0X-com.example=1\0DefaultTime2Wait=0\0",
            &mut e,
        );
        let LoginStep::Done(p, params, _) = step else {
            panic!("{step:?}")
        };
        let k = keys(&p);
        assert_eq!(val(&k, "HeaderDigest"), Some("CRC32C"));
        assert_eq!(val(&k, "InitialR2T"), Some("No"));
        assert_eq!(val(&k, "MaxBurstLength"), Some("1048576"));
        assert_eq!(val(&k, "FirstBurstLength"), Some("262144"));
        assert_eq!(val(&k, "ErrorRecoveryLevel"), Some("0"));
        assert_eq!(val(&k, "X-com.example"), Some("NotUnderstood"));
        assert_eq!(val(&k, "DefaultTime2Wait"), Some("2"));
        assert_eq!(val(&k, "MaxOutstandingR2T"), Some("4"));
        assert_eq!(resp(&p).tsih, 1);
        assert!(params.header_digest && !params.data_digest);
        assert_eq!(params.max_xmit_data_segment_length, 65536);
        assert_eq!(params.exp_cmd_sn, 10);
    }

    #[test]
    fn failures_carry_the_right_status() {
        let cases: &[(&[u8], LoginStatus)] = &[
            (
                b"TargetName=iqn.2026-01.test:t\0",
                LoginStatus::MISSING_PARAMETER,
            ),
            (
                b"InitiatorName=iqn.2026-01.test:i\0",
                LoginStatus::MISSING_PARAMETER,
            ),
            (
                b"InitiatorName=iqn.2026-01.test:i\0TargetName=iqn.2026-01.test:nope\0",
                LoginStatus::TARGET_NOT_FOUND,
            ),
            (
                b"InitiatorName=iqn.2026-01.test:i\0SessionType=Weird\0",
                LoginStatus::SESSION_TYPE_NOT_SUPPORTED,
            ),
            (b"garbage", LoginStatus::INITIATOR_ERROR),
            (
                b"InitiatorName=iqn.2026-01.test:i\0InitiatorName=iqn.2026-01.test:i\0",
                LoginStatus::INITIATOR_ERROR,
            ),
        ];
        for (data, want) in cases {
            let mut e = env(ChapSecrets::default());
            let mut l = Login::new(TargetLimits::default());
            match l.handle(&req(0, 1, true), data, &mut e) {
                LoginStep::Fail(p, st) => {
                    assert_eq!(st, *want, "{:?}", String::from_utf8_lossy(data));
                    assert_eq!(resp(&p).status_class, want.class());
                    assert_eq!(resp(&p).status_detail, want.detail());
                }
                other => panic!("{other:?}"),
            }
        }
        let mut e = env(ChapSecrets::default());
        let mut l = Login::new(TargetLimits::default());
        let mut r = req(0, 1, true);
        r.version_min = 2;
        assert!(matches!(
            l.handle(&r, b"InitiatorName=i\0", &mut e),
            LoginStep::Fail(_, LoginStatus::UNSUPPORTED_VERSION)
        ));
    }

    fn chap_login(secret_used: &[u8], mutual: bool) -> LoginStep {
        let chap = ChapSecrets {
            default_secret: Some(b"target-secret1".to_vec()),
            initiator_secrets: vec![],
            mutual_secrets: vec![("".into(), b"initiator-sec1".to_vec())],
        };
        chap_login_as(chap, "iqn.2026-01.test:i", "user", secret_used, mutual)
    }

    /// A CHAP login by InitiatorName `initiator` answering the challenge as `chap_n` with
    /// `secret_used`; returns the step after CHAP_N/CHAP_R.
    fn chap_login_as(
        chap: ChapSecrets,
        initiator: &str,
        chap_n: &str,
        secret_used: &[u8],
        mutual: bool,
    ) -> LoginStep {
        let mut e = env(chap);
        let mut l = Login::new(TargetLimits::default());
        let first = format!(
            "InitiatorName={initiator}\0TargetName=iqn.2026-01.test:t\0AuthMethod=CHAP,None\0"
        );
        let LoginStep::Continue(p) = l.handle(&req(0, 1, false), first.as_bytes(), &mut e) else {
            panic!()
        };
        assert_eq!(val(&keys(&p), "AuthMethod"), Some("CHAP"));
        let LoginStep::Continue(p) = l.handle(&req(0, 1, false), b"CHAP_A=7,5\0", &mut e) else {
            panic!()
        };
        let k = keys(&p);
        assert_eq!(val(&k, "CHAP_A"), Some("7"));
        let id: u8 = val(&k, "CHAP_I").unwrap().parse().unwrap();
        let c = text::decode_binary(val(&k, "CHAP_C").unwrap()).unwrap();
        let r = ChapAlg::Sha256.response(id, secret_used, &c);
        let mut data = format!("CHAP_N={chap_n}\0CHAP_R={}\0", text::encode_base64(&r));
        if mutual {
            data.push_str("CHAP_I=77\0CHAP_C=0x0102030405060708\0");
        }
        l.handle(&req(0, 1, true), data.as_bytes(), &mut e)
    }

    #[test]
    fn chap_one_way_and_mutual() {
        match chap_login(b"target-secret1", false) {
            LoginStep::Continue(p) => assert!(resp(&p).transit),
            other => panic!("{other:?}"),
        }
        match chap_login(b"target-secret1", true) {
            LoginStep::Continue(p) => {
                let k = keys(&p);
                assert_eq!(val(&k, "CHAP_N"), Some("iqn.2026-01.test:t"));
                let want =
                    ChapAlg::Sha256.response(77, b"initiator-sec1", &[1, 2, 3, 4, 5, 6, 7, 8]);
                assert_eq!(
                    text::decode_binary(val(&k, "CHAP_R").unwrap()).unwrap(),
                    want
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            chap_login(b"wrong-secret11", false),
            LoginStep::Fail(_, LoginStatus::AUTHENTICATION_FAILURE)
        ));
    }

    /// Issue 12 (found with the Linux kernel initiator): a security-stage response carries
    /// only security keys, even the one that agrees to leave the security stage; our
    /// MaxRecvDataSegmentLength comes in the first operational-stage response.
    #[test]
    fn security_stage_responses_carry_only_security_keys() {
        const SECURITY: [&str; 8] = [
            "AuthMethod",
            "CHAP_A",
            "CHAP_I",
            "CHAP_C",
            "CHAP_N",
            "CHAP_R",
            "TargetPortalGroupTag",
            "TargetAlias",
        ];
        for mutual in [false, true] {
            let chap = ChapSecrets {
                default_secret: Some(b"target-secret1".to_vec()),
                initiator_secrets: vec![],
                mutual_secrets: vec![("".into(), b"initiator-sec1".to_vec())],
            };
            let mut e = env(chap.clone());
            let mut l = Login::new(TargetLimits::default());
            let first =
                "InitiatorName=iqn.2026-01.test:i\0TargetName=iqn.2026-01.test:t\0AuthMethod=CHAP,None\0";
            let mut steps = Vec::new();
            for (r, data) in [
                (req(0, 1, false), first.to_string()),
                (req(0, 1, false), "CHAP_A=5\0".to_string()),
            ] {
                match l.handle(&r, data.as_bytes(), &mut e) {
                    LoginStep::Continue(p) => steps.push(p),
                    other => panic!("{other:?}"),
                }
            }
            let k = keys(&steps[1]);
            let id: u8 = val(&k, "CHAP_I").unwrap().parse().unwrap();
            let c = text::decode_binary(val(&k, "CHAP_C").unwrap()).unwrap();
            let r = ChapAlg::Md5.response(id, b"target-secret1", &c);
            let mut data = format!("CHAP_N=user\0CHAP_R={}\0", text::encode_hex(&r));
            if mutual {
                data.push_str("CHAP_I=77\0CHAP_C=0x0102030405060708\0");
            }
            let p = match l.handle(&req(0, 1, true), data.as_bytes(), &mut e) {
                LoginStep::Continue(p) => p,
                other => panic!("{other:?}"),
            };
            assert!(
                resp(&p).transit,
                "the target agrees to leave the security stage"
            );
            steps.push(p);
            for p in &steps {
                assert_eq!(resp(p).csg, 0);
                for (key, _) in keys(p) {
                    assert!(
                        SECURITY.contains(&key.as_str()),
                        "{key} in a security-stage response (mutual {mutual})"
                    );
                }
            }
            let op = "HeaderDigest=None\0DataDigest=None\0MaxRecvDataSegmentLength=65536\0";
            let p = match l.handle(&req(1, 3, true), op.as_bytes(), &mut e) {
                LoginStep::Done(p, ..) => p,
                other => panic!("{other:?}"),
            };
            assert_eq!(resp(&p).csg, 1);
            assert_eq!(
                val(&keys(&p), "MaxRecvDataSegmentLength"),
                Some(
                    TargetLimits::default()
                        .max_recv_data_segment_length
                        .to_string()
                        .as_str()
                )
            );
        }
    }

    /// Issue 10 item 5: a per-initiator secret authenticates only the InitiatorName it was set
    /// for, and only with CHAP_N equal to that name; the target-wide secret does not stand in
    /// for an initiator that has its own. Every refusal is the same 0x0201.
    #[test]
    fn chap_secret_is_bound_to_its_initiator_name() {
        const A: &str = "iqn.2026-01.test:a";
        const B: &str = "iqn.2026-01.test:b";
        const C: &str = "iqn.2026-01.test:c";
        let own = ChapSecrets {
            default_secret: None,
            initiator_secrets: vec![
                (A.into(), b"secret-of-a-1".to_vec()),
                (B.into(), b"secret-of-b-1".to_vec()),
            ],
            mutual_secrets: vec![],
        };
        let with_default = ChapSecrets {
            default_secret: Some(b"target-wide-1".to_vec()),
            ..own.clone()
        };
        // (initiator, CHAP_N, secret proved, logged in with `own`, with `with_default`)
        let cases: &[(&str, &str, &[u8], bool, bool)] = &[
            // Each initiator with its own secret, under its own name (case-folded).
            (A, A, b"secret-of-a-1", true, true),
            (B, B, b"secret-of-b-1", true, true),
            (B, "IQN.2026-01.TEST:B", b"secret-of-b-1", true, true),
            // A's secret cannot log in as B: not with CHAP_N = A, not with CHAP_N = B.
            (B, A, b"secret-of-a-1", false, false),
            (B, B, b"secret-of-a-1", false, false),
            // B's own secret under another CHAP_N is refused too.
            (B, "user", b"secret-of-b-1", false, false),
            // The target-wide secret does not authenticate an initiator with its own.
            (B, B, b"target-wide-1", false, false),
            // An initiator without a secret of its own cannot borrow A's.
            (C, A, b"secret-of-a-1", false, false),
            (C, C, b"secret-of-a-1", false, false),
            // It proves the target-wide secret, when there is one, under any CHAP_N except
            // another initiator's name.
            (C, "user", b"target-wide-1", false, true),
            (C, C, b"target-wide-1", false, true),
            (C, A, b"target-wide-1", false, false),
        ];
        for &(initiator, chap_n, secret, with_own, with_both) in cases {
            for (chap, want) in [(&own, with_own), (&with_default, with_both)] {
                let step = chap_login_as(chap.clone(), initiator, chap_n, secret, false);
                let got = match step {
                    LoginStep::Continue(p) if resp(&p).transit => true,
                    LoginStep::Fail(_, LoginStatus::AUTHENTICATION_FAILURE) => false,
                    other => panic!("{initiator} as {chap_n}: {other:?}"),
                };
                let case = String::from_utf8_lossy(secret);
                assert_eq!(got, want, "{initiator} as {chap_n} with {case}, {chap:?}");
            }
        }
        // Mutual CHAP answers with the secret remembered for the InitiatorName, and only once
        // that initiator has proved its own secret.
        let mutual = ChapSecrets {
            mutual_secrets: vec![
                (A.into(), b"target-to-a-1".to_vec()),
                (B.into(), b"target-to-b-1".to_vec()),
            ],
            ..own.clone()
        };
        match chap_login_as(mutual.clone(), B, B, b"secret-of-b-1", true) {
            LoginStep::Continue(p) => {
                let k = keys(&p);
                let want =
                    ChapAlg::Sha256.response(77, b"target-to-b-1", &[1, 2, 3, 4, 5, 6, 7, 8]);
                assert_eq!(
                    text::decode_binary(val(&k, "CHAP_R").unwrap()).unwrap(),
                    want
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            chap_login_as(mutual, B, A, b"secret-of-a-1", true),
            LoginStep::Fail(_, LoginStatus::AUTHENTICATION_FAILURE)
        ));
    }

    /// Issue 10 item 9: InitiatorName and TargetName are iSCSI names (RFC 7143 §4.2.7); a
    /// malformed one is refused with 0x0200 before anything else is looked at. The names real
    /// initiators send by default pass.
    #[test]
    fn login_names_are_validated() {
        let login = |initiator: &str, target: &str| {
            let mut e = env(ChapSecrets::default());
            e.target.as_mut().unwrap().name = target.to_string();
            let mut l = Login::new(TargetLimits::default());
            let data = format!("InitiatorName={initiator}\0TargetName={target}\0AuthMethod=None\0");
            match l.handle(&req(0, 1, true), data.as_bytes(), &mut e) {
                LoginStep::Continue(_) => Ok(()),
                LoginStep::Fail(_, st) => Err(st),
                other => panic!("{other:?}"),
            }
        };
        let t = "iqn.2026-11.local.vds:default";
        for good in [
            "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",
            "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2",
            "iqn.2010-11.libiscsi:iscsi-perf",
            "iqn.2004-10.com.ubuntu:01:5f3a6b2c1d",
            "iqn.1994-05.com.redhat:4b1e8f2a9c3d",
            "iqn.1991-05.com.microsoft:HOST-01.example.com",
            "iqn.1998-01.com.vmware:esx01-1a2b3c4d",
            "iqn.2026-11.test:initiator",
            "eui.02004567A425678D",
            "naa.52004567BA64678D",
            "naa.62004567BA64678D0123456789ABCDEF",
        ] {
            assert_eq!(login(good, t), Ok(()), "{good}");
        }
        let long = format!("iqn.2026-01.test:{}", "x".repeat(223 - 17));
        assert_eq!(long.len(), 223);
        assert_eq!(login(&long, t), Ok(()));
        let too_long = format!("{long}x");
        for bad in [
            too_long.as_str(),
            "i",
            "iqn.i",
            "iqn.2026-13.test:x",
            "iqn.2026-01.test:a b",
            "iqn.2026-01.test:a_b",
            "iqn.2026-01.test:a/b",
            "iqn.2026-01.tëst:x",
            "eui.0200",
            "eui.02004567A425678G",
            "naa.6001",
            "foo.2026-01.test:x",
        ] {
            assert_eq!(login(bad, t), Err(LoginStatus::INITIATOR_ERROR), "{bad}");
        }
        // The same rule for the TargetName (checked before the lookup).
        assert_eq!(
            login("iqn.2026-01.test:i", "iqn.2026-01.test:t_1"),
            Err(LoginStatus::INITIATOR_ERROR)
        );
        assert_eq!(
            login("iqn.2026-01.test:i", "IQN.2026-11.LOCAL.VDS:DEFAULT"),
            Ok(())
        );
    }

    #[test]
    fn chap_secrets_debug_hides_the_secrets() {
        let chap = ChapSecrets {
            default_secret: Some(b"default-sekrit".to_vec()),
            initiator_secrets: vec![("iqn.2026-01.test:a".into(), b"initiator-sekrit".to_vec())],
            mutual_secrets: vec![("".into(), b"mutual-sekrit".to_vec())],
        };
        let target = LoginTarget {
            name: "iqn.2026-01.test:t".into(),
            alias: String::new(),
            tpgt: 1,
            chap,
        };
        let shown = format!("{target:?} {target:#?}");
        assert!(!shown.contains("sekrit"), "{shown}");
        for bytes in [
            &b"default-sekrit"[..],
            b"initiator-sekrit",
            b"mutual-sekrit",
        ] {
            assert!(!shown.contains(&format!("{bytes:?}")), "{shown}");
        }
        assert!(shown.contains("iqn.2026-01.test:a"), "{shown}");
    }

    #[test]
    fn chap_required_refuses_auth_none_and_skipping_security() {
        let chap = ChapSecrets {
            default_secret: Some(b"target-secret1".to_vec()),
            ..Default::default()
        };
        let mut e = env(chap.clone());
        let mut l = Login::new(TargetLimits::default());
        assert!(matches!(
            l.handle(
                &req(0, 1, true),
                b"InitiatorName=iqn.2026-01.test:i\0TargetName=iqn.2026-01.test:t\0AuthMethod=None\0",
                &mut e
            ),
            LoginStep::Fail(_, LoginStatus::AUTHENTICATION_FAILURE)
        ));
        let mut e = env(chap);
        let mut l = Login::new(TargetLimits::default());
        assert!(matches!(
            l.handle(
                &req(1, 3, true),
                b"InitiatorName=iqn.2026-01.test:i\0TargetName=iqn.2026-01.test:t\0",
                &mut e
            ),
            LoginStep::Fail(_, LoginStatus::AUTHENTICATION_FAILURE)
        ));
    }

    #[test]
    fn continued_request_is_gathered() {
        let mut e = env(ChapSecrets::default());
        let mut l = Login::new(TargetLimits::default());
        let mut r = req(1, 3, false);
        r.cont = true;
        let LoginStep::Continue(p) =
            l.handle(&r, b"InitiatorName=iqn.2026-01.test:i\0TargetNa", &mut e)
        else {
            panic!()
        };
        assert!(p.data.is_empty());
        let r = req(1, 3, true);
        assert!(matches!(
            l.handle(&r, b"me=iqn.2026-01.test:t\0", &mut e),
            LoginStep::Done(..)
        ));
    }

    #[test]
    fn discovery_needs_no_target_name() {
        let mut e = env(ChapSecrets::default());
        let mut l = Login::new(TargetLimits::default());
        let step = l.handle(
            &req(1, 3, true),
            b"InitiatorName=iqn.2026-01.test:i\0SessionType=Discovery\0MaxBurstLength=512\0",
            &mut e,
        );
        let LoginStep::Done(p, params, t) = step else {
            panic!()
        };
        assert!(t.is_none());
        assert_eq!(params.session_type, SessionType::Discovery);
        assert_eq!(val(&keys(&p), "MaxBurstLength"), Some("Irrelevant"));
    }
}
