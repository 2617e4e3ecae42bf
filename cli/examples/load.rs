//! A load run against a running `byosms serve`: correctly signed, unique Twilio inbound webhooks
//! (each one a new event: verification, parsing, reply linking and a durable write), sent with
//! bounded concurrency, bounded in count and time, to a loopback gateway only.
//!
//! ```sh
//! cargo run --release -- serve &                       # with a Twilio connection in ./.byosms
//! cargo run --release -p byosms-cli --example load -- --org ORG_1 --requests 20000 --concurrency 32
//! ```

use byosms::Deps;
use byosms::providers::SampleEvent;
use byosms::webhook::RouteKind;
use clap::Parser;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use url::Url;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "./.byosms")]
    data_dir: std::path::PathBuf,
    #[arg(long)]
    org: String,
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    gateway: Url,
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Stop sending after this many seconds even if requests remain.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let loopback = match args.gateway.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if !loopback {
        return Err("the load run only targets a gateway on this machine (loopback)".into());
    }
    let deps = Deps::embedded(&args.data_dir, byosms::Settings::default())?;
    let connection = deps
        .stores
        .connections
        .list_connections(&args.org)
        .await?
        .into_iter()
        .find(|c| c.enabled)
        .ok_or("the org has no enabled connection")?;
    let secrets = deps
        .stores
        .secrets
        .get_secrets(&args.org, &connection.connection_id)
        .await?
        .ok_or("the connection has no secret")?;
    let adapter = deps
        .registry
        .get(connection.provider)
        .ok_or("unsupported provider")?;
    let url = byosms::webhook::Route::url(
        &args.gateway,
        RouteKind::Message,
        connection.provider,
        &args.org,
    )
    .ok_or("bad gateway URL")?;

    // Signed up front, so the run measures the gateway and not the signing.
    let mut requests = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        let event = SampleEvent::Inbound {
            from: format!("+1415{:07}", i % 10_000_000),
            to: connection
                .setting("from")
                .unwrap_or("+14155550199")
                .to_string(),
            text: "5".into(),
        };
        requests.push(adapter.sample_webhook(&event, &url, &connection, &secrets)?);
    }

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests.len());
    for signed in requests {
        if Instant::now() > deadline {
            break;
        }
        let permit = permits.clone().acquire_owned().await?;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut request = client.request(signed.method, signed.url).body(signed.body);
            for (k, v) in &signed.headers {
                request = request.header(k, v);
            }
            let sent = Instant::now();
            let ok = request.send().await.is_ok_and(|r| r.status().is_success());
            drop(permit);
            (ok, sent.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failures = 0usize;
    for task in tasks {
        let (ok, latency) = task.await?;
        failures += usize::from(!ok);
        latencies.push(latency);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{} requests, {} failed, {:.1} s, {:.0} req/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        failures,
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}
