//! What every RPC needs, in one table. A method missing here needs a system admin (closed by
//! default), and a test walks every method reflection lists to check each has its entry.

use crate::{Access, Role};

/// gRPC health: probes need no credential.
pub const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";
/// Server reflection, both versions.
pub const REFLECTION_PREFIXES: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Each Baton RPC and the access it needs.
pub const METHODS: &[(&str, Access)] = &[
    (
        "/baton.v1.WorkflowService/RegisterWorkflow",
        Access::Role(Role::Operator),
    ),
    (
        "/baton.v1.WorkflowService/GetWorkflow",
        Access::Role(Role::Viewer),
    ),
    (
        "/baton.v1.WorkflowService/ListWorkflows",
        Access::Role(Role::Viewer),
    ),
    (
        "/baton.v1.RunService/StartRun",
        Access::Role(Role::Operator),
    ),
    ("/baton.v1.RunService/GetRun", Access::Role(Role::Viewer)),
    ("/baton.v1.RunService/ListRuns", Access::Role(Role::Viewer)),
    (
        "/baton.v1.RunService/CancelRun",
        Access::Role(Role::Operator),
    ),
    ("/baton.v1.RunService/WatchRun", Access::Role(Role::Viewer)),
    ("/baton.v1.InfoService/GetInfo", Access::Role(Role::Viewer)),
    (
        "/baton.v1.AuthService/CreateApiKey",
        Access::Role(Role::Admin),
    ),
    (
        "/baton.v1.AuthService/ListApiKeys",
        Access::Role(Role::Admin),
    ),
    (
        "/baton.v1.AuthService/RevokeApiKey",
        Access::Role(Role::Admin),
    ),
    ("/baton.v1.AdminService/ListDeadLetters", Access::System),
    ("/baton.v1.AdminService/GetDeadLetter", Access::System),
    ("/baton.v1.AdminService/ReplayDeadLetter", Access::System),
];

/// The access a request path needs.
pub fn access_of(path: &str, reflection_open: bool) -> Access {
    if path.starts_with(HEALTH_PREFIX) {
        return Access::Open;
    }
    if REFLECTION_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return if reflection_open {
            Access::Open
        } else {
            Access::Authenticated
        };
    }
    METHODS
        .iter()
        .find(|(method, _)| *method == path)
        .map_or(Access::System, |(_, access)| *access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_open_reflection_follows_config_unknown_is_closed() {
        assert_eq!(
            access_of("/grpc.health.v1.Health/Check", false),
            Access::Open
        );
        assert_eq!(
            access_of("/grpc.health.v1.Health/Watch", false),
            Access::Open
        );
        for p in REFLECTION_PREFIXES {
            let path = format!("{p}ServerReflectionInfo");
            assert_eq!(access_of(&path, false), Access::Authenticated);
            assert_eq!(access_of(&path, true), Access::Open);
        }
        assert_eq!(
            access_of("/baton.v1.RunService/Nope", false),
            Access::System
        );
        assert_eq!(access_of("/", false), Access::System);
        assert_eq!(
            access_of("/baton.v1.RunService/StartRun", false),
            Access::Role(Role::Operator)
        );
    }
}
