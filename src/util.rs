//! Small helpers several parts share, each written once: the wall clock in
//! Unix seconds, a lock that outlives a panic, jitter, and why a fetched
//! document is not the JSON it should be.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 before it, `i64::MAX` past its range).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Locks `mutex`, taking the value even if a holder panicked: every value
/// these mutexes guard stays whole between statements.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A number in [0, 1) from the system's random source, for jitter.
pub(crate) fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Why a document is not the JSON expected, and where, without quoting it:
/// serde_json's own messages quote the values they trip on (`invalid type:
/// string "..."`), and a document an issuer serves may hold anything, a
/// secret or junk an attacker chose, that no log line or error should carry.
pub(crate) fn json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Syntax => "not JSON",
        Category::Eof => "JSON that ends early",
        Category::Data => "JSON of another shape",
        Category::Io => "unreadable",
    };
    format!("{what}, at line {} column {}", error.line(), error.column())
}

/// `name` as a `&'static str`, for claim names a refusal names
/// (`AuthError::MissingClaim` takes one): the well-known names are literals,
/// any other is leaked once per distinct name and process. Called when a
/// validator is built, never on the request path, so the leak is bounded by
/// the claim names ever configured.
pub(crate) fn static_name(name: &str) -> &'static str {
    const KNOWN: [&str; 12] = [
        "aud",
        "client_id",
        "azp",
        "appid",
        "cid",
        "scope",
        "scp",
        "permissions",
        "roles",
        "groups",
        "token_use",
        "token_type",
    ];
    if let Some(known) = KNOWN.into_iter().find(|k| *k == name) {
        return known;
    }
    static LEAKED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut leaked = lock(&LEAKED);
    if let Some(seen) = leaked.iter().find(|s| **s == name) {
        return seen;
    }
    let name: &'static str = Box::leak(name.into());
    leaked.push(name);
    name
}
