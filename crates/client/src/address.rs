//! Where the server is.

use crate::{ClientError, Pin};

/// The server's address and the pins of the keys it may serve: the one an
/// enrollment token carries, and the next one once the server announced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddress {
    /// Host name or IP (without brackets for IPv6).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// What the server's certificate must match (any one of them).
    pub pins: Vec<Pin>,
}

impl ServerAddress {
    /// Parses `https://host[:port][/...]` (port 443 by default) and a pin
    /// (see [`Pin`]'s `FromStr`).
    pub fn new(url: &str, pin: &str) -> Result<Self, ClientError> {
        let pin = pin.parse()?;
        let bad = || ClientError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("https://").ok_or_else(bad)?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => 443,
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            pins: vec![pin],
        })
    }

    /// `host:port` for connecting (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_ipv6() {
        let pin = "AB".repeat(32);
        let a = ServerAddress::new("https://rec.example.com:8443/x", &pin).unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.pins.clone()),
            ("rec.example.com", 8443, vec![pin.parse().unwrap()])
        );
        assert_eq!(a.authority(), "rec.example.com:8443");
        let a = ServerAddress::new("https://[::1]:9", &pin).unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 9));
        assert_eq!(a.authority(), "[::1]:9");
        assert_eq!(ServerAddress::new("https://h", &pin).unwrap().port, 443);
        for bad in ["http://h", "https://", "https://h:x", "https://[::1"] {
            assert!(ServerAddress::new(bad, &pin).is_err(), "{bad}");
        }
        assert!(ServerAddress::new("https://h", "ab").is_err());
    }
}
