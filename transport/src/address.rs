//! Where a party dials the coordinator: `HOST:PORT`, with HOST a DNS name, an IPv4 address or a
//! bracketed IPv6 address. HOST is also the TLS server name checked against the coordinator's
//! certificate unless a config overrides it.

use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

/// A parsed `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialTarget {
    host: String,
    port: u16,
}

/// Why a string is not `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not HOST:PORT: {problem}")]
pub struct DialTargetError {
    input: String,
    problem: &'static str,
}

impl DialTarget {
    /// Parses `HOST:PORT`.
    pub fn parse(input: &str) -> Result<Self, DialTargetError> {
        let err = |problem| DialTargetError {
            input: input.to_owned(),
            problem,
        };
        let (host, port) = input.rsplit_once(':').ok_or_else(|| err("no port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| err("the port is not a number in 0..=65535"))?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or_else(|| err("unbalanced '['"))?,
            None if host.contains(':') => return Err(err("an IPv6 host must be in brackets")),
            None => host,
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        Ok(DialTarget {
            host: host.to_owned(),
            port,
        })
    }

    /// The host (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resolves the host (DNS if needed) to the first address.
    pub async fn resolve(&self) -> std::io::Result<SocketAddr> {
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{self} has no address"),
                )
            })
    }
}

impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for DialTarget {
    type Err = DialTargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DialTarget::parse(s)
    }
}

impl<'de> Deserialize<'de> for DialTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DialTarget::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_addresses() {
        for (input, host, port) in [
            ("127.0.0.1:7300", "127.0.0.1", 7300),
            ("[::1]:1", "::1", 1),
            ("coord.example:443", "coord.example", 443),
        ] {
            let t = DialTarget::parse(input).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!((t.host(), t.port()), (host, port));
            assert_eq!(t.to_string(), input);
        }
    }

    #[test]
    fn refuses_malformed_targets() {
        for bad in ["nohost", ":7", "h:70000", "h:x", "::1:7", "[::1:7", "[]:7"] {
            assert!(DialTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
