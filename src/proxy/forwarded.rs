//! Where a request came from, as the upstream reads it: `X-Forwarded-For`
//! (the peer's address), `X-Forwarded-Proto` (`http` or `https`, as
//! received) and `X-Forwarded-Host` (the caller's `:authority` or `Host`),
//! set by the proxy after removing whatever the caller sent under these
//! names and `Forwarded` and `X-Real-IP`: a caller must not choose the
//! address an upstream's IP rules or logs see. A balancer in front, inside
//! a `--trust-forwarded` range, keeps its `X-Forwarded-For`, appended to.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use http::{HeaderMap, HeaderName, HeaderValue, header};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::identity::remove_reading_as;
use crate::server::ArrivedOverTls;

/// The headers that say where a request came from: the caller's are
/// removed, and the proxy sets the `X-Forwarded-*` three itself.
const FORWARDED_HEADERS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

/// Headers some servers and frameworks read as the request's method or
/// path (Express's method-override, Laravel, Symfony, IIS's URL Rewrite):
/// a caller's would make the upstream run another request than the one the
/// gate checked (`GET /items` with `X-HTTP-Method-Override: POST` past a
/// rule for `POST /items`). Removed, as the `X-Forwarded-*` are.
const OVERRIDE_HEADERS: [&str; 5] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

const FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A range of addresses, `10.0.0.0/8` or `fd00::/8` (a bare address is
/// that address alone): peers whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the range (an IPv4 address given as IPv6,
    /// `::ffff:10.1.2.3`, is its IPv4 self).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let wrong = || format!("`{s}` is not an address range such as 10.0.0.0/8 or fd00::/8");
        let (addr, prefix) = s.trim().split_once('/').unwrap_or((s.trim(), ""));
        let network: IpAddr = addr.parse().map_err(|_| wrong())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(wrong)?
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Where a request came in: the peer's address and whether over TLS, as
/// the server (or tonic's, for a stack of the library user's) records them.
pub(crate) fn arrival<B>(request: &http::Request<B>) -> (Option<SocketAddr>, bool) {
    let extensions = request.extensions();
    let tonic_tls = extensions.get::<TlsConnectInfo<TcpConnectInfo>>();
    let tls = tonic_tls.is_some() || extensions.get::<ArrivedOverTls>().is_some();
    (crate::gate::layer::peer(request), tls)
}

/// The host the caller asked for: HTTP/2's `:authority`, else `Host`.
pub(crate) fn caller_host<B>(request: &http::Request<B>) -> Option<HeaderValue> {
    match request.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => request.headers().get(header::HOST).cloned(),
    }
}

/// Replaces whatever the caller said of where it came from with what the
/// proxy saw: `peer`, `tls` and `host`. A peer inside `trusted` keeps its
/// `X-Forwarded-For`, with its own address appended.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    (peer, tls): (Option<SocketAddr>, bool),
    host: Option<HeaderValue>,
    trusted: &[Cidr],
) {
    let peer = peer.map(|p| p.ip().to_canonical());
    let kept = match peer {
        Some(ip) if trusted.iter().any(|range| range.contains(ip)) => {
            let values: Vec<&str> = headers
                .get_all(&FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        }
        _ => None,
    };
    // Also as `x_forwarded_for`, which CGI-style servers read the same.
    remove_reading_as(headers, &FORWARDED_HEADERS);
    remove_reading_as(headers, &OVERRIDE_HEADERS);
    let chain = match (kept, peer) {
        (Some(kept), Some(ip)) => Some(format!("{kept}, {ip}")),
        (None, Some(ip)) => Some(ip.to_string()),
        (kept, None) => kept,
    };
    if let Some(value) = chain.and_then(|c| HeaderValue::try_from(c).ok()) {
        headers.insert(FOR, value);
    }
    let proto = if tls { "https" } else { "http" };
    headers.insert(PROTO, HeaderValue::from_static(proto));
    if let Some(host) = host {
        headers.insert(HOST, host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_their_addresses_and_no_others() {
        let ten: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(ten.contains("10.255.1.2".parse().unwrap()));
        assert!(ten.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!ten.contains("11.0.0.1".parse().unwrap()));
        assert!(!ten.contains("::1".parse().unwrap()));
        let odd: Cidr = "192.168.4.0/22".parse().unwrap();
        assert!(odd.contains("192.168.7.255".parse().unwrap()));
        assert!(!odd.contains("192.168.8.0".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "host/8",
            "::/129",
            "10.0.0.0/x",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    fn forwarded(trusted: &[Cidr]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-forwarded-for", "10.1.2.3"),
            ("x-forwarded-for", "10.4.5.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=10.9.9.9"),
            ("x-real-ip", "10.9.9.9"),
            ("x_forwarded_for", "10.7.7.7"),
            ("x_real_ip", "10.7.7.7"),
            ("x-http-method-override", "POST"),
            ("x_http_method_override", "DELETE"),
            ("x-original-url", "/admin"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let peer = Some(SocketAddr::from(([127, 0, 0, 1], 4711)));
        let host = Some(HeaderValue::from_static("app.example"));
        set_forwarded(&mut headers, (peer, false), host, trusted);
        headers
    }

    #[test]
    fn the_callers_word_is_replaced_by_what_the_proxy_saw() {
        let headers = forwarded(&[]);
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "app.example");
        assert!(!headers.contains_key("forwarded"));
        assert!(!headers.contains_key("x-real-ip"));
        for name in [
            "x_forwarded_for",
            "x_real_ip",
            "x-http-method-override",
            "x_http_method_override",
            "x-original-url",
        ] {
            assert!(!headers.contains_key(name), "{name}");
        }
    }

    #[test]
    fn a_trusted_balancer_keeps_its_chain() {
        let headers = forwarded(&["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(headers["x-forwarded-for"], "10.1.2.3, 10.4.5.6, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        let untrusted = forwarded(&["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(untrusted["x-forwarded-for"], "127.0.0.1");
    }
}
