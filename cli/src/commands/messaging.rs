//! `byosms send`, `byosms events` and `byosms message show`.

use super::{CliError, Context, print_json};
use byosms::pipeline::send::{self, ResultStatus, SendItem, SendRequest};

pub struct SendArgs<'a> {
    pub org: &'a str,
    pub connection: Option<&'a str>,
    pub user: &'a str,
    pub message_id: Option<&'a str>,
    pub to: &'a str,
    pub body: &'a str,
}

pub async fn send(ctx: &Context, args: SendArgs<'_>) -> Result<bool, CliError> {
    let message_id = args
        .message_id
        .map(str::to_string)
        .unwrap_or_else(|| format!("cli-{}", uuid_like()));
    let request = SendRequest {
        org_id: args.org.to_string(),
        connection_id: args.connection.map(str::to_string),
        user_id: args.user.to_string(),
        messages: vec![SendItem {
            message_id,
            to: args.to.to_string(),
            body: args.body.to_string(),
        }],
    };
    let response = send::send(&ctx.deps, &request).await?;
    let accepted = response
        .results
        .iter()
        .all(|r| r.status == ResultStatus::Accepted);
    if ctx.json {
        print_json(&response);
    } else {
        for r in &response.results {
            match (&r.status, &r.error) {
                (ResultStatus::Accepted, _) => println!(
                    "{}\taccepted\t{}\t{} segment(s), {}{}",
                    r.message_id,
                    r.provider_message_id.as_deref().unwrap_or("-"),
                    r.segments.unwrap_or(0),
                    r.encoding.as_deref().unwrap_or("-"),
                    if r.duplicate {
                        "\t(already sent: not sent again)"
                    } else {
                        ""
                    }
                ),
                (_, Some(e)) => println!("{}\tfailed\t{}: {}", r.message_id, e.code, e.message),
                (_, None) => println!("{}\tfailed", r.message_id),
            }
        }
    }
    Ok(accepted)
}

/// A short random id for messages sent by hand.
fn uuid_like() -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{nanos:x}")
}

pub async fn events(ctx: &Context, org: &str, limit: usize) -> Result<(), CliError> {
    for event in ctx.deps.stores.messages.list_events(org, limit).await? {
        println!("{}", serde_json::to_string(&event).unwrap_or_default());
    }
    Ok(())
}

pub async fn show_message(ctx: &Context, org: &str, message_id: &str) -> Result<(), CliError> {
    let record = ctx
        .deps
        .stores
        .messages
        .get_message(org, message_id)
        .await?
        .ok_or_else(|| {
            CliError::NotFound(format!("message {message_id} does not exist for org {org}"))
        })?;
    if ctx.json {
        print_json(&record);
    } else {
        println!("message    {}", record.message_id);
        println!(
            "status     {}",
            record
                .status
                .map_or("(none yet)".to_string(), |s| s.to_string())
        );
        println!(
            "send       {:?} after {} attempt(s)",
            record.send_state, record.attempts
        );
        println!("to         {}", record.to);
        println!("connection {} ({})", record.connection_id, record.provider);
        println!(
            "provider id {}",
            record.provider_message_id.as_deref().unwrap_or("-")
        );
        if let Some(e) = &record.error {
            println!("error      {}: {}", e.code, e.message);
        }
        println!("segments   {} ({})", record.segments, record.encoding);
        println!("created    {}", record.created_at.to_rfc3339());
        println!("updated    {}", record.updated_at.to_rfc3339());
    }
    Ok(())
}
