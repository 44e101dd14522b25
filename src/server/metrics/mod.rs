//! Prometheus metrics: `GET /metrics` on a listener of its own, in the text
//! exposition format, with the names and labels of the contract.
//!
//! The counters are plain atomics owned by what they count: the gate's
//! [`GateStats`](crate::GateStats), each [`KeyStore`]'s status and
//! the [`grpc`] layer's per-method table. A scrape reads them and writes the
//! text; nothing is registered, locked or allocated on the request path.
//! (A metrics crate would put its own registry between the two: the
//! `prometheus-client` histogram takes a lock on every observation, and the
//! `metrics` facade looks series up by key unless handles are kept, which is
//! what the atomics here already are.)

use std::{
    fmt::{self, Write as _},
    sync::Arc,
    time::UNIX_EPOCH,
};

use crate::{gate::Gate, keys::KeyStore};

pub(super) mod grpc;
pub(super) mod layer;
pub(super) mod listener;

pub use grpc::GrpcMetrics;
pub use layer::GrpcMetricsLayer;

/// Everything `GET /metrics` shows.
#[derive(Debug)]
pub(super) struct Metrics {
    grpc: Arc<GrpcMetrics>,
    gate: Gate,
    keys: Vec<Arc<KeyStore>>,
}

impl Metrics {
    /// Metrics of a server: its gRPC calls, its gate, and each issuer's keys.
    pub(super) fn new(grpc: Arc<GrpcMetrics>, gate: Gate, keys: Vec<Arc<KeyStore>>) -> Metrics {
        Metrics { grpc, gate, keys }
    }

    /// The whole exposition, in the Prometheus text format (0.0.4).
    pub(super) fn render(&self) -> String {
        let mut out = String::with_capacity(32 * 1024);
        self.write(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    fn write(&self, out: &mut String) -> fmt::Result {
        let methods = self.grpc.methods();
        header(
            out,
            "grpc_server_started_total",
            "counter",
            "RPCs started on the server.",
        )?;
        for m in methods {
            writeln!(
                out,
                "grpc_server_started_total{{grpc_type=\"{}\",grpc_service=\"{}\",grpc_method=\"{}\"}} {}",
                m.kind,
                Escaped(&m.service),
                Escaped(&m.method),
                m.started()
            )?;
        }
        header(
            out,
            "grpc_server_handled_total",
            "counter",
            "RPCs completed on the server, by gRPC code.",
        )?;
        for m in methods {
            for (code, n) in grpc::CODE_NAMES.iter().zip(m.handled()) {
                writeln!(
                    out,
                    "grpc_server_handled_total{{grpc_type=\"{}\",grpc_service=\"{}\",grpc_method=\"{}\",grpc_code=\"{code}\"}} {n}",
                    m.kind,
                    Escaped(&m.service),
                    Escaped(&m.method),
                )?;
            }
        }
        header(
            out,
            "grpc_server_handling_seconds",
            "histogram",
            "How long RPCs took to complete on the server, in seconds.",
        )?;
        for m in methods {
            let labels = format!(
                "grpc_type=\"{}\",grpc_service=\"{}\",grpc_method=\"{}\"",
                m.kind,
                Escaped(&m.service),
                Escaped(&m.method)
            );
            let (buckets, count, sum) = m.histogram();
            for (le, n) in grpc::BUCKETS.iter().zip(buckets) {
                writeln!(
                    out,
                    "grpc_server_handling_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                )?;
            }
            writeln!(
                out,
                "grpc_server_handling_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            )?;
            writeln!(out, "grpc_server_handling_seconds_sum{{{labels}}} {sum}")?;
            writeln!(
                out,
                "grpc_server_handling_seconds_count{{{labels}}} {count}"
            )?;
        }

        let stats = self.gate.stats();
        header(
            out,
            "authgate_auth_decisions_total",
            "counter",
            "Calls the gate let through or refused, by the refusal's reason.",
        )?;
        writeln!(
            out,
            "authgate_auth_decisions_total{{result=\"allowed\",reason=\"none\"}} {}",
            stats.allowed()
        )?;
        for (reason, n) in stats.denied() {
            writeln!(
                out,
                "authgate_auth_decisions_total{{result=\"denied\",reason=\"{reason}\"}} {n}"
            )?;
        }
        header(
            out,
            "authgate_token_cache_hits_total",
            "counter",
            "Tokens found in the verified-token cache.",
        )?;
        writeln!(
            out,
            "authgate_token_cache_hits_total {}",
            stats.cache_hits()
        )?;
        header(
            out,
            "authgate_token_cache_misses_total",
            "counter",
            "Tokens looked up in the verified-token cache and verified anew.",
        )?;
        writeln!(
            out,
            "authgate_token_cache_misses_total {}",
            stats.cache_misses()
        )?;

        let statuses: Vec<_> = self.keys.iter().map(|k| k.status()).collect();
        header(
            out,
            "authgate_jwks_fetches_total",
            "counter",
            "JWKS fetches by the refresher, by result.",
        )?;
        for s in &statuses {
            let issuer = Escaped(&s.issuer);
            writeln!(
                out,
                "authgate_jwks_fetches_total{{issuer=\"{issuer}\",result=\"success\"}} {}",
                s.fetch_successes
            )?;
            writeln!(
                out,
                "authgate_jwks_fetches_total{{issuer=\"{issuer}\",result=\"failure\"}} {}",
                s.fetch_failures
            )?;
        }
        header(
            out,
            "authgate_jwks_keys",
            "gauge",
            "Usable keys in the published key set.",
        )?;
        for s in &statuses {
            writeln!(
                out,
                "authgate_jwks_keys{{issuer=\"{}\"}} {}",
                Escaped(&s.issuer),
                s.keys
            )?;
        }
        header(
            out,
            "authgate_jwks_last_success_timestamp_seconds",
            "gauge",
            "When a JWKS fetch last succeeded, in seconds since the Unix epoch (0: never).",
        )?;
        for s in &statuses {
            let seconds = s
                .last_success
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            writeln!(
                out,
                "authgate_jwks_last_success_timestamp_seconds{{issuer=\"{}\"}} {seconds}",
                Escaped(&s.issuer)
            )?;
        }
        header(
            out,
            "authgate_build_info",
            "gauge",
            "The running authgate's version, as a label; always 1.",
        )?;
        writeln!(
            out,
            "authgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )?;
        Ok(())
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(Escaped("a\"b\\c\nd").to_string(), "a\\\"b\\\\c\\nd");
        assert_eq!(
            Escaped("https://t.auth0.com/").to_string(),
            "https://t.auth0.com/"
        );
    }
}
