//! `InfoService`: which build answers, and for how long it has.

use baton_proto::v1::{GetInfoRequest, GetInfoResponse, info_service_server::InfoService};
use tonic::{Request, Response, Status};

use super::Api;

#[tonic::async_trait]
impl InfoService for Api {
    async fn get_info(
        &self,
        _: Request<GetInfoRequest>,
    ) -> Result<Response<GetInfoResponse>, Status> {
        Ok(Response::new(GetInfoResponse {
            service: "orchestrator".into(),
            version: baton_runtime::VERSION.into(),
            git_revision: baton_runtime::git_revision().into(),
            uptime_seconds: self.started.elapsed().as_secs() as i64,
        }))
    }
}
