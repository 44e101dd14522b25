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

/// A duration as every flag and config-file key takes it, at most
/// [`Limits::MAX_DURATION`] (100 years): longer ones overflow the deadlines
/// computed from them. Each setting may have a tighter bound of its own.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 90s, 10m, 1h: {e}"))?;
    if duration > Limits::MAX_DURATION {
        return Err(format!(
            "`{s}` must be at most 100 years, the longest duration authgate takes"
        ));
    }
    Ok(duration)
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

/// The least and the most a count setting may be, for its flag and its
/// config-file key alike: what the server counts it with holds it (see
/// [`Limits`]), and no number gets past the reader that the settings cannot
/// hold (the config file writes integers up to `i64::MAX`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    min: u64,
    max: u64,
}

impl Bounds {
    pub(super) const CONNECTIONS: Bounds = Bounds {
        min: 1,
        max: Limits::MAX_CONNECTIONS as u64,
    };
    /// 0 is no limit.
    pub(super) const CONNECTIONS_PER_PEER: Bounds = Bounds {
        min: 0,
        max: Limits::MAX_CONNECTIONS as u64,
    };
    pub(super) const HEADER_LIST_BYTES: Bounds = Bounds {
        min: Limits::MIN_HEADER_LIST_BYTES as u64,
        max: Limits::MAX_HEADER_LIST_BYTES as u64,
    };
    pub(super) const MESSAGE_BYTES: Bounds = Bounds {
        min: 0,
        max: Limits::MAX_MESSAGE_BYTES as u64,
    };
    pub(super) const CONCURRENT_STREAMS: Bounds = Bounds {
        min: 1,
        max: Limits::MAX_CONCURRENT_STREAMS as u64,
    };
    /// 0 verifies every call.
    pub(super) const TOKEN_CACHE_ENTRIES: Bounds = Bounds {
        min: 0,
        max: crate::MAX_TOKEN_CACHE_ENTRIES as u64,
    };

    fn check<T: TryFrom<u64>>(self, value: u128) -> Result<T, String> {
        u64::try_from(value)
            .ok()
            .filter(|v| (self.min..=self.max).contains(v))
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| format!("must be from {} to {}", self.min, self.max))
    }

    /// The count as its flag takes it.
    pub(super) fn flag<T: TryFrom<u64> + 'static>(
        self,
    ) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
        move |s| {
            let value: u128 = s
                .trim()
                .parse()
                .map_err(|_| format!("`{s}` is not a whole number"))?;
            self.check(value)
        }
    }

    /// The count as its config-file key holds it.
    fn key<'de, D: Deserializer<'de>, T: TryFrom<u64>>(self, d: D) -> Result<Option<T>, D::Error> {
        let value = u64::deserialize(d)?;
        self.check(value.into())
            .map(Some)
            .map_err(de::Error::custom)
    }
}

/// `max-connections`, within [`Bounds::CONNECTIONS`].
pub(super) fn connections<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    Bounds::CONNECTIONS.key(d)
}

/// `max-connections-per-peer`, within [`Bounds::CONNECTIONS_PER_PEER`].
pub(super) fn connections_per_peer<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<usize>, D::Error> {
    Bounds::CONNECTIONS_PER_PEER.key(d)
}

/// `max-header-list-size`, within [`Bounds::HEADER_LIST_BYTES`].
pub(super) fn header_list_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Bounds::HEADER_LIST_BYTES.key(d)
}

/// `max-message-size`, within [`Bounds::MESSAGE_BYTES`].
pub(super) fn message_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    Bounds::MESSAGE_BYTES.key(d)
}

/// `max-concurrent-streams`, within [`Bounds::CONCURRENT_STREAMS`].
pub(super) fn concurrent_streams<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Bounds::CONCURRENT_STREAMS.key(d)
}

/// `token-cache-entries`, within [`Bounds::TOKEN_CACHE_ENTRIES`].
pub(super) fn token_cache_entries<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<usize>, D::Error> {
    Bounds::TOKEN_CACHE_ENTRIES.key(d)
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
        assert_eq!(parse_duration("100y"), Ok(Limits::MAX_DURATION));
        for long in ["101y", "500000000000y", "99999999999999999999s"] {
            let error = parse_duration(long).unwrap_err();
            assert!(error.contains(&format!("`{long}`")), "{error}");
        }
        assert!(
            parse_duration("101y")
                .unwrap_err()
                .contains("at most 100 years")
        );
    }

    #[test]
    fn counts_are_read_within_their_bounds_from_flags_and_the_file() {
        let connections = Bounds::CONNECTIONS.flag::<usize>();
        let most = Limits::MAX_CONNECTIONS;
        assert_eq!(connections("1"), Ok(1));
        assert_eq!(connections(&most.to_string()), Ok(most));
        for past in [
            "0".to_owned(),
            (most + 1).to_string(),
            u64::MAX.to_string(),
            "99999999999999999999999".to_owned(),
        ] {
            let error = connections(&past).unwrap_err();
            assert_eq!(error, format!("must be from 1 to {most}"), "{past}");
        }
        assert!(connections("-1").is_err() && connections("many").is_err());
        let header_list = Bounds::HEADER_LIST_BYTES.flag::<u32>();
        assert_eq!(header_list("8192"), Ok(8192));
        assert!(header_list("8191").is_err() && header_list("16777217").is_err());
        assert!(Bounds::CONCURRENT_STREAMS.flag::<u32>()("1073741825").is_err());

        let err = Settings::parse("\nmax-connections = 18446744073709551615\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("`max-connections`"),
            "{err}"
        );
        assert!(err.contains(&format!("from 1 to {most}")), "{err}");
    }

    /// Every count at its most still makes settings that merge (the config
    /// file's integers end at `i64::MAX`) and a configuration that passes.
    #[test]
    fn every_count_at_its_most_merges_and_checks() {
        let most = |bounds: Bounds| bounds.max.to_string();
        let mut args = vec!["authgate", "serve", "--issuer", "https://t.example/"];
        let values = [
            ("--max-connections", most(Bounds::CONNECTIONS)),
            (
                "--max-connections-per-peer",
                most(Bounds::CONNECTIONS_PER_PEER),
            ),
            ("--max-header-list-size", most(Bounds::HEADER_LIST_BYTES)),
            ("--max-message-size", most(Bounds::MESSAGE_BYTES)),
            ("--max-concurrent-streams", most(Bounds::CONCURRENT_STREAMS)),
            ("--token-cache-entries", most(Bounds::TOKEN_CACHE_ENTRIES)),
        ];
        for (flag, value) in &values {
            args.extend([*flag, value.as_str()]);
        }
        args.extend(["--audience", "a", "--max-connection-age", "100y"]);
        let Command::Serve(serve) = Cli::try_parse_from(args).unwrap().command else {
            unreachable!()
        };
        let config = serve.config().unwrap();
        assert_eq!(config.limits.max_connections, Limits::MAX_CONNECTIONS);
        assert_eq!(config.limits.max_connection_age, Some(Limits::MAX_DURATION));
    }
}
