//! baton-workflow-runner
