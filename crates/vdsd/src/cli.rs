//! Command-line flags of `vdsd` (INTERFACE.md "Daemon").

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

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

    /// Portals to create on first start (repeatable; default 127.0.0.1:3260). Ignored on later
    /// starts: the store decides.
    #[arg(long = "portal")]
    pub portals: Vec<SocketAddr>,

    /// Optional configuration file (key = value lines: logout_timeout_secs,
    /// portal_status_settable, api_token, api_hosts, metrics_public, max_sessions_per_target,
    /// ...).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "VDS_LOG", default_value = "info")]
    pub log_level: String,

    /// Tests only: accept fault filters (delay, error) on backing stores, and make the data
    /// path panic on the magic CDB `FF "vds-panic" 01|02` (panic containment tests).
    #[arg(long)]
    pub enable_fault_injection: bool,

    /// Serve the API without the bearer token (development only). Refused unless the API is
    /// bound to a loopback address; warns once a minute while requests are served so.
    #[arg(long)]
    pub insecure_loopback_api: bool,
}

impl Args {
    /// The portals to create on first start.
    pub fn first_start_portals(&self) -> Vec<SocketAddr> {
        if self.portals.is_empty() {
            vec![SocketAddr::from(([127, 0, 0, 1], 3260))]
        } else {
            self.portals.clone()
        }
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
        assert!(Args::try_parse_from(["vdsd", "--portal", "nonsense"]).is_err());
        assert!(Args::try_parse_from(["vdsd", "--api", "127.0.0.1:99999"]).is_err());
    }
}
