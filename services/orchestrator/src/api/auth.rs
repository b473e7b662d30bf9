//! `AuthService`: API keys created, listed and revoked by a tenant's admins (and, for any tenant,
//! by the system tenant's). Every change is logged with who made it, never with the token.

use baton_auth::{Principal, Role};
use baton_engine::now_micros;
use baton_proto::{
    timestamp_from_micros,
    v1::{
        self, CreateApiKeyRequest, CreateApiKeyResponse, ListApiKeysRequest, ListApiKeysResponse,
        RevokeApiKeyRequest, RevokeApiKeyResponse, auth_service_server::AuthService,
    },
};
use baton_store::ApiKeyRecord;
use tonic::{Request, Response, Status};

use super::{Api, principal, text::check_text};
use crate::error::ApiError;

fn role_to_proto(role: &str) -> v1::Role {
    match role.parse::<Role>() {
        Ok(Role::Viewer) => v1::Role::Viewer,
        Ok(Role::Operator) => v1::Role::Operator,
        Ok(Role::Admin) => v1::Role::Admin,
        Err(_) => v1::Role::Unspecified,
    }
}

/// The wire form of a role, for `GetInfo` too.
pub(crate) fn role_proto(role: Role) -> v1::Role {
    role_to_proto(role.as_str())
}

fn key_to_proto(key: &ApiKeyRecord) -> v1::ApiKey {
    v1::ApiKey {
        id: key.id.clone(),
        tenant: key.tenant.clone(),
        role: role_to_proto(&key.role) as i32,
        name: key.name.clone(),
        created_at: Some(timestamp_from_micros(key.created_at_micros)),
        revoked_at: key.revoked_at_micros.map(timestamp_from_micros),
        created_by: key.created_by.clone(),
    }
}

/// The tenant an admin acts on: their own unless they name another, which needs the system
/// tenant. With auth disabled, the named one (or `default`).
fn target_tenant(principal: &Principal, requested: &str) -> Result<String, ApiError> {
    check_text("tenant", requested)?;
    let requested = requested.trim();
    if !requested.is_empty() && !baton_auth::valid_tenant(requested) {
        return Err(ApiError::InvalidArgument(
            "tenant: must be 1 to 100 letters, digits, `-`, `_` or `.`".into(),
        ));
    }
    if principal.system {
        return Ok(match (requested.is_empty(), &principal.tenant) {
            (false, _) => requested.to_owned(),
            (true, Some(own)) => own.clone(),
            (true, None) => super::DEFAULT_TENANT.to_owned(),
        });
    }
    Ok(principal
        .tenant_for(requested, super::DEFAULT_TENANT)?
        .to_owned())
}

#[tonic::async_trait]
impl AuthService for Api {
    #[tracing::instrument(skip_all, fields(tenant, key.id))]
    async fn create_api_key(
        &self,
        request: Request<CreateApiKeyRequest>,
    ) -> Result<Response<CreateApiKeyResponse>, Status> {
        let principal = principal(&request)?;
        let req = request.into_inner();
        let tenant = target_tenant(&principal, &req.tenant)?;
        let role = match v1::Role::try_from(req.role) {
            Ok(v1::Role::Viewer) => Role::Viewer,
            Ok(v1::Role::Operator) => Role::Operator,
            Ok(v1::Role::Admin) => Role::Admin,
            _ => {
                return Err(ApiError::InvalidArgument(
                    "role: must be ROLE_ADMIN, ROLE_OPERATOR or ROLE_VIEWER".into(),
                )
                .into());
            }
        };
        check_text("name", &req.name)?;
        let issued = baton_auth::issue(&tenant, role, &req.name, &principal.subject, now_micros())
            .map_err(|e| match e {
                baton_auth::IssueError::Random(e) => {
                    tracing::error!(error = %e, "cannot create an API key");
                    ApiError::Internal
                }
                e => ApiError::InvalidArgument(e.to_string()),
            })?;
        let span = tracing::Span::current();
        span.record("tenant", tenant.as_str());
        span.record("key.id", issued.token.id.as_str());
        let key = self
            .store
            .create_api_key(issued.record)
            .await
            .map_err(ApiError::from)?;
        self.auth.forget(&key.id);
        self.metrics.api_key_changed("created");
        tracing::info!(
            target: "baton::audit",
            principal = %principal.subject,
            key.id = %key.id,
            key.tenant = %key.tenant,
            key.role = %key.role,
            "API key created"
        );
        Ok(Response::new(CreateApiKeyResponse {
            key: Some(key_to_proto(&key)),
            token: issued.token.expose(),
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<ListApiKeysRequest>,
    ) -> Result<Response<ListApiKeysResponse>, Status> {
        let principal = principal(&request)?;
        let req = request.into_inner();
        let tenant = target_tenant(&principal, &req.tenant)?;
        let keys = self
            .store
            .list_api_keys(Some(&tenant), req.include_revoked)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListApiKeysResponse {
            keys: keys.iter().map(key_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(key.id))]
    async fn revoke_api_key(
        &self,
        request: Request<RevokeApiKeyRequest>,
    ) -> Result<Response<RevokeApiKeyResponse>, Status> {
        let principal = principal(&request)?;
        let id = request.into_inner().id;
        check_text("id", &id)?;
        let id = id.trim().to_owned();
        if id.is_empty() {
            return Err(ApiError::InvalidArgument("id: is empty".into()).into());
        }
        tracing::Span::current().record("key.id", id.as_str());
        let not_found = || ApiError::NotFound(format!("API key {id} does not exist"));
        let found = self.store.find_api_key(&id).await.map_err(ApiError::from)?;
        // The system tenant's admins revoke any key; others only their own tenant's.
        let key = match principal.system {
            true => found,
            false => principal.visible(found),
        }
        .ok_or_else(not_found)?;
        let revoked = self
            .store
            .revoke_api_key(&key.id, now_micros())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        self.auth.forget(&revoked.id);
        if key.revoked_at_micros.is_none() {
            self.metrics.api_key_changed("revoked");
            tracing::info!(
                target: "baton::audit",
                principal = %principal.subject,
                key.id = %revoked.id,
                key.tenant = %revoked.tenant,
                "API key revoked"
            );
        }
        Ok(Response::new(RevokeApiKeyResponse {
            key: Some(key_to_proto(&revoked)),
        }))
    }
}
