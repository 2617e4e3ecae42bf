//! The one HTTPS client both AWS SDK clients (DynamoDB, Secrets Manager) and the credential
//! chain share, and the SDK configuration built on it.
//!
//! It makes the same connector the SDK's default client makes (hyper 1.x, rustls on AWS-LC, the
//! system's trust store, proxies from the environment, the SDK's timeouts and sleep), from the
//! connector builder's public API. What differs is how often one is made:
//!
//! - The default client is a new one per SDK client (DynamoDB, Secrets Manager, and the STS
//!   client the credential chain builds for web identity), and each builds a TLS configuration at
//!   client construction only to throw it away (`validate_base_client_config` pre-loads the trust
//!   store that way), then another for its first request. That was five TLS configurations per
//!   cold start, each re-parsing every root certificate into a trust anchor: about 0.6 M
//!   instructions apiece under callgrind, a tenth of a webhook function's whole cold start.
//! - This one is shared and builds a connector only when a request needs it, one per distinct
//!   pair of timeouts (both clients use the same, so one in all). The trust store is still read
//!   from the system, once, by the first request: `Deps::warm_up`, at init.
//!
//! One connector means one connection pool, keyed by host: DynamoDB and Secrets Manager still get
//! connections of their own.

use aws_smithy_http_client::Connector;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The SDK configuration every AWS entry point loads once: the environment's region,
/// credentials and endpoint, on a new [`SdkHttpClient`].
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    sdk_config_loader().load().await
}

/// [`load_sdk_config`]'s loader, for callers that set more (the tests: moto's endpoint, fixed
/// credentials).
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(SdkHttpClient::default())
}

/// The connectors made so far, by the timeouts they were made with (the only settings the SDK
/// passes today). Clones share them.
#[derive(Clone, Debug, Default)]
pub struct SdkHttpClient {
    connectors: Arc<Mutex<HashMap<Timeouts, SharedHttpConnector>>>,
}

type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        // A poisoned lock only means another thread panicked while inserting: the map is still
        // whole (an insert either happened or not).
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connectors
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(connector(settings, components)))
            .clone()
    }

    // `validate_base_client_config` keeps the trait's default, which does nothing: the SDK's
    // own client builds a throwaway connector there (see the module comment).

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        // What the default client reports, so the user agent AWS sees is unchanged.
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}

/// What the SDK's default client builds for these settings (`aws-smithy-runtime`'s
/// `default_https_client` at behavior version 2025-08-07 and later).
fn connector(settings: &HttpConnectorSettings, components: &RuntimeComponents) -> Connector {
    let mut builder = Connector::builder();
    builder.set_connector_settings(Some(settings.clone()));
    builder.set_sleep_impl(components.sleep_impl());
    builder.set_proxy_config(Some(ProxyConfig::from_env()));
    builder
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    impl SdkHttpClient {
        fn connectors_made(&self) -> usize {
            self.connectors.lock().unwrap().len()
        }
    }

    async fn sdk_config(http: &SdkHttpClient, endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http.clone())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "id", "key", None, None, "test",
            ))
            .load()
            .await
    }

    #[tokio::test]
    async fn both_clients_share_one_connector_made_by_the_first_request() {
        let server = MockServer::start().await;
        for target in ["DynamoDB_20120810.GetItem", "secretsmanager.GetSecretValue"] {
            Mock::given(method("POST"))
                .and(header("x-amz-target", target))
                .respond_with(
                    ResponseTemplate::new(200)
                        .insert_header("content-type", "application/x-amz-json-1.0")
                        .set_body_string(r#"{"Name":"s","SecretString":"{}"}"#),
                )
                .expect(1)
                .mount(&server)
                .await;
        }
        let http = SdkHttpClient::default();
        let sdk = sdk_config(&http, &server.uri()).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        // Building the clients made no connector (the SDK's default client makes one per client
        // here, to throw away).
        assert_eq!(http.connectors_made(), 0);

        let item = dynamo
            .get_item()
            .table_name("t")
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
            .send()
            .await
            .expect("GetItem through the shared client");
        assert!(item.item().is_none());
        assert_eq!(http.connectors_made(), 1);

        let secret = secrets
            .get_secret_value()
            .secret_id("s")
            .send()
            .await
            .expect("GetSecretValue through the shared client");
        assert_eq!(secret.secret_string(), Some("{}"));
        assert_eq!(
            http.connectors_made(),
            1,
            "the second client reused the connector"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_can_retry() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let http = SdkHttpClient::default();
        let sdk = sdk_config(&http, &endpoint).await;
        let err = aws_sdk_dynamodb::Client::new(&sdk)
            .describe_limits()
            .send()
            .await
            .expect_err("nothing listens there");
        match err {
            aws_sdk_dynamodb::error::SdkError::DispatchFailure(failure) => {
                assert!(failure.is_io(), "{failure:?}")
            }
            other => panic!("expected a dispatch failure, got {other:?}"),
        }
    }
}
