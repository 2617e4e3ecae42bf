//! The gateway under load: `byosms serve` on the embedded store in a fresh data directory with one
//! Twilio connection, and `--concurrency` clients each sending correctly signed, unique Twilio
//! status callbacks one after another (a closed loop: the next request when the answer came),
//! bounded in count and time, to a loopback port only. Every status is new, for a message sent
//! before the run (as nearly all are in production): verification, parsing, the message lookup,
//! its status step and a durable event write each time.

use byosms::domain::Provider;
use byosms::pipeline::admin;
use byosms::providers::{SampleEvent, SignedRequest};
use byosms::webhook::{Route, RouteKind};
use byosms::{Deps, Settings};
use byosms_bench::fixture::store_sent_message;
use byosms_bench::report::{Row, emit};
use byosms_bench::stats::percentile;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ORG: &str = "LOAD_ORG";
const MIN_RPS: f64 = 5000.0;
const MAX_P99_MS: f64 = 20.0;
/// Requests sent before the measured run (connections opened, caches and SQLite pages warm).
const WARM_UP: usize = 1000;

#[derive(clap::Args)]
pub struct Args {
    /// The release `byosms` binary.
    #[arg(long, default_value = "target/release/byosms")]
    serve_bin: PathBuf,
    #[arg(long, default_value_t = 30_000)]
    requests: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Stop sending after this many seconds even if requests remain.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Append the summary rows here (scripts/bench's one table).
    #[arg(long)]
    rows: Option<PathBuf>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

pub async fn run(args: Args) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let base: url::Url = format!("http://127.0.0.1:{port}").parse()?;
    let requests = seed_and_sign(dir.path(), &base, WARM_UP + args.requests).await?;

    let server = std::process::Command::new(&args.serve_bin)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = Server(server);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let ready = wait_ready(&client, &base).await;
    let outcome = match ready {
        Ok(()) => {
            let (warm_up, measured) = requests.split_at(WARM_UP);
            run_clients(&client, warm_up, args.concurrency, args.max_seconds).await;
            Ok(run_clients(&client, measured, args.concurrency, args.max_seconds).await)
        }
        Err(e) => Err(e),
    };
    drop(server);
    let run = outcome?;

    let rps = run.latencies_ms.len() as f64 / run.elapsed.as_secs_f64();
    let mut sorted = run.latencies_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&sorted, 50.0), percentile(&sorted, 99.0));
    eprintln!(
        "{} requests in {:.1} s from {} clients: {rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms, {} errors",
        sorted.len(),
        run.elapsed.as_secs_f64(),
        args.concurrency,
        sorted.last().copied().unwrap_or_default(),
        run.errors
    );
    let what = format!(
        "gateway (byosms serve, embedded store): signed Twilio status callbacks, {} clients, {} requests",
        args.concurrency,
        sorted.len()
    );
    let rows = [Row::new(
        what,
        format!(
            "{rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {} errors",
            run.errors
        ),
    )
    .target(
        format!(">= {MIN_RPS:.0} req/s, p99 < {MAX_P99_MS:.0} ms, 0 errors"),
        rps >= MIN_RPS && p99 < MAX_P99_MS && run.errors == 0 && run.unsent == 0,
    )];
    emit(&rows, args.rows.as_deref())?;
    Ok(())
}

/// `byosms serve`, stopped when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Adds the connection and `count` sent messages to a fresh embedded store and signs a delivery
/// report for each up front, so the run measures the gateway and not the signing.
async fn seed_and_sign(
    dir: &std::path::Path,
    base: &url::Url,
    count: usize,
) -> Result<Vec<SignedRequest>, Error> {
    let deps = Deps::embedded(dir, Settings::default())?;
    let fields = serde_json::json!({
        "provider": "twilio",
        "name": "load",
        "accountSid": "AC0123456789abcdef0123456789abcdef",
        "authToken": "0123456789abcdef0123456789abcdef",
        "from": "+14155550199",
    });
    let connection = admin::add_connection(&deps, ORG, Some("load_twilio"), &fields, None).await?;
    let secrets = deps
        .stores
        .secrets
        .get_secrets(ORG, &connection.connection_id)
        .await?
        .ok_or("the connection's secret was not stored")?;
    let adapter = deps
        .registry
        .get(Provider::Twilio)
        .ok_or("Twilio is registered")?;
    let url = Route::url(base, RouteKind::Status, Provider::Twilio, ORG).ok_or("a route URL")?;
    let mut signed = Vec::with_capacity(count);
    for i in 0..count {
        let (message_id, sid) = (format!("load-{i}"), format!("SM{i:032x}"));
        let messages = deps.stores.messages.as_ref();
        store_sent_message(messages, &connection, &message_id, &sid).await?;
        // To the callback URL the send gave Twilio: our message id in its query.
        let event = SampleEvent::Status {
            message_id: Some(message_id),
            provider_message_id: sid,
            provider_status: "delivered".into(),
            error_code: None,
        };
        signed.push(adapter.sample_webhook(&event, &url, &connection, &secrets)?);
    }
    Ok(signed)
}

async fn wait_ready(client: &reqwest::Client, base: &url::Url) -> Result<(), Error> {
    let health = base.join("/healthz")?;
    for _ in 0..200 {
        if client
            .get(health.clone())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err("byosms serve did not answer /healthz within 5 s".into())
}

struct Run {
    latencies_ms: Vec<f64>,
    errors: usize,
    unsent: usize,
    elapsed: Duration,
}

/// `concurrency` clients, each sending the next unsent request when its last one was answered.
async fn run_clients(
    client: &reqwest::Client,
    requests: &[SignedRequest],
    concurrency: usize,
    max_seconds: u64,
) -> Run {
    let requests: Arc<Vec<SignedRequest>> = Arc::new(requests.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(max_seconds);
    let started = Instant::now();
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, requests, next) = (client.clone(), requests.clone(), next.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    let Some(signed) = requests.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let mut request = client
                        .request(signed.method.clone(), signed.url.clone())
                        .body(signed.body.clone());
                    for (k, v) in &signed.headers {
                        request = request.header(k, v);
                    }
                    let sent = Instant::now();
                    let ok = request.send().await.is_ok_and(|r| r.status().is_success());
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    errors += usize::from(!ok);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut result = Run {
        latencies_ms: Vec::with_capacity(requests.len()),
        errors: 0,
        unsent: 0,
        elapsed: Duration::ZERO,
    };
    for task in clients {
        if let Ok((latencies, errors)) = task.await {
            result.latencies_ms.extend(latencies);
            result.errors += errors;
        }
    }
    result.elapsed = started.elapsed();
    result.unsent = requests.len().saturating_sub(result.latencies_ms.len());
    result
}
