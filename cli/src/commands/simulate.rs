//! `byosms simulate inbound|status`: a correctly signed provider request, built by the
//! connection's adapter with the connection's own secret, posted to a running gateway.

use super::{CliError, Context, print_json};
use byosms::domain::Connection;
use byosms::providers::SampleEvent;
use byosms::webhook::RouteKind;
use serde_json::json;
use url::Url;

async fn the_connection(
    ctx: &Context,
    org: &str,
    id: Option<&str>,
) -> Result<Connection, CliError> {
    let connections = &ctx.deps.stores.connections;
    match id {
        Some(id) => connections.get_connection(org, id).await?.ok_or_else(|| {
            CliError::NotFound(format!("connection {id} does not exist for org {org}"))
        }),
        None => {
            let mut enabled: Vec<_> = connections
                .list_connections(org)
                .await?
                .into_iter()
                .filter(|c| c.enabled)
                .collect();
            match enabled.len() {
                1 => Ok(enabled.remove(0)),
                0 => Err(CliError::NotFound(format!(
                    "org {org} has no enabled connection"
                ))),
                _ => Err(CliError::Usage(format!(
                    "org {org} has several connections: name one with --connection"
                ))),
            }
        }
    }
}

async fn post(
    ctx: &Context,
    connection: &Connection,
    kind: RouteKind,
    gateway: &Url,
    event: SampleEvent,
) -> Result<bool, CliError> {
    let adapter = ctx.deps.registry.get(connection.provider).ok_or_else(|| {
        CliError::Usage(format!("provider {} is not supported", connection.provider))
    })?;
    let secrets = ctx
        .deps
        .stores
        .secrets
        .get_secrets(&connection.org_id, &connection.connection_id)
        .await?
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "connection {} has no stored secret",
                connection.connection_id
            ))
        })?;
    let url = byosms::webhook::Route::url(gateway, kind, connection.provider, &connection.org_id)
        .ok_or_else(|| {
        CliError::Usage(format!("--gateway {gateway} does not make a valid URL"))
    })?;
    let signed = adapter
        .sample_webhook(&event, &url, connection, &secrets)
        .map_err(|e| CliError::Usage(e.0))?;
    let mut request = ctx
        .deps
        .http
        .client()
        .request(signed.method.clone(), signed.url.clone())
        .body(signed.body);
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let gateway_error = |reason: String| CliError::Gateway {
        url: signed.url.to_string(),
        reason,
    };
    let response = request
        .send()
        .await
        .map_err(|e| gateway_error(format!("{e} (is `byosms serve` running?)")))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| gateway_error(e.to_string()))?;
    if ctx.json {
        print_json(&json!({ "url": signed.url, "status": status, "body": body }));
    } else {
        println!("{} {} -> HTTP {status} {body}", signed.method, signed.url);
    }
    Ok((200..300).contains(&status))
}

pub struct InboundArgs<'a> {
    pub org: &'a str,
    pub connection: Option<&'a str>,
    pub from: &'a str,
    pub to: Option<&'a str>,
    pub text: &'a str,
    pub gateway: &'a Url,
}

pub async fn inbound(ctx: &Context, args: InboundArgs<'_>) -> Result<bool, CliError> {
    let connection = the_connection(ctx, args.org, args.connection).await?;
    let to = match args.to {
        Some(to) => to.to_string(),
        // Several providers keep the sender as digits without `+` (Vonage, MessageBird,
        // Infobip): any sender that is a number with its country code will do.
        None => connection
            .setting("from")
            .map(byosms::domain::phone::normalize)
            .filter(|f| byosms::domain::phone::is_e164(f))
            .ok_or_else(|| {
                CliError::Usage("the connection's sender is not a number: give --to".into())
            })?,
    };
    let event = SampleEvent::Inbound {
        from: args.from.to_string(),
        to,
        text: args.text.to_string(),
    };
    post(ctx, &connection, RouteKind::Message, args.gateway, event).await
}

pub struct StatusArgs<'a> {
    pub org: &'a str,
    pub message_id: &'a str,
    pub status: &'a str,
    pub error_code: Option<&'a str>,
    pub gateway: &'a Url,
}

pub async fn status(ctx: &Context, args: StatusArgs<'_>) -> Result<bool, CliError> {
    let record = ctx
        .deps
        .stores
        .messages
        .get_message(args.org, args.message_id)
        .await?
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "message {} does not exist for org {}",
                args.message_id, args.org
            ))
        })?;
    let provider_message_id = record.provider_message_id.clone().ok_or_else(|| {
        CliError::NotFound(format!(
            "message {} has no provider message id: it was not accepted",
            args.message_id
        ))
    })?;
    let connection = the_connection(ctx, args.org, Some(&record.connection_id)).await?;
    let event = SampleEvent::Status {
        message_id: Some(record.message_id.clone()),
        provider_message_id,
        provider_status: args.status.to_string(),
        error_code: args.error_code.map(str::to_string),
    };
    post(ctx, &connection, RouteKind::Status, args.gateway, event).await
}
