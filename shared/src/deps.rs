//! The dependencies every entry point builds once and hands to the pipelines: the stores behind
//! their ports, the provider adapters, the HTTP client that calls providers, and the settings.

use crate::config::{ConfigError, Settings};
use crate::providers::Registry;
use crate::providers::http::ProviderHttp;
use crate::stores::cached_secrets::CachedSecrets;
use crate::stores::{
    Stores, dynamodb::DynamoStore, secrets_manager::SecretsManagerStore, sqlite::SqliteStore,
};
use std::path::Path;
use std::sync::Arc;

/// What the pipelines run on.
#[derive(Clone)]
pub struct Deps {
    pub stores: Stores,
    pub registry: Registry,
    /// Every provider call goes through it (no redirects; admin-typed hosts only to public
    /// addresses).
    pub http: ProviderHttp,
    pub settings: Settings,
}

impl Deps {
    pub fn new(stores: Stores, settings: Settings) -> Self {
        Deps {
            stores,
            registry: Registry::new(&settings),
            http: ProviderHttp::new(),
            settings,
        }
    }

    /// The embedded store in `data_dir`.
    pub fn embedded(data_dir: &Path, settings: Settings) -> Result<Self, ConfigError> {
        Ok(Deps::new(
            Stores::embedded(SqliteStore::open(data_dir)?),
            settings,
        ))
    }

    /// DynamoDB and Secrets Manager, from one shared SDK configuration.
    pub fn aws(sdk: &aws_config::SdkConfig, settings: Settings) -> Self {
        let dynamo = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &settings.connections_table,
            &settings.messages_table,
        ));
        let secrets = Arc::new(CachedSecrets::new(
            Arc::new(SecretsManagerStore::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                &settings.secret_prefix,
            )),
            settings.secret_cache_ttl,
        ));
        Deps::new(
            Stores {
                connections: dynamo.clone(),
                secrets,
                messages: dynamo,
            },
            settings,
        )
    }

    /// Opens, at init, the connections every first request needs: one cheap read from each store
    /// service (DynamoDB and Secrets Manager are separate hosts, so separate TLS handshakes),
    /// concurrently, for ids that cannot exist. On Lambda init runs with a full CPU burst and is
    /// not billed against the first request's latency; the first invocation then finds both
    /// connections in the SDK clients' pools, the credentials resolved and the TLS library
    /// started. The reads are the ones the function's IAM policy already allows (a messages-table
    /// `GetItem`, a `GetSecretValue` under the secret prefix); their outcome is irrelevant, so a
    /// failure is only logged: the first request will report a real problem itself.
    pub async fn warm_up(&self) {
        let messages = self.stores.messages.get_message(WARM_UP_ID, WARM_UP_ID);
        let secrets = self.stores.secrets.get_secrets(WARM_UP_ID, WARM_UP_ID);
        let (messages, secrets) = tokio::join!(messages, secrets);
        if let Err(e) = messages {
            tracing::warn!(error = %e, "warm-up read of the messages table failed");
        }
        if let Err(e) = secrets {
            tracing::warn!(error = %e, "warm-up read of the secrets failed");
        }
    }
}

/// The org and connection id of the warm-up reads: `+` is outside the ids `connection add`
/// accepts (so nothing is ever stored under it) but inside Secrets Manager's name alphabet (so
/// the read is a plain "not found", not a validation error).
const WARM_UP_ID: &str = "+warm-up+";
