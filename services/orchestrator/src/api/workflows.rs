//! `WorkflowService`: register, read and list definitions.

use baton_proto::v1::{
    self, GetWorkflowRequest, GetWorkflowResponse, ListWorkflowsRequest, ListWorkflowsResponse,
    RegisterWorkflowRequest, RegisterWorkflowResponse, workflow_service_server::WorkflowService,
};
use baton_store::{NewWorkflow, PageRequest, PutWorkflowOutcome};
use baton_workflow::{DefinitionFormat, WorkflowRef, compile, parse_definition};
use tonic::{Request, Response, Status};

use super::{
    Api, page_size, principal, tenant,
    text::{check_json, check_text},
};
use crate::{convert, error::ApiError};

pub(crate) fn parse_ref(text: &str) -> Result<WorkflowRef, ApiError> {
    check_text("workflow_ref", text)?;
    text.trim()
        .parse()
        .map_err(|e| ApiError::InvalidArgument(format!("workflow_ref: {e}")))
}

#[tonic::async_trait]
impl WorkflowService for Api {
    #[tracing::instrument(skip_all, fields(workflow.definition))]
    async fn register_workflow(
        &self,
        request: Request<RegisterWorkflowRequest>,
    ) -> Result<Response<RegisterWorkflowResponse>, Status> {
        let principal = principal(&request)?;
        let req = request.into_inner();
        let tenant = tenant(&principal, &req.tenant)?;
        if req.definition.trim().is_empty() {
            return Err(ApiError::InvalidArgument("definition: is empty".into()).into());
        }
        let format = match v1::DefinitionFormat::try_from(req.format) {
            Ok(v1::DefinitionFormat::Yaml) => DefinitionFormat::Yaml,
            Ok(v1::DefinitionFormat::Json) => DefinitionFormat::Json,
            Ok(v1::DefinitionFormat::Unspecified) => DefinitionFormat::Auto,
            Err(_) => {
                return Err(ApiError::InvalidArgument(format!(
                    "format: unknown format {}",
                    req.format
                ))
                .into());
            }
        };
        check_text("definition", &req.definition)?;
        let definition = parse_definition(&req.definition, format).map_err(ApiError::from)?;
        let compiled = compile(definition, &self.config.extra_kinds).map_err(ApiError::from)?;
        let workflow_ref = compiled.workflow_ref();
        tracing::Span::current().record("workflow.definition", workflow_ref.as_str());
        let d = &compiled.definition;
        let stored = serde_json::to_value(d)
            .map_err(|e| ApiError::InvalidArgument(format!("definition: {e}")))?;
        // Escapes (`"\u0000"` in JSON, `"\0"` in YAML) get past the check of the raw text.
        if let Some(steps) = stored.get("steps").and_then(|s| s.as_array()) {
            for (i, (step, value)) in d.steps.iter().zip(steps).enumerate() {
                let field = if step.id.contains('\0') {
                    format!("definition: steps[{i}]")
                } else {
                    format!("definition: step `{}`", step.id)
                };
                check_json(&field, value)?;
            }
        }
        check_json("definition", &stored)?;
        let new = NewWorkflow {
            tenant: tenant.clone(),
            owner: d.owner.clone(),
            name: d.name.clone(),
            version: d.version,
            digest: compiled.digest(),
            definition: stored,
        };
        let (workflow, created) =
            match self.store.put_workflow(new).await.map_err(ApiError::from)? {
                PutWorkflowOutcome::Created(w) => (w, true),
                PutWorkflowOutcome::Unchanged(w) => (w, false),
                PutWorkflowOutcome::Conflict(w) => {
                    return Err(ApiError::AlreadyExists(format!(
                        "{workflow_ref} is already registered with different content (digest {}); \
                     register the change as a new version",
                        &w.digest[..w.digest.len().min(12)]
                    ))
                    .into());
                }
            };
        tracing::info!(workflow = %workflow_ref, created, "workflow registered");
        Ok(Response::new(RegisterWorkflowResponse {
            workflow: Some(convert::workflow(&workflow)),
            created,
        }))
    }

    async fn get_workflow(
        &self,
        request: Request<GetWorkflowRequest>,
    ) -> Result<Response<GetWorkflowResponse>, Status> {
        let principal = principal(&request)?;
        let tenant = tenant(&principal, &request.get_ref().tenant)?;
        let r = parse_ref(&request.get_ref().workflow_ref)?;
        let workflow = self
            .store
            .get_workflow(&tenant, &r.owner, &r.name, r.version)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("workflow {r} is not registered")))?;
        Ok(Response::new(GetWorkflowResponse {
            workflow: Some(convert::workflow(&workflow)),
        }))
    }

    async fn list_workflows(
        &self,
        request: Request<ListWorkflowsRequest>,
    ) -> Result<Response<ListWorkflowsResponse>, Status> {
        let principal = principal(&request)?;
        let req = request.into_inner();
        let tenant = tenant(&principal, &req.tenant)?;
        let page = PageRequest {
            size: page_size(req.page_size)?,
            token: req.page_token,
        };
        let owner = (!req.owner.is_empty()).then_some(req.owner.as_str());
        let page = self
            .store
            .list_workflows(&tenant, owner, page)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListWorkflowsResponse {
            workflows: page.items.iter().map(convert::workflow).collect(),
            next_page_token: page.next_token,
        }))
    }
}
