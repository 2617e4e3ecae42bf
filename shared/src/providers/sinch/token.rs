//! Sinch OAuth2 access tokens (client credentials), one per connection: fetched from the token
//! endpoint, kept until shortly before they expire, fetched by one caller while the others wait
//! (single flight: a batch of sends must not drain the token endpoint's bucket of 30), dropped and
//! fetched again once when the Conversation API refuses one, and fetched anew when the
//! connection's client credentials change (a rotated client secret takes effect at once).

use super::super::http::error_excerpt;
use super::super::{Retry, SendError, retry_after};
use crate::domain::SendErrorCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long before its expiry a token is replaced (the official Node SDK's 60 s), at most half
/// of its lifetime so that a short-lived token is still used at all.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The lifetime assumed when the token endpoint names none (it always does: 3600 s).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// Which connection a token belongs to.
type ConnectionKey = (String, String);

/// A token and what it was fetched with.
struct CachedToken {
    access_token: SecretString,
    /// SHA-256 of the credentials and endpoint it was fetched with: another client secret (or
    /// client id) means another token, never the old one.
    fingerprint: [u8; 32],
    refresh_at: Instant,
}

/// The token cache of one adapter (one per process): a slot per connection, each behind an async
/// lock held while its token is fetched.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<ConnectionKey, Arc<tokio::sync::Mutex<Option<CachedToken>>>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let connections = self.slots.lock().map(|s| s.len()).unwrap_or_default();
        f.debug_struct("TokenCache")
            .field("connections", &connections)
            .finish()
    }
}

/// What a token is fetched with.
pub struct TokenRequest<'a> {
    pub http: &'a reqwest::Client,
    pub endpoint: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

impl TokenRequest<'_> {
    fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [self.endpoint, self.client_id, self.client_secret] {
            hash.update(part.len().to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }
}

impl TokenCache {
    /// A token for `connection`: the cached one while it is fresh and was fetched with these
    /// credentials, unless it is `refused` (the Conversation API just answered 401 to it), else
    /// a new one. Callers that wait for a fetch in progress get its result.
    pub async fn token(
        &self,
        connection: (&str, &str),
        request: &TokenRequest<'_>,
        refused: Option<&str>,
    ) -> Result<String, SendError> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            slots
                .entry((connection.0.to_string(), connection.1.to_string()))
                .or_default()
                .clone()
        };
        let mut cached = slot.lock().await;
        let fingerprint = request.fingerprint();
        if let Some(token) = cached.as_ref() {
            let usable = token.fingerprint == fingerprint
                && Instant::now() < token.refresh_at
                && refused != Some(token.access_token.expose_secret());
            if usable {
                return Ok(token.access_token.expose_secret().to_string());
            }
        }
        *cached = None;
        let fetched = fetch(request).await?;
        let value = fetched.access_token.expose_secret().to_string();
        *cached = Some(CachedToken {
            fingerprint,
            ..fetched
        });
        Ok(value)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

/// When a token of `lifetime` should be replaced, counted from `now`.
pub fn refresh_at(now: Instant, lifetime: Duration) -> Instant {
    now + lifetime - REFRESH_MARGIN.min(lifetime / 2)
}

/// `POST {endpoint}` with `grant_type=client_credentials` and the client's Basic credentials
/// (developers.sinch.com, OAuth 2.0 access tokens). No message has been sent while a token is
/// fetched, so every failure here is either `NotAccepted` or `Never`.
async fn fetch(request: &TokenRequest<'_>) -> Result<CachedToken, SendError> {
    let unavailable = |why: &str| {
        SendError::new(
            SendErrorCode::ProviderUnavailable,
            format!("could not get a Sinch access token: {why}; nothing was sent"),
            Retry::NotAccepted,
        )
    };
    let started = Instant::now();
    let response = request
        .http
        .post(request.endpoint)
        .basic_auth(request.client_id, Some(request.client_secret))
        .header(http::header::ACCEPT, "application/json")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|_| unavailable("the token endpoint could not be reached"))?;
    let status = response.status().as_u16();
    let wait = retry_after(response.headers());
    let body = response
        .text()
        .await
        .map_err(|_| unavailable("the token endpoint's answer was cut off"))?;
    match status {
        200..=299 => {}
        400 | 401 | 403 => {
            return Err(SendError::new(
                SendErrorCode::AuthFailed,
                format!(
                    "Sinch refused the OAuth client (clientId/clientSecret) with HTTP {status}: {}",
                    error_excerpt(&body)
                ),
                Retry::Never,
            )
            .with_provider_code(status.to_string()));
        }
        // The token endpoint is a token bucket that names no wait: the pipeline's back-off waits.
        429 => {
            return Err(SendError::new(
                SendErrorCode::Throttled,
                "Sinch's token endpoint is rate limited; nothing was sent",
                Retry::NotAccepted,
            )
            .with_provider_code("429")
            .with_retry_after(wait));
        }
        _ => {
            return Err(
                unavailable(&format!("the token endpoint answered HTTP {status}"))
                    .with_retry_after(wait),
            );
        }
    }
    let answer: TokenAnswer = serde_json::from_str(&body)
        .map_err(|_| unavailable("the token endpoint's answer could not be read"))?;
    if answer.access_token.is_empty() {
        return Err(unavailable("the token endpoint gave an empty token"));
    }
    let lifetime = answer
        .expires_in
        .filter(|s| *s > 0)
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    Ok(CachedToken {
        access_token: SecretString::from(answer.access_token),
        fingerprint: [0; 32],
        // Counted from before the request: the token's clock started when Sinch issued it.
        refresh_at: refresh_at(started, lifetime),
    })
}
