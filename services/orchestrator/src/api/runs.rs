//! `RunService`: start, read, list, cancel and watch runs.

use std::{pin::Pin, time::Duration};

use baton_engine::{RunStatus, now_micros};
use baton_proto::v1::{
    self, CancelRunRequest, CancelRunResponse, GetRunRequest, GetRunResponse, ListRunsRequest,
    ListRunsResponse, StartRunRequest, StartRunResponse, WatchRunRequest, WatchRunResponse,
    run_service_server::RunService,
};
use baton_store::{NewRun, PageRequest, RunFilter};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    Api, page_size, principal, tenant,
    text::{check_json, check_text},
    workflows::parse_ref,
};
use crate::{convert, error::ApiError};

/// Longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 256;

fn parse_run_id(text: &str) -> Result<Uuid, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::InvalidArgument(format!("run_id: `{text}` is not a run id (a UUID)"))
    })
}

fn run_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("run {id} does not exist"))
}

#[tonic::async_trait]
impl RunService for Api {
    #[tracing::instrument(skip_all, fields(workflow.definition, run.id, tenant))]
    async fn start_run(
        &self,
        request: Request<StartRunRequest>,
    ) -> Result<Response<StartRunResponse>, Status> {
        let principal = principal(&request)?;
        let req = request.into_inner();
        let r = parse_ref(&req.workflow_ref)?;
        let tenant = tenant(&principal, &req.tenant)?;
        if let Err(limited) = self.quotas.start_run(&tenant) {
            self.metrics.request_limited(limited.limit);
            return Err(ApiError::Limited(limited).into());
        }
        let limit = self.config.max_inputs_bytes;
        if req.inputs_json.len() > limit {
            return Err(ApiError::InvalidArgument(format!(
                "inputs_json: {} bytes is over the limit of {limit} bytes (BATON_MAX_INPUTS_BYTES)",
                req.inputs_json.len()
            ))
            .into());
        }
        let inputs: serde_json::Value = match req.inputs_json.trim() {
            "" => serde_json::json!({}),
            text => serde_json::from_str(text).map_err(|e| {
                ApiError::InvalidArgument(format!("inputs_json: not valid JSON: {e}"))
            })?,
        };
        if !inputs.is_object() {
            return Err(
                ApiError::InvalidArgument("inputs_json: must be a JSON object".into()).into(),
            );
        }
        check_json("inputs_json", &inputs)?;
        check_text("idempotency_key", &req.idempotency_key)?;
        let key = req.idempotency_key.trim();
        if key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(ApiError::InvalidArgument(format!(
                "idempotency_key: longer than {MAX_IDEMPOTENCY_KEY} characters"
            ))
            .into());
        }
        let workflow = self
            .find_workflow(&tenant, &r)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("workflow {r} is not registered")))?;
        let workflow_ref = workflow.workflow_ref();
        let span = tracing::Span::current();
        span.record("workflow.definition", workflow_ref.as_str());
        span.record("tenant", tenant.as_str());
        let new = NewRun {
            id: Uuid::now_v7(),
            tenant,
            workflow_ref,
            inputs,
            idempotency_key: (!key.is_empty()).then(|| key.to_owned()),
            created_at: now_micros(),
            trace_context: baton_telemetry::inject_context(&span),
        };
        let (run, created) = self.starter.start(new).await?;
        span.record("run.id", tracing::field::display(run.id));
        Ok(Response::new(StartRunResponse {
            run: Some(convert::run(&run, None)),
            created,
        }))
    }

    async fn get_run(
        &self,
        request: Request<GetRunRequest>,
    ) -> Result<Response<GetRunResponse>, Status> {
        let principal = principal(&request)?;
        let id = parse_run_id(&request.get_ref().run_id)?;
        let detail = principal
            .visible(self.store.get_run(id).await.map_err(ApiError::from)?)
            .ok_or_else(|| run_not_found(id))?;
        Ok(Response::new(GetRunResponse {
            run: Some(v1::Run {
                workers: detail
                    .workers
                    .into_iter()
                    .map(v1::WorkerHost::from)
                    .collect(),
                ..convert::run(&detail.run, Some(&detail.attempts))
            }),
        }))
    }

    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        let principal = principal(&request)?;
        let req = request.into_inner();
        let status = match v1::RunStatus::try_from(req.status) {
            Ok(v1::RunStatus::Unspecified) => None,
            Ok(s) => RunStatus::from_proto(s),
            Err(_) => {
                return Err(ApiError::InvalidArgument(format!(
                    "status: unknown status {}",
                    req.status
                ))
                .into());
            }
        };
        let workflow_ref = match req.workflow_ref.trim() {
            "" => None,
            text => Some(parse_ref(text)?.to_string()),
        };
        let filter = RunFilter {
            tenant: tenant(&principal, &req.tenant)?,
            workflow_ref,
            status,
        };
        let page = PageRequest {
            size: page_size(req.page_size)?,
            token: req.page_token,
        };
        let page = self
            .store
            .list_runs(filter, page)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListRunsResponse {
            runs: page.items.iter().map(|r| convert::run(r, None)).collect(),
            next_page_token: page.next_token,
        }))
    }

    /// The runner is the only writer of run state, so the cancel goes to its inbox as a
    /// [`v1::CancelRunCommand`]; this waits, up to `CANCEL_WAIT`, until the run has ended and
    /// returns it. A run that did not end in time (no runner took the command yet) is returned as
    /// it was last read, not yet cancelled: the command stays in the inbox and is applied when a
    /// runner takes it.
    #[tracing::instrument(skip_all, fields(run.id))]
    async fn cancel_run(
        &self,
        request: Request<CancelRunRequest>,
    ) -> Result<Response<CancelRunResponse>, Status> {
        /// Longest wait for the runner to apply the cancel.
        const CANCEL_WAIT: Duration = Duration::from_secs(10);
        /// Longest pause between two reads of the run while waiting; the first reads come
        /// sooner, as a runner with a free pipeline applies a cancel within milliseconds.
        const CANCEL_POLL: Duration = Duration::from_millis(20);

        let principal = principal(&request)?;
        let req = request.into_inner();
        let id = parse_run_id(&req.run_id)?;
        tracing::Span::current().record("run.id", tracing::field::display(id));
        check_text("reason", &req.reason)?;
        let mut run = principal
            .visible(self.store.find_run(id).await.map_err(ApiError::from)?)
            .ok_or_else(|| run_not_found(id))?;
        if run.status.is_terminal() {
            return Err(ApiError::FailedPrecondition(format!(
                "run {id} already ended: {}",
                run.status
            ))
            .into());
        }
        let command = v1::CancelRunCommand {
            run_id: id.to_string(),
            reason: req.reason.trim().to_owned(),
            requested_at: Some(baton_proto::timestamp_from_micros(now_micros())),
        };
        self.queue
            .send_to_runner(&[v1::RunnerMessage {
                message: Some(v1::runner_message::Message::CancelRun(command)),
            }])
            .await
            .map_err(ApiError::from)?;
        // Polls the run's row alone; its steps are read once, for the answer.
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        let mut pause = Duration::from_millis(2);
        while !run.status.is_terminal() {
            if tokio::time::Instant::now() + pause > deadline {
                tracing::warn!(run.id = %id, waited = ?CANCEL_WAIT, "the runner has not applied the cancel yet; returning the run as it is");
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(CANCEL_POLL);
            match self.store.find_run(id).await {
                Ok(Some(now)) => run = now,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(run.id = %id, error = %e, "cannot read the run while waiting for its cancel")
                }
            }
        }
        let detail = self
            .store
            .get_run(id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| run_not_found(id))?;
        Ok(Response::new(CancelRunResponse {
            run: Some(convert::run(&detail.run, None)),
        }))
    }

    type WatchRunStream = Pin<Box<dyn Stream<Item = Result<WatchRunResponse, Status>> + Send>>;

    /// The run's events after `after_sequence` from the shared event streams; the stream ends
    /// after the run's end, or with UNAVAILABLE when the orchestrator stops.
    #[tracing::instrument(skip_all, fields(run.id))]
    async fn watch_run(
        &self,
        request: Request<WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let principal = principal(&request)?;
        let req = request.into_inner();
        let id = parse_run_id(&req.run_id)?;
        tracing::Span::current().record("run.id", tracing::field::display(id));
        if req.after_sequence < 0 {
            return Err(
                ApiError::InvalidArgument("after_sequence: must not be negative".into()).into(),
            );
        }
        let run = principal
            .visible(self.store.find_run(id).await.map_err(ApiError::from)?)
            .ok_or_else(|| run_not_found(id))?;
        // Held by the stream: the tenant's slot frees when the stream ends or the client leaves.
        let permit = self.quotas.watch(&run.tenant).map_err(|limited| {
            self.metrics.request_limited(limited.limit);
            ApiError::Limited(limited)
        })?;
        let events = self
            .events
            .watch(id, req.after_sequence)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(Box::pin(events.map(move |item| {
            let _permit = &permit;
            item.map(|event| WatchRunResponse { event: Some(event) })
                .map_err(|e| Status::from(ApiError::from(e)))
        }))))
    }
}
