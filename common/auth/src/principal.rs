//! Who is calling, as the auth layer established it; handlers read it from the request's
//! extensions and never from a request field.

use crate::Role;

/// The authenticated caller of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `key:<id>`, `jwt:<subject>`, or `anonymous` with auth disabled. Never a secret.
    pub subject: String,
    /// The tenant every id the call names must belong to. `None` only with auth disabled, where
    /// calls choose their tenant.
    pub tenant: Option<String>,
    pub role: Role,
    /// Whether this is an admin of the system tenant (or auth is disabled).
    pub system: bool,
}

impl Principal {
    /// The caller when auth is disabled: an admin of any tenant.
    pub fn anonymous() -> Self {
        Self {
            subject: "anonymous".to_owned(),
            tenant: None,
            role: Role::Admin,
            system: true,
        }
    }

    /// Whether a resource of `tenant` is visible to this caller. With auth disabled, everything is.
    /// The one tenant check: every handler that loads something by id passes its tenant here and
    /// answers NOT_FOUND when this is false, so another tenant's ids cannot be told from ids
    /// that do not exist.
    pub fn sees(&self, tenant: &str) -> bool {
        match &self.tenant {
            None => true,
            Some(own) => own == tenant,
        }
    }

    /// Hides a resource of another tenant: `Some` only when [`Principal::sees`] its tenant.
    pub fn visible<T: Tenanted>(&self, resource: Option<T>) -> Option<T> {
        resource.filter(|r| self.sees(r.tenant()))
    }

    /// The tenant a call acts in, given the tenant its request names (empty: none). With a
    /// credential, the request may only repeat the credential's tenant; with auth disabled it
    /// chooses, and empty means `default_tenant`.
    pub fn tenant_for<'a>(
        &'a self,
        requested: &'a str,
        default_tenant: &'a str,
    ) -> Result<&'a str, ForeignTenant> {
        let requested = requested.trim();
        match &self.tenant {
            Some(own) if requested.is_empty() || requested == own => Ok(own),
            Some(own) => Err(ForeignTenant {
                requested: requested.to_owned(),
                own: own.clone(),
            }),
            None if requested.is_empty() => Ok(default_tenant),
            None => Ok(requested),
        }
    }
}

/// A request that names a tenant other than its credential's.
#[derive(Debug, thiserror::Error)]
#[error(
    "tenant: the credential belongs to tenant `{own}`, so a call cannot act in `{requested}` \
     (leave tenant empty: it comes from the credential)"
)]
pub struct ForeignTenant {
    pub requested: String,
    pub own: String,
}

/// Something that belongs to one tenant.
pub trait Tenanted {
    fn tenant(&self) -> &str;
}

impl<T: Tenanted> Tenanted for &T {
    fn tenant(&self) -> &str {
        (**self).tenant()
    }
}

impl Tenanted for baton_engine::RunState {
    fn tenant(&self) -> &str {
        &self.tenant
    }
}

impl Tenanted for baton_store::RunDetail {
    fn tenant(&self) -> &str {
        &self.run.tenant
    }
}

impl Tenanted for baton_store::StoredWorkflow {
    fn tenant(&self) -> &str {
        &self.tenant
    }
}

impl Tenanted for baton_store::ApiKeyRecord {
    fn tenant(&self) -> &str {
        &self.tenant
    }
}
