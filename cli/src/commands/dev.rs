//! `baton dev`: every Baton service in this process on the embedded backend, one SQLite file,
//! until Ctrl-C. Nothing to install: the CLI and any client talk to it as to the real services.

use std::process::ExitCode;

use baton_dev::{DevConfig, DevListeners, EmbeddedBackend};
use baton_runtime::env::Env;

use crate::args::DevArgs;

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
    let api = format!("http://{}", addrs.grpc);
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
    eprintln!("Try:  baton --addr {api} workflow apply -f examples/hello.yaml");
    eprintln!(
        "      baton --addr {api} run start examples/hello@1 --input name=Ada --input count=3 --follow"
    );
    let shutdown = baton_runtime::shutdown_token();
    baton_dev::serve(backend, config, listeners, shutdown).await?;
    telemetry.shutdown();
    Ok(ExitCode::SUCCESS)
}
