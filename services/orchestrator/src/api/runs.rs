//! `RunService`: start, read, list, cancel and watch runs.

use std::pin::Pin;

use baton_engine::{Effects, RunStatus, abort_run, now_micros};
use baton_proto::v1::{
    self, CancelRunRequest, CancelRunResponse, GetRunRequest, GetRunResponse, ListRunsRequest,
    ListRunsResponse, StartRunRequest, StartRunResponse, WatchRunRequest, WatchRunResponse,
    run_service_server::RunService,
};
use baton_queue::BatchOutcome;
use baton_store::{NewRun, PageRequest, RunFilter};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{Api, page_size, workflows::parse_ref};
use crate::{convert, error::ApiError};

const DEFAULT_TENANT: &str = "default";
/// Longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 256;

fn parse_run_id(text: &str) -> Result<Uuid, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::InvalidArgument(format!("run_id: `{text}` is not a run id (a UUID)"))
    })
}

fn tenant(text: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(DEFAULT_TENANT.to_owned());
    }
    if t.len() > 100
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::InvalidArgument(
            "tenant: must be 1 to 100 letters, digits, `-`, `_` or `.`".into(),
        ));
    }
    Ok(t.to_owned())
}

#[tonic::async_trait]
impl RunService for Api {
    #[tracing::instrument(skip_all, fields(workflow.definition, run.id, tenant))]
    async fn start_run(
        &self,
        request: Request<StartRunRequest>,
    ) -> Result<Response<StartRunResponse>, Status> {
        let req = request.into_inner();
        let r = parse_ref(&req.workflow_ref)?;
        let tenant = tenant(&req.tenant)?;
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
        let key = req.idempotency_key.trim();
        if key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(ApiError::InvalidArgument(format!(
                "idempotency_key: longer than {MAX_IDEMPOTENCY_KEY} characters"
            ))
            .into());
        }
        let workflow = self
            .find_workflow(&r)
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
        let id = parse_run_id(&request.get_ref().run_id)?;
        let detail = self
            .store
            .get_run(id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("run {id} does not exist")))?;
        Ok(Response::new(GetRunResponse {
            run: Some(v1::Run {
                workers: detail.workers,
                ..convert::run(&detail.run, Some(&detail.attempts))
            }),
        }))
    }

    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
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
            tenant: tenant(&req.tenant)?,
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

    #[tracing::instrument(skip_all, fields(run.id))]
    async fn cancel_run(
        &self,
        request: Request<CancelRunRequest>,
    ) -> Result<Response<CancelRunResponse>, Status> {
        let req = request.into_inner();
        let id = parse_run_id(&req.run_id)?;
        tracing::Span::current().record("run.id", tracing::field::display(id));
        let reason = match req.reason.trim() {
            "" => "cancelled by request".to_owned(),
            r => r.to_owned(),
        };
        let mut batch = self.store.lock_runs(&[id]).await.map_err(ApiError::from)?;
        let mut fx = Effects::default();
        let Some(run) = batch.runs().first_mut() else {
            return Err(ApiError::NotFound(format!("run {id} does not exist")).into());
        };
        if run.status.is_terminal() {
            return Err(ApiError::FailedPrecondition(format!(
                "run {id} already ended: {}",
                run.status
            ))
            .into());
        }
        abort_run(run, RunStatus::Cancelled, &reason, now_micros(), &mut fx);
        let runs = batch.commit().await.map_err(ApiError::from)?;
        let run = &runs[0];
        let started = run.started_at.unwrap_or(run.created_at);
        let ended = run.ended_at.unwrap_or(started);
        self.metrics.run_ended(
            &run.workflow_ref,
            baton_metrics::RunOutcome::Cancelled,
            (ended - started).max(0) as f64 / 1e6,
        );
        let outcome = BatchOutcome {
            events: run
                .new_events
                .iter()
                .map(|e| run.event_to_proto(e))
                .collect(),
            cancels: vec![v1::CancelNotice {
                run_id: id.to_string(),
                reason: reason.clone(),
            }],
            ..BatchOutcome::default()
        };
        // The cancel is durable; live watchers fall back to Postgres if this publish is lost.
        if let Err(e) = self.queue.complete_batch(outcome).await {
            tracing::warn!(run.id = %id, error = %e, "cannot publish the cancel");
        }
        tracing::info!(run.id = %id, %reason, "run cancelled");
        Ok(Response::new(CancelRunResponse {
            run: Some(convert::run(run, None)),
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
        let req = request.into_inner();
        let id = parse_run_id(&req.run_id)?;
        tracing::Span::current().record("run.id", tracing::field::display(id));
        if req.after_sequence < 0 {
            return Err(
                ApiError::InvalidArgument("after_sequence: must not be negative".into()).into(),
            );
        }
        let events = self
            .events
            .watch(id, req.after_sequence)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(Box::pin(events.map(|item| {
            item.map(|event| WatchRunResponse { event: Some(event) })
                .map_err(|e| Status::from(ApiError::from(e)))
        }))))
    }
}
