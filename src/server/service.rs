//! The guarded gRPC service: `GetPrivate` answers "This is private" with who
//! the caller is, as the gate established it.

use tonic::{Request, Response, Status};

use crate::{
    gate::validate::Principal,
    pb::{GetPrivateRequest, GetPrivateResponse, private_service_server},
};

/// `GetPrivate`'s path, whose scope rules `GET /` answers under too.
pub const GET_PRIVATE_METHOD: &str = "/authgate.v1.PrivateService/GetPrivate";

/// What `GetPrivate` answers with.
pub const PRIVATE_MESSAGE: &str = "This is private";

/// `authgate.v1.PrivateService`. Reads the [`Principal`] the gate put in the
/// request's extensions; without one it refuses, so that a server assembled
/// without the gate fails closed.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrivateService;

impl PrivateService {
    /// The demo service as a server would add it, with the request size
    /// limit of `limits`.
    pub fn server(limits: &super::Limits) -> private_service_server::PrivateServiceServer<Self> {
        private_service_server::PrivateServiceServer::new(PrivateService)
            .max_decoding_message_size(limits.max_message_bytes)
    }
}

#[tonic::async_trait]
impl private_service_server::PrivateService for PrivateService {
    async fn get_private(
        &self,
        request: Request<GetPrivateRequest>,
    ) -> Result<Response<GetPrivateResponse>, Status> {
        let principal = request
            .extensions()
            .get::<Principal>()
            .ok_or_else(|| Status::unauthenticated("no authenticated caller"))?;
        Ok(Response::new(GetPrivateResponse {
            message: PRIVATE_MESSAGE.to_owned(),
            subject: principal.subject().to_owned(),
            scopes: principal.scopes().map(str::to_owned).collect(),
        }))
    }
}
