//! The [`KeyStore`]: the key set the request path reads with one atomic
//! load, what it knows of the last fetches, and the refresher's signals.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use arc_swap::{ArcSwapOption, Guard};
use tokio::sync::{Notify, watch};

use crate::{
    error::{AuthError, FetchError, error_chain},
    keys::KeySet,
};

/// Whether the key store can check tokens now, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Availability {
    /// No fetch has succeeded yet.
    NotLoaded,
    /// The last key set holds at least one usable key.
    Usable,
    /// The issuer's last JWKS listed no usable key: it withdrew them all.
    NoUsableKey,
    /// No fetch succeeded within `max_stale`, so the last key set was dropped.
    Stale,
}

impl Availability {
    /// Whether tokens can be checked: what health reports.
    pub fn is_usable(self) -> bool {
        self == Availability::Usable
    }

    /// Why a call to `issuer` is refused while its store is in this state.
    pub fn refusal(self, issuer: Arc<str>) -> AuthError {
        match self {
            Availability::NoUsableKey => AuthError::NoUsableKey(issuer),
            Availability::Stale => AuthError::KeysStale(issuer),
            // `Usable` only in a race with the first publish.
            Availability::NotLoaded | Availability::Usable => AuthError::KeysNotLoaded(issuer),
        }
    }

    fn from_u8(value: u8) -> Availability {
        match value {
            1 => Availability::Usable,
            2 => Availability::NoUsableKey,
            3 => Availability::Stale,
            _ => Availability::NotLoaded,
        }
    }
}

/// The key set as the request path sees it: published whole by the refresher,
/// read with one atomic load, never waited on.
#[derive(Debug)]
pub struct KeyStore {
    /// The key set the issuer last published; `None` until the first fetch
    /// succeeds, and again once it has gone stale. It may be empty: the
    /// issuer then lists no usable key.
    current: ArcSwapOption<KeySet>,
    /// Raised by a request that met an unknown `kid`, lowered by the refresher
    /// when it fetches: however many requests miss, only the first one since
    /// the last fetch wakes the refresher.
    pub(super) refresh_asked: AtomicBool,
    /// Wakes the refresher for an early fetch.
    pub(super) wake: Notify,
    /// [`Availability`] as a byte: why `current` cannot check tokens, read by
    /// the request path only when it refuses. Written before `current`.
    availability: AtomicU8,
    /// The same, for those who wait on a change: health follows it.
    status: watch::Sender<Availability>,
    /// Which issuer these keys are for: the label of its metrics and status.
    issuer: Box<str>,
    /// What the refresher has seen, for [`KeyStore::status`] and metrics.
    /// Written by the refresher only, read by whoever asks: never touched on
    /// the request path.
    fetches: FetchRecord,
}

/// The refresher's record of its fetches: plain atomics and one arc-swap, so
/// reading it never waits on the refresher.
#[derive(Debug, Default)]
struct FetchRecord {
    successes: AtomicU64,
    failures: AtomicU64,
    /// Milliseconds since the Unix epoch of the last successful fetch; 0: never.
    last_success_ms: AtomicU64,
    /// The last failure: when, and why (the error's chain of causes).
    last_error: ArcSwapOption<(SystemTime, String)>,
}

/// What a [`KeyStore`] holds and how its refresher has fared: for library
/// users without a tracing subscriber, health pages and metrics. Errors are
/// as the refresher logs them: URLs and causes, never a secret (the JWKS and
/// discovery are public documents, and their URLs are redacted: a signed
/// JWKS URL's query and any userinfo read `<redacted>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The issuer the keys are for (empty when the store was made without one).
    pub issuer: String,
    /// Whether tokens can be checked now: a key set with a usable key is
    /// published.
    pub loaded: bool,
    /// Whether tokens can be checked, and if not, why.
    pub availability: Availability,
    /// How many usable keys the published set holds.
    pub keys: usize,
    /// When a fetch last succeeded.
    pub last_success: Option<SystemTime>,
    /// When a fetch last failed, and why.
    pub last_error: Option<(SystemTime, String)>,
    /// Fetches that succeeded (the set they brought was published).
    pub fetch_successes: u64,
    /// Fetches that failed (the last good set, if any, was kept).
    pub fetch_failures: u64,
}

impl KeyStore {
    /// An empty store: every check answers `UNAVAILABLE` until a set is published.
    pub fn new() -> Arc<KeyStore> {
        KeyStore::for_issuer("")
    }

    /// An empty store for `issuer`'s keys; the issuer labels its status and metrics.
    pub fn for_issuer(issuer: &str) -> Arc<KeyStore> {
        Arc::new(KeyStore {
            current: ArcSwapOption::empty(),
            refresh_asked: AtomicBool::new(false),
            wake: Notify::new(),
            availability: AtomicU8::new(Availability::NotLoaded as u8),
            status: watch::Sender::new(Availability::NotLoaded),
            issuer: issuer.into(),
            fetches: FetchRecord::default(),
        })
    }

    /// The issuer these keys are for.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// What the store holds and how fetching has gone, without waiting.
    pub fn status(&self) -> KeyStatus {
        let set = self.current.load();
        let last_success_ms = self.fetches.last_success_ms.load(Ordering::Acquire);
        let availability = self.availability();
        KeyStatus {
            issuer: self.issuer.to_string(),
            loaded: availability.is_usable(),
            availability,
            keys: set.as_ref().map_or(0, |s| s.len()),
            last_success: (last_success_ms > 0)
                .then(|| UNIX_EPOCH + Duration::from_millis(last_success_ms)),
            last_error: self.fetches.last_error.load_full().map(|e| (*e).clone()),
            fetch_successes: self.fetches.successes.load(Ordering::Relaxed),
            fetch_failures: self.fetches.failures.load(Ordering::Relaxed),
        }
    }

    pub(super) fn record_success(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.fetches.last_success_ms.store(now, Ordering::Release);
        self.fetches.successes.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn record_failure(&self, error: &FetchError) {
        self.fetches
            .last_error
            .store(Some(Arc::new((SystemTime::now(), error_chain(error)))));
        self.fetches.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The current key set, if one has loaded and not gone stale. Lock-free
    /// and without I/O. An empty set means the issuer lists no usable key.
    #[inline]
    pub fn load(&self) -> Guard<Option<Arc<KeySet>>> {
        self.current.load()
    }

    /// Replaces the key set: a key the new set lacks stops verifying at once,
    /// and an empty set withdraws them all.
    pub fn publish(&self, set: KeySet) {
        let availability = if set.is_empty() {
            Availability::NoUsableKey
        } else {
            Availability::Usable
        };
        self.availability
            .store(availability as u8, Ordering::Release);
        self.current.store(Some(Arc::new(set)));
        self.status.send_replace(availability);
    }

    /// Drops the key set because no fetch has succeeded for too long: every
    /// check answers `UNAVAILABLE` until a set is published again.
    pub fn drop_stale(&self) {
        self.availability
            .store(Availability::Stale as u8, Ordering::Release);
        self.current.store(None);
        self.status.send_replace(Availability::Stale);
    }

    /// Whether tokens can be checked now, and if not, why. One atomic load.
    pub fn availability(&self) -> Availability {
        Availability::from_u8(self.availability.load(Ordering::Acquire))
    }

    /// Follows [`KeyStore::availability`] as it changes: health does.
    pub fn watch(&self) -> watch::Receiver<Availability> {
        self.status.subscribe()
    }

    /// Asks the refresher to fetch early because a token named a `kid` the set
    /// lacks. Never waits; repeated asks coalesce into one fetch, and the
    /// refresher spaces such fetches by its minimum interval, or, while
    /// fetches fail, answers them with its backoff's next try.
    #[inline]
    pub fn ask_refresh(&self) {
        if !self.refresh_asked.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Whether a request has asked for an early fetch that has not begun yet.
    pub fn refresh_asked(&self) -> bool {
        self.refresh_asked.load(Ordering::Acquire)
    }

    /// Resolves once the first key set has been published (even one that
    /// lists no usable key).
    pub async fn wait_loaded(&self) {
        self.wait_for(|a| a != Availability::NotLoaded).await;
    }

    /// Resolves once `until` holds for the availability, at once if it does.
    pub async fn wait_for(&self, mut until: impl FnMut(Availability) -> bool) {
        let mut status = self.status.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = status.wait_for(|a| until(*a)).await;
    }
}

impl KeyStore {
    pub(super) fn load_full(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }
}
