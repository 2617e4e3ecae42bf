//! Connection administration, shared by the CLI and the tests: an admin's JSON file becomes a
//! validated connection in the connection store and a secret in the secret store.

use crate::deps::Deps;
use crate::domain::{Access, Connection, FieldError, Provider, ValidationErrors};
use crate::stores::StoreError;
use crate::webhook::Route;
use crate::webhook::RouteKind;
use chrono::Utc;
use serde_json::{Map, Value};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("connection {0} already exists; remove it first or choose another --id")]
    Exists(String),
    #[error("connection {0} does not exist")]
    NotFound(String),
    #[error("provider {0} is not supported by this build")]
    UnsupportedProvider(Provider),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Org and connection ids: they appear in URLs, secret names and keys.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

fn invalid(field: &str, rule: impl Into<String>) -> ValidationErrors {
    ValidationErrors(vec![FieldError {
        field: field.into(),
        rule: rule.into(),
    }])
}

/// The fields every connection has, read off the admin's object; what remains is the provider's.
struct CommonFields {
    provider: Provider,
    name: String,
    access: Access,
    enabled: bool,
}

fn take_common(
    input: &mut Map<String, Value>,
    provider_hint: Option<Provider>,
) -> Result<CommonFields, ValidationErrors> {
    let mut errors = Vec::new();
    let mut error = |field: &str, rule: String| {
        errors.push(FieldError {
            field: field.into(),
            rule,
        })
    };
    let provider = match (input.remove("provider"), provider_hint) {
        (None, Some(p)) => Some(p),
        (Some(Value::String(name)), hint) => match Provider::from_name(&name) {
            Some(p) if hint.is_none_or(|h| h == p) => Some(p),
            Some(p) => {
                error(
                    "provider",
                    format!(
                        "the file says {p} but --provider says {}",
                        hint.unwrap_or(p)
                    ),
                );
                None
            }
            None => {
                let names: Vec<_> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                error("provider", format!("must be one of {}", names.join(", ")));
                None
            }
        },
        (None, None) => {
            error(
                "provider",
                "is required (in the file or with --provider)".into(),
            );
            None
        }
        (Some(_), _) => {
            error("provider", "must be a string".into());
            None
        }
    };
    let name = match input.remove("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
        Some(Value::String(_)) | None => {
            error("name", "is required".into());
            String::new()
        }
        Some(_) => {
            error("name", "must be a string".into());
            String::new()
        }
    };
    let access = match input.remove("access") {
        None => Access::All,
        Some(v) => match serde_json::from_value::<Access>(v) {
            Ok(Access::Users(users)) if users.iter().any(|u| u.trim().is_empty()) => {
                error("access", "user ids must not be empty".into());
                Access::All
            }
            Ok(a) => a,
            Err(_) => {
                error(
                    "access",
                    "must be \"all\" or {\"users\": [\"UR_...\"]}".into(),
                );
                Access::All
            }
        },
    };
    let enabled = match input.remove("enabled") {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            error("enabled", "must be true or false".into());
            true
        }
    };
    match (errors.is_empty(), provider) {
        (true, Some(provider)) => Ok(CommonFields {
            provider,
            name,
            access,
            enabled,
        }),
        _ => Err(ValidationErrors(errors)),
    }
}

/// Validates an admin's connection object and stores it: the secret first, so a stored
/// connection always has its secret.
pub async fn add_connection(
    deps: &Deps,
    org_id: &str,
    connection_id: Option<&str>,
    input: &Value,
    provider_hint: Option<Provider>,
) -> Result<Connection, AdminError> {
    if !is_valid_id(org_id) {
        return Err(invalid(
            "org",
            "must be 1 to 64 characters of letters, digits, _ - . @",
        )
        .into());
    }
    let connection_id = match connection_id {
        Some(id) if is_valid_id(id) => id.to_string(),
        Some(_) => {
            return Err(invalid(
                "id",
                "must be 1 to 64 characters of letters, digits, _ - . @",
            )
            .into());
        }
        None => format!("conn_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
    };
    let Value::Object(input) = input else {
        return Err(invalid("(file)", "must be one JSON object").into());
    };
    let mut fields = input.clone();
    let common = take_common(&mut fields, provider_hint);
    let adapter = match &common {
        Ok(c) => Some(
            deps.registry
                .get(c.provider)
                .ok_or(AdminError::UnsupportedProvider(c.provider))?,
        ),
        Err(_) => None,
    };
    // Report the common and the provider's broken rules together.
    let provider_fields = adapter.map(|a| a.validate_connection(&fields));
    let (common, provider_fields) = match (common, provider_fields) {
        (Ok(c), Some(Ok(p))) => (c, p),
        (common, provider_fields) => {
            let mut errors = common.err().map(|e| e.0).unwrap_or_default();
            if let Some(Err(e)) = provider_fields {
                errors.extend(e.0);
            }
            return Err(ValidationErrors(errors).into());
        }
    };
    if deps
        .stores
        .connections
        .get_connection(org_id, &connection_id)
        .await?
        .is_some()
    {
        return Err(AdminError::Exists(connection_id));
    }
    let connection = Connection {
        org_id: org_id.to_string(),
        connection_id: connection_id.clone(),
        provider: common.provider,
        name: common.name,
        access: common.access,
        enabled: common.enabled,
        settings: provider_fields.settings,
        created_at: Utc::now(),
    };
    deps.stores
        .secrets
        .put_secrets(org_id, &connection_id, &provider_fields.secrets)
        .await?;
    if let Err(err) = deps.stores.connections.put_connection(&connection).await {
        let _ = deps
            .stores
            .secrets
            .delete_secrets(org_id, &connection_id)
            .await;
        return Err(err.into());
    }
    tracing::info!(org_id, connection_id = %connection.connection_id, provider = %connection.provider, "connection added");
    Ok(connection)
}

pub async fn remove_connection(
    deps: &Deps,
    org_id: &str,
    connection_id: &str,
) -> Result<(), AdminError> {
    if !deps
        .stores
        .connections
        .delete_connection(org_id, connection_id)
        .await?
    {
        return Err(AdminError::NotFound(connection_id.to_string()));
    }
    deps.stores
        .secrets
        .delete_secrets(org_id, connection_id)
        .await?;
    Ok(())
}

/// The two URLs an admin configures for a provider and org.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookUrls {
    pub provider: Provider,
    pub message: Url,
    pub status: Url,
}

/// The URLs as the admin pastes them: Twilio's carry the fragment that makes Twilio retry.
pub fn webhook_urls(base: &Url, provider: Provider, org_id: &str) -> Option<WebhookUrls> {
    let url = |kind| {
        let route = Route::url(base, kind, provider, org_id)?;
        Some(match provider {
            Provider::Twilio => crate::providers::twilio::asking_for_retries(route),
            _ => route,
        })
    };
    Some(WebhookUrls {
        provider,
        message: url(RouteKind::Message)?,
        status: url(RouteKind::Status)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_valid_id("ORG_1"));
        assert!(is_valid_id("conn-1.a@b"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id(&"x".repeat(65)));
    }

    #[test]
    fn common_fields_report_every_problem() {
        let mut input =
            serde_json::json!({"provider": "twilo", "name": 3, "access": "some", "enabled": "yes"})
                .as_object()
                .unwrap()
                .clone();
        let errors = take_common(&mut input, None).err().unwrap().0;
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["provider", "name", "access", "enabled"]);
    }
}
