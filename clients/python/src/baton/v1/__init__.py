"""baton.v1 messages and gRPC stubs, generated from proto/baton/v1."""
