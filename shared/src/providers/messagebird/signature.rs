//! MessageBird's two webhook signatures.
//!
//! - `MessageBird-Signature-JWT` (current): a JWT signed with the account's signing key (HS256,
//!   HS384 or HS512 only), whose claims bind it to the exact URL called (`url_hash`), the raw
//!   body (`payload_hash`, present iff there is a body) and a one-minute window (`nbf`, `exp`).
//!   Checked as messagebird/python-rest-api `request_validator.py` and go-rest-api
//!   `signature_jwt` check it, against their shared test vectors.
//! - `MessageBird-Signature` + `MessageBird-Request-Timestamp` (deprecated by MessageBird in
//!   2021, still accepted for older accounts): base64 HMAC-SHA256 of
//!   `timestamp \n sorted-query \n SHA256(body)` (python `signed_request.py`, go `signature`).

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use subtle::ConstantTimeEq;

pub const JWT_HEADER: &str = "messagebird-signature-jwt";
pub const LEGACY_SIGNATURE_HEADER: &str = "messagebird-signature";
pub const LEGACY_TIMESTAMP_HEADER: &str = "messagebird-request-timestamp";
pub const ISSUER: &str = "MessageBird";
/// Clock skew tolerated on `nbf` and `exp`: the node SDK's `clockTolerance` (python and go use
/// 1 s, which a Lambda clock a second behind MessageBird's would already fail).
pub const JWT_LEEWAY_SECONDS: i64 = 5;
/// How long a token MessageBird issues is valid (`exp - nbf` in its test data).
pub const JWT_LIFETIME_SECONDS: i64 = 60;
/// The legacy scheme signs a bare timestamp: requests older or newer than this are replays
/// (or a broken clock). The SDKs' defaults are 5 s (go) and 10 s (python), both configurable;
/// ours is the project's 5-minute replay window, since retried reports are deduplicated anyway.
pub const LEGACY_WINDOW_SECONDS: i64 = 300;

/// Why a signature was refused: named in logs and tests, never shown with a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the JWT is malformed, not HMAC-signed, or its signature is invalid")]
    BadToken,
    #[error("claim iss is not MessageBird")]
    Issuer,
    #[error("claim nbf is missing or in the future")]
    NotYetValid,
    #[error("claim exp is missing or in the past")]
    Expired,
    #[error("claim jti is missing")]
    NoJwtId,
    #[error("claim url_hash does not match the URL called")]
    UrlHash,
    #[error("claim payload_hash is set but the body is empty")]
    PayloadRemoved,
    #[error("claim payload_hash is missing but there is a body")]
    PayloadAdded,
    #[error("claim payload_hash does not match the body")]
    PayloadHash,
    #[error("the request timestamp is not unix seconds or is outside the replay window")]
    Timestamp,
    #[error("the legacy signature does not match")]
    LegacySignature,
}

/// The claims MessageBird puts in its JWT. Times are read as numbers of either kind, since JWT
/// numeric dates may carry fractions.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hash: Option<String>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Verifies a `MessageBird-Signature-JWT` for a request to `url` (the exact URL MessageBird
/// called: scheme, host, port, path and raw query) with `body`, received at `now`.
pub fn verify_jwt(
    token: &str,
    signing_key: &str,
    url: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Claims, SignatureError> {
    // The library checks the algorithm (HMAC only: `none` and asymmetric algorithms are refused
    // before any key is used) and the signature; the claims are ours to check against `now`,
    // which is the request's arrival, not the library's clock.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let key = DecodingKey::from_secret(signing_key.as_bytes());
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|_| SignatureError::BadToken)?
        .claims;
    check_claims(&claims, url, body, now.timestamp())?;
    Ok(claims)
}

fn check_claims(claims: &Claims, url: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
    if claims.iss.as_deref() != Some(ISSUER) {
        return Err(SignatureError::Issuer);
    }
    let now = now as f64;
    let leeway = JWT_LEEWAY_SECONDS as f64;
    match claims.nbf {
        Some(nbf) if nbf - leeway <= now => {}
        _ => return Err(SignatureError::NotYetValid),
    }
    match claims.exp {
        Some(exp) if now <= exp + leeway => {}
        _ => return Err(SignatureError::Expired),
    }
    if claims.jti.as_deref().is_none_or(str::is_empty) {
        return Err(SignatureError::NoJwtId);
    }
    // Never skipped: a GET status report's data is in the query, which only this covers.
    let url_hash = claims.url_hash.as_deref().unwrap_or_default();
    if !same(&sha256_hex(url.as_bytes()), &url_hash.to_ascii_lowercase()) {
        return Err(SignatureError::UrlHash);
    }
    match (
        claims.payload_hash.as_deref().filter(|h| !h.is_empty()),
        body.is_empty(),
    ) {
        (None, true) => Ok(()),
        (Some(_), true) => Err(SignatureError::PayloadRemoved),
        (None, false) => Err(SignatureError::PayloadAdded),
        (Some(hash), false) if same(&sha256_hex(body), &hash.to_ascii_lowercase()) => Ok(()),
        (Some(_), false) => Err(SignatureError::PayloadHash),
    }
}

/// The JWT MessageBird would send for a request to `url` with `body` at `now` (HS256).
pub fn sign_jwt(signing_key: &str, url: &str, body: &[u8], now: DateTime<Utc>) -> String {
    let issued = now.timestamp() as f64;
    let claims = Claims {
        iss: Some(ISSUER.into()),
        nbf: Some(issued),
        exp: Some(issued + JWT_LIFETIME_SECONDS as f64),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        url_hash: Some(sha256_hex(url.as_bytes())),
        payload_hash: (!body.is_empty()).then(|| sha256_hex(body)),
    };
    sign_claims(signing_key, &claims, Algorithm::HS256)
}

/// `claims` signed with `algorithm` (an HMAC one). Times are written as integers, as
/// MessageBird writes them.
pub fn sign_claims(signing_key: &str, claims: &Claims, algorithm: Algorithm) -> String {
    let mut value = serde_json::to_value(claims).expect("claims always serialize");
    for time in ["nbf", "exp"] {
        if let Some(t) = value.get(time).and_then(serde_json::Value::as_f64) {
            value[time] = serde_json::json!(t as i64);
        }
    }
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &value,
        &EncodingKey::from_secret(signing_key.as_bytes()),
    )
    .expect("an HMAC key signs any claims")
}

/// Python's `urlencode` / Go's `url.Values.Encode` of one key or value: RFC 3986 unreserved
/// characters as they are, a space as `+`, everything else percent-encoded (upper-case hex).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query as the legacy scheme signs it: decoded pairs sorted by key (a repeated key keeps
/// its values' order), re-encoded form-style.
pub fn legacy_sorted_query(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `base64(HMAC-SHA256(signingKey, timestamp \n sortedQuery \n SHA256(body)))`, the digest
/// as its raw 32 bytes.
pub fn legacy_signature(
    signing_key: &str,
    timestamp: &str,
    pairs: &[(String, String)],
    body: &[u8],
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(legacy_sorted_query(pairs).as_bytes());
    mac.update(b"\n");
    mac.update(&Sha256::digest(body));
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies the legacy signature: the timestamp within the replay window around `now`, then
/// the HMAC, compared in constant time.
pub fn verify_legacy(
    signature: &str,
    timestamp: &str,
    signing_key: &str,
    pairs: &[(String, String)],
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let signed_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Timestamp)?;
    if (now.timestamp() - signed_at).abs() > LEGACY_WINDOW_SECONDS {
        return Err(SignatureError::Timestamp);
    }
    let expected = legacy_signature(signing_key, timestamp.trim(), pairs, body);
    if same(&expected, signature.trim()) {
        Ok(())
    } else {
        Err(SignatureError::LegacySignature)
    }
}
