//! baton-orchestrator
