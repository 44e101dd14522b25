//! The gate's clock.

use crate::util::unix_now;

/// The gate's clock: seconds since the Unix epoch. A plain function, so that
/// reading it costs the request path what reading the system clock does; tests
/// pass one that reads a value they set, to reach expiry edges without waiting.
pub type Clock = fn() -> i64;

/// The system clock, as a [`Clock`]: what the gate reads unless told otherwise.
pub fn system_clock() -> i64 {
    unix_now()
}
