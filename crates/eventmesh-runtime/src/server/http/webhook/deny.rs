//! The deny list of networks webhook pushes may not connect to (so the mesh cannot be used to
//! reach internal endpoints such as cloud metadata services).

use std::net::IpAddr;

/// Networks as (address, prefix length). IPv4-mapped IPv6 addresses are checked as IPv4.
#[derive(Clone, Debug, Default)]
pub(crate) struct DenyList {
    nets: Vec<(IpAddr, u8)>,
}

impl DenyList {
    /// A deny list of `CIDR` strings; invalid ones are skipped with a log line (the config's
    /// validation refuses them first).
    pub(crate) fn new(cidrs: &[String]) -> Self {
        let mut nets = Vec::new();
        for c in cidrs {
            match eventmesh_config::server::http::parse_cidr(c) {
                Ok(n) => nets.push(n),
                Err(why) => {
                    tracing::warn!(message = "Ignoring an invalid deny-list network.", network = %c, error = %why);
                }
            }
        }
        DenyList { nets }
    }

    /// Whether `ip` is in a denied network.
    pub(crate) fn denies(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets
            .iter()
            .any(|(net, prefix)| contains(*net, *prefix, ip))
    }
}

fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_denies_link_local_and_metadata_only() {
        let d = DenyList::new(&eventmesh_config::server::http::default_deny_networks());
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "100.100.100.200",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(d.denies(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "10.1.2.3", "::1", "100.100.100.201", "8.8.8.8"] {
            assert!(!d.denies(ip.parse().unwrap()), "{ip}");
        }
        let all = DenyList::new(&["0.0.0.0/0".to_owned()]);
        assert!(all.denies("1.2.3.4".parse().unwrap()));
        assert!(!all.denies("::1".parse().unwrap()));
    }
}
