//! Stand-ins: local imitations of the providers' send APIs, so that the bundle can be tried end to
//! end (`byosms sandbox`) and every adapter tested (the contract suite) without an account or a
//! network. A stand-in checks a request the way its provider does (path, the credentials' shape,
//! required fields, number format, limits) and answers in the provider's format, including the
//! error answers its provider's test numbers trigger.
//!
//! Compiled only with the `stand-in` feature: the Lambda functions never carry them.
//!
//! What every stand-in needs is here: reading credentials from `Authorization`, reading a form
//! body, answering JSON.

use crate::domain::SendErrorCode;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;

/// One provider's send API, imitated.
pub struct StandIn {
    /// Every path the adapter calls, relative to the provider's API base URL. A provider with
    /// several API bases (Sinch's token endpoint) serves them all here, so that each of
    /// [`crate::config::api_url_variables`] can point at the one stand-in.
    pub router: Router,
    /// Every recipient (as a send request gives it, E.164 with `+`) that makes the stand-in
    /// answer with an error, and the code the adapter must classify that answer as.
    pub error_numbers: Vec<(&'static str, SendErrorCode)>,
}

/// The credentials of `Authorization: {scheme} {credentials}`; the scheme is matched without
/// regard to case, as HTTP wants.
pub fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, credentials) = value.split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| credentials.trim())
}

/// `Authorization: Basic base64(user:password)` as `(user, password)`.
pub fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = authorization(headers, "Basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// A form body's pairs, decoded.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The first value of `name` among `pairs`.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A JSON answer: every provider answers its results and its errors this way.
pub fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn reads_basic_credentials_and_other_schemes() {
        // RFC 7617's example.
        let headers = with_authorization("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(
            basic_auth(&headers),
            Some(("Aladdin".into(), "open sesame".into()))
        );
        assert_eq!(
            authorization(&with_authorization("bearer tok"), "Bearer"),
            Some("tok")
        );
        assert_eq!(authorization(&headers, "Bearer"), None);
        assert_eq!(basic_auth(&with_authorization("Basic %%%")), None);
        assert_eq!(basic_auth(&HeaderMap::new()), None);
    }
}
