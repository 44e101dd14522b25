//! The [`BearerInterceptor`]: the current token on every call.

use tonic::{Request, Status};

use super::TokenSource;

/// Attaches `authorization: Bearer <token>` from a [`TokenSource`] to every
/// call, reading the current token without waiting: the source's background
/// refresh keeps it fresh. Fetch the first token with
/// [`TokenSource::token`] before the first call.
#[derive(Debug, Clone)]
pub struct BearerInterceptor {
    source: TokenSource,
}

impl BearerInterceptor {
    /// An interceptor for `source`.
    pub fn new(source: TokenSource) -> BearerInterceptor {
        BearerInterceptor { source }
    }
}

impl tonic::service::Interceptor for BearerInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = self.source.current().ok_or_else(|| {
            Status::unauthenticated("no fresh access token: the token source could not get one")
        })?;
        request
            .metadata_mut()
            .insert("authorization", token.header.clone());
        Ok(request)
    }
}
