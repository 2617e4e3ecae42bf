//! Reference: the smallest Rust Lambda there is, `lambda_runtime` echoing its event. The floor a
//! cold start cannot go under.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

// The runtime the functions use (one thread), so that the comparison is of the work alone.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
