//! Reference: an echo that also does what every byosms function must, built the same tuned way:
//! loads the AWS SDK configuration, builds a DynamoDB client and makes one call over TLS at init
//! (so the handshake, the TLS library's start-up and the credential chain are paid there). The
//! functions' first response is held to 1.3x this one's.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

// The runtime the functions use (one thread), so that the comparison is of the work alone.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let sdk = aws_config::load_from_env().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    dynamo.list_tables().limit(1).send().await?;
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
