// Package client is the generated Go client for the Baton workflow API.
//
// The gRPC stubs and messages are in package batonv1
// (github.com/baton-run/baton/clients/go/baton/v1); health checks use
// google.golang.org/grpc/health/grpc_health_v1. See clients/README.md and
// examples/hello for a complete program.
package client
