//! gRPC server reflection in both protocol versions: `grpc.reflection.v1` for current tools, and
//! `grpc.reflection.v1alpha` for those that speak nothing else (Python's grpcio-reflection, older
//! grpcurl and Postman), which would otherwise get `UNIMPLEMENTED`.

use tonic_reflection::{
    pb::{v1, v1alpha},
    server::{Builder, Error},
};

/// The two reflection services over the same descriptors; add both to the server. Each lists
/// every service of `descriptor_sets` (encoded `FileDescriptorSet`s, such as
/// `baton_proto::FILE_DESCRIPTOR_SET` and `tonic_health::pb::FILE_DESCRIPTOR_SET`) and both
/// reflection services themselves, whichever version is asked.
#[allow(clippy::type_complexity)]
pub fn reflection(
    descriptor_sets: &[&[u8]],
) -> Result<
    (
        v1::server_reflection_server::ServerReflectionServer<
            impl v1::server_reflection_server::ServerReflection,
        >,
        v1alpha::server_reflection_server::ServerReflectionServer<
            impl v1alpha::server_reflection_server::ServerReflection,
        >,
    ),
    Error,
> {
    let builder = || {
        descriptor_sets
            .iter()
            .chain([&v1::FILE_DESCRIPTOR_SET, &v1alpha::FILE_DESCRIPTOR_SET])
            .fold(
                // Both versions' descriptors are registered above, so neither builder adds its own.
                Builder::configure().include_reflection_service(false),
                |builder, set| builder.register_encoded_file_descriptor_set(set),
            )
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
