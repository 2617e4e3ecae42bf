//! `byosms connection add|list|show|remove` and `byosms webhook-urls`.

use super::{CliError, Context, print_json};
use byosms::domain::{Access, Connection, Provider};
use byosms::pipeline::admin::{self, WebhookUrls};
use serde_json::{Value, json};
use std::path::Path;
use url::Url;

fn access_text(access: &Access) -> String {
    match access {
        Access::All => "all users".into(),
        Access::Users(users) => format!("users {}", users.join(", ")),
    }
}

/// A connection as shown to people: settings in the clear, secrets by name only.
fn describe(connection: &Connection, secret_names: &[String]) -> Value {
    let mut v = serde_json::to_value(connection).unwrap_or(Value::Null);
    v["secrets"] = json!(secret_names);
    v
}

pub async fn add(
    ctx: &Context,
    org: &str,
    file: &Path,
    id: Option<&str>,
    provider: Option<&str>,
    base_url: Option<&Url>,
) -> Result<(), CliError> {
    let provider = provider
        .map(|p| {
            Provider::from_name(p)
                .ok_or_else(|| CliError::Usage(format!("--provider: unknown provider '{p}'")))
        })
        .transpose()?;
    let text = std::fs::read_to_string(file).map_err(|e| CliError::File {
        path: file.display().to_string(),
        reason: e.to_string(),
    })?;
    let input: Value = serde_json::from_str(&text).map_err(|e| CliError::File {
        path: file.display().to_string(),
        reason: format!("not valid JSON: {e}"),
    })?;
    let connection = admin::add_connection(&ctx.deps, org, id, &input, provider).await?;
    let base = base_url.cloned().unwrap_or_else(|| ctx.base_url());
    let urls = admin::webhook_urls(&base, connection.provider, org)
        .ok_or_else(|| CliError::Usage(format!("--base-url {base} does not make valid URLs")))?;
    let guide = ctx
        .deps
        .registry
        .get(connection.provider)
        .map(|a| a.setup_guide(&urls.message, &urls.status))
        .unwrap_or_default();
    if ctx.json {
        print_json(&json!({
            "connectionId": connection.connection_id,
            "provider": connection.provider,
            "webhookUrls": urls,
            "setup": guide,
        }));
    } else {
        println!("{}", connection.connection_id);
        println!(
            "added {} connection {} for org {org}",
            connection.provider, connection.connection_id
        );
        println!("inbound message URL: {}", urls.message);
        println!("delivery status URL: {}", urls.status);
        println!("setup: {guide}");
    }
    Ok(())
}

pub async fn list(ctx: &Context, org: &str) -> Result<(), CliError> {
    let connections = ctx.deps.stores.connections.list_connections(org).await?;
    if ctx.json {
        print_json(&connections);
        return Ok(());
    }
    if connections.is_empty() {
        println!("org {org} has no connections");
    }
    for c in &connections {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            c.connection_id,
            c.provider,
            if c.enabled { "enabled" } else { "disabled" },
            access_text(&c.access),
            c.name
        );
    }
    Ok(())
}

pub async fn show(ctx: &Context, org: &str, id: &str) -> Result<(), CliError> {
    let connection = ctx
        .deps
        .stores
        .connections
        .get_connection(org, id)
        .await?
        .ok_or_else(|| {
            CliError::NotFound(format!("connection {id} does not exist for org {org}"))
        })?;
    let secret_names: Vec<String> = ctx
        .deps
        .stores
        .secrets
        .get_secrets(org, id)
        .await?
        .map(|s| s.names().map(str::to_string).collect())
        .unwrap_or_default();
    print_json(&describe(&connection, &secret_names));
    Ok(())
}

pub async fn remove(ctx: &Context, org: &str, id: &str) -> Result<(), CliError> {
    admin::remove_connection(&ctx.deps, org, id).await?;
    if ctx.json {
        print_json(&json!({ "removed": id }));
    } else {
        println!("removed connection {id} of org {org}");
    }
    Ok(())
}

pub async fn webhook_urls(
    ctx: &Context,
    org: &str,
    base_url: Option<&Url>,
    provider: Option<&str>,
) -> Result<(), CliError> {
    let base = base_url.cloned().unwrap_or_else(|| ctx.base_url());
    let mut providers: Vec<Provider> = match provider {
        Some(p) => vec![
            Provider::from_route_slug(p)
                .ok_or_else(|| CliError::Usage(format!("--provider: unknown provider '{p}'")))?,
        ],
        None => ctx
            .deps
            .stores
            .connections
            .list_connections(org)
            .await?
            .into_iter()
            .map(|c| c.provider)
            .collect(),
    };
    providers.sort();
    providers.dedup();
    if providers.is_empty() {
        return Err(CliError::NotFound(format!(
            "org {org} has no connections: add one, or name a --provider"
        )));
    }
    let urls: Vec<WebhookUrls> = providers
        .into_iter()
        .filter_map(|p| admin::webhook_urls(&base, p, org))
        .collect();
    if ctx.json {
        print_json(&urls);
    } else {
        for u in &urls {
            println!("{}\tmessage\t{}", u.provider, u.message);
            println!("{}\tstatus\t{}", u.provider, u.status);
        }
    }
    Ok(())
}
