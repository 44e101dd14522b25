//! The gate's clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// The gate's clock: seconds since the Unix epoch. A plain function, so that
/// reading it costs the request path what reading the system clock does; tests
/// pass one that reads a value they set, to reach expiry edges without waiting.
pub type Clock = fn() -> i64;

/// The system clock, as a [`Clock`]: what the gate reads unless told otherwise.
pub fn system_clock() -> i64 {
    unix_now()
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
