//! The SSRF guard: which destinations an `http` step may reach. Addresses are judged after DNS
//! resolution, on the addresses the connection is then made to, so a name that resolves to a
//! public address once and to loopback the next time gains nothing.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "blocked: {target} is {reason}, which http steps may not reach (allow it with HTTP_WORKER_ALLOW)"
)]
pub struct Blocked {
    /// The host and, when it was resolved, the address: `internal.example (10.0.0.7)`.
    pub target: String,
    pub reason: &'static str,
}

impl Blocked {
    /// The reason as a metric label: `loopback`, `private`, `metadata`, ...
    pub fn label(&self) -> &'static str {
        let reason = self.reason;
        let word = reason
            .strip_prefix("an ")
            .or_else(|| reason.strip_prefix("a "))
            .or_else(|| reason.strip_prefix("the "))
            .unwrap_or(reason);
        match word.split(' ').next().unwrap_or(word) {
            "cloud" => "metadata",
            other => other,
        }
    }
}

/// One entry of `HTTP_WORKER_ALLOW`: a host name, or an address block.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    Host(String),
    Net { base: IpAddr, prefix: u8 },
}

/// What may be reached: every public address, plus what `HTTP_WORKER_ALLOW` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    allowed: Vec<Allowed>,
    /// Off only when configured so (`HTTP_WORKER_SSRF_GUARD=off`).
    disabled: bool,
}

impl Guard {
    /// Parses `HTTP_WORKER_ALLOW`: comma-separated host names (`api.internal`), addresses
    /// (`10.0.0.7`, `::1`) and blocks (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse(allow: &str) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for entry in allow.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            allowed.push(parse_entry(entry)?);
        }
        Ok(Self {
            allowed,
            disabled: false,
        })
    }

    /// A guard that lets everything through.
    pub fn off() -> Self {
        Self {
            allowed: Vec::new(),
            disabled: true,
        }
    }

    /// Whether `host` (a name, lower case) is allowed by name, whatever it resolves to.
    pub fn host_allowed(&self, host: &str) -> bool {
        self.disabled
            || self
                .allowed
                .iter()
                .any(|a| matches!(a, Allowed::Host(h) if h.eq_ignore_ascii_case(host)))
    }

    /// Refuses `ip` unless it is public or allowed; `host` names it in the error.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Blocked> {
        if self.disabled || self.host_allowed(host) || self.net_allowed(ip) {
            return Ok(());
        }
        match non_public(ip) {
            None => Ok(()),
            Some(reason) => Err(Blocked {
                target: if host == ip.to_string() {
                    host.to_owned()
                } else {
                    format!("{host} ({ip})")
                },
                reason,
            }),
        }
    }

    fn net_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|a| match a {
            Allowed::Net { base, prefix } => in_block(ip, *base, *prefix),
            Allowed::Host(_) => false,
        })
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.disabled {
            return f.write_str("off");
        }
        let entries: Vec<String> = self
            .allowed
            .iter()
            .map(|a| match a {
                Allowed::Host(h) => h.clone(),
                Allowed::Net { base, prefix } => format!("{base}/{prefix}"),
            })
            .collect();
        write!(f, "on, allowing [{}]", entries.join(", "))
    }
}

fn parse_entry(entry: &str) -> Result<Allowed, String> {
    let (address, prefix) = match entry.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry, None),
    };
    let address = address.trim_start_matches('[').trim_end_matches(']');
    match address.parse::<IpAddr>() {
        Ok(ip) => {
            let ip = canonical(ip);
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("`{entry}`: the prefix must be 0 to {max}"))?,
            };
            Ok(Allowed::Net { base: ip, prefix })
        }
        Err(_) if prefix.is_some() => Err(format!(
            "`{entry}`: not a host name, address or block such as `10.0.0.0/8`"
        )),
        Err(_) => {
            let valid = address
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if !valid {
                return Err(format!("`{entry}`: not a host name, address or block"));
            }
            Ok(Allowed::Host(address.to_ascii_lowercase()))
        }
    }
}

/// An IPv4 address carried in IPv6 (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    // IPv4-compatible (deprecated, but still routed by some stacks); not `::` or `::1`.
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return Some(low());
    }
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low());
    }
    // 6to4 2002::/16 carries the IPv4 address in the next 32 bits.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

fn in_block(ip: IpAddr, base: IpAddr, prefix: u8) -> bool {
    match (ip, base) {
        (IpAddr::V4(ip), IpAddr::V4(base)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(base) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(base)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(base) & mask
        }
        _ => false,
    }
}

/// Why `ip` is not a public address, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    Some(match (a, b) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "a cloud metadata address",
        _ if [a, b, c, d] == [100, 100, 100, 200] => "a cloud metadata address",
        _ if ip.is_unspecified() || a == 0 => "an unspecified address",
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_private() => "a private address",
        _ if ip.is_link_local() => "a link-local address",
        (100, 64..=127) => "a shared (carrier-grade NAT) address",
        (192, 0) if c == 0 => "an IETF protocol assignment address",
        (198, 18..=19) => "a benchmarking address",
        _ if ip.is_multicast() => "a multicast address",
        _ if ip.is_broadcast() => "the broadcast address",
        (240..=255, _) => "a reserved address",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s[0] {
        _ if s == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => "a cloud metadata address",
        _ if ip.is_unspecified() => "an unspecified address",
        _ if ip.is_loopback() => "a loopback address",
        x if x & 0xff00 == 0xff00 => "a multicast address",
        x if x & 0xffc0 == 0xfe80 => "a link-local address",
        x if x & 0xffc0 == 0xfec0 => "a site-local address",
        x if x & 0xfe00 == 0xfc00 => "a unique-local address",
        0x0100 if s[1..4] == [0, 0, 0] => "a discard-only address",
        0x2001 if s[1] == 0x0db8 => "a documentation address",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn every_non_public_form_is_refused_with_its_reason() {
        let guard = Guard::default();
        for (address, reason) in [
            ("127.0.0.1", "a loopback address"),
            ("127.255.0.9", "a loopback address"),
            ("::1", "a loopback address"),
            ("10.1.2.3", "a private address"),
            ("172.16.0.1", "a private address"),
            ("192.168.1.1", "a private address"),
            ("169.254.1.1", "a link-local address"),
            ("fe80::1", "a link-local address"),
            ("fd12:3456::1", "a unique-local address"),
            ("fc00::1", "a unique-local address"),
            ("224.0.0.1", "a multicast address"),
            ("ff02::1", "a multicast address"),
            ("0.0.0.0", "an unspecified address"),
            ("::", "an unspecified address"),
            ("169.254.169.254", "a cloud metadata address"),
            ("fd00:ec2::254", "a cloud metadata address"),
            ("100.64.0.1", "a shared (carrier-grade NAT) address"),
            ("255.255.255.255", "the broadcast address"),
            // IPv4 inside IPv6 reaches the IPv4 address.
            ("::ffff:127.0.0.1", "a loopback address"),
            ("::ffff:169.254.169.254", "a cloud metadata address"),
            ("::ffff:10.0.0.1", "a private address"),
            ("::127.0.0.1", "a loopback address"),
            ("64:ff9b::a00:1", "a private address"),
            ("2002:7f00:1::", "a loopback address"),
        ] {
            let refused = guard.check(address, ip(address)).unwrap_err();
            assert_eq!(refused.reason, reason, "{address}");
            assert!(!refused.label().contains(' '), "{}", refused.label());
            assert!(refused.to_string().starts_with("blocked: "), "{refused}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let guard = Guard::default();
        for address in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::6810:85e5",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(guard.check("example.com", ip(address)), Ok(()), "{address}");
        }
    }

    #[test]
    fn the_error_names_the_host_and_the_address_it_resolved_to() {
        let refused = Guard::default()
            .check("internal.example", ip("10.0.0.7"))
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "blocked: internal.example (10.0.0.7) is a private address, which http steps may \
             not reach (allow it with HTTP_WORKER_ALLOW)"
        );
    }

    #[test]
    fn the_allow_list_admits_hosts_addresses_and_blocks() {
        let guard = Guard::parse("127.0.0.1, api.internal ,10.0.0.0/8,fd00::/8,[::1]").unwrap();
        assert_eq!(guard.check("127.0.0.1", ip("127.0.0.1")), Ok(()));
        assert!(guard.check("127.0.0.2", ip("127.0.0.2")).is_err());
        assert_eq!(guard.check("API.internal", ip("192.168.0.1")), Ok(()));
        assert_eq!(guard.check("x", ip("10.200.0.1")), Ok(()));
        assert_eq!(guard.check("x", ip("::ffff:10.0.0.1")), Ok(()), "mapped");
        assert_eq!(guard.check("x", ip("fd99::1")), Ok(()));
        assert_eq!(guard.check("x", ip("::1")), Ok(()));
        assert!(guard.check("x", ip("192.168.0.1")).is_err());
        assert!(guard.check("x", ip("169.254.169.254")).is_err());
        assert!(guard.host_allowed("api.internal"));
        assert!(!guard.host_allowed("other.internal"));
    }

    #[test]
    fn bad_allow_entries_are_named() {
        for (entry, want) in [
            ("10.0.0.0/33", "the prefix must be 0 to 32"),
            ("::/129", "the prefix must be 0 to 128"),
            ("host/8", "not a host name, address or block"),
            ("http://x", "not a host name"),
        ] {
            let e = Guard::parse(entry).unwrap_err();
            assert!(e.contains(entry) && e.contains(want), "{entry}: {e}");
        }
        assert_eq!(Guard::parse(" , ").unwrap(), Guard::default());
    }

    #[test]
    fn off_lets_everything_through() {
        assert_eq!(Guard::off().check("x", ip("127.0.0.1")), Ok(()));
        assert_eq!(Guard::off().to_string(), "off");
    }
}
