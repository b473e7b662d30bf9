// gRPC over HTTP/2 for Node, through @grpc/grpc-js.
import { ChannelCredentials } from "@grpc/grpc-js";
import { GrpcTransport } from "@protobuf-ts/grpc-transport";

/** How a transport reaches Baton. */
export interface GrpcTransportOptions {
  /** An API key or JWT, sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** TLS or plaintext; plaintext (Baton's default) unless set. */
  credentials?: ChannelCredentials;
}

/**
 * A transport to Baton's gRPC port, e.g.
 * `grpcTransport("127.0.0.1:8002", { token: process.env.BATON_TOKEN })`.
 */
export function grpcTransport(
  host: string,
  options: GrpcTransportOptions | ChannelCredentials = {},
): GrpcTransport {
  const { token, credentials } = options instanceof ChannelCredentials ? { credentials: options } : options;
  return new GrpcTransport({
    host,
    channelCredentials: credentials ?? ChannelCredentials.createInsecure(),
    meta: token ? { authorization: `Bearer ${token}` } : {},
  });
}
