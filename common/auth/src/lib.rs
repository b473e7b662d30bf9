//! Who is calling and what they may do, for every Baton service: API keys and JWTs become a
//! [`Principal`] (subject, tenant, role) in one tower layer ([`AuthLayer`]), each RPC's needs are
//! one table ([`methods::METHODS`]), and the tenant check every handler makes is
//! [`Principal::sees`]. Per-tenant edge limits ([`TenantQuotas`]) and the client side (the
//! [`Bearer`] interceptor, the CLI's [`credentials`] file) live here too, so no service copies them.

mod authenticator;
pub mod client;
mod config;
pub mod credentials;
mod jwt;
mod layer;
pub mod methods;
mod principal;
mod quota;
mod role;
mod token;

pub use authenticator::{AuthFailure, AuthUnavailable, Authenticator, DenyReason};
pub use client::Bearer;
pub use config::{AuthConfig, JwtConfig, JwtKeys};
pub use jwt::{JwtSetupError, JwtVerifier};
pub use layer::{AuthLayer, AuthService, allows};
pub use principal::{ForeignTenant, Principal, Tenanted};
pub use quota::{Limited, QuotaConfig, StreamPermit, TenantQuotas};
pub use role::{Access, Role, UnknownRole};
pub use token::{
    IssueError, IssuedKey, KeyToken, MAX_KEY_NAME, RandomUnavailable, issue, valid_tenant,
};
