// gRPC-Web over fetch, for browsers (and any runtime with fetch); the orchestrator accepts it on
// its gRPC port. Cross-origin pages need their origin in GRPC_WEB_ALLOWED_ORIGINS.
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";

/** How a gRPC-Web transport reaches Baton. */
export interface GrpcWebTransportOptions {
  /** An API key or JWT, sent as `authorization: Bearer <token>` on every call. */
  token?: string;
}

/**
 * A transport to Baton's gRPC port over gRPC-Web, e.g.
 * `grpcWebTransport("http://127.0.0.1:8002", { token })`.
 */
export function grpcWebTransport(baseUrl: string, options: GrpcWebTransportOptions = {}): GrpcWebFetchTransport {
  return new GrpcWebFetchTransport({
    baseUrl,
    format: "binary",
    meta: options.token ? { authorization: `Bearer ${options.token}` } : {},
  });
}
