//! Lambda the distribution system invokes directly with a send event.

use byosms::{Deps, Settings};
use byosms_send::handle;
use lambda_runtime::{Error, run, service_fn};

// One thread: a Lambda sandbox of this size has a fraction of one vCPU (256 MB is about 0.15), so
// worker threads only add their start-up and a cross-thread wake-up to every I/O completion.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    byosms::telemetry::init_json();
    let sdk = byosms::stores::aws_http::load_sdk_config().await;
    let deps = Deps::aws(&sdk, Settings::from_env()?);
    // The first send needs the provider clients: built here, at init, not in the first request.
    // Building them is CPU (the TLS roots are read and parsed), the warm-up mostly waits on the
    // network: on a thread of its own the one overlaps the other.
    let http = deps.http.clone();
    let provider_clients = tokio::task::spawn_blocking(move || http.build_now());
    deps.warm_up().await;
    provider_clients.await?;
    run(service_fn(|event| handle(&deps, event))).await
}
