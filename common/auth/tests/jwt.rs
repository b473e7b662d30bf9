//! JWTs signed with test keys (tests/keys) against the verifier, as an identity provider would
//! issue them: the good one passes, and each way a token can be wrong is refused with its reason.

use std::{path::PathBuf, time::Duration};

use baton_auth::{DenyReason, JwtConfig, JwtKeys, JwtVerifier, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

fn key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn config(keys: JwtKeys) -> JwtConfig {
    JwtConfig {
        keys,
        issuer: "https://id.example.com".into(),
        audience: "baton".into(),
        tenant_claim: "tenant".into(),
        role_claim: "role".into(),
        leeway: Duration::from_secs(0),
    }
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn claims() -> serde_json::Value {
    json!({
        "iss": "https://id.example.com",
        "aud": "baton",
        "sub": "alice",
        "exp": now() + 600,
        "tenant": "acme",
        "role": "operator",
    })
}

fn ed_token(pem: &str, claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_ed_pem(&std::fs::read(key(pem)).unwrap()).unwrap();
    encode(&Header::new(Algorithm::EdDSA), claims, &key).unwrap()
}

#[test]
fn a_valid_token_names_its_subject_tenant_and_role() {
    let verifier =
        JwtVerifier::load(&config(JwtKeys::PublicKey(key("ed25519.pub.pem"))), "ops").unwrap();
    let principal = verifier
        .verify(&ed_token("ed25519.pem", &claims()))
        .unwrap();
    assert_eq!(principal.subject, "jwt:alice");
    assert_eq!(principal.tenant.as_deref(), Some("acme"));
    assert_eq!(principal.role, Role::Operator);
    assert!(!principal.system);

    let mut admin = claims();
    admin["tenant"] = json!("ops");
    admin["role"] = json!("admin");
    assert!(
        verifier
            .verify(&ed_token("ed25519.pem", &admin))
            .unwrap()
            .system
    );

    let mut no_role = claims();
    no_role.as_object_mut().unwrap().remove("role");
    let viewer = verifier.verify(&ed_token("ed25519.pem", &no_role)).unwrap();
    assert_eq!(viewer.role, Role::Viewer);
}

#[test]
fn each_bad_token_is_refused_with_its_reason() {
    let verifier =
        JwtVerifier::load(&config(JwtKeys::PublicKey(key("ed25519.pub.pem"))), "ops").unwrap();
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims();
        edit(&mut c);
        ed_token("ed25519.pem", &c)
    };
    let cases: Vec<(&str, String, DenyReason)> = vec![
        (
            "expired",
            with(&|c| c["exp"] = json!(now() - 60)),
            DenyReason::Expired,
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now() + 600)),
            DenyReason::Expired,
        ),
        (
            "wrong signature",
            ed_token("other.pem", &claims()),
            DenyReason::InvalidToken,
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example.com")),
            DenyReason::InvalidToken,
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("other")),
            DenyReason::InvalidToken,
        ),
        (
            "no tenant",
            with(&|c| {
                c.as_object_mut().unwrap().remove("tenant");
            }),
            DenyReason::InvalidToken,
        ),
        (
            "bad tenant",
            with(&|c| c["tenant"] = json!("a b")),
            DenyReason::InvalidToken,
        ),
        (
            "unknown role",
            with(&|c| c["role"] = json!("root")),
            DenyReason::InvalidToken,
        ),
        (
            "no expiry",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            DenyReason::InvalidToken,
        ),
        ("garbage", "a.b.c".to_owned(), DenyReason::Malformed),
    ];
    for (what, token, reason) in cases {
        assert_eq!(verifier.verify(&token).unwrap_err(), reason, "{what}");
    }
    // The classic confusion: an HMAC token keyed with the public key's bytes.
    let public = std::fs::read(key("ed25519.pub.pem")).unwrap();
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(&public).unwrap(),
    )
    .unwrap();
    assert_eq!(
        verifier.verify(&forged).unwrap_err(),
        DenyReason::InvalidToken
    );
}

#[test]
fn a_jwks_key_is_chosen_by_kid() {
    let verifier = JwtVerifier::load(&config(JwtKeys::Jwks(key("jwks.json"))), "ops").unwrap();
    let signing = EncodingKey::from_ec_pem(&std::fs::read(key("p256.pem")).unwrap()).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("p256-test".into());
    let token = encode(&header, &claims(), &signing).unwrap();
    assert_eq!(
        verifier.verify(&token).unwrap().tenant.as_deref(),
        Some("acme")
    );
    header.kid = Some("rotated-away".into());
    let token = encode(&header, &claims(), &signing).unwrap();
    assert_eq!(
        verifier.verify(&token).unwrap_err(),
        DenyReason::InvalidToken
    );
}

#[test]
fn a_bad_key_file_names_its_variable() {
    let missing = JwtVerifier::load(&config(JwtKeys::Jwks(key("nope.json"))), "ops").unwrap_err();
    assert!(
        missing.to_string().contains("BATON_JWT_JWKS_FILE"),
        "{missing}"
    );
    let not_a_key =
        JwtVerifier::load(&config(JwtKeys::PublicKey(key("README.md"))), "ops").unwrap_err();
    assert!(
        not_a_key.to_string().contains("BATON_JWT_PUBLIC_KEY_FILE"),
        "{not_a_key}"
    );
}
