//! The send function's handler: the event is the send request of ARCHITECTURE.md, the answer one
//! result per message. A request that cannot be served at all is a function error whose
//! `errorType` is a stable code (`access_denied`, `unknown_connection`, ...).

use byosms::Deps;
use byosms::pipeline::send::{self, SendRequest, SendRequestError, SendResponse};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

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
    Ok(send::send(deps, &request).await?)
}
