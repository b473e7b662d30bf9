//! baton-queue
