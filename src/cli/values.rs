//! How a setting is written: durations, values parsed as their flags take
//! them, and the serde readers that check each value where it is read, so
//! that an error points at its line.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::*;

/// A duration written as `90s`, `10m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Dur).map_err(de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

/// A duration as the contract writes them: `90s`, `10m`, `1h`.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 90s, 10m, 1h: {e}"))
}

/// `IP:PORT`, or `HOST:PORT` resolved once at start (an IPv4 address when
/// the name has one, so `localhost` means 127.0.0.1 as clients expect).
pub(super) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("`{s}` is not an address to listen on (IP:PORT or HOST:PORT): {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{s}` names no address to listen on"))
}

/// Secrets and tokens from the command line, kept out of `Debug`.
pub(super) fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// A signing algorithm by its JOSE name.
pub(super) fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        format!("`{s}` is not one of {}", names.join(", "))
    })
}

/// A `typ` for `--require-typ`: a media type such as `at+jwt`.
pub(super) fn parse_typ(s: &str) -> Result<String, String> {
    let typ = s.trim();
    if typ.is_empty() || !typ.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("`{s}` is not a media type such as at+jwt"));
    }
    Ok(typ.to_owned())
}

/// A duration as a flag takes it.
pub(super) fn parse_dur(s: &str) -> Result<Dur, String> {
    parse_duration(s).map(Dur)
}

/// A scope rule as `--require-scope` takes it.
pub(super) fn parse_rule(s: &str) -> Result<Parsed<ScopeRule>, String> {
    s.parse().map(Parsed)
}

/// A value written as the string its flag takes (a scope rule, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T>(pub T);

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Parsed<T>, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Parsed).map_err(de::Error::custom)
    }
}

impl<T: fmt::Display> Serialize for Parsed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// One value, or an array of them.
pub(super) fn one_or_many<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or an array of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            T::deserialize(de::value::StrDeserializer::new(v)).map(|one| vec![one])
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut all = Vec::new();
            while let Some(one) = seq.next_element()? {
                all.push(one);
            }
            Ok(all)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// Audiences: one or many, none empty.
pub(super) fn audiences<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let all: Vec<String> = one_or_many(d)?;
    if all.iter().any(|s| s.trim().is_empty()) {
        return Err(de::Error::custom("an audience must not be empty"));
    }
    Ok(all)
}

/// A `typ` as `--require-typ` takes it.
pub(super) fn typ<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    parse_typ(&text).map(Some).map_err(de::Error::custom)
}

/// A listen address as `--listen` takes it.
pub(super) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map(Some).map_err(de::Error::custom)
}

/// An issuer URL that passes the https-or-loopback rule, checked as it is
/// read so that the error points at its line.
pub(super) fn issuer_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    check_issuer(&url).map_err(de::Error::custom)?;
    Ok(url)
}

/// An issuer written as a URL must pass the https-or-loopback rule; one
/// that is not a URL (`accounts.google.com`) is judged once its JWKS URL is
/// known (it needs one).
pub(super) fn check_issuer(issuer: &str) -> Result<(), String> {
    if issuer.trim().is_empty() {
        return Err("an issuer must not be empty".into());
    }
    if issuer.contains("://") {
        net::parse_issuer_url("issuer", issuer).map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub(super) fn jwks_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(d)?;
    net::parse_issuer_url("JWKS URL", &url).map_err(de::Error::custom)?;
    Ok(Some(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written_in_the_contract() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("ten minutes").is_err());
    }
}
