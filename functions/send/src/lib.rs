//! The send function's handler: the event is the send request of ARCHITECTURE.md, the answer one
//! result per message. A request that cannot be served at all is a function error whose
//! `errorType` is a stable code (`access_denied`, `unknown_connection`, ...).

use byosms::Deps;
use byosms::pipeline::send::{self, Deadline, SendRequest, SendRequestError, SendResponse};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum SendFunctionError {
    #[error("the event is not a send request: {0}")]
    InvalidEvent(String),
    #[error(transparent)]
    Request(#[from] SendRequestError),
}

impl From<SendFunctionError> for Diagnostic {
    fn from(err: SendFunctionError) -> Self {
        let error_type = match &err {
            SendFunctionError::InvalidEvent(_) => "invalid_request",
            SendFunctionError::Request(e) => e.code(),
        };
        Diagnostic {
            error_type: error_type.to_string(),
            error_message: err.to_string(),
        }
    }
}

#[tracing::instrument(skip_all, fields(request_id = %event.context.request_id))]
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<Value>,
) -> Result<SendResponse, SendFunctionError> {
    let request: SendRequest = serde_json::from_value(event.payload)
        .map_err(|e| SendFunctionError::InvalidEvent(e.to_string()))?;
    let deadline = lambda_deadline(&event.context, deps.settings.send.deadline_margin);
    Ok(send::send_within(deps, &request, deadline).await?)
}

/// The invocation's deadline as a monotonic instant, less the margin kept for answering. The
/// runtime gives it as wall-clock time; a deadline already past (or a clock step) leaves no
/// time, so nothing is sent and every message comes back retryable.
pub fn lambda_deadline(context: &lambda_runtime::Context, margin: Duration) -> Deadline {
    let left = context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Deadline::at(tokio::time::Instant::now() + left, margin)
}
