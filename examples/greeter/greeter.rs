//! `greeter.v1.Greeter`: your own service, as the library example guards it
//! (tests/it/greeter.rs includes this file too). Nothing here knows about
//! authgate but the `Principal` the gate leaves in each request.

use std::pin::Pin;

use authgate::Principal;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Code generated from `examples/proto/greeter.proto`.
pub mod pb {
    tonic::include_proto!("greeter.v1");

    /// What reflection serves, so grpcurl needs no `.proto`.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/greeter_descriptor.bin"));
}

use pb::{HelloReply, HelloRequest, greeter_server};

/// Greets whoever the gate let in.
#[derive(Debug, Default)]
pub struct MyGreeter;

/// Who is calling: the token's `sub`, which the gate put in the request.
fn caller<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<Principal>()
        .map(|p| p.subject().to_owned())
        .unwrap_or_default()
}

#[tonic::async_trait]
impl greeter_server::Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let message = format!(
            "Hello {}, from {}",
            request.get_ref().name,
            caller(&request)
        );
        Ok(Response::new(HelloReply { message }))
    }

    type SayHelloStreamStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

    async fn say_hello_stream(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<Self::SayHelloStreamStream>, Status> {
        let (who, name) = (caller(&request), request.get_ref().name.clone());
        let count = request.get_ref().count.clamp(1, 10);
        let replies = (1..=count).map(move |n| {
            Ok(HelloReply {
                message: format!("Hello {name} ({n}/{count}), from {who}"),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }
}
