//! The bind addresses: the gRPC port on every interface and the admin ports on loopback unless
//! configured, with errors naming the variable.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use baton_runtime::env::Env;
use baton_service::{ADMIN_ADDR_VAR, BindAddrs, GRPC_ADDR_VAR, StartError};

fn addrs(pairs: &[(&str, &str)]) -> Result<BindAddrs, baton_runtime::env::ConfigError> {
    BindAddrs::from_env(&Env::from_pairs(pairs.iter().copied()))
}

#[test]
fn grpc_binds_every_interface_and_admin_loopback_by_default() {
    let defaults = addrs(&[]).unwrap();
    assert_eq!(defaults, BindAddrs::default());
    assert_eq!(defaults.grpc, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(defaults.admin, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(
        addrs(&[(GRPC_ADDR_VAR, " "), (ADMIN_ADDR_VAR, "")]).unwrap(),
        defaults
    );
}

#[test]
fn addresses_are_read_from_their_variables() {
    let set = addrs(&[(GRPC_ADDR_VAR, "10.1.2.3"), (ADMIN_ADDR_VAR, " 0.0.0.0 ")]).unwrap();
    assert_eq!(set.grpc, IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
    assert_eq!(set.admin, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let v6 = addrs(&[(GRPC_ADDR_VAR, "::"), (ADMIN_ADDR_VAR, "::1")]).unwrap();
    assert_eq!(v6.grpc, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(v6.admin, IpAddr::V6(Ipv6Addr::LOCALHOST));
}

#[test]
fn bad_addresses_are_errors_naming_the_variable() {
    for name in [GRPC_ADDR_VAR, ADMIN_ADDR_VAR] {
        for bad in ["localhost", "0.0.0.0:9090", "256.1.1.1", "[::1]"] {
            let err = addrs(&[(name, bad)]).unwrap_err();
            assert_eq!((err.name.as_str(), err.value.as_str()), (name, bad));
            assert!(err.to_string().contains(name), "{err}");
            assert!(err.to_string().contains("IP address"), "{err}");
        }
    }
}

#[tokio::test]
async fn an_admin_listener_is_on_loopback_by_default() {
    let defaults = addrs(&[]).unwrap();
    let admin = defaults.admin(0, "METRICS_PORT").await.unwrap();
    assert_eq!(
        admin.local_addr().unwrap().ip(),
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    let grpc = defaults.grpc(0, "GRPC_PORT").await.unwrap();
    assert_eq!(
        grpc.local_addr().unwrap().ip(),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    );

    let opened = addrs(&[(ADMIN_ADDR_VAR, "0.0.0.0")]).unwrap();
    let admin = opened.admin(0, "PPROF_PORT").await.unwrap();
    assert_eq!(
        admin.local_addr().unwrap().ip(),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    );
}

#[tokio::test]
async fn a_bind_failure_names_the_address_and_both_variables() {
    // 192.0.2.0/24 is reserved for documentation: no host has it, so binding fails.
    let elsewhere = addrs(&[(ADMIN_ADDR_VAR, "192.0.2.1")]).unwrap();
    let err = elsewhere.admin(0, "HTTP_PORT").await.unwrap_err();
    assert!(matches!(err, StartError::Bind { .. }), "{err:?}");
    let text = err.to_string();
    for part in ["192.0.2.1", "HTTP_PORT", ADMIN_ADDR_VAR] {
        assert!(text.contains(part), "{part} missing: {text}");
    }
}
