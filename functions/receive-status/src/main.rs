//! Lambda behind `POST|GET .../receive/distribution/status/{provider}/{orgId}`.

use byosms::webhook::RouteKind;
use byosms::{Deps, Settings};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    byosms::telemetry::init_json();
    let sdk = aws_config::load_from_env().await;
    let deps = Deps::aws(&sdk, Settings::from_env()?);
    deps.warm_up().await;
    run(service_fn(|request| {
        byosms_webhook_http::handle(&deps, RouteKind::Status, request)
    }))
    .await
}
