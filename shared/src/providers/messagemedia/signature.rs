//! MessageMedia's signed webhooks ("Enterprise Webhooks", feature `API_SECURE_CALLBACKS`):
//! `X-MessageMedia-Signature` is base64 RSASSA-PKCS1-v1_5 over `requestLine + Date + rawBody`,
//! concatenated without separators, with the digest `X-MessageMedia-Digest-Type` names
//! (SHA-224, SHA-256 or SHA-512), verified with the account's public signature key.
//!
//! Sources: messagemedia/enterprise-webhooks-{java,nodejs,php,python}-sdk (`SignService.java`
//! builds `digestType + "with" + cipherType` over request line + date + content) and the
//! sinchengage-developer spec prose. The C# sample, which signs the body alone, is a sample bug.

use base64::Engine;
use chrono::{DateTime, Utc};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Sha224, Sha256, Sha512};

/// How far a signed `Date` may be from our clock, both ways. MessageMedia documents no
/// tolerance; five minutes covers clock skew and its retries, which it re-signs.
pub const REPLAY_WINDOW_SECONDS: i64 = 5 * 60;

const MIN_KEY_BITS: usize = 1024;

/// The digests MessageMedia signs with (`POST /v1/iam/signature_keys` `digest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    Sha224,
    Sha256,
    Sha512,
}

impl Digest {
    /// `X-MessageMedia-Digest-Type`: the Node sample sends `SHA256`, the 2026 spec shows
    /// `SHA-512`; both spellings name the same digest.
    pub fn from_header(value: &str) -> Option<Digest> {
        let name: String = value
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        match name.as_str() {
            "SHA224" => Some(Digest::Sha224),
            "SHA256" => Some(Digest::Sha256),
            "SHA512" => Some(Digest::Sha512),
            _ => None,
        }
    }

    pub fn header_value(self) -> &'static str {
        match self {
            Digest::Sha224 => "SHA224",
            Digest::Sha256 => "SHA256",
            Digest::Sha512 => "SHA512",
        }
    }
}

/// The bytes MessageMedia signs: `{METHOD} {target} HTTP/1.1`, the `Date` value and the body,
/// with nothing between them. The protocol is always `HTTP/1.1`, whatever reached us.
pub fn signed_bytes(method: &str, target: &str, date: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{method} {target} HTTP/1.1{date}").into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Whether `signature_b64` is the key's signature of `message` with `digest`. RSA verification
/// works on public values only (the key, the signature, the message), so there is no secret
/// whose comparison could leak through timing.
pub fn verify(key: &RsaPublicKey, digest: Digest, message: &[u8], signature_b64: &str) -> bool {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(raw.as_slice()) else {
        return false;
    };
    let key = key.clone();
    match digest {
        Digest::Sha224 => VerifyingKey::<Sha224>::new(key)
            .verify(message, &signature)
            .is_ok(),
        Digest::Sha256 => VerifyingKey::<Sha256>::new(key)
            .verify(message, &signature)
            .is_ok(),
        Digest::Sha512 => VerifyingKey::<Sha512>::new(key)
            .verify(message, &signature)
            .is_ok(),
    }
}

/// The base64 signature of `message` with `key` and `digest`, as MessageMedia makes it (for
/// `byosms simulate` and tests).
pub fn sign(key: &RsaPrivateKey, digest: Digest, message: &[u8]) -> String {
    let key = key.clone();
    let bytes = match digest {
        Digest::Sha224 => SigningKey::<Sha224>::new(key).sign(message).to_vec(),
        Digest::Sha256 => SigningKey::<Sha256>::new(key).sign(message).to_vec(),
        Digest::Sha512 => SigningKey::<Sha512>::new(key).sign(message).to_vec(),
    };
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads a public key as an admin may paste it: PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) or the
/// bare base64 DER the Signature Key API returns (SubjectPublicKeyInfo, falling back to PKCS#1
/// `RSAPublicKey`). The error is the broken rule, never the input.
pub fn parse_public_key(input: &str) -> Result<RsaPublicKey, String> {
    if input.contains("PRIVATE KEY") {
        return Err("is a private key: give the public signature key MessageMedia returned".into());
    }
    if input.contains("CERTIFICATE") {
        return Err("is a certificate: give the RSA public key itself".into());
    }
    let base64_text: String = input
        .lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&base64_text)
        .map_err(
            |_| "must be an RSA public key, PEM or base64 (the Signature Key API's public_key)",
        )?;
    let key = RsaPublicKey::from_public_key_der(&der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
        .map_err(|_| "is not an RSA public key (SubjectPublicKeyInfo or PKCS#1 DER)")?;
    if key.size() * 8 < MIN_KEY_BITS {
        return Err(format!(
            "must be an RSA key of at least {MIN_KEY_BITS} bits"
        ));
    }
    Ok(key)
}

/// The stored form of a public key: SubjectPublicKeyInfo PEM.
pub fn public_key_pem(key: &RsaPublicKey) -> Result<String, String> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|_| "could not be re-encoded as PEM".into())
}

/// `Date` (RFC 7231 IMF-fixdate, e.g. `Wed, 18 Jul 2018 06:33:52 GMT`).
pub fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value.trim())
        .ok()
        .map(|d| d.to_utc())
}

/// `at` as an IMF-fixdate, the form MessageMedia sends.
pub fn format_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Whether a signed date is within the replay window around `now`.
pub fn is_fresh(date: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - date).num_seconds().abs() <= REPLAY_WINDOW_SECONDS
}

/// The key pair `byosms simulate`, the example connection and the contract suite sign with.
/// Its private half is published with this source: a connection that uses its public half as
/// `webhookPublicKey` accepts webhooks anyone can forge, so it is for local trials only.
pub struct SimulationKey;

impl SimulationKey {
    pub const PUBLIC_PEM: &'static str = include_str!("simulation_key.pub.pem");
    const PRIVATE_PEM: &'static str = include_str!("simulation_key.pem");
    /// What `X-MessageMedia-Key-Id` carries in simulated requests.
    pub const KEY_ID: &'static str = "5e0c0a1d-51b1-4d1e-9a5e-000000000001";

    pub fn public() -> RsaPublicKey {
        parse_public_key(Self::PUBLIC_PEM).expect("the simulation public key parses")
    }

    pub fn private() -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs8_pem(Self::PRIVATE_PEM).expect("the simulation private key parses")
    }
}
