//! A provider's HTTP request to one of our webhook routes, as every entry point (API Gateway,
//! function URL, local gateway) hands it to the receive pipeline, and the reply we give.

use crate::domain::Provider;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};
use std::fmt;
use url::Url;

/// The route prefix every webhook path starts with.
pub const ROUTE_PREFIX: &str = "/distribution-providers/v1/receive/distribution";

/// Which of the two webhook routes a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    Message,
    Status,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Message => "message",
            RouteKind::Status => "status",
        }
    }
}

/// `{kind}/{provider}/{orgId}` as read from a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub kind: RouteKind,
    pub provider_slug: String,
    pub org_id: String,
}

impl Route {
    /// Reads the route from a raw path that may carry a stage or base-path prefix. Percent-encoded
    /// segments are decoded.
    pub fn from_path(path: &str) -> Option<Route> {
        let start = path.find(ROUTE_PREFIX)?;
        let rest = path[start + ROUTE_PREFIX.len()..].strip_prefix('/')?;
        let mut parts = rest.split('/');
        let kind = match parts.next()? {
            "message" => RouteKind::Message,
            "status" => RouteKind::Status,
            _ => return None,
        };
        let provider_slug = decode_segment(parts.next()?)?;
        let org_id = decode_segment(parts.next()?)?;
        // A trailing slash is tolerated; deeper paths are not ours.
        match parts.next() {
            None | Some("") if parts.next().is_none() => {}
            _ => return None,
        }
        (!provider_slug.is_empty() && !org_id.is_empty()).then_some(Route {
            kind,
            provider_slug,
            org_id,
        })
    }

    /// `base` + the route path of `kind` for `provider` and `org_id`: the URL an admin (or a
    /// per-message callback) gives the provider.
    pub fn url(base: &Url, kind: RouteKind, provider: Provider, org_id: &str) -> Option<Url> {
        let joined = format!(
            "{}{}",
            base.as_str().trim_end_matches('/'),
            Route::path(kind, provider.route_slug(), org_id)
        );
        Url::parse(&joined).ok()
    }

    pub fn path(kind: RouteKind, provider_slug: &str, org_id: &str) -> String {
        format!(
            "{ROUTE_PREFIX}/{}/{}/{}",
            kind.as_str(),
            encode_segment(provider_slug),
            encode_segment(org_id)
        )
    }
}

fn decode_segment(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn encode_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay as they are).
pub fn encode_query_value(value: &str) -> String {
    encode_segment(value)
}

/// The public URL a provider called and signed: `BYOSMS_PUBLIC_BASE_URL` + route path + raw query
/// when a base is configured, else scheme + host + path + query as the request shows them.
pub fn public_url(
    base: Option<&str>,
    scheme: &str,
    host: &str,
    raw_path: &str,
    raw_query: &str,
) -> String {
    let query = if raw_query.is_empty() {
        String::new()
    } else {
        format!("?{raw_query}")
    };
    match base {
        Some(base) => {
            // The stage or custom-domain base path the function sees is replaced by the base.
            let path = raw_path
                .find(ROUTE_PREFIX)
                .map_or(raw_path, |i| &raw_path[i..]);
            format!("{}{path}{query}", base.trim_end_matches('/'))
        }
        None => format!("{scheme}://{host}{raw_path}{query}"),
    }
}

#[derive(Clone)]
pub struct WebhookRequest {
    pub method: Method,
    /// The full URL as the provider called it (see [`public_url`]).
    pub public_url: String,
    /// The path as it reached us, still percent-encoded (with any stage prefix).
    pub raw_path: String,
    /// The raw query string, without `?`.
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub received_at: DateTime<Utc>,
}

/// Headers whose values are credentials: `Debug` never shows them.
fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "signature",
        "token",
        "cookie",
        "api-key",
        "apikey",
    ]
    .iter()
    .any(|word| name.contains(word))
}

impl fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if is_credential_header(name.as_str()) {
                    "[REDACTED]"
                } else {
                    value.to_str().unwrap_or("(not text)")
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("WebhookRequest")
            .field("method", &self.method)
            .field("public_url", &self.public_url)
            .field("headers", &headers)
            .field("body_bytes", &self.body.len())
            .field("received_at", &self.received_at)
            .finish()
    }
}

impl WebhookRequest {
    /// The request target as the request line carried it: raw path, then `?` and the raw query
    /// when there is one (MessageMedia signs the request line).
    pub fn request_target(&self) -> String {
        if self.raw_query.is_empty() {
            self.raw_path.clone()
        } else {
            format!("{}?{}", self.raw_path, self.raw_query)
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type without parameters, lower-case (`application/x-www-form-urlencoded`).
    pub fn media_type(&self) -> Option<String> {
        let value = self.header("content-type")?;
        let essence = value.split(';').next().unwrap_or("").trim();
        (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
    }

    pub fn is_form(&self) -> bool {
        self.media_type().as_deref() == Some("application/x-www-form-urlencoded")
    }

    pub fn is_json(&self) -> bool {
        self.media_type()
            .is_some_and(|m| m == "application/json" || m.ends_with("+json"))
    }

    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.raw_query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The body's form pairs, decoded; `None` when the body is not valid UTF-8 after decoding.
    pub fn form_pairs(&self) -> Option<Vec<(String, String)>> {
        std::str::from_utf8(&self.body).ok()?;
        Some(form_urlencoded::parse(&self.body).into_owned().collect())
    }
}

/// What we answer a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl WebhookReply {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        WebhookReply {
            status,
            content_type,
            body: body.into(),
        }
    }

    /// An error answer: a JSON body naming the problem, never internals.
    pub fn error(status: u16, message: &str) -> Self {
        WebhookReply::new(
            status,
            "application/json",
            serde_json::json!({ "error": message }).to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_from_paths() {
        let r = Route::from_path(
            "/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG_1",
        )
        .unwrap();
        assert_eq!(r.kind, RouteKind::Status);
        assert_eq!(r.provider_slug, "twilio-sms");
        assert_eq!(r.org_id, "ORG_1");
        let staged = Route::from_path(
            "/prod/distribution-providers/v1/receive/distribution/message/sinch/ORG%201/",
        )
        .unwrap();
        assert_eq!(staged.kind, RouteKind::Message);
        assert_eq!(staged.org_id, "ORG 1");
        assert!(
            Route::from_path("/distribution-providers/v1/receive/distribution/other/x/y").is_none()
        );
        assert!(
            Route::from_path("/distribution-providers/v1/receive/distribution/status/x").is_none()
        );
        assert!(
            Route::from_path("/distribution-providers/v1/receive/distribution/status/x/y/z")
                .is_none()
        );
        assert!(Route::from_path("/healthz").is_none());
    }

    #[test]
    fn debug_never_shows_credentials() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Basic c2VjcmV0OnNlY3JldA=="),
            ("x-twilio-signature", "c2lnbmF0dXJl"),
            ("messagebird-signature-jwt", "eyJhbGciOi.payload.sig"),
            ("x-messagemedia-signature", "cnNhLXNpZw=="),
            ("content-type", "application/json"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        let request = WebhookRequest {
            method: Method::POST,
            public_url: "https://h/p?q=1".into(),
            raw_path: "/p".into(),
            raw_query: "q=1".into(),
            headers,
            body: Bytes::from_static(b"{}"),
            received_at: Utc::now(),
        };
        let shown = format!("{request:?}");
        for secret in ["c2VjcmV0", "c2lnbmF0dXJl", "eyJhbGciOi", "cnNhLXNpZw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("application/json"));
        assert_eq!(request.request_target(), "/p?q=1");
    }

    #[test]
    fn route_urls_join_the_base() {
        let base: Url = "https://sms.example.com/".parse().unwrap();
        assert_eq!(
            Route::url(&base, RouteKind::Status, Provider::Twilio, "ORG 1")
                .unwrap()
                .as_str(),
            "https://sms.example.com/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG%201"
        );
    }

    #[test]
    fn public_url_prefers_the_configured_base() {
        let path = "/prod/distribution-providers/v1/receive/distribution/status/twilio-sms/O";
        assert_eq!(
            public_url(
                Some("https://sms.example.com/"),
                "http",
                "internal",
                path,
                "messageId=m1"
            ),
            "https://sms.example.com/distribution-providers/v1/receive/distribution/status/twilio-sms/O?messageId=m1"
        );
        assert_eq!(
            public_url(
                None,
                "https",
                "abc.execute-api.eu-west-1.amazonaws.com",
                path,
                ""
            ),
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/distribution-providers/v1/receive/distribution/status/twilio-sms/O"
        );
    }
}
