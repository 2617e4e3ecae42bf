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
}
