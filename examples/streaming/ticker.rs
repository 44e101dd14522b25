//! `authgate.example.v1.Ticker`: a server-streaming service for the
//! streaming example and its test (tests/it/streams.rs includes this file).

use std::{pin::Pin, time::Duration};

use authgate::Principal;
use tokio_stream::{Stream, StreamExt, wrappers::IntervalStream};
use tonic::{Request, Response, Status};

/// Code generated from `examples/proto/ticker.proto`.
pub mod pb {
    tonic::include_proto!("authgate.example.v1");
}

use pb::{Tick, WatchRequest, ticker_server};

/// Ticks for whoever the gate let in, every `interval_ms` (at least 10).
pub struct Ticker;

#[tonic::async_trait]
impl ticker_server::Ticker for Ticker {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<Tick, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let subject = request
            .extensions()
            .get::<Principal>()
            .ok_or_else(|| Status::unauthenticated("no caller"))?
            .subject()
            .to_owned();
        let every = Duration::from_millis(request.get_ref().interval_ms.max(10).into());
        let mut n = 0;
        let ticks = IntervalStream::new(tokio::time::interval(every)).map(move |_| {
            n += 1;
            Ok(Tick {
                n,
                subject: subject.clone(),
            })
        });
        Ok(Response::new(Box::pin(ticks)))
    }
}
