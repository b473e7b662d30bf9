// The Baton API client: generated messages and service clients, usable with either transport
// (`@baton/client/node` for gRPC from Node, `@baton/client/web` for gRPC-Web from browsers).
export * from "./gen/baton/v1/workflow";
export * from "./gen/baton/v1/workflow.client";
export * from "./gen/baton/v1/run";
export * from "./gen/baton/v1/run.client";
export * from "./gen/baton/v1/info";
export * from "./gen/baton/v1/info.client";
export * from "./gen/baton/v1/admin";
export * from "./gen/baton/v1/admin.client";
export * from "./gen/baton/v1/auth";
export * from "./gen/baton/v1/auth.client";
export * from "./gen/grpc/health/v1/health";
export * from "./gen/grpc/health/v1/health.client";
