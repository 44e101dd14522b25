//! Per-method gRPC counters and latency histograms, as go-grpc-prometheus
//! names them, kept by a tower layer in front of the whole server.
//!
//! Every method the server has is known at start (from the descriptor sets
//! it registers), so each one's counters are allocated then: a call finds its
//! method by comparing its path with a handful of strings and pays a few
//! relaxed atomic increments. No lock, no allocation, no formatting per call;
//! a path the server does not have counts as `unknown`, so no label takes a
//! value a caller chooses.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use prost::Message;

/// The label that stands for any service or method the server does not have.
pub(crate) const UNKNOWN: &str = "unknown";

/// gRPC code names as go-grpc-prometheus writes them, indexed by the code.
pub(crate) const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

pub(super) const CANCELLED: usize = 1;
pub(super) const UNKNOWN_CODE: usize = 2;

/// Upper bounds of the latency histogram's buckets, in seconds as rendered.
/// Finer than Prometheus's defaults at the low end: a call through the gate
/// takes tens of microseconds to a few milliseconds.
pub(crate) const BUCKETS: [&str; 16] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "2.5", "5", "10",
];
/// The same bounds in nanoseconds, which calls are compared with.
const BUCKET_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The counters of every method the server has, plus `unknown`.
#[derive(Debug)]
pub struct GrpcMetrics {
    /// The known methods, then `unknown` last.
    methods: Box<[MethodMetrics]>,
}

/// One method's counters.
#[derive(Debug)]
pub struct MethodMetrics {
    /// `/package.Service/Method`, as calls name it in their path.
    path: Box<str>,
    /// `package.Service`.
    pub service: Box<str>,
    /// `Method`.
    pub method: Box<str>,
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub kind: &'static str,
    pub(super) started: AtomicU64,
    /// Calls handled, by the code they ended with.
    handled: [AtomicU64; 17],
    /// Calls by latency bucket, not cumulative; the last is past every bound.
    buckets: [AtomicU64; 17],
    /// The latencies added up, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl MethodMetrics {
    fn new(service: &str, method: &str, kind: &'static str) -> MethodMetrics {
        MethodMetrics {
            path: format!("/{service}/{method}").into(),
            service: service.into(),
            method: method.into(),
            kind,
            started: AtomicU64::new(0),
            handled: Default::default(),
            buckets: Default::default(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Calls started.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Calls handled, by code (indexed as [`CODE_NAMES`]).
    pub fn handled(&self) -> [u64; 17] {
        std::array::from_fn(|i| self.handled[i].load(Ordering::Relaxed))
    }

    /// The histogram as Prometheus shows it: cumulative counts for each of
    /// [`BUCKETS`], then the count of all calls and the sum in seconds.
    pub fn histogram(&self) -> ([u64; 16], u64, f64) {
        let mut cumulative = [0; 16];
        let mut total = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            total += bucket.load(Ordering::Relaxed);
            if i < cumulative.len() {
                cumulative[i] = total;
            }
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (cumulative, total, sum)
    }

    pub(super) fn record(&self, code: usize, started: Instant) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(BUCKET_NANOS.len());
        self.handled[code].fetch_add(1, Ordering::Relaxed);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl GrpcMetrics {
    /// Counters for every method of every service in these encoded
    /// `FileDescriptorSet`s (the ones the server registers for reflection).
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Result<GrpcMetrics, prost::DecodeError> {
        GrpcMetrics::from_descriptor_sets_and_paths(sets, std::iter::empty())
    }

    /// Counters for every method of these descriptor sets, and for each of
    /// `paths` that is a gRPC method path (`/package.Service/Method`) they
    /// lack, whose type is then `unknown`: a proxy's scope rules and public
    /// paths name its upstream's methods.
    pub fn from_descriptor_sets_and_paths<'a>(
        sets: &[&[u8]],
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Result<GrpcMetrics, prost::DecodeError> {
        let mut methods: Vec<MethodMetrics> = Vec::new();
        for set in sets {
            let set = prost_types::FileDescriptorSet::decode(*set)?;
            for file in set.file {
                let package = file.package();
                for service in &file.service {
                    let service_name = if package.is_empty() {
                        service.name().to_owned()
                    } else {
                        format!("{package}.{}", service.name())
                    };
                    for method in &service.method {
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        let entry = MethodMetrics::new(&service_name, method.name(), kind);
                        if !methods.iter().any(|m| m.path == entry.path) {
                            methods.push(entry);
                        }
                    }
                }
            }
        }
        for path in paths {
            let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/'))
            else {
                continue;
            };
            let is_name = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            };
            if is_name(service) && is_name(method) && !methods.iter().any(|m| *m.path == *path) {
                methods.push(MethodMetrics::new(service, method, UNKNOWN));
            }
        }
        methods.push(MethodMetrics::new(UNKNOWN, UNKNOWN, UNKNOWN));
        Ok(GrpcMetrics {
            methods: methods.into(),
        })
    }

    /// Every method's counters, `unknown` last.
    pub fn methods(&self) -> &[MethodMetrics] {
        &self.methods
    }

    /// The counters a call to `path` goes to: its method's, or `unknown`'s.
    #[inline]
    pub(super) fn index(&self, path: &str) -> usize {
        let known = self.methods.len() - 1;
        self.methods[..known]
            .iter()
            .position(|m| *m.path == *path)
            .unwrap_or(known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_the_first_bucket_that_holds_them() {
        assert_eq!(BUCKETS.len(), BUCKET_NANOS.len());
        for (text, nanos) in BUCKETS.iter().zip(BUCKET_NANOS) {
            assert_eq!((text.parse::<f64>().unwrap() * 1e9).round() as u64, nanos);
        }
        assert!(BUCKET_NANOS.windows(2).all(|w| w[0] < w[1]));
    }
}
