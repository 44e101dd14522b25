//! The assembled server: health and reflection open, everything else guarded
//! (methods that do not exist included), TLS.

use authgate::pb::{GetPrivateRequest, GetPrivateResponse};
use tonic::{
    Code, Request,
    transport::{Certificate, Channel, ClientTlsConfig},
};

use crate::common::{TestApp, code, spawn_app};

#[tokio::test]
async fn health_is_public_and_serving_once_keys_load() {
    let app = spawn_app().await;
    for service in ["", "authgate.v1.PrivateService"] {
        assert_eq!(
            crate::refresh::health_status(&app, service).await,
            Some(1),
            "{service:?}"
        );
    }
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_are_public() {
    use tokio_stream::StreamExt;
    let app = spawn_app().await;
    let names = crate::common::reflected_services(app.channel().await).await;
    assert!(
        names.contains(&"authgate.v1.PrivateService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    {
        use tonic_reflection::pb::v1alpha::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest,
        };
        let mut client = ServerReflectionClient::new(app.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "authgate.v1.PrivateService".into(),
            )),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("v1alpha reflection answers without a token")
            .into_inner();
        assert!(
            stream
                .next()
                .await
                .unwrap()
                .unwrap()
                .message_response
                .is_some()
        );
    }
}

/// Calls `path` with an empty `GetPrivateRequest`, as a client generated
/// from some other proto would.
async fn call_path(app: &TestApp, path: &'static str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    grpc.ready().await.unwrap();
    let mut request = Request::new(GetPrivateRequest {});
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<GetPrivateRequest, GetPrivateResponse>::default();
    let result = grpc
        .unary(request, http::uri::PathAndQuery::from_static(path), codec)
        .await;
    code(&result)
}

#[tokio::test]
async fn methods_that_do_not_exist_are_guarded_too() {
    let app = spawn_app().await;
    let token = app.token();
    for path in [
        "/authgate.v1.PrivateService/DeleteEverything",
        "/authgate.v2.AdminService/Get",
        "/grpc.health.v1.HealthX/Check",
        "/grpc.health.v1.Health",
    ] {
        assert_eq!(
            call_path(&app, path, None).await,
            Code::Unauthenticated,
            "{path}"
        );
        assert_eq!(
            call_path(&app, path, Some(&token)).await,
            Code::Unimplemented,
            "{path}"
        );
    }
    assert_eq!(
        call_path(&app, "/authgate.v1.PrivateService/GetPrivate", Some(&token)).await,
        Code::Ok
    );
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let (app, ca) = crate::common::spawn_tls_app("server").await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&ca).unwrap()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{}", app.addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(crate::common::patience())
        .connect()
        .await
        .expect("a TLS connection");
    let mut client = authgate::pb::private_service_client::PrivateServiceClient::new(channel);
    let mut request = Request::new(GetPrivateRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", app.token()).parse().unwrap(),
    );
    let response = client.get_private(request).await.unwrap().into_inner();
    assert_eq!(response.message, "This is private");
    // Plaintext to a TLS port does not get through.
    assert!(app.call(&app.token()).await.is_err());
}

#[tokio::test]
async fn stopping_closes_the_listener() {
    let app = spawn_app().await;
    let addr = app.addr;
    assert_eq!(code(&app.call(&app.token()).await), Code::Ok);
    app.stop().await;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn shutdown_lets_calls_in_flight_finish() {
    use tokio_stream::{StreamExt, wrappers::ReceiverStream};
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    let app = spawn_app().await;
    let addr = app.addr;
    let list = || ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    // A streaming call that stays open across the shutdown.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut client = ServerReflectionClient::new(app.channel().await);
    tx.send(list()).await.unwrap();
    let mut responses = client
        .server_reflection_info(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(responses.next().await.unwrap().is_ok());

    let stopping = tokio::spawn(app.stop());
    // New connections are refused once shutdown has begun...
    let refused = crate::common::eventually(crate::common::patience(), || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(refused, "still accepting during shutdown");
    assert!(!stopping.is_finished(), "shut down with a call in flight");
    // ...while the call in flight still gets its answers.
    tx.send(list()).await.unwrap();
    assert!(responses.next().await.unwrap().is_ok());
    drop(tx);
    assert!(responses.next().await.is_none());
    tokio::time::timeout(crate::common::patience(), stopping)
        .await
        .expect("the server stops once the call ends")
        .unwrap();
}
