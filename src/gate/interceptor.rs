//! The gate as a tonic interceptor, for a single service.

use tonic::Status;

use super::{Gate, Refusal};
use crate::error::AuthError;

/// For a single service (`FooServer::with_interceptor(svc, auth)`): validates
/// the token and puts the [`Principal`](crate::Principal) in the request's extensions. tonic
/// does not tell an interceptor which method is called, so when the policy
/// names any method, or the token's issuer may call only some methods, this
/// refuses rather than guess: use [`GateLayer`](crate::GateLayer) there.
impl tonic::service::Interceptor for Gate {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let values = request.metadata().get_all("authorization");
        let refuse = |error: AuthError, subject: Option<Box<str>>| {
            self.shared.stats.count(Some(&error));
            let refusal = Refusal { error, subject };
            self.log_refusal("(one service)", request.remote_addr(), &refusal);
            Status::from(&refusal.error)
        };
        let principal = self
            .authenticate(values.iter().map(|v| v.as_bytes()))
            .map_err(|e| refuse(e, None))?;
        // Nor which issuers' `methods` lists would allow.
        if !self.shared.policy.is_empty() || principal.is_limited_to_methods() {
            return Err(refuse(
                AuthError::UnknownMethod,
                Some(principal.subject().into()),
            ));
        }
        self.shared.stats.count(None);
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}
