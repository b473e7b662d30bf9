// gRPC over HTTP/2 for Node, through @grpc/grpc-js.
import { ChannelCredentials } from "@grpc/grpc-js";
import { GrpcTransport } from "@protobuf-ts/grpc-transport";

/** A transport to Baton's gRPC port, e.g. `grpcTransport("127.0.0.1:8002")`. */
export function grpcTransport(
  host: string,
  credentials: ChannelCredentials = ChannelCredentials.createInsecure(),
): GrpcTransport {
  return new GrpcTransport({ host, channelCredentials: credentials });
}
