//! Lambda behind `POST|GET .../receive/distribution/message/{provider}/{orgId}`.

use byosms::webhook::RouteKind;
use byosms::{Deps, Settings};
use lambda_http::{Error, run, service_fn};

// One thread: a Lambda sandbox of this size has a fraction of one vCPU (256 MB is about 0.15), so
// worker threads only add their start-up and a cross-thread wake-up to every I/O completion.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    byosms::telemetry::init_json();
    let sdk = byosms::stores::aws_http::load_sdk_config().await;
    let deps = Deps::aws(&sdk, Settings::from_env()?);
    deps.warm_up().await;
    run(service_fn(|request| {
        byosms_webhook_http::handle(&deps, RouteKind::Message, request)
    }))
    .await
}
