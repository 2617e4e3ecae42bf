//! Secrets Manager: one secret per connection, named `{prefix}{orgId}/{connectionId}`, whose
//! value is the JSON object of the connection's secret fields.

use super::{SecretStore, StoreError};
use crate::domain::ConnectionSecrets;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, SdkError};

#[derive(Clone)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
}

fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(DisplayErrorContext(err).to_string())
}

impl SecretsManagerStore {
    pub fn new(client: Client, prefix: &str) -> Self {
        SecretsManagerStore {
            client,
            prefix: prefix.to_string(),
        }
    }

    pub fn secret_name(&self, org_id: &str, connection_id: &str) -> String {
        format!("{}{org_id}/{connection_id}", self.prefix)
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn put_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
        secrets: &ConnectionSecrets,
    ) -> Result<(), StoreError> {
        let name = self.secret_name(org_id, connection_id);
        let created = self
            .client
            .create_secret()
            .name(&name)
            .secret_string(secrets.to_json())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_exists_exception()) =>
            {
                self.client
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(secrets.to_json())
                    .send()
                    .await
                    .map_err(unavailable)?;
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn get_secrets(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Option<ConnectionSecrets>, StoreError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(self.secret_name(org_id, connection_id))
            .send()
            .await;
        match result {
            Ok(out) => out
                .secret_string()
                .map(|json| {
                    ConnectionSecrets::from_json(json).map_err(|_| {
                        StoreError::Corrupt(
                            "a connection secret is not a JSON object of strings".into(),
                        )
                    })
                })
                .transpose(),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn delete_secrets(&self, org_id: &str, connection_id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_secret()
            .secret_id(self.secret_name(org_id, connection_id))
            .force_delete_without_recovery(true)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }
}
