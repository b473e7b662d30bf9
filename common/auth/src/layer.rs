//! The one place calls are authenticated and authorized: a tower layer in front of every gRPC
//! service (gRPC-Web included, as it runs after the translation), so no handler can forget it.
//! Handlers read the [`Principal`] from the request's extensions.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use baton_metrics::Metrics;
use tonic::{
    Status,
    codegen::{Service, http},
    server::NamedService,
};

use crate::{Access, AuthFailure, Authenticator, DenyReason, Principal, methods::access_of};

/// Wraps services with authentication. Cheap to clone.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>, metrics: Arc<Metrics>) -> Self {
        Self { auth, metrics }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S: NamedService> NamedService for AuthService<S> {
    const NAME: &'static str = S::NAME;
}

/// Whether `principal` may make a call that needs `access`.
pub fn allows(principal: &Principal, access: Access) -> bool {
    match access {
        Access::Open | Access::Authenticated => true,
        Access::Role(role) => principal.role >= role,
        Access::System => principal.system,
    }
}

/// Records a refusal: the audit log line (principal and method, never a secret) and the counter.
fn audit_denied(metrics: &Metrics, reason: DenyReason, principal: &str, method: &str) {
    metrics.auth_denied(reason.label());
    tracing::warn!(
        target: "baton::audit",
        principal,
        method,
        reason = reason.label(),
        "call denied"
    );
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let access = access_of(
            request.uri().path(),
            self.layer.auth.config().reflection_open,
        );
        if access == Access::Open {
            request.extensions_mut().insert(Principal::anonymous());
            return Box::pin(self.inner.call(request));
        }
        // The clone that was made ready is the one that serves this call.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let layer = self.layer.clone();
        Box::pin(async move {
            let method = request.uri().path().to_owned();
            let refused = match layer.auth.authenticate(request.headers()).await {
                Ok(principal) if allows(&principal, access) => {
                    request.extensions_mut().insert(principal);
                    return inner.call(request).await;
                }
                Ok(principal) => {
                    audit_denied(
                        &layer.metrics,
                        DenyReason::Forbidden,
                        &principal.subject,
                        &method,
                    );
                    let needs = match access {
                        Access::System => format!(
                            "an admin of the system tenant `{}`",
                            layer.auth.config().system_tenant
                        ),
                        Access::Role(role) => format!("role `{role}` or above"),
                        Access::Open | Access::Authenticated => "a credential".to_owned(),
                    };
                    Status::permission_denied(format!(
                        "{} (role `{}`) may not call {method}: it needs {needs}",
                        principal.subject, principal.role
                    ))
                }
                Err(AuthFailure::Denied { reason, key_id }) => {
                    let principal =
                        key_id.map_or_else(|| "unknown".to_owned(), |id| format!("key:{id}"));
                    audit_denied(&layer.metrics, reason, &principal, &method);
                    Status::unauthenticated(reason.message())
                }
                Err(AuthFailure::Unavailable(e)) => {
                    tracing::warn!(method, error = %e, "cannot authenticate a call");
                    Status::unavailable(e.to_string())
                }
            };
            Ok(refused.into_http())
        })
    }
}
