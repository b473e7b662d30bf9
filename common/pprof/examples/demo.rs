//! Manual check against `go tool pprof`: serves the pprof endpoints on
//! `127.0.0.1:$PPROF_PORT` (default 6060) while a thread burns CPU, until
//! Ctrl-C.
//!
//! ```text
//! _RJEM_MALLOC_CONF=prof:true,prof_active:true,lg_prof_sample:19 \
//!   ENABLE_PPROF=1 cargo run -p baton-pprof --example demo
//! go tool pprof -top http://127.0.0.1:6060/debug/pprof/profile?seconds=5
//! go tool pprof -top http://127.0.0.1:6060/debug/pprof/heap
//! ```

use baton_pprof::PprofConfig;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[inline(never)]
fn demo_busy_loop() -> u64 {
    let mut acc = 0u64;
    loop {
        for i in 0..1_000_000u64 {
            acc = std::hint::black_box(acc.wrapping_mul(31).wrapping_add(i));
        }
        if acc == 42 {
            return acc;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = PprofConfig::from_env(&baton_runtime::env::Env::os(), 6060)?;
    if !config.enabled {
        eprintln!("set ENABLE_PPROF=1 to serve the pprof endpoints");
        return Ok(());
    }
    std::thread::spawn(demo_busy_loop);
    let hoard: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 20]).collect();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
    eprintln!("serving on http://{}/debug/pprof/", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    baton_pprof::serve(listener, shutdown).await?;
    std::hint::black_box(&hoard);
    Ok(())
}
