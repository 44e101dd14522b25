//! Health as load balancers and kubelets read it: `""` and every guarded
//! service `SERVING` exactly while some issuer's key set can check tokens
//! and the server is not draining; [`LIVENESS_SERVICE`] `SERVING` while the
//! process runs.

use std::sync::Arc;

use tokio::{sync::Notify, task::JoinHandle};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::keys::KeyStore;

/// The health service name that answers SERVING while the process runs: the
/// one liveness probes ask for (`""` and the guarded services follow the
/// keys and the drain, for readiness).
pub const LIVENESS_SERVICE: &str = "grpc.health.v1.Health";

/// The readiness half of health: `""` and each guarded service.
#[derive(Clone)]
pub(super) struct Readiness {
    reporter: HealthReporter,
    guarded: Arc<[&'static str]>,
}

impl Readiness {
    /// Readiness for `guarded`, starting `NOT_SERVING` (before the first key
    /// set every guarded call would be refused with `UNAVAILABLE`), and
    /// liveness `SERVING`: a pod whose issuer is down must not be restarted,
    /// or it would lose its last good key set.
    pub(super) async fn new(reporter: HealthReporter, guarded: Arc<[&'static str]>) -> Readiness {
        let readiness = Readiness { reporter, guarded };
        readiness.set(false).await;
        readiness
            .reporter
            .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
            .await;
        readiness
    }

    /// Reports `""` and every guarded service as serving, or not.
    pub(super) async fn set(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in std::iter::once(&"").chain(self.guarded.iter()) {
            self.reporter.set_service_status(*name, status).await;
        }
    }

    /// Follows the key stores: serving from the first usable set, not while
    /// every issuer lists no usable key or has gone stale, and again once
    /// keys are back. A change in any store wakes the task, which then looks
    /// at them all. Abort the task before draining, so that nothing turns
    /// health back to `SERVING`.
    pub(super) fn follow(self, stores: Vec<Arc<KeyStore>>) -> JoinHandle<()> {
        let changed = Arc::new(Notify::new());
        let mut watchers = tokio::task::JoinSet::new();
        for store in &stores {
            let (mut availability, changed) = (store.watch(), changed.clone());
            watchers.spawn(async move {
                // The sender lives in the key store, which `stores` holds.
                while availability.changed().await.is_ok() {
                    changed.notify_one();
                }
            });
        }
        tokio::spawn(async move {
            // Dropping the set (when this task is aborted) stops the watchers.
            let _watchers = watchers;
            let mut serving = false;
            loop {
                let usable = stores.iter().any(|s| s.availability().is_usable());
                if usable != serving {
                    serving = usable;
                    self.set(usable).await;
                }
                changed.notified().await;
            }
        })
    }
}
