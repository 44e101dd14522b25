//! The gate as a tonic interceptor, for a single service.

use tonic::Status;

use super::Gate;

/// For a single service (`FooServer::with_interceptor(svc, auth)`): validates
/// the token and puts the [`Principal`](crate::Principal) in the request's extensions. tonic
/// does not tell an interceptor which method is called, so when the policy
/// names any method, or the token's issuer may call only some methods, this
/// refuses rather than guess: use [`GateLayer`](crate::GateLayer) there.
impl tonic::service::Interceptor for Gate {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let values = request.metadata().get_all("authorization");
        match self.check_unknown_method(values.iter().map(|v| v.as_bytes())) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                Ok(request)
            }
            Err(refusal) => {
                self.log_refusal("(one service)", request.remote_addr(), &refusal);
                Err(Status::from(&refusal.error))
            }
        }
    }
}
