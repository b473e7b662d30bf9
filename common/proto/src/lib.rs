//! Baton's contracts: the gRPC services and the messages that travel over Redis, generated from
//! `proto/` at build time. Every service and client shares this one copy.

/// `baton.v1`: the public API and the queue envelopes.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("baton.v1");
}

/// The encoded file descriptor set of `baton.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("baton_descriptor");

pub use prost;
pub use prost_types;

/// Converts a chrono-free Unix time in microseconds into a protobuf timestamp.
pub fn timestamp_from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// Converts a protobuf timestamp into Unix time in microseconds.
pub fn timestamp_to_micros(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds * 1_000_000 + i64::from(ts.nanos) / 1_000
}
