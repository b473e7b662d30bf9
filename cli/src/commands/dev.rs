//! `baton dev`: every Baton service in this process on the embedded backend, one SQLite file,
//! until Ctrl-C. Nothing to install: the CLI and any client talk to it as to the real services,
//! with authentication on; the local admin key waits in the credentials file.

use std::process::ExitCode;

use baton_dev::{DevConfig, DevListeners, EmbeddedBackend, LocalKey};
use baton_runtime::env::Env;

use crate::args::DevArgs;
use crate::output::outln;

/// The address the CLI uses unless told otherwise.
const DEFAULT_ADDR: &str = "http://127.0.0.1:8002";

pub async fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    let telemetry = baton_telemetry::init("baton-dev")?;
    let mut config = DevConfig::from_env(&Env::os())?;
    config.db = args.db;
    config.listen = args.listen;
    if args.free_side_ports {
        config = config.on_free_side_ports();
    }
    config.grpc_port = args.port;
    let backend = EmbeddedBackend::open(&config.db).await?;
    let listeners = DevListeners::bind(&config).await?;
    let addrs = listeners.addrs();
    let api = baton_dev::client_addr(addrs.grpc);
    let auth = &config.orchestrator.auth;
    // Before serving, so a client that finds the API answering finds the key saved too.
    let key = if auth.enabled {
        let credentials = baton_auth::credentials::default_path();
        Some(
            baton_dev::ensure_local_key(
                backend.store.as_ref(),
                credentials.as_deref(),
                &api,
                &auth.system_tenant,
            )
            .await?,
        )
    } else {
        None
    };
    eprintln!(
        "Baton dev is running on {} (Ctrl-C stops it)",
        config.db.display()
    );
    eprintln!("  gRPC API, health, reflection  {api}");
    eprintln!(
        "  raw signal                    http://{}/metrics",
        addrs.http
    );
    if let Some(metrics) = addrs.metrics {
        eprintln!("  Prometheus                    http://{metrics}/metrics");
    }
    if let Some(pprof) = addrs.pprof {
        eprintln!("  pprof                         http://{pprof}/debug/pprof/");
    }
    match &key {
        Some(key) => print_key(key)?,
        None => eprintln!(
            "WARNING: authentication is DISABLED (BATON_AUTH=disabled): every caller, with or \
             without a token, is an admin of every tenant. For development only."
        ),
    }
    let at = if api == DEFAULT_ADDR {
        String::new()
    } else {
        format!(" --addr {api}")
    };
    eprintln!("Try:  baton{at} workflow apply -f examples/hello.yaml");
    eprintln!(
        "      baton{at} run start examples/hello@1 --input name=Ada --input count=3 --follow"
    );
    let shutdown = baton_runtime::shutdown_token();
    baton_dev::serve(backend, config, listeners, shutdown).await?;
    telemetry.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// Where the local admin key is and how to use it, on stdout; never the token itself.
fn print_key(key: &LocalKey) -> std::io::Result<()> {
    let at = if key.addr == DEFAULT_ADDR {
        String::new()
    } else {
        format!(" --addr {}", key.addr)
    };
    outln!(
        "Local admin key {} (tenant {}, {}) saved in {} for {}.",
        key.id,
        key.tenant,
        if key.reused { "reused" } else { "new" },
        key.credentials.display(),
        key.addr
    )?;
    outln!("  The baton CLI finds it there by itself.")?;
    outln!("  Other clients: export BATON_TOKEN=$(baton{at} auth token)")
}
