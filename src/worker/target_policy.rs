//! The target policy: optionally, calls may not reach loopback, private, link-local and other
//! non-public addresses, except those on an allow-list.
//!
//! The check runs on the addresses a host name resolves to, at call time, inside the HTTP
//! client's resolver: the connection goes to an address that was checked, so a name that
//! resolves differently between a check and the call cannot slip past it. URLs with an IP
//! literal skip resolution and are checked before the call.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// What calls may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Whether non-public addresses are refused.
    pub public_only: bool,
    /// Networks allowed even so; a bare address is a /32 or /128.
    pub allow_nets: Vec<IpNet>,
    /// Host names allowed even so (lower case).
    pub allow_hosts: Vec<String>,
}

/// A call refused by the policy.
#[derive(Debug, thiserror::Error)]
#[error("the target policy refuses {host}: not a public address")]
pub struct Denied {
    /// The host of the URL.
    pub host: String,
    /// The refused address: logged, never shown in an answer or an execution (a name's
    /// resolved address is internal knowledge).
    pub addr: IpAddr,
}

impl TargetPolicy {
    /// A policy with the allow-list `list` (`TARGET_ALLOW`: comma-separated CIDRs, addresses
    /// and host names).
    pub fn new(public_only: bool, list: &str) -> Result<TargetPolicy, String> {
        let mut nets = Vec::new();
        let mut hosts = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some((ip, _)) = item.split_once('/') {
                // Parsed apart first so the message says which half is wrong.
                ip.parse::<IpAddr>()
                    .map_err(|_| format!("{item:?} is not a CIDR"))?;
                let net: IpNet = item
                    .parse()
                    .map_err(|_| format!("{item:?} has a bad prefix length"))?;
                nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                nets.push(IpNet::from(ip));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!("{item:?} is not a CIDR, an address or a host name"));
            }
        }
        Ok(TargetPolicy {
            public_only,
            allow_nets: nets,
            allow_hosts: hosts,
        })
    }

    /// Whether a call to `host` may connect to `addr`.
    pub fn permits(&self, host: &str, addr: IpAddr) -> bool {
        if !self.public_only || is_public(addr) {
            return true;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow_hosts.contains(&host) || self.allow_nets.iter().any(|net| net.contains(&addr))
    }

    /// Checks a URL whose host is an IP literal (such URLs are not resolved).
    pub fn check_literal(&self, url: &str) -> Result<(), Denied> {
        match url::Url::parse(url) {
            Ok(url) => self.check_url(&url),
            Err(_) => Ok(()),
        }
    }

    /// [`TargetPolicy::check_literal`] of a parsed URL.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Denied> {
        let Some(host) = url.host_str() else {
            return Ok(());
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(addr) if !self.permits(host, addr) => Err(Denied {
                host: host.to_owned(),
                addr,
            }),
            _ => Ok(()),
        }
    }
}

/// The IANA special-purpose address registries' entries that are not globally reachable
/// (<https://www.iana.org/assignments/iana-ipv4-special-registry>,
/// <https://www.iana.org/assignments/iana-ipv6-special-registry>), with multicast, and the
/// deprecated site-local IPv6 range. Ranges that carry an IPv4 address inside an IPv6 one
/// are judged by that address instead (see [`embedded_v4`]).
const NOT_GLOBAL: &[&str] = &[
    // IPv4
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    // IPv6
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "100:0:0:1::/64",
    "2001::/23",
    "2001:db8::/32",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Parsed [`NOT_GLOBAL`].
fn not_global() -> &'static [IpNet] {
    static NETS: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| {
        NOT_GLOBAL
            .iter()
            .map(|n| n.parse().expect("the table holds valid CIDRs"))
            .collect()
    })
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`,
/// deprecated), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low),
        // `::` and `::1` are themselves, not IPv4-compatible forms.
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Whether an address is reachable on the public internet.
pub fn is_public(addr: IpAddr) -> bool {
    let addr = match addr {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    !not_global().iter().any(|net| net.contains(&addr))
}

/// The HTTP client's resolver: resolves, then keeps only the addresses the policy permits.
pub struct PolicyResolver(pub Arc<TargetPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.permits(&host, a.ip()))
                .collect();
            match (permitted.is_empty(), found.first()) {
                (true, Some(first)) => Err(Box::new(Denied {
                    host,
                    addr: first.ip(),
                })
                    as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The policy refusal somewhere in an error's chain of causes.
pub fn denial_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Denied> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(d) = err.downcast_ref::<Denied>() {
            return Some(d);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(allow: &str) -> TargetPolicy {
        TargetPolicy::new(true, allow).unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused() {
        let p = on("");
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:0:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
            "2001::1",
            "fec0::1",
            "fd00::1",
            "2001:db8::1",
            "3fff::1",
            "192.0.0.170",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
            "::",
        ] {
            assert!(!p.permits("h", a.parse().unwrap()), "{a} permitted");
        }
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(p.permits("h", a.parse().unwrap()), "{a} refused");
        }
        assert!(TargetPolicy::default().permits("h", "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn the_allow_list_makes_exceptions() {
        let p = on("10.0.0.0/8, 127.0.0.1, internal.example.com");
        assert!(p.permits("x", "10.9.9.9".parse().unwrap()));
        assert!(p.permits("x", "127.0.0.1".parse().unwrap()));
        assert!(!p.permits("x", "127.0.0.2".parse().unwrap()));
        assert!(p.permits("Internal.Example.com.", "192.168.0.5".parse().unwrap()));
        assert!(!p.permits("other.example.com", "192.168.0.5".parse().unwrap()));
        assert!(TargetPolicy::new(true, "10.0.0.0/33").is_err());
        assert!(TargetPolicy::new(true, "not a host!").is_err());
        let p = on("fd00::/8, fe80::1, 10.1.2.3/16");
        assert!(p.permits("x", "fd12::1".parse().unwrap()));
        assert!(p.permits("x", "fe80::1".parse().unwrap()));
        assert!(!p.permits("x", "fe80::2".parse().unwrap()));
        // Host bits beside the prefix are ignored, as in the network it names.
        assert!(p.permits("x", "10.1.9.9".parse().unwrap()));
        assert!(!p.permits("x", "10.2.0.1".parse().unwrap()));
        assert!(TargetPolicy::new(true, "fd00::/129").is_err());
        assert!(TargetPolicy::new(true, "10.0.0.0/x").is_err());
        assert!(TargetPolicy::new(true, "10.0.0/8").is_err());
    }

    #[test]
    fn literal_urls_are_checked() {
        let p = on("");
        assert!(p.check_literal("http://127.0.0.1:8080/x").is_err());
        assert!(p.check_literal("http://[::1]:8080/x").is_err());
        assert!(p.check_literal("https://8.8.8.8/x").is_ok());
        assert!(p.check_literal("https://example.com/x").is_ok());
    }
}
