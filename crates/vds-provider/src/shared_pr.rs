//! Persistent reservations shared by every gateway (docs/SCALEOUT.md "Persistent reservations
//! across gateways"; BEHAVIOUR.md "Several gateways, one subsystem").
//!
//! Each LUN's reservation state lives in its own RADOS object, `vds.<subsystem>.pr.<lun>`: the
//! key `state` (the LU's opaque blob), the key `uas` (the unit attentions the last change
//! raised, by I_T nexus) and the object's `version`, changed only by compare-and-set
//! ([`ConfigObject::update`]). A PERSISTENT RESERVE OUT on any gateway is computed from the
//! state its LU holds, stored from that state's version, and then notified with the whole new
//! record as payload; every gateway's watch installs it into its own LU before acknowledging,
//! so when the notify returns every gateway enforces it. A gateway that does not acknowledge in
//! time (dead, cut off) is blocklisted (its RADOS address from the `gw/<name>` record it wrote
//! in the config object at start) before the command completes: it can no longer write, and
//! its commands fail. A lost race answers the winner's state; the LU installs it and computes
//! the command again.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use uuid::Uuid;
use vds_backstore::rados::{ConfigObject, Watch};
use vds_backstore::rbd::Cluster;
use vds_scsi::{LogicalUnit, PrChange, PrUnitAttention, SharedPr};

use crate::cluster::ClusterCtx;
use crate::VdsError;

/// The key of the state blob.
const STATE_KEY: &str = "state";
/// The key of the last change's unit attentions.
const UAS_KEY: &str = "uas";
/// The prefix of the gateways' address records in the config object.
const GATEWAY_PREFIX: &str = "gw/";
/// How long a change waits for every gateway's acknowledgement before fencing the silent ones.
const NOTIFY_TIMEOUT_MS: u64 = 5000;
/// How long a fenced gateway stays blocklisted (it must restart as a new RADOS client anyway).
const FENCE_FOR: Duration = Duration::from_secs(3600);
/// Strings in a record are at most this long (an initiator or target port name is < 300).
const MAX_NAME: usize = 1024;
/// At most this many unit attentions in a record.
const MAX_UAS: usize = 4096;
/// The payload of a LOGICAL UNIT RESET notify: this prefix, then the notifier's RADOS id.
const RESET_PREFIX: &[u8] = b"vds-reset ";
/// How long a reset waits for the other gateways to raise its unit attention.
const RESET_TIMEOUT_MS: u64 = 3000;

/// One LUN's shared reservations on this gateway.
struct Entry {
    lu: Weak<LogicalUnit>,
    object: Arc<ConfigObject>,
    _watch: Watch,
}

/// The reservations of every LUN this gateway serves, kept in RADOS.
pub(crate) struct SharedReservations {
    cluster: Arc<Cluster>,
    pool: String,
    subsystem: Uuid,
    config: Arc<ConfigObject>,
    entries: Mutex<HashMap<Uuid, Entry>>,
}

fn io_err(what: &str, e: &io::Error) -> VdsError {
    VdsError::new(
        vds_model::Hresult::VDS_E_IO_ERROR,
        format!("shared reservations: {what}: {e}"),
    )
}

impl SharedReservations {
    /// The reservations of the gateway of `ctx`; records the gateway's RADOS id and address
    /// (`gw/<name>`), which another gateway fences it by.
    pub(crate) fn open(ctx: &ClusterCtx) -> Result<Arc<SharedReservations>, VdsError> {
        let cluster = vds_backstore::rbd::cluster().map_err(|e| io_err("the cluster", &e))?;
        let addr = cluster
            .address()
            .map_err(|e| io_err("this gateway's address", &e))?;
        let record = format!("{} {addr}", cluster.instance_id());
        ctx.object
            .set(&[(
                format!("{GATEWAY_PREFIX}{}", ctx.config.gateway),
                record.into_bytes(),
            )])
            .map_err(|e| io_err("recording this gateway's address", &e))?;
        Ok(Arc::new(SharedReservations {
            cluster,
            pool: ctx.config.pool.clone(),
            subsystem: ctx.subsystem,
            config: ctx.object.clone(),
            entries: Mutex::new(HashMap::new()),
        }))
    }

    fn oid(&self, lun: Uuid) -> String {
        format!("vds.{}.pr.{lun}", self.subsystem)
    }

    /// Serves `lu`'s reservations from RADOS: its object made if missing, watched, and the
    /// state in it installed. Called for every LU this gateway makes; the newest LU of a LUN
    /// is the one kept (it inherited the old one's state). Entries of LUs gone are dropped.
    pub(crate) fn attach(self: &Arc<Self>, lu: &Arc<LogicalUnit>) -> Result<(), VdsError> {
        let lun = lu.id();
        let object = ConfigObject::open(&self.cluster, &self.pool, &self.oid(lun))
            .map_err(|e| io_err(&format!("the object of LUN {lun}"), &e))?;
        object
            .create()
            .map_err(|e| io_err(&format!("creating the object of LUN {lun}"), &e))?;
        let weak = Arc::downgrade(self);
        let watch = object
            .watch(move |payload| {
                if let Some(me) = weak.upgrade() {
                    me.on_notify(lun, payload);
                }
            })
            .map_err(|e| io_err(&format!("watching the object of LUN {lun}"), &e))?;
        let object = Arc::new(object);
        {
            let mut entries = self.entries.lock();
            entries.retain(|_, e| e.lu.strong_count() > 0);
            entries.insert(
                lun,
                Entry {
                    lu: Arc::downgrade(lu),
                    object: object.clone(),
                    _watch: watch,
                },
            );
        }
        // What the cluster holds now (a change after this is notified to the watch above).
        let (version, state, uas) = read_record(&object)
            .map_err(|e| io_err(&format!("reading the object of LUN {lun}"), &e))?;
        lu.install_shared_reservations(version, &state, &uas)
            .map_err(|e| io_err(&format!("the state of LUN {lun}"), &io::Error::other(e)))?;
        Ok(())
    }

    /// A notify on a LUN's object, acted on before the acknowledgement: a reset on another
    /// gateway (its unit attention raised here), or the new reservation record (installed).
    fn on_notify(&self, lun: Uuid, payload: &[u8]) {
        let Some(lu) = self.entries.lock().get(&lun).and_then(|e| e.lu.upgrade()) else {
            return;
        };
        if let Some(from) = payload.strip_prefix(RESET_PREFIX) {
            // The gateway that was asked has reset its own LU already.
            if from != self.cluster.instance_id().to_string().as_bytes() {
                lu.reset(None);
            }
            return;
        }
        match decode_record(payload) {
            Some((version, state, uas)) => {
                if let Err(e) = lu.install_shared_reservations(version, &state, &uas) {
                    tracing::error!(lun = %lun, error = %e, "a notified reservation state is unreadable");
                }
            }
            None => tracing::warn!(lun = %lun, "a malformed reservation notify was ignored"),
        }
    }

    /// [`vds_scsi::LuEvents::reset_elsewhere`]: every other gateway serving LUN `lun` raises
    /// the reset's unit attention before it acknowledges; a gateway silent past the timeout is
    /// left to the ownership and reservation fencing (a reset changes no shared state).
    pub(crate) fn reset_elsewhere(&self, lun: Uuid) {
        let Some(object) = self.entries.lock().get(&lun).map(|e| e.object.clone()) else {
            return;
        };
        let mut payload = RESET_PREFIX.to_vec();
        payload.extend_from_slice(self.cluster.instance_id().to_string().as_bytes());
        match object.notify_all(&payload, RESET_TIMEOUT_MS) {
            Ok(r) if r.timed_out.is_empty() => {}
            Ok(r) => {
                tracing::warn!(lun = %lun, silent = ?r.timed_out, "a LUN reset was not acknowledged by every gateway in time")
            }
            Err(e) => {
                tracing::warn!(lun = %lun, error = %e, "a LUN reset could not be told to the other gateways")
            }
        }
    }

    /// [`vds_scsi::LuEvents::share_reservations`] for this gateway.
    pub(crate) fn share(&self, lun: Uuid, change: &PrChange<'_>) -> SharedPr {
        let object = match self.entries.lock().get(&lun) {
            Some(e) => e.object.clone(),
            None => {
                return SharedPr::Failed(io::Error::other(format!(
                    "LUN {lun} is not served by this gateway"
                )))
            }
        };
        let set = [
            (STATE_KEY.to_string(), change.state.to_vec()),
            (UAS_KEY.to_string(), encode_uas(change.uas)),
        ];
        let version = match object.update(change.base, &set, &[]) {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => {
                return match read_record(&object) {
                    Ok((version, state, _)) => SharedPr::Stale { version, state },
                    Err(e) => SharedPr::Failed(e),
                }
            }
            Err(e) => return SharedPr::Failed(e),
        };
        let payload = encode_record(version, change.state, change.uas);
        match object.notify_all(&payload, NOTIFY_TIMEOUT_MS) {
            Ok(reply) if reply.timed_out.is_empty() => SharedPr::Committed { version },
            Ok(reply) => {
                let silent: Vec<u64> = reply.timed_out.iter().map(|(gid, _)| *gid).collect();
                match self.fence(&silent) {
                    Ok(()) => SharedPr::Committed { version },
                    Err(e) => SharedPr::Failed(e),
                }
            }
            Err(e) => SharedPr::Failed(e),
        }
    }

    /// Blocklists the gateways whose RADOS ids are `gids` (they did not acknowledge a change
    /// in time), and waits until the blocklist is in force.
    fn fence(&self, gids: &[u64]) -> io::Result<()> {
        let records = self.config.read_all()?;
        for gid in gids {
            let addr = records
                .iter()
                .filter(|(k, _)| k.starts_with(GATEWAY_PREFIX))
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .filter_map(|v| v.split_once(' '))
                .find(|(g, _)| g.parse::<u64>().ok() == Some(*gid))
                .map(|(_, a)| a.to_string());
            let Some(addr) = addr else {
                return Err(io::Error::other(format!(
                    "client.{gid} did not acknowledge a reservation change and is no known gateway"
                )));
            };
            tracing::warn!(client = gid, %addr, "a gateway did not acknowledge a reservation change in time: blocklisted");
            self.cluster.blocklist(&addr, FENCE_FOR)?;
        }
        self.cluster.wait_for_latest_osdmap()
    }
}

/// The version, state and unit attentions an object holds.
fn read_record(object: &ConfigObject) -> io::Result<(u64, Vec<u8>, Vec<PrUnitAttention>)> {
    let snap = object.read()?;
    let state = snap.keys.get(STATE_KEY).cloned().unwrap_or_default();
    let uas = match snap.keys.get(UAS_KEY) {
        Some(b) => decode_uas(b, &mut 0).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "malformed unit attentions")
        })?,
        None => Vec::new(),
    };
    Ok((snap.version, state, uas))
}

fn put_str(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(&(s.len() as u32).to_be_bytes());
    v.extend_from_slice(s.as_bytes());
}

fn take<'a>(b: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = b.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(s)
}

fn take_u32(b: &[u8], at: &mut usize) -> Option<u32> {
    Some(u32::from_be_bytes(take(b, at, 4)?.try_into().ok()?))
}

fn take_str(b: &[u8], at: &mut usize) -> Option<String> {
    let n = take_u32(b, at)? as usize;
    if n > MAX_NAME {
        return None;
    }
    String::from_utf8(take(b, at, n)?.to_vec()).ok()
}

/// `u32 count`, then per unit attention `str initiator port, str target port, u8 asc, u8
/// ascq` (`str` = `u32 len` + UTF-8; big-endian).
fn encode_uas(uas: &[PrUnitAttention]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(uas.len() as u32).to_be_bytes());
    for ua in uas {
        put_str(&mut v, &ua.initiator_port);
        put_str(&mut v, &ua.target_port);
        v.push(ua.asc);
        v.push(ua.ascq);
    }
    v
}

fn decode_uas(b: &[u8], at: &mut usize) -> Option<Vec<PrUnitAttention>> {
    let n = take_u32(b, at)? as usize;
    if n > MAX_UAS {
        return None;
    }
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let initiator_port = take_str(b, at)?;
        let target_port = take_str(b, at)?;
        let c = take(b, at, 2)?;
        out.push(PrUnitAttention {
            initiator_port,
            target_port,
            asc: c[0],
            ascq: c[1],
        });
    }
    Some(out)
}

/// A notify's payload: `u64 version, u32 len, state, unit attentions` (big-endian).
fn encode_record(version: u64, state: &[u8], uas: &[PrUnitAttention]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + state.len());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&(state.len() as u32).to_be_bytes());
    v.extend_from_slice(state);
    v.extend_from_slice(&encode_uas(uas));
    v
}

/// The inverse of [`encode_record`]; `None` for anything malformed or with bytes left over.
fn decode_record(b: &[u8]) -> Option<(u64, Vec<u8>, Vec<PrUnitAttention>)> {
    let mut at = 0;
    let version = u64::from_be_bytes(take(b, &mut at, 8)?.try_into().ok()?);
    let n = take_u32(b, &mut at)? as usize;
    let state = take(b, &mut at, n)?.to_vec();
    let uas = decode_uas(b, &mut at)?;
    (at == b.len()).then_some((version, state, uas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua(i: &str, t: &str) -> PrUnitAttention {
        PrUnitAttention {
            initiator_port: i.into(),
            target_port: t.into(),
            asc: 0x2A,
            ascq: 0x05,
        }
    }

    #[test]
    fn records_round_trip_and_malformed_ones_are_refused() {
        let uas = vec![
            ua("iqn.a,i,0x1", "iqn.t,t,0x1"),
            ua("iqn.b,i,0x2", "iqn.t,t,0x2"),
        ];
        let b = encode_record(7, b"blob", &uas);
        assert_eq!(decode_record(&b), Some((7, b"blob".to_vec(), uas.clone())));
        for n in 0..b.len() {
            assert_eq!(decode_record(&b[..n]), None, "cut at {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode_record(&long), None, "trailing bytes");
        // Counts and lengths beyond the limits are refused before anything is allocated.
        let mut huge = 1u64.to_be_bytes().to_vec();
        huge.extend_from_slice(&0u32.to_be_bytes());
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode_record(&huge), None);
        let mut name = encode_uas(&[]);
        name[3] = 1;
        name.extend_from_slice(&(MAX_NAME as u32 + 1).to_be_bytes());
        assert_eq!(decode_uas(&name, &mut 0), None);
        assert_eq!(decode_uas(&encode_uas(&uas), &mut 0), Some(uas));
    }
}
