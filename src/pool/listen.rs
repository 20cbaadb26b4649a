//! `rust_pool ... listen= allow=`: the address a program pool also takes
//! FastCGI connections on (from a stock nginx's `fastcgi_pass`, on this host
//! or another), and the clients it accepts there.
//!
//! Runs in nginx's master (reading the configuration) and in its workers
//! (checking a client): the address and the allow-list, as plain data.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the pool listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Address {
    /// `127.0.0.1:9000`, `[::1]:9000`, `*:9000` (every IPv4 address), or
    /// `unix:/path/to/socket`, as nginx's `listen` and php-fpm's `listen`.
    pub fn parse(text: &str) -> Result<Address, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("\"{text}\": give the socket's absolute path, as unix:/run/app.sock"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let text_any = text.strip_prefix("*:").map(|port| format!("0.0.0.0:{port}"));
        text_any
            .as_deref()
            .unwrap_or(text)
            .parse::<SocketAddr>()
            .map(Address::Tcp)
            .map_err(|_| format!("\"{text}\" is not an address; write 127.0.0.1:9000, [::1]:9000, *:9000 or unix:/path"))
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, Address::Unix(_))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// One entry of `allow=`: an address or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let bad = || format!("\"{text}\" is not an address or a network; write 10.0.0.5, 10.0.0.0/8, ::1 or all");
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

/// Who may connect: `allow=` entries, or loopback only when none is given
/// (FastCGI has no authentication: opening a pool to the network is a
/// decision, as php-fpm's `listen.allowed_clients`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowList {
    /// `allow=all`.
    pub everyone: bool,
    pub networks: Vec<Cidr>,
}

impl AllowList {
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        if text == "all" {
            self.everyone = true;
        } else {
            self.networks.push(Cidr::parse(text)?);
        }
        Ok(())
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.everyone {
            return true;
        }
        if self.networks.is_empty() {
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            return ip.is_loopback();
        }
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// For `FCGI_WEB_SERVER_ADDRS`-style messages: "10.0.0.0/8, ::1".
    pub fn describe(&self) -> String {
        if self.everyone {
            return "all".into();
        }
        if self.networks.is_empty() {
            return "loopback only".into();
        }
        self.networks.iter().map(|n| format!("{}/{}", n.addr, n.prefix)).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses() {
        assert_eq!(Address::parse("127.0.0.1:9000").unwrap(), Address::Tcp("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(Address::parse("[::1]:9000").unwrap(), Address::Tcp("[::1]:9000".parse().unwrap()));
        assert_eq!(Address::parse("*:9000").unwrap(), Address::Tcp("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(Address::parse("unix:/run/a.sock").unwrap(), Address::Unix("/run/a.sock".into()));
        assert!(Address::parse("unix:relative.sock").unwrap_err().contains("absolute path"));
        assert!(Address::parse("9000").unwrap_err().contains("is not an address"));
        assert!(Address::parse("localhost:9000").is_err());
    }

    #[test]
    fn allow_lists() {
        let mut list = AllowList::default();
        assert!(list.allows(ip("127.0.0.1")) && list.allows(ip("127.0.0.2")) && list.allows(ip("::1")));
        assert!(list.allows(ip("::ffff:127.0.0.1")));
        assert!(!list.allows(ip("10.1.2.3")));
        list.add("10.0.0.0/8").unwrap();
        list.add("192.168.1.5").unwrap();
        list.add("2001:db8::/32").unwrap();
        assert!(list.allows(ip("10.200.1.1")));
        assert!(list.allows(ip("::ffff:10.0.0.1")));
        assert!(list.allows(ip("192.168.1.5")));
        assert!(!list.allows(ip("192.168.1.6")));
        assert!(list.allows(ip("2001:db8:1::7")));
        assert!(!list.allows(ip("2001:db9::1")));
        assert!(!list.allows(ip("127.0.0.1")), "an allow-list replaces the loopback default");
        let mut odd = AllowList::default();
        odd.add("10.1.0.0/12").unwrap();
        assert!(odd.allows(ip("10.15.255.255")) && !odd.allows(ip("10.16.0.0")));
        assert!(list.add("10.0.0.0/33").is_err());
        assert!(list.add("example.com").is_err());
        list.add("all").unwrap();
        assert!(list.allows(ip("8.8.8.8")));
    }
}
