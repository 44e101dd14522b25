//! A user's own service behind the library, built exactly as the library
//! guide's example (the crate's rustdoc, `src/lib.rs`) builds it:
//! `Gate::builder()` and the server assembly around `greeter.v1.Greeter`,
//! with its health, reflection and scope rule.

use authgate::{
    Gate,
    server::{Application, ServerConfig},
};
use tokio::{net::TcpListener, sync::oneshot};
use tokio_stream::StreamExt;
use tonic::{Code, Request, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::common::{patience, spawn_issuer};

#[path = "../../examples/greeter/greeter.rs"]
mod service;

use service::{
    MyGreeter,
    pb::{HelloRequest, greeter_client::GreeterClient, greeter_server::GreeterServer},
};

const RULE: &str = "/greeter.v1.Greeter/SayHello=greet:hello";

fn hello(name: &str, count: u32, token: Option<&str>) -> Request<HelloRequest> {
    let mut request = Request::new(HelloRequest {
        name: name.into(),
        count,
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

#[tokio::test]
async fn your_own_service_is_guarded_with_health_reflection_and_scopes() {
    let issuer = spawn_issuer().await;
    let gate = Gate::builder()
        .issuer(issuer.url())
        .audience(issuer.audience())
        .require_scope(RULE)
        .build()
        .expect("the gate builds");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::builder(ServerConfig::default())
        .gate(gate.clone())
        .add_service(GreeterServer::new(MyGreeter))
        .descriptor_set(service::pb::FILE_DESCRIPTOR_SET)
        .with_listener(listener)
        .expect("the server builds");
    let addr = app.local_addr();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));
    tokio::time::timeout(patience(), gate.ready())
        .await
        .expect("the issuer's keys load");
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // Health follows the keys for your service by its name.
    let mut health = HealthClient::new(channel.clone());
    let serving = async {
        loop {
            let status = health
                .check(HealthCheckRequest {
                    service: "greeter.v1.Greeter".into(),
                })
                .await
                .map(|r| r.into_inner().status);
            if matches!(status, Ok(1)) {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(patience(), serving)
        .await
        .expect("greeter.v1.Greeter turns SERVING once keys load");

    let mut client = GreeterClient::new(channel.clone());
    let with_scope = issuer.mint(&issuer.claims("alice", &["greet:hello"]));
    let reply = client
        .say_hello(hello("Bob", 0, Some(&with_scope)))
        .await
        .expect("a token with the scope passes")
        .into_inner();
    assert_eq!(reply.message, "Hello Bob, from alice");

    // The rule is enforced, and deny by default needs a token everywhere.
    let without = issuer.mint(&issuer.claims("carol", &["read:private"]));
    let refused = client
        .say_hello(hello("Bob", 0, Some(&without)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("greet:hello"), "{refused:?}");
    let refused = client.say_hello(hello("Bob", 0, None)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = client
        .say_hello_stream(hello("Bob", 2, None))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // The streaming method has no rule: any valid token will do.
    let mut stream = client
        .say_hello_stream(hello("Bob", 3, Some(&without)))
        .await
        .expect("a valid token opens the stream")
        .into_inner();
    let mut replies = Vec::new();
    while let Some(reply) = stream.next().await {
        replies.push(reply.unwrap().message);
    }
    assert_eq!(
        replies,
        [
            "Hello Bob (1/3), from carol",
            "Hello Bob (2/3), from carol",
            "Hello Bob (3/3), from carol"
        ]
    );

    // Reflection serves your descriptor set.
    let names = crate::common::reflected_services(channel).await;
    assert!(
        names.contains(&"greeter.v1.Greeter".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"authgate.v1.PrivateService".to_owned()),
        "the demo service is not in a user's server: {names:?}"
    );

    let _ = stop_tx.send(());
    server.await.unwrap().expect("the server stops cleanly");
}

#[tokio::test]
async fn the_builder_refuses_what_cannot_be_right_before_anything_starts() {
    let issuer = spawn_issuer().await;
    let url = issuer.url();
    let cases = [
        (Gate::builder().audience("a"), "at least one issuer"),
        (Gate::builder().issuer(url), "no audience"),
        (
            Gate::builder()
                .issuer(url)
                .audience("a")
                .require_scope("GetPrivate=read"),
            "full method path",
        ),
        (
            Gate::builder()
                .issuer("http://issuer.example/")
                .audience("a"),
            "must use https",
        ),
    ];
    for (builder, says) in cases {
        let error = builder.build().unwrap_err().to_string();
        assert!(error.contains(says), "{says}: {error}");
    }
}

/// A rule for a method your service does not have would guard nothing: the
/// assembly refuses it before serving, naming the methods there are.
#[tokio::test]
async fn a_rule_for_a_method_your_service_lacks_stops_the_server() {
    let issuer = spawn_issuer().await;
    let gate = Gate::builder()
        .issuer(issuer.url())
        .audience(issuer.audience())
        .require_scope("/greeter.v1.Greeter/SayHelo=greet:hello")
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = Application::builder(ServerConfig::default())
        .gate(gate)
        .add_service(GreeterServer::new(MyGreeter))
        .descriptor_set(service::pb::FILE_DESCRIPTOR_SET)
        .with_listener(listener)
        .unwrap_err()
        .to_string();
    assert!(error.contains("/greeter.v1.Greeter/SayHelo"), "{error}");
    assert!(error.contains("/greeter.v1.Greeter/SayHello,"), "{error}");
}
