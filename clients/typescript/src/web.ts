// gRPC-Web over fetch, for browsers (and any runtime with fetch); the orchestrator accepts it on
// its gRPC port. Cross-origin pages need their origin in GRPC_WEB_ALLOWED_ORIGINS.
import { GrpcWebFetchTransport } from "@protobuf-ts/grpcweb-transport";

/** A transport to Baton's gRPC port over gRPC-Web, e.g. `grpcWebTransport("http://127.0.0.1:8002")`. */
export function grpcWebTransport(baseUrl: string): GrpcWebFetchTransport {
  return new GrpcWebFetchTransport({ baseUrl, format: "binary" });
}
