//! Command-line flags of `vdsd` (INTERFACE.md "Daemon").

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use vds_model::AdvertisedAddress;

/// vds storage array daemon: serves LUNs over iSCSI and manages them through the VDS model.
#[derive(Debug, Parser)]
#[command(name = "vdsd", version, about)]
pub struct Args {
    /// The store and the LUN files.
    #[arg(long, env = "VDS_DATA_DIR", default_value = "./vds-data")]
    pub data_dir: PathBuf,

    /// Address of the management API.
    #[arg(long, env = "VDS_API_ADDR", default_value = "127.0.0.1:3280")]
    pub api: SocketAddr,

    /// Portals to create on first start (repeatable; default 127.0.0.1:3260), each
    /// ADDR:PORT or ADDR:PORT,advertise=HOST:PORT (what SendTargets reports for it). Ignored on
    /// later starts: the store decides.
    #[arg(long = "portal", value_name = "ADDR:PORT[,advertise=HOST:PORT]", value_parser = portal_arg)]
    pub portals: Vec<PortalArg>,

    /// Optional configuration file (key = value lines: logout_timeout_secs,
    /// portal_status_settable, api_token, api_hosts, metrics_public, max_sessions_per_target,
    /// ...).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "VDS_LOG", default_value = "info")]
    pub log_level: String,

    /// Log line format: `text` (plain text; ANSI colours only when stderr is a terminal) or
    /// `json` (one JSON object per line, for log shippers).
    #[arg(long, env = "VDS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Tests only: accept fault filters (delay, error) on backing stores, and make the data
    /// path panic on the magic CDB `FF "vds-panic" 01|02` (panic containment tests).
    #[arg(long)]
    pub enable_fault_injection: bool,

    /// A Ceph cluster to keep `rbd` LUNs in (docs/SCALEOUT.md): its ceph.conf. Without it, a
    /// LUN with an `rbd` backing store answers VDS_E_NOT_SUPPORTED.
    #[arg(long, env = "VDS_CEPH_CONF", value_name = "CEPH_CONF")]
    pub ceph_conf: Option<PathBuf>,

    /// The Ceph client vdsd connects as (its key is in the keyring the ceph.conf names).
    #[arg(
        long,
        env = "VDS_CEPH_CLIENT",
        default_value = "client.admin",
        requires = "ceph_conf"
    )]
    pub ceph_client: String,

    /// Be one of several gateways that are one subsystem (docs/SCALEOUT.md): the Ceph pool
    /// holding the shared configuration (`vds.root`, `vds.<subsystem-id>.config`) and the
    /// images of new LUNs. Needs --ceph-conf and --gateway.
    #[arg(
        long,
        env = "VDS_CEPH_POOL",
        value_name = "POOL",
        requires_all = ["ceph_conf", "gateway"]
    )]
    pub ceph_pool: Option<String>,

    /// This gateway's name: its controller's friendly name, stable across restarts (a
    /// friendly name: 1 to 255 bytes, no control characters). Needs --ceph-pool.
    #[arg(long, env = "VDS_GATEWAY", value_name = "NAME", requires_all = ["ceph_conf", "ceph_pool"])]
    pub gateway: Option<String>,

    /// Serve the API without the bearer token (development only). Refused unless the API is
    /// bound to a loopback address; warns once a minute while requests are served so.
    #[arg(long)]
    pub insecure_loopback_api: bool,
}

/// What `--log-format` chooses (INTERFACE.md "Flags").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields.message`, `target`, spans.
    Json,
}

/// One `--portal`: the bind address and, optionally, the advertised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalArg {
    pub addr: SocketAddr,
    pub advertise: Option<AdvertisedAddress>,
}

/// `ADDR:PORT` or `ADDR:PORT,advertise=HOST:PORT` (a comma cannot be in either address).
fn portal_arg(s: &str) -> Result<PortalArg, String> {
    let (addr, rest) = match s.split_once(',') {
        Some((a, r)) => (a, Some(r)),
        None => (s, None),
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not ADDR:PORT (IPv6 in brackets)"))?;
    let advertise = match rest {
        None => None,
        Some(r) => {
            let a = r
                .strip_prefix("advertise=")
                .ok_or_else(|| format!("{r:?}: the only option is advertise=HOST:PORT"))?;
            Some(AdvertisedAddress::parse(a).map_err(|e| e.to_string())?)
        }
    };
    Ok(PortalArg { addr, advertise })
}

impl Args {
    /// The portals to create on first start.
    pub fn first_start_portals(&self) -> Vec<SocketAddr> {
        if self.portals.is_empty() {
            vec![SocketAddr::from(([127, 0, 0, 1], 3260))]
        } else {
            self.portals.iter().map(|p| p.addr).collect()
        }
    }

    /// The advertised addresses given for first-start portals.
    pub fn first_start_advertise(&self) -> Vec<(SocketAddr, AdvertisedAddress)> {
        self.portals
            .iter()
            .filter_map(|p| Some((p.addr, p.advertise.clone()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_interface_contract() {
        let a = Args::try_parse_from(["vdsd"]).unwrap();
        assert_eq!(a.api, "127.0.0.1:3280".parse().unwrap());
        assert_eq!(a.data_dir, PathBuf::from("./vds-data"));
        assert_eq!(
            a.first_start_portals(),
            vec!["127.0.0.1:3260".parse().unwrap()]
        );
        assert!(!a.enable_fault_injection);
        assert!(!a.insecure_loopback_api, "authentication is on by default");
    }

    #[test]
    fn portals_repeat_and_bad_addresses_are_usage_errors() {
        let a = Args::try_parse_from([
            "vdsd",
            "--portal",
            "127.0.0.1:3260",
            "--portal",
            "127.0.0.2:3260",
        ])
        .unwrap();
        assert_eq!(a.first_start_portals().len(), 2);
        assert!(a.first_start_advertise().is_empty());
        assert!(Args::try_parse_from(["vdsd", "--portal", "nonsense"]).is_err());
        assert!(Args::try_parse_from(["vdsd", "--api", "127.0.0.1:99999"]).is_err());
    }

    #[test]
    fn a_portal_flag_may_carry_an_advertised_address() {
        let a = Args::try_parse_from([
            "vdsd",
            "--portal",
            "127.0.0.1:3260,advertise=10.0.2.100:3260",
            "--portal",
            "[::1]:3261",
        ])
        .unwrap();
        assert_eq!(
            a.first_start_portals(),
            vec![
                "127.0.0.1:3260".parse().unwrap(),
                "[::1]:3261".parse().unwrap()
            ]
        );
        let adv = a.first_start_advertise();
        assert_eq!(adv.len(), 1);
        assert_eq!(adv[0].0, "127.0.0.1:3260".parse().unwrap());
        assert_eq!(adv[0].1.as_str(), "10.0.2.100:3260");
        for (bad, why) in [
            ("127.0.0.1:3260,advertise=", "empty"),
            ("127.0.0.1:3260,advertise=gw", "no \":port\""),
            ("127.0.0.1:3260,advertise=gw:1,x", "','"),
            ("127.0.0.1:3260,adv=gw:1", "the only option"),
            ("127.0.0.1,advertise=gw:1", "not ADDR:PORT"),
        ] {
            let e = Args::try_parse_from(["vdsd", "--portal", bad]).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
