//! Deployment settings, read from the environment once per process.

use crate::domain::Provider;
use crate::stores::cached_secrets;
use crate::webhook::{Route, RouteKind};
use std::collections::HashMap;
use std::time::Duration;
use url::Url;

pub const DEFAULT_CONNECTIONS_TABLE: &str = "byosms-connections";
pub const DEFAULT_MESSAGES_TABLE: &str = "byosms-messages";
pub const DEFAULT_SECRET_PREFIX: &str = "byosms/";
/// Sinch's token endpoint is on a host of its own.
pub const SINCH_AUTH_API_URL: &str = "BYOSMS_SINCH_AUTH_API_URL";

/// `BYOSMS_<PROVIDER>_API_URL`: where `provider`'s API calls go instead of the provider.
pub fn api_url_variable(provider: Provider) -> String {
    format!("BYOSMS_{}_API_URL", provider.as_str().to_ascii_uppercase())
}

/// Every variable that moves one of `provider`'s API bases (to a mock, or to its stand-in).
pub fn api_url_variables(provider: Provider) -> Vec<String> {
    let mut names = vec![api_url_variable(provider)];
    if provider == Provider::Sinch {
        names.push(SINCH_AUTH_API_URL.to_string());
    }
    names
}

/// `BYOSMS_SEND_CONCURRENCY`: messages of one invocation in flight at once.
pub const SEND_CONCURRENCY: &str = "BYOSMS_SEND_CONCURRENCY";
pub const DEFAULT_SEND_CONCURRENCY: usize = 16;
/// The most a deployment may set: each message in flight holds a pooled connection.
pub const MAX_SEND_CONCURRENCY: usize = 256;
/// `BYOSMS_SEND_BUDGET_MS`: the time one invocation may spend sending when there is no Lambda
/// deadline (`POST /send`, `byosms send`).
pub const SEND_BUDGET_MS: &str = "BYOSMS_SEND_BUDGET_MS";
/// API Gateway's 29 s integration limit, less room for the answer: a caller of `POST /send`
/// behind a gateway still gets every result.
pub const DEFAULT_SEND_BUDGET: Duration = Duration::from_millis(25_000);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not a valid http(s) URL: {reason}")]
    BadUrl { name: String, reason: String },
    #[error("{name} must be {rule}, got {value:?}")]
    BadNumber {
        name: &'static str,
        rule: &'static str,
        value: String,
    },
    #[error("storage: {0}")]
    Store(#[from] crate::stores::StoreError),
}

/// How the send pipeline retries a request the provider provably did not accept.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::from_millis(250),
        }
    }
}

/// How one send invocation spends its messages and its time.
#[derive(Clone, Debug)]
pub struct SendSettings {
    /// Messages in flight at once (`BYOSMS_SEND_CONCURRENCY`, default 16).
    pub concurrency: usize,
    /// The time an invocation without a Lambda deadline may spend (`BYOSMS_SEND_BUDGET_MS`,
    /// default 25 s).
    pub budget: Duration,
    /// Kept free before the deadline: the time to record the last results and answer. A
    /// provider call is cut off this long before the deadline (its outcome is then unknown),
    /// and no message is started inside it.
    pub deadline_margin: Duration,
}

impl Default for SendSettings {
    fn default() -> Self {
        SendSettings {
            concurrency: DEFAULT_SEND_CONCURRENCY,
            budget: DEFAULT_SEND_BUDGET,
            deadline_margin: Duration::from_millis(1_000),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub connections_table: String,
    pub messages_table: String,
    pub secret_prefix: String,
    /// The base URL providers call us on (for callback URLs and signature checks).
    pub public_base_url: Option<Url>,
    /// `BYOSMS_<PROVIDER>_API_URL` overrides, by provider; Sinch's token endpoint under
    /// `sinch_auth_api_url`.
    pub api_urls: HashMap<Provider, Url>,
    pub sinch_auth_api_url: Option<Url>,
    pub retry: RetryPolicy,
    pub send: SendSettings,
    /// How long a warm function keeps a connection's secrets (AWS only).
    pub secret_cache_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            connections_table: DEFAULT_CONNECTIONS_TABLE.into(),
            messages_table: DEFAULT_MESSAGES_TABLE.into(),
            secret_prefix: DEFAULT_SECRET_PREFIX.into(),
            public_base_url: None,
            api_urls: HashMap::new(),
            sinch_auth_api_url: None,
            retry: RetryPolicy::default(),
            send: SendSettings::default(),
            secret_cache_ttl: cached_secrets::DEFAULT_TTL,
        }
    }
}

fn parse_url(name: &str, value: &str) -> Result<Url, ConfigError> {
    let bad = |reason: String| ConfigError::BadUrl {
        name: name.to_string(),
        reason,
    };
    let url = Url::parse(value.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("needs an http or https scheme and a host".into()));
    }
    Ok(url)
}

fn parse_number(
    name: &'static str,
    rule: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| ConfigError::BadNumber {
            name,
            rule,
            value: value.to_string(),
        })
}

impl Settings {
    /// Reads the variables of ARCHITECTURE.md's environment table.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        if let Some(v) = get("BYOSMS_CONNECTIONS_TABLE") {
            settings.connections_table = v;
        }
        if let Some(v) = get("BYOSMS_MESSAGES_TABLE") {
            settings.messages_table = v;
        }
        if let Some(v) = get("BYOSMS_SECRET_PREFIX") {
            settings.secret_prefix = v;
        }
        if let Some(v) = get("BYOSMS_PUBLIC_BASE_URL") {
            settings.public_base_url = Some(parse_url("BYOSMS_PUBLIC_BASE_URL", &v)?);
        }
        for provider in Provider::ALL {
            let name = api_url_variable(provider);
            if let Some(v) = get(&name) {
                settings.api_urls.insert(provider, parse_url(&name, &v)?);
            }
        }
        if let Some(v) = get(SINCH_AUTH_API_URL) {
            settings.sinch_auth_api_url = Some(parse_url(SINCH_AUTH_API_URL, &v)?);
        }
        if let Some(v) = get(SEND_CONCURRENCY) {
            settings.send.concurrency = parse_number(
                SEND_CONCURRENCY,
                "a whole number from 1 to 256",
                &v,
                1..=MAX_SEND_CONCURRENCY as u64,
            )? as usize;
        }
        if let Some(v) = get(SEND_BUDGET_MS) {
            let millis = parse_number(
                SEND_BUDGET_MS,
                "a whole number of milliseconds from 1 to 900000",
                &v,
                1..=900_000,
            )?;
            settings.send.budget = Duration::from_millis(millis);
        }
        Ok(settings)
    }

    /// Settings whose every provider API is `{base}/{provider}`, as `byosms sandbox` serves
    /// them. The adapters' example connections (simulation keys, sandbox hosts) are valid only
    /// for such a deployment; tools that walk every adapter's example (fuzzing, benches, the
    /// contract suite) build their registry from these.
    pub fn sandboxed(base: &str) -> Result<Self, ConfigError> {
        let base = base.trim_end_matches('/');
        Self::from_lookup(|name| {
            Provider::ALL
                .into_iter()
                .find(|p| api_url_variables(*p).iter().any(|v| v == name))
                .map(|p| format!("{base}/{}", p.as_str()))
        })
    }

    /// The public URL of a webhook route for an org, when a public base URL is configured.
    pub fn route_url(&self, kind: RouteKind, provider: Provider, org_id: &str) -> Option<Url> {
        Route::url(self.public_base_url.as_ref()?, kind, provider, org_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_environment_table() {
        let env: HashMap<&str, &str> = [
            ("BYOSMS_MESSAGES_TABLE", "m"),
            ("BYOSMS_PUBLIC_BASE_URL", "https://sms.example.com/"),
            ("BYOSMS_TWILIO_API_URL", "http://127.0.0.1:4010"),
        ]
        .into();
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.messages_table, "m");
        assert_eq!(s.connections_table, DEFAULT_CONNECTIONS_TABLE);
        assert_eq!(
            s.api_urls[&Provider::Twilio].as_str(),
            "http://127.0.0.1:4010/"
        );
        assert_eq!(
            s.route_url(RouteKind::Status, Provider::Twilio, "ORG 1")
                .unwrap()
                .as_str(),
            "https://sms.example.com/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG%201"
        );
    }

    #[test]
    fn each_api_url_variable_moves_its_providers_api() {
        let stand_in = "http://127.0.0.1:4010/sinch";
        let names = api_url_variables(Provider::Sinch);
        assert_eq!(names, ["BYOSMS_SINCH_API_URL", "BYOSMS_SINCH_AUTH_API_URL"]);
        let s = Settings::from_lookup(|k| names.iter().any(|n| n == k).then(|| stand_in.into()))
            .unwrap();
        assert_eq!(s.api_urls[&Provider::Sinch].as_str(), stand_in);
        assert_eq!(s.sinch_auth_api_url.unwrap().as_str(), stand_in);
        assert_eq!(
            api_url_variables(Provider::Twilio),
            ["BYOSMS_TWILIO_API_URL"]
        );
    }

    #[test]
    fn a_sandboxed_deployment_overrides_every_provider() {
        let s = Settings::sandboxed("http://127.0.0.1:4010/").unwrap();
        for provider in Provider::ALL {
            assert_eq!(
                s.api_urls[&provider].as_str(),
                format!("http://127.0.0.1:4010/{provider}")
            );
        }
        assert_eq!(
            s.sinch_auth_api_url.as_ref().map(Url::as_str),
            Some("http://127.0.0.1:4010/sinch")
        );
    }

    #[test]
    fn reads_the_send_settings() {
        let defaults = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(defaults.send.concurrency, 16);
        assert_eq!(defaults.send.budget, Duration::from_secs(25));
        let env: HashMap<&str, &str> = [(SEND_CONCURRENCY, " 4 "), (SEND_BUDGET_MS, "1500")].into();
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.send.concurrency, 4);
        assert_eq!(s.send.budget, Duration::from_millis(1500));
        for (name, value) in [
            (SEND_CONCURRENCY, "0"),
            (SEND_CONCURRENCY, "257"),
            (SEND_CONCURRENCY, "many"),
            (SEND_BUDGET_MS, "-1"),
            (SEND_BUDGET_MS, "0"),
            (SEND_BUDGET_MS, "1.5"),
        ] {
            let err = Settings::from_lookup(|k| (k == name).then(|| value.to_string()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name) && err.contains(value), "{err}");
        }
    }

    #[test]
    fn refuses_a_bad_url() {
        let err =
            Settings::from_lookup(|k| (k == "BYOSMS_TWILIO_API_URL").then(|| "ftp://x".into()))
                .unwrap_err();
        assert!(err.to_string().contains("BYOSMS_TWILIO_API_URL"));
    }
}
