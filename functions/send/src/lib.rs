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
    let settings = &deps.settings.send;
    let deadline = lambda_deadline(&event.context, settings.deadline_margin)
        .unwrap_or_else(|| Deadline::after(settings.budget, settings.deadline_margin));
    Ok(send::send_within(deps, &request, deadline).await?)
}

/// The invocation's deadline as a monotonic instant, less the margin kept for answering; `None`
/// when the context carries none, and the configured budget applies. The runtime gives it as
/// wall-clock time; a deadline already past (or a clock step) leaves no time, so nothing is sent
/// and every message comes back retryable.
pub fn lambda_deadline(context: &lambda_runtime::Context, margin: Duration) -> Option<Deadline> {
    // No deadline at all: `0` outside the runtime, and the constant `600000` that the
    // `cargo lambda watch` emulator sends (a duration in its mind, 1970 as a wall-clock time).
    // Lambda's own deadlines are epoch milliseconds of today, far above this bound (2020-01-01).
    const NOT_A_DEADLINE_BELOW_MS: u64 = 1_577_836_800_000;
    if context.deadline < NOT_A_DEADLINE_BELOW_MS {
        return None;
    }
    let left = context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    Some(Deadline::at(tokio::time::Instant::now() + left, margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context_ending_in(offset_ms: i64) -> lambda_runtime::Context {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut context = lambda_runtime::Context::default();
        context.deadline = u64::try_from(now_ms + offset_ms).unwrap();
        context
    }

    #[tokio::test]
    async fn the_lambda_deadline_less_the_margin_bounds_every_call() {
        let margin = Duration::from_secs(1);
        let deadline = lambda_deadline(&context_ending_in(10_000), margin).unwrap();
        let time = deadline.time_for_call().unwrap();
        assert!(
            time <= Duration::from_secs(9) && time > Duration::from_secs(8),
            "{time:?}"
        );
        // A deadline already past (or inside the margin) leaves no time for any call.
        let past = lambda_deadline(&context_ending_in(-5_000), margin).unwrap();
        assert_eq!(past.time_for_call(), None);
        let inside_margin = lambda_deadline(&context_ending_in(500), margin).unwrap();
        assert_eq!(inside_margin.time_for_call(), None);
        // No deadline in the context (outside the runtime): the configured budget applies.
        assert!(lambda_deadline(&lambda_runtime::Context::default(), margin).is_none());
        // `cargo lambda watch` sends the constant 600000: not a deadline either.
        let mut emulated = lambda_runtime::Context::default();
        emulated.deadline = 600_000;
        assert!(lambda_deadline(&emulated, margin).is_none());
    }
}
