//! Where the server is.

use crate::ClientError;

/// The server's address and certificate fingerprint, as an enrollment token
/// carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddress {
    /// Host name or IP (without brackets for IPv6).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Hex SHA-256 of the server certificate's DER.
    pub cert_sha256: String,
}

impl ServerAddress {
    /// Parses `https://host[:port][/...]` (port 443 by default).
    pub fn new(url: &str, cert_sha256: &str) -> Result<Self, ClientError> {
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
            cert_sha256: cert_sha256.to_ascii_lowercase(),
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
        let a = ServerAddress::new("https://rec.example.com:8443/x", "AB").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.cert_sha256.as_str()),
            ("rec.example.com", 8443, "ab")
        );
        assert_eq!(a.authority(), "rec.example.com:8443");
        let a = ServerAddress::new("https://[::1]:9", "ab").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 9));
        assert_eq!(a.authority(), "[::1]:9");
        assert_eq!(ServerAddress::new("https://h", "ab").unwrap().port, 443);
        for bad in ["http://h", "https://", "https://h:x", "https://[::1"] {
            assert!(ServerAddress::new(bad, "ab").is_err(), "{bad}");
        }
    }
}
