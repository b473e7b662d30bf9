//! `InfoService`: which build answers, for how long it has, and who the caller is to it.

use baton_proto::v1::{GetInfoRequest, GetInfoResponse, info_service_server::InfoService};
use tonic::{Request, Response, Status};

use super::{Api, auth::role_proto, principal};

#[tonic::async_trait]
impl InfoService for Api {
    async fn get_info(
        &self,
        request: Request<GetInfoRequest>,
    ) -> Result<Response<GetInfoResponse>, Status> {
        let principal = principal(&request)?;
        Ok(Response::new(GetInfoResponse {
            auth_mode: self.auth.config().mode().to_owned(),
            tenant: principal.tenant.clone().unwrap_or_default(),
            role: role_proto(principal.role) as i32,
            principal: principal.subject,
            service: "orchestrator".into(),
            version: baton_runtime::VERSION.into(),
            git_revision: baton_runtime::git_revision().into(),
            uptime_seconds: self.started.elapsed().as_secs() as i64,
        }))
    }
}
