//! Stop signals: SIGTERM and SIGINT, first and second.

use std::future::Future;

/// The first and the second SIGTERM or SIGINT (Ctrl-C), for
/// [`Application::run_draining`](super::Application::run_draining): the first starts the drain, and a second
/// ends its delay at once (`stop` = the delay or the second signal, whichever
/// comes first). Both signals are listened for from this call on, so a
/// second that follows quickly is not lost. Call it within a Tokio runtime.
pub fn stop_signals() -> (
    impl Future<Output = ()> + Send + 'static,
    impl Future<Output = ()> + Send + 'static,
) {
    let (each_tx, mut each) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let mut listeners = Vec::new();
    #[cfg(unix)]
    for (kind, name) in [
        (tokio::signal::unix::SignalKind::terminate(), "SIGTERM"),
        (tokio::signal::unix::SignalKind::interrupt(), "SIGINT"),
    ] {
        match tokio::signal::unix::signal(kind) {
            Ok(mut signal) => {
                let each_tx = each_tx.clone();
                listeners.push(tokio::spawn(async move {
                    while signal.recv().await.is_some() && each_tx.send(name).is_ok() {}
                }));
            }
            Err(error) => tracing::warn!(%error, "cannot listen for {name}"),
        }
    }
    #[cfg(not(unix))]
    {
        let each_tx = each_tx.clone();
        listeners.push(tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() && each_tx.send("Ctrl-C").is_ok() {}
        }));
    }
    drop(each_tx);
    let (first_tx, first) = tokio::sync::oneshot::channel::<()>();
    let (second_tx, second) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Some(name) = each.recv().await {
            tracing::info!(signal = name, "asked to stop");
            let _ = first_tx.send(());
        }
        if let Some(name) = each.recv().await {
            tracing::info!(signal = name, "asked again: ending the drain delay now");
            let _ = second_tx.send(());
        }
        for listener in listeners {
            listener.abort();
        }
    });
    // A sender dropped unsent (no signal can be listened for) never resolves.
    let resolve = |rx: tokio::sync::oneshot::Receiver<()>| async move {
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    (resolve(first), resolve(second))
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("asked to stop");
}
