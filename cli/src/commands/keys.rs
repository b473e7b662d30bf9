//! `baton auth key create|list|revoke`: API keys through AuthService, and the first key of a
//! deployment written straight into its database (`--database-url`, `--db`), before any key
//! exists that could ask the orchestrator for one.

use std::process::ExitCode;

use anyhow::Context as _;
use baton_proto::v1::{
    self, ApiKey, CreateApiKeyRequest, ListApiKeysRequest, RevokeApiKeyRequest,
    auth_service_client::AuthServiceClient,
};
use baton_store::{ApiKeyRecord, KeyStore};
use serde_json::json;

use super::Ctx;
use crate::args::{KeyCreateArgs, KeyListArgs, KeyRevokeArgs, OutputFormat};
use crate::client::Conn;
use crate::json::{self, role_label};
use crate::output::{Table, local_time, outln, print_json};

/// Who a key written straight into the database was created by.
const BOOTSTRAP: &str = "bootstrap";

fn client(ctx: &Ctx) -> AuthServiceClient<Conn> {
    AuthServiceClient::new(ctx.conn())
}

fn role_proto(role: baton_auth::Role) -> v1::Role {
    match role {
        baton_auth::Role::Viewer => v1::Role::Viewer,
        baton_auth::Role::Operator => v1::Role::Operator,
        baton_auth::Role::Admin => v1::Role::Admin,
    }
}

pub async fn create(ctx: &Ctx, args: KeyCreateArgs) -> anyhow::Result<ExitCode> {
    let response = client(ctx)
        .create_api_key(CreateApiKeyRequest {
            tenant: args.tenant.unwrap_or_default(),
            role: role_proto(args.role.into()) as i32,
            name: args.name,
        })
        .await?
        .into_inner();
    let key = response.key.context("the orchestrator returned no key")?;
    print_created(ctx.output, &ctx.addr, &key, &response.token)
}

/// `create` with `--database-url` or `--db`: connect, migrate, issue and record the key.
pub async fn create_in_store(
    output: OutputFormat,
    addr: &str,
    args: &KeyCreateArgs,
) -> anyhow::Result<ExitCode> {
    let tenant = match &args.tenant {
        Some(tenant) => tenant.clone(),
        None => baton_runtime::env::Env::os().string_or("BATON_SYSTEM_TENANT", "default"),
    };
    let issued = baton_auth::issue(
        &tenant,
        args.role.into(),
        &args.name,
        BOOTSTRAP,
        chrono::Utc::now().timestamp_micros(),
    )?;
    let record = match (&args.database_url, &args.db) {
        (Some(url), _) => {
            let shown = baton_runtime::redact_url(url);
            let store = baton_store::PgStore::connect(url, 1)
                .await
                .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
            store
                .migrate()
                .await
                .with_context(|| format!("cannot migrate the database at {shown}"))?;
            let record = store
                .create_api_key(issued.record)
                .await
                .with_context(|| format!("cannot record the key in {shown}"))?;
            store.pool().close().await;
            record
        }
        (None, Some(path)) => {
            let backend = baton_dev::EmbeddedBackend::open(path)
                .await
                .with_context(|| format!("cannot open the database file {}", path.display()))?;
            backend
                .store
                .create_api_key(issued.record)
                .await
                .with_context(|| format!("cannot record the key in {}", path.display()))?
        }
        (None, None) => unreachable!("only called with --database-url or --db"),
    };
    print_created(
        output,
        addr,
        &record_to_proto(&record),
        &issued.token.expose(),
    )
}

fn record_to_proto(key: &ApiKeyRecord) -> ApiKey {
    let role = key
        .role
        .parse::<baton_auth::Role>()
        .map_or(v1::Role::Unspecified, role_proto);
    ApiKey {
        id: key.id.clone(),
        tenant: key.tenant.clone(),
        role: role as i32,
        name: key.name.clone(),
        created_at: Some(baton_proto::timestamp_from_micros(key.created_at_micros)),
        revoked_at: key
            .revoked_at_micros
            .map(baton_proto::timestamp_from_micros),
        created_by: key.created_by.clone(),
    }
}

/// The token alone on stdout (so `$(baton auth key create ...)` captures just it), what it is
/// and how to use it on stderr; with `-o json`, one object holding both.
fn print_created(
    output: OutputFormat,
    addr: &str,
    key: &ApiKey,
    token: &str,
) -> anyhow::Result<ExitCode> {
    if output == OutputFormat::Json {
        print_json(&json!({ "key": json::api_key(key), "token": token }), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    let name = if key.name.is_empty() {
        String::new()
    } else {
        format!(", name {:?}", key.name)
    };
    eprintln!(
        "created API key {} (tenant {}, role {}{name}); its token, shown only this once:",
        key.id,
        key.tenant,
        role_label(key.role)
    );
    outln!("{token}")?;
    eprintln!("Store it now: Baton keeps only its hash. To use it:");
    eprintln!("  baton --addr {addr} auth login     (paste it: the CLI then sends it to {addr})");
    eprintln!("  export BATON_TOKEN=<token>         (the CLI and the example clients read it)");
    eprintln!(
        "  authorization: Bearer <token>      (the header any gRPC or gRPC-Web client sends)"
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list(ctx: &Ctx, args: KeyListArgs) -> anyhow::Result<ExitCode> {
    let keys = client(ctx)
        .list_api_keys(ListApiKeysRequest {
            tenant: args.tenant.unwrap_or_default(),
            include_revoked: args.all,
        })
        .await?
        .into_inner()
        .keys;
    if ctx.json() {
        print_json(&keys.iter().map(json::api_key).collect(), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    if keys.is_empty() {
        outln!("no {}API keys", if args.all { "" } else { "active " })?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["ID", "TENANT", "ROLE", "NAME", "CREATED", "REVOKED"]);
    for key in &keys {
        table.row(vec![
            key.id.clone(),
            key.tenant.clone(),
            role_label(key.role),
            if key.name.is_empty() {
                "-".to_owned()
            } else {
                key.name.clone()
            },
            local_time(key.created_at.as_ref()),
            local_time(key.revoked_at.as_ref()),
        ]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}

pub async fn revoke(ctx: &Ctx, args: KeyRevokeArgs) -> anyhow::Result<ExitCode> {
    let key = client(ctx)
        .revoke_api_key(RevokeApiKeyRequest { id: args.id })
        .await?
        .into_inner()
        .key
        .context("the orchestrator returned no key")?;
    if ctx.json() {
        print_json(&json::api_key(&key), false)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "revoked API key {} (tenant {}, role {}) at {}",
        key.id,
        key.tenant,
        role_label(key.role),
        local_time(key.revoked_at.as_ref())
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::RoleArg;

    #[test]
    fn roles_map_to_the_wire() {
        let wire: Vec<String> = [RoleArg::Admin, RoleArg::Operator, RoleArg::Viewer]
            .into_iter()
            .map(|r| role_label(role_proto(r.into()) as i32))
            .collect();
        assert_eq!(wire, ["admin", "operator", "viewer"]);
    }

    #[test]
    fn records_keep_their_fields_and_no_secret() {
        let issued =
            baton_auth::issue("acme", baton_auth::Role::Operator, "ci", BOOTSTRAP, 1_000).unwrap();
        let record = ApiKeyRecord {
            id: issued.record.id.clone(),
            tenant: issued.record.tenant.clone(),
            role: issued.record.role.clone(),
            name: issued.record.name.clone(),
            secret_hash: issued.record.secret_hash.clone(),
            created_by: issued.record.created_by.clone(),
            created_at_micros: 1_000,
            revoked_at_micros: None,
        };
        let shown = json::api_key(&record_to_proto(&record));
        assert_eq!(shown["role"], "operator");
        assert_eq!(shown["tenant"], "acme");
        assert_eq!(shown["created_by"], "bootstrap");
        assert_eq!(shown["revoked_at"], serde_json::Value::Null);
        assert!(!shown.to_string().contains(&issued.record.secret_hash));
    }
}
