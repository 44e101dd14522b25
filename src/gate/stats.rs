//! What the gate decided, counted without a lock, and the refusal log's
//! rate limit.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use crate::error::AuthError;

/// What the gate decided and how its token cache fared, counted with one
/// relaxed atomic increment each: no lock, no allocation, no map. Refusals are
/// counted by reason in a fixed array, since the set of reasons is finite.
#[derive(Debug, Default)]
pub struct GateStats {
    allowed: AtomicU64,
    denied: [AtomicU64; AuthError::REASONS.len()],
    pub(super) cache_hits: AtomicU64,
    pub(super) cache_misses: AtomicU64,
}

impl GateStats {
    /// Calls let through.
    pub fn allowed(&self) -> u64 {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Calls refused, by reason: every reason [`AuthError::reason`] can
    /// give, each with its count (zero included), in a fixed order that new
    /// reasons only extend.
    pub fn denied(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        AuthError::REASONS
            .iter()
            .zip(&self.denied)
            .map(|(reason, n)| (*reason, n.load(Ordering::Relaxed)))
    }

    /// Calls refused for `error`'s reason.
    pub fn denied_for(&self, error: &AuthError) -> u64 {
        self.denied[error.reason_index()].load(Ordering::Relaxed)
    }

    /// Tokens found in the verified-token cache.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Tokens looked up in the cache and not found there (then verified).
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(Ordering::Relaxed)
    }

    /// Counts one decision: let through, or refused for `refused`.
    #[inline]
    pub(super) fn count(&self, refused: Option<&AuthError>) {
        match refused {
            None => self.allowed.fetch_add(1, Ordering::Relaxed),
            Some(error) => self.denied[error.reason_index()].fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The most refusals logged in one second; the rest are counted, and the
/// count is logged when the next second begins.
pub const REFUSALS_LOGGED_PER_SECOND: u32 = 100;

/// A budget of log lines a second for lines a caller can cause (refusals,
/// an upstream's failures): past it, lines are counted, and the count is
/// logged when the next second begins, so a flood of junk cannot flood the
/// logs or stall on a slow log sink.
pub(crate) struct LogBudget {
    /// What is logged, as the line about the suppressed ones names it.
    what: &'static str,
    /// The second the counts below are for.
    second: AtomicI64,
    logged: AtomicU32,
    suppressed: AtomicU64,
}

impl LogBudget {
    pub(crate) const fn new(what: &'static str) -> LogBudget {
        LogBudget {
            what,
            second: AtomicI64::new(0),
            logged: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line at `now` (seconds) may be logged; lock-free.
    pub(crate) fn admit(&self, now: i64) -> bool {
        let second = self.second.load(Ordering::Relaxed);
        if now != second
            && self
                .second
                .compare_exchange(second, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.logged.store(0, Ordering::Relaxed);
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            if suppressed > 0 {
                tracing::warn!(
                    suppressed,
                    limit_per_second = REFUSALS_LOGGED_PER_SECOND,
                    "more {} than the log limit; these were counted, not logged",
                    self.what
                );
            }
        }
        if self.logged.fetch_add(1, Ordering::Relaxed) < REFUSALS_LOGGED_PER_SECOND {
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}
