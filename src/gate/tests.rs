//! Unit tests of the gate's parts together.
use super::*;
use super::{bearer::bearer_token, layer::peer};
use crate::{error::AuthError, gate::validate::MAX_TOKEN_BYTES, keys::KeyStore};
use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
};
use tonic::transport::server::TcpConnectInfo;

#[test]
fn bearer_scheme_is_case_insensitive_and_strict() {
    let one = |v: &'static str| bearer_token([v.as_bytes()]);
    assert_eq!(one("Bearer abc"), Ok(&b"abc"[..]));
    assert_eq!(one("bearer abc"), Ok(&b"abc"[..]));
    assert_eq!(one("BEARER   abc"), Ok(&b"abc"[..]));
    for bad in [
        "Basic abc",
        "Bearer",
        "Bearer ",
        "Bearerabc",
        "abc",
        "Token abc",
    ] {
        assert_eq!(one(bad), Err(AuthError::NotBearer), "{bad}");
    }
    assert_eq!(bearer_token([]), Err(AuthError::MissingAuthorization));
    assert_eq!(
        bearer_token([&b"Bearer a"[..], b"Bearer b"]),
        Err(AuthError::DuplicateAuthorization)
    );
}

/// A gate with no keys and no rules, reading the time from `clock`.
fn gate(clock: Clock) -> Gate {
    let validator = Validator::new(crate::ValidationConfig {
        issuer: "https://issuer.test/".into(),
        audiences: vec!["api".into()],
        leeway: std::time::Duration::ZERO,
        require_typ: None,
        ..Default::default()
    });
    Gate::new(validator, KeyStore::new(), ScopePolicy::default()).with_clock(clock)
}

#[test]
fn refusal_logging_is_capped_per_second_and_counts_the_rest() {
    use std::sync::{Mutex, atomic::AtomicI64};
    static NOW: AtomicI64 = AtomicI64::new(1_000);
    fn clock() -> i64 {
        NOW.load(Ordering::SeqCst)
    }
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    let gate = gate(clock);
    let refusal = Refusal {
        error: AuthError::BadSignature,
        subject: None,
    };
    let peer = Some(SocketAddr::from(([127, 0, 0, 1], 4711)));
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..150 {
            gate.log_refusal("/p.S/M", peer, &refusal);
        }
        // The next second logs again, first saying how many went unlogged.
        NOW.store(1_001, Ordering::SeqCst);
        gate.log_refusal("/p.S/M", peer, &refusal);
        // A second after one without suppression says nothing of it.
        NOW.store(1_002, Ordering::SeqCst);
        gate.log_refusal("/p.S/M", peer, &refusal);
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let refused: Vec<&str> = text.lines().filter(|l| l.contains("refused:")).collect();
    assert_eq!(refused.len(), REFUSALS_LOGGED_PER_SECOND as usize + 2);
    assert!(refused[0].contains("127.0.0.1:4711"), "{}", refused[0]);
    assert!(refused[0].contains("bad_signature"), "{}", refused[0]);
    let counted: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("more refusals than the log limit"))
        .collect();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert!(counted[0].contains("suppressed=50"), "{}", counted[0]);
}

#[test]
fn the_whole_authorization_value_is_bounded_too() {
    // "Bearer", spaces, and a token at its longest: 8256 bytes, read.
    let longest = format!("Bearer{}{}", " ".repeat(58), "t".repeat(MAX_TOKEN_BYTES));
    assert_eq!(longest.len(), MAX_TOKEN_BYTES + 64);
    assert_eq!(
        bearer_token([longest.as_bytes()]).map(<[u8]>::len),
        Ok(MAX_TOKEN_BYTES)
    );
    // Longer, however short the token in it: refused unread.
    let padded = format!("Bearer{}abc", " ".repeat(MAX_TOKEN_BYTES + 100));
    assert_eq!(
        bearer_token([padded.as_bytes()]),
        Err(AuthError::TooLong {
            max: MAX_TOKEN_BYTES
        })
    );
}

#[test]
fn the_layer_is_ready_only_when_the_service_behind_it_is() {
    struct NeverReady;
    impl tower_service::Service<http::Request<tonic::body::Body>> for NeverReady {
        type Response = http::Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<http::Response<()>, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
        fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
            unreachable!("called while not ready")
        }
    }
    fn clock() -> i64 {
        0
    }
    let mut service = tower_layer::Layer::layer(&gate(clock).layer(), NeverReady);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(tower_service::Service::poll_ready(&mut service, &mut cx).is_pending());
}

#[test]
fn refusals_name_the_peer_and_debug_names_the_parts() {
    let addr = SocketAddr::from(([127, 0, 0, 1], 4711));
    let mut request = http::Request::new(());
    request.extensions_mut().insert(TcpConnectInfo {
        local_addr: None,
        remote_addr: Some(addr),
    });
    assert_eq!(peer(&request), Some(addr));
    assert_eq!(peer(&http::Request::new(())), None);
    fn clock() -> i64 {
        0
    }
    let debug = format!("{:?}", gate(clock));
    assert!(debug.starts_with("Gate"), "{debug}");
    assert!(debug.contains("https://issuer.test/"), "{debug}");
    assert!(debug.contains("policy"), "{debug}");
}

#[test]
fn scope_rules_parse_full_method_paths() {
    let rule: ScopeRule = "/authgate.v1.PrivateService/GetPrivate=read:private"
        .parse()
        .unwrap();
    assert_eq!(rule.method, "/authgate.v1.PrivateService/GetPrivate");
    assert_eq!(rule.any_of, ["read:private"]);
    assert_eq!(rule.service(), None);
    let rule: ScopeRule = "/a.S/*= read:private | admin |admin".parse().unwrap();
    assert_eq!(rule.service(), Some("/a.S/"));
    assert_eq!(rule.any_of, ["read:private", "admin"]);
    assert_eq!(rule.to_string(), "/a.S/*=read:private|admin");
    // Any HTTP path, and every path under a prefix.
    for (good, prefix) in [
        ("/authgate.v1.PrivateService=read", None),
        ("/a/b/c=read", None),
        ("/=read", None),
        ("/admin/=read", None),
        ("/api/v1/*=read", Some("/api/v1/")),
        ("/admin/*=admin", Some("/admin/")),
        ("/*=read", Some("/")),
    ] {
        let rule: ScopeRule = good.parse().unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(rule.service(), prefix, "{good}");
    }
    for bad in [
        "GetPrivate=read",
        "/a/../b=read",
        "/a/./b=read",
        "/a//b=read",
        "/a//*=read",
        "/../*=read",
        "/a/b=",
        "/a/b=two words",
        "/a/b",
        "//b=x",
        "/a/b=x||y",
        "/a/b=x|",
        "/*/b=x",
        "/a/b*=x",
        "/a/*b=x",
    ] {
        assert!(bad.parse::<ScopeRule>().is_err(), "{bad}");
    }
}
