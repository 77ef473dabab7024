//! What SendTargets tells a host a portal's address is (BEHAVIOUR.md §4 "Addresses in
//! SendTargets"): the advertised address when the portal has one, the local address of the
//! discovery connection for a wildcard portal, else the bind address.

use std::net::{IpAddr, SocketAddr};

use vds_dataplane::PortalView;

/// The `host:port` part of the TargetAddress for portal `p`, as seen by a host whose discovery
/// connection arrived on local socket address `local`; `None` when there is no address this
/// host could use (the portal is then left out of the answer).
///
/// A wildcard portal listens on every local address, so the one the host has just reached us
/// on is an address of that portal it can reach too, whichever portal the discovery session
/// came in through: the answer is that address with the wildcard portal's port. The exception
/// is a `0.0.0.0` portal seen over IPv6: it accepts no IPv6 connection, so no address of it is
/// known to work for this host. A `[::]` portal is dual-stack (`bind_portal` makes it so) and
/// accepts either family.
pub(crate) fn target_address(p: &PortalView, local: Option<SocketAddr>) -> Option<String> {
    if let Some(a) = &p.advertise {
        return Some(a.clone());
    }
    if !p.addr.ip().is_unspecified() {
        return Some(p.addr.to_string());
    }
    let ip = unmapped(local?.ip());
    if p.addr.is_ipv4() && ip.is_ipv6() {
        return None;
    }
    Some(SocketAddr::new(ip, p.addr.port()).to_string())
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
/// IPv4 peer) as the IPv4 address it stands for; anything else unchanged.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::target_address;
    use uuid::Uuid;
    use vds_dataplane::PortalView;

    fn portal(addr: &str, advertise: Option<&str>) -> PortalView {
        PortalView {
            id: Uuid::new_v4(),
            addr: addr.parse().unwrap(),
            online: true,
            advertise: advertise.map(str::to_string),
        }
    }

    fn via(local: &str) -> Option<std::net::SocketAddr> {
        Some(local.parse().unwrap())
    }

    #[test]
    fn an_advertised_address_wins_over_everything() {
        for bind in ["127.0.0.1:3260", "0.0.0.0:3260", "[::]:3260", "[::1]:3260"] {
            let p = portal(bind, Some("gw.example:13260"));
            for local in ["127.0.0.1:3260", "[::1]:3260", "[::ffff:10.0.0.1]:3260"] {
                assert_eq!(
                    target_address(&p, via(local)).as_deref(),
                    Some("gw.example:13260"),
                    "{bind} via {local}"
                );
            }
            assert_eq!(
                target_address(&p, None).as_deref(),
                Some("gw.example:13260")
            );
        }
    }

    #[test]
    fn a_specific_address_is_reported_as_bound() {
        let p = portal("127.0.0.7:3261", None);
        assert_eq!(
            target_address(&p, via("127.0.0.1:3260")).as_deref(),
            Some("127.0.0.7:3261")
        );
        let p = portal("[fd00::5]:3260", None);
        assert_eq!(
            target_address(&p, via("127.0.0.1:3260")).as_deref(),
            Some("[fd00::5]:3260")
        );
    }

    #[test]
    fn a_wildcard_v4_portal_answers_the_local_address_with_its_own_port() {
        let p = portal("0.0.0.0:3262", None);
        assert_eq!(
            target_address(&p, via("10.1.2.3:3260")).as_deref(),
            Some("10.1.2.3:3262")
        );
        // Through a dual-stack listener an IPv4 host shows as ::ffff:a.b.c.d.
        assert_eq!(
            target_address(&p, via("[::ffff:10.1.2.3]:3260")).as_deref(),
            Some("10.1.2.3:3262")
        );
        // An IPv4-only listener cannot be reached through an IPv6 address.
        assert_eq!(target_address(&p, via("[fd00::1]:3260")), None);
        assert_eq!(target_address(&p, None), None);
    }

    #[test]
    fn a_wildcard_v6_portal_answers_either_family() {
        let p = portal("[::]:3260", None);
        assert_eq!(
            target_address(&p, via("[fd00::1]:3270")).as_deref(),
            Some("[fd00::1]:3260")
        );
        assert_eq!(
            target_address(&p, via("[::ffff:192.168.7.9]:3260")).as_deref(),
            Some("192.168.7.9:3260")
        );
        assert_eq!(
            target_address(&p, via("192.168.7.9:3260")).as_deref(),
            Some("192.168.7.9:3260")
        );
    }
}
