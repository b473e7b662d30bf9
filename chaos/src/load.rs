//! Load through the public gRPC API: concurrent StartRuns of a chain-and-fan-out workflow, each
//! with an idempotency key of its own, paced at a steady rate. A StartRun that fails because the
//! orchestrator or a dependency is down is tried again with the same key; the ledger records
//! every StartRun that returned OK (acknowledged), and what every answer was. Every call carries
//! the suite's admin key, as a production client's would.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use baton_auth::Bearer;
use baton_proto::v1::{self, run_service_client::RunServiceClient};
use tokio::task::JoinSet;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

/// The workflow the load starts: a chain with a fan-out of three in the middle, so runs have
/// parallel steps, a join, and an output that proves which run it came from. Its middle branch
/// goes through an `http` step (the http-worker) posting to `echo_url`, the suite's echo API,
/// and carries the echoed answer on, so a completed run proves the request was made and read.
pub const CHAIN_REF: &str = "chaos/chain@1";
pub fn chain(echo_url: &str) -> String {
    format!(
        r#"
owner: chaos
name: chain
version: 1
execution: {{ concurrency: {{ maxParallel: 3 }} }}
steps:
  - {{ id: start, kind: noop }}
  - {{ id: first, kind: echo, needs: [start], input: {{ i: "{{{{ inputs.i }}}}" }} }}
  - {{ id: left, kind: sleep, needs: [first], input: {{ duration: 300ms }} }}
  - {{ id: call, kind: http, needs: [first], retry: {{ max_attempts: 5, initial: 200ms, max: 1s }}, input: {{ method: POST, url: "{echo_url}", body: {{ i: "{{{{ steps.first.output.i }}}}" }}, timeout: 5s }} }}
  - {{ id: middle, kind: echo, needs: [call], input: {{ i: "{{{{ steps.call.output.body.i }}}}" }} }}
  - {{ id: right, kind: noop, needs: [first] }}
  - {{ id: join, kind: echo, needs: [left, middle, right], input: {{ i: "{{{{ steps.middle.output.i }}}}" }} }}
  - {{ id: end, kind: echo, needs: [join], input: {{ i: "{{{{ steps.join.output.i }}}}" }} }}
"#
    )
}

/// How long one StartRun call may take before it counts as failed and is tried again.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// How an acknowledged run must end.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// `completed`, with the output of step `end` holding the run's `inputs.i`.
    Complete,
    /// `failed`, with an error holding this text.
    FailNaming(String),
    /// Any terminal state.
    End,
}

/// A StartRun that returned OK.
#[derive(Clone, Debug)]
pub struct Ack {
    pub key: String,
    pub run_id: String,
    pub expect: Expect,
}

/// What the load (and the faults' own StartRuns) recorded.
#[derive(Debug, Default)]
pub struct Ledger {
    pub acks: Vec<Ack>,
    /// Every StartRun answer by gRPC code name (`OK`, `UNAVAILABLE`, ...).
    pub answers: BTreeMap<String, usize>,
    /// Load StartRuns that never got OK before the load gave up on them.
    pub never_acknowledged: Vec<String>,
    /// Load StartRuns refused with a code that retrying cannot change: (key, status).
    pub refused: Vec<(String, String)>,
    /// Idempotency keys of StartRuns that had to be refused (poison); none may be stored.
    pub must_not_exist: Vec<String>,
}

impl Ledger {
    pub fn answered(&mut self, code: Code) {
        *self.answers.entry(code_name(code)).or_default() += 1;
    }
}

/// `UNAVAILABLE` rather than tonic's `Unavailable`.
pub fn code_name(code: Code) -> String {
    let words = format!("{code:?}");
    let mut name = String::new();
    for (i, c) in words.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    if code == Code::Ok { "OK".into() } else { name }
}

/// How much load, how fast.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub runs: usize,
    /// StartRuns in flight at once.
    pub concurrency: usize,
    /// StartRuns begun per second.
    pub rate: f64,
    /// How long one StartRun is tried again before it is given up.
    pub give_up_after: Duration,
}

/// A channel that sends the suite's bearer token on every call.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Where the orchestrator's API is, and the token its calls carry.
#[derive(Clone, Debug)]
pub struct Api {
    addr: SocketAddr,
    bearer: Bearer,
}

impl Api {
    pub fn new(addr: SocketAddr, bearer: Bearer) -> Self {
        Self { addr, bearer }
    }

    /// A client of the run API that reconnects on its own after a restart.
    pub fn runs(&self) -> RunServiceClient<Authed> {
        RunServiceClient::new(self.channel())
    }

    /// Registers `definition` (YAML), trying again while the orchestrator is not ready.
    pub async fn register(&self, definition: &str) -> anyhow::Result<()> {
        let mut client = v1::workflow_service_client::WorkflowServiceClient::new(self.channel());
        let mut tries = 0;
        loop {
            let answer = client
                .register_workflow(v1::RegisterWorkflowRequest {
                    definition: definition.to_owned(),
                    format: 0,
                    ..Default::default()
                })
                .await;
            match answer {
                Ok(_) => return Ok(()),
                Err(status) if status.code() == Code::Unavailable && tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(RETRY_FIRST).await;
                }
                Err(status) => {
                    anyhow::bail!("RegisterWorkflow refused the suite's workflow: {status}")
                }
            }
        }
    }

    fn channel(&self) -> Authed {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("a socket address makes a valid endpoint")
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        InterceptedService::new(channel, self.bearer.clone())
    }
}

/// Load under way.
pub struct Load {
    ledger: Arc<Mutex<Ledger>>,
    acked: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    options: LoadOptions,
    tasks: JoinSet<()>,
}

impl Load {
    /// Starts `options.runs` runs of [`CHAIN_REF`] with keys `<scenario>-<n>`.
    pub fn start(api: &Api, scenario: &str, options: LoadOptions) -> Self {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let acked = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let began = tokio::time::Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..options.concurrency.max(1) {
            let (ledger, acked, finished, next) = (
                ledger.clone(),
                acked.clone(),
                finished.clone(),
                next.clone(),
            );
            let client = api.runs();
            let scenario = scenario.to_owned();
            tasks.spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= options.runs {
                        return;
                    }
                    let due = began + Duration::from_secs_f64(n as f64 / options.rate.max(0.1));
                    tokio::time::sleep_until(due).await;
                    let request = v1::StartRunRequest {
                        workflow_ref: CHAIN_REF.into(),
                        inputs_json: serde_json::json!({ "i": n }).to_string(),
                        idempotency_key: format!("{scenario}-{n}"),
                        tenant: String::new(),
                    };
                    let outcome =
                        start_acknowledged(client.clone(), request, &ledger, options.give_up_after)
                            .await;
                    if outcome {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        Self {
            ledger,
            acked,
            finished,
            options,
            tasks,
        }
    }

    pub fn ledger(&self) -> Arc<Mutex<Ledger>> {
        self.ledger.clone()
    }

    pub fn acknowledged(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Whether every load StartRun has been answered for good.
    pub fn is_done(&self) -> bool {
        self.finished.load(Ordering::SeqCst) >= self.options.runs
    }

    /// Waits until `fraction` of the runs were acknowledged (or the load is done).
    pub async fn reached(&self, fraction: f64) {
        let target = (self.options.runs as f64 * fraction).ceil() as usize;
        while self.acknowledged() < target && !self.is_done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for every StartRun to be answered for good; returns the ledger.
    pub async fn finish(mut self) -> Ledger {
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = joined {
                self.ledger
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .refused
                    .push(("(load task)".into(), format!("panicked: {e}")));
            }
        }
        std::mem::take(&mut *self.ledger.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Whether retrying the same call may succeed: the orchestrator or a dependency was down.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
    )
}

/// One StartRun, tried again with the same key until it returns OK or `give_up_after` passes.
/// Returns whether it was acknowledged.
async fn start_acknowledged(
    mut client: RunServiceClient<Authed>,
    request: v1::StartRunRequest,
    ledger: &Mutex<Ledger>,
    give_up_after: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut wait = RETRY_FIRST;
    let lock = || ledger.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let mut call = tonic::Request::new(request.clone());
        call.set_timeout(CALL_TIMEOUT);
        match client.start_run(call).await {
            Ok(response) => {
                let mut ledger = lock();
                ledger.answered(Code::Ok);
                match response.into_inner().run {
                    Some(run) => ledger.acks.push(Ack {
                        key: request.idempotency_key.clone(),
                        run_id: run.id,
                        expect: Expect::Complete,
                    }),
                    None => ledger
                        .refused
                        .push((request.idempotency_key.clone(), "OK without a run".into())),
                }
                return true;
            }
            Err(status) => {
                lock().answered(status.code());
                if !retryable(status.code()) {
                    lock()
                        .refused
                        .push((request.idempotency_key.clone(), status.to_string()));
                    return false;
                }
                if tokio::time::Instant::now() > deadline {
                    lock()
                        .never_acknowledged
                        .push(request.idempotency_key.clone());
                    return false;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_the_grpc_ones() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
    }
}
