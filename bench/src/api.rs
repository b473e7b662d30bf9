//! The bench's gRPC client of the orchestrator: every call the scenarios make, each with a bound
//! on how long it may take, so a stuck service fails the bench instead of hanging it. Every call
//! carries the bench's API key, as a production client's does.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use baton_auth::Bearer;
use baton_proto::v1::{
    GetInfoRequest, GetInfoResponse, RegisterWorkflowRequest, RunEventType, StartRunRequest,
    WatchRunRequest, info_service_client::InfoServiceClient, run_service_client::RunServiceClient,
    workflow_service_client::WorkflowServiceClient,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

/// Longest a unary call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A cheaply clonable client over one HTTP/2 connection.
#[derive(Clone)]
pub struct Api {
    channel: InterceptedService<Channel, Bearer>,
}

impl Api {
    /// A client of the orchestrator on a loopback port that sends `token` on every call; it
    /// connects on first use.
    pub fn new(port: u16, token: &str) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        let bearer = Bearer::new(token).context("the bench's API key")?;
        Ok(Self {
            channel: InterceptedService::new(channel, bearer),
        })
    }

    pub async fn info(&self, timeout: Duration) -> anyhow::Result<GetInfoResponse> {
        let mut client = InfoServiceClient::new(self.channel.clone());
        let response = tokio::time::timeout(timeout, client.get_info(GetInfoRequest {}))
            .await
            .map_err(|_| anyhow!("GetInfo took longer than {timeout:?}"))??;
        Ok(response.into_inner())
    }

    /// Waits until GetInfo answers, for at most `timeout`; `alive` is checked between attempts
    /// (it fails when the service process has exited).
    pub async fn wait_ready(
        &self,
        timeout: Duration,
        mut alive: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<GetInfoResponse> {
        let deadline = Instant::now() + timeout;
        loop {
            alive()?;
            let last_error = match self.info(Duration::from_secs(1)).await {
                Ok(info) => return Ok(info),
                Err(e) => e,
            };
            // A refused key stays refused: say so now rather than at the deadline.
            if let Some(status) = last_error.downcast_ref::<tonic::Status>()
                && matches!(
                    status.code(),
                    tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                )
            {
                bail!("the orchestrator refused the bench's API key: {status}");
            }
            if Instant::now() > deadline {
                alive()?;
                bail!("the orchestrator did not answer GetInfo within {timeout:?}: {last_error:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Registers a YAML definition and returns its `owner/name@version`.
    pub async fn register(&self, yaml: &str) -> anyhow::Result<String> {
        let mut client = WorkflowServiceClient::new(self.channel.clone());
        let request = RegisterWorkflowRequest {
            definition: yaml.to_owned(),
            format: 0,
            ..Default::default()
        };
        let response = tokio::time::timeout(CALL_TIMEOUT, client.register_workflow(request))
            .await
            .map_err(|_| anyhow!("RegisterWorkflow took longer than {CALL_TIMEOUT:?}"))?
            .context("RegisterWorkflow failed")?;
        let workflow = response
            .into_inner()
            .workflow
            .context("RegisterWorkflow returned no workflow")?;
        Ok(workflow.workflow_ref)
    }

    /// Starts a run with empty inputs and returns its id.
    pub async fn start_run(&self, workflow_ref: &str) -> anyhow::Result<Uuid> {
        let mut client = RunServiceClient::new(self.channel.clone());
        let request = StartRunRequest {
            workflow_ref: workflow_ref.to_owned(),
            inputs_json: "{}".to_owned(),
            ..Default::default()
        };
        let response = tokio::time::timeout(CALL_TIMEOUT, client.start_run(request))
            .await
            .map_err(|_| anyhow!("StartRun took longer than {CALL_TIMEOUT:?}"))?
            .with_context(|| format!("StartRun {workflow_ref} failed"))?;
        let run = response
            .into_inner()
            .run
            .context("StartRun returned no run")?;
        run.id
            .parse()
            .with_context(|| format!("StartRun returned a bad run id `{}`", run.id))
    }

    /// Follows a run's events from the first one until its end event and returns it. The caller
    /// bounds the wait.
    pub async fn wait_end(&self, run_id: Uuid) -> anyhow::Result<End> {
        let mut client = RunServiceClient::new(self.channel.clone());
        let request = WatchRunRequest {
            run_id: run_id.to_string(),
            after_sequence: 0,
        };
        let mut stream = client
            .watch_run(request)
            .await
            .context("WatchRun failed")?
            .into_inner();
        while let Some(message) = stream.message().await.context("WatchRun stream failed")? {
            let Some(event) = message.event else { continue };
            let kind = RunEventType::try_from(event.r#type).unwrap_or(RunEventType::Unspecified);
            if is_end(kind) {
                let received = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let delivery_ms = event.time.as_ref().map(|t| {
                    (received.as_micros() as i64 - baton_proto::timestamp_to_micros(t)) as f64
                        / 1000.0
                });
                return Ok(End { kind, delivery_ms });
            }
        }
        bail!("WatchRun of run {run_id} ended without the run's end event")
    }
}

/// A run's end event as a watcher saw it.
pub struct End {
    pub kind: RunEventType,
    /// From the event's server-side `time` to its receipt here, ms (same machine, same clock).
    pub delivery_ms: Option<f64>,
}

/// Whether an event ends a run.
pub fn is_end(kind: RunEventType) -> bool {
    matches!(
        kind,
        RunEventType::RunCompleted
            | RunEventType::RunFailed
            | RunEventType::RunCancelled
            | RunEventType::RunTimedOut
    )
}
