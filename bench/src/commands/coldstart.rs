//! Cold starts, warm memory and send fan-out of the release Lambda binaries, against a local
//! Lambda Runtime API and a local TLS endpoint in front of the in-memory AWS stand-in (or moto,
//! with `--moto`) (`scripts/bench` runs it).
//!
//! For each function, each reference echo and the Python peer: `--starts` fresh processes, each
//! timed from spawn to its first `next` (init) and to its first response, with its peak RSS then.
//! For each function: one process answering `--warm` invocations, its RSS sampled along the way.
//! Then the send function's batch of `--fanout` messages to a provider answering in 20 ms.
//! Cold starts and warm runs send to a provider that answers at once: the reference echoes call
//! no provider, so a provider's latency would only blur the comparison.

use byosms_bench::aws_stand_in::AwsStandIn;
use byosms_bench::fixture::{EventKind, Fixture};
use byosms_bench::mock_provider::MockProvider;
use byosms_bench::report::{Row, emit};
use byosms_bench::runtime_api::RuntimeApi;
use byosms_bench::stats::{Rss, Summary, millis, rss};
use byosms_bench::tls::{TestPki, TlsEndpoint};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The functions' first response against the tuned SDK+TLS echo's (issue 11).
const MAX_RATIO_TO_TUNED_ECHO: f64 = 1.3;
/// How much faster than the Python peer each function must answer first.
const MIN_SPEEDUP_OVER_PYTHON: f64 = 8.0;
/// RSS growth between the 100th and the last warm invocation that still counts as flat
/// (allocator arenas settle in steps of pages, not bytes).
const FLAT_RSS_KIB: u64 = 512;
/// The fan-out's provider latency (issue 8).
const PROVIDER_DELAY: Duration = Duration::from_millis(20);
/// The fan-out completes within this much of its ideal, fanout / concurrency x 20 ms (issue 8).
const MAX_FANOUT_RATIO: f64 = 3.0;
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct Args {
    /// Run on moto (plain HTTP at this address; the TLS endpoint forwards to it) instead of the
    /// in-memory stand-in for DynamoDB and Secrets Manager (see `aws_stand_in`: moto's own
    /// latency, ~5 ms a call one at a time, would dominate the warm and fan-out figures).
    #[arg(long)]
    moto: Option<SocketAddr>,
    /// Where the release binaries are (send, receive-status, receive-message, echo-bare,
    /// echo-sdk-tls).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The Python peer's interpreter (a venv with awslambdaric, boto3 and twilio); none: no peer.
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long, default_value = "bench/python")]
    python_dir: PathBuf,
    #[arg(long, default_value_t = 20)]
    starts: usize,
    #[arg(long, default_value_t = 1000)]
    warm: usize,
    #[arg(long, default_value_t = 1000)]
    fanout: usize,
    /// The send function's concurrency (`BYOSMS_SEND_CONCURRENCY`); the fan-out's ideal is
    /// fanout / concurrency x 20 ms.
    #[arg(long, default_value_t = 16)]
    send_concurrency: usize,
    /// Append the summary rows here (scripts/bench's one table).
    #[arg(long)]
    rows: Option<PathBuf>,
    /// Keep what each started process writes (its JSON log lines: the functions' `webhook
    /// request` and `send` lines carry their own latency) in `DIR/<target>.log`, for finding
    /// where a start's time goes. Off by default: writing to a file is not what Lambda's log
    /// pipe costs.
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,
}

struct Target {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    kind: EventKind,
    /// One of byosms' functions (held to the targets, memory-tested).
    function: bool,
}

/// Everything a started process is pointed at.
struct World {
    fixture: Fixture,
    env: Vec<(String, String)>,
    _endpoint: TlsEndpoint,
    /// The in-memory stand-in, unless `--moto` (it counts the functions' store calls).
    stand_in: Option<AwsStandIn>,
    /// Answers at once (cold starts and warm runs; the deployment's variables name it).
    _provider: MockProvider,
    /// Answers in `PROVIDER_DELAY` (the fan-out).
    fanout_provider: MockProvider,
    _home: tempfile::TempDir,
    logs: Option<PathBuf>,
}

/// One cold start's figures.
struct Start {
    init: Duration,
    first: Duration,
    rss: Rss,
}

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{target}: {message}")]
    Target { target: String, message: String },
    #[error(transparent)]
    Other(#[from] Box<dyn std::error::Error + Send + Sync>),
}

fn failed(target: &str, message: impl std::fmt::Display) -> HarnessError {
    HarnessError::Target {
        target: target.to_string(),
        message: message.to_string(),
    }
}

pub async fn run(args: Args) -> Result<(), HarnessError> {
    let world = World::start(&args).await?;
    let targets = targets(&args);
    let mut rows = Vec::new();
    let mut cold: Vec<(&Target, ColdFigures)> = Vec::new();
    for target in &targets {
        let starts = cold_starts(&world, target, args.starts).await?;
        let Some(figures) = ColdFigures::of(&starts) else {
            continue;
        };
        let ColdFigures {
            init, first, peak, ..
        } = figures;
        eprintln!(
            "{}: init {:.1}/{:.1} ms, first response {:.1}/{:.1} ms (median/p90), peak RSS {:.1} MiB",
            target.name, init.median, init.p90, first.median, first.p90, peak.median
        );
        rows.push(Row::new(
            format!(
                "cold start {}: init, median / p90 ({} starts)",
                target.name, init.n
            ),
            format!("{:.1} / {:.1} ms", init.median, init.p90),
        ));
        rows.push(Row::new(
            format!("cold start {}: first response, median / p90", target.name),
            format!(
                "{:.1} / {:.1} ms, peak RSS {:.1} MiB",
                first.median, first.p90, peak.median
            ),
        ));
        cold.push((target, figures));
    }
    rows.extend(cold_start_verdicts(&cold));
    for target in targets.iter().filter(|t| t.function) {
        let (warm_rows, per_invocation) = warm_memory(&world, target, args.warm).await?;
        rows.extend(warm_rows);
        if let Some((_, figures)) = cold.iter().find(|(t, _)| t.name == target.name) {
            rows.push(first_invocation_verdict(target, figures, per_invocation));
        }
    }
    rows.push(fan_out(&world, &args).await?);
    emit(&rows, args.rows.as_deref()).map_err(|e| HarnessError::Other(e.into()))?;
    Ok(())
}

/// One target's cold starts, summarised.
#[derive(Clone, Copy)]
struct ColdFigures {
    /// Spawn to the first `next`.
    init: Summary,
    /// Spawn to the first response.
    first: Summary,
    /// The first `next` to the first response: the first invocation alone.
    invocation: Summary,
    /// Peak RSS, MiB.
    peak: Summary,
}

impl ColdFigures {
    fn of(starts: &[Start]) -> Option<ColdFigures> {
        let summary =
            |f: &dyn Fn(&Start) -> f64| Summary::of(&starts.iter().map(f).collect::<Vec<_>>());
        Some(ColdFigures {
            init: summary(&|s| millis(s.init))?,
            first: summary(&|s| millis(s.first))?,
            invocation: summary(&|s| millis(s.first.saturating_sub(s.init)))?,
            peak: summary(&|s| s.rss.peak_kib as f64 / 1024.0)?,
        })
    }
}

fn targets(args: &Args) -> Vec<Target> {
    let bin = |name: &str| args.bin_dir.join(name);
    let native = |name: &'static str, kind: EventKind, function: bool| Target {
        name,
        program: bin(name),
        args: Vec::new(),
        kind,
        function,
    };
    let mut targets = vec![
        native("echo-bare", EventKind::Echo, false),
        native("echo-sdk-tls", EventKind::Echo, false),
        native("send", EventKind::Send, true),
        native("receive-status", EventKind::Status, true),
        native("receive-message", EventKind::Inbound, true),
    ];
    if let Some(python) = &args.python {
        targets.push(Target {
            name: "python-peer",
            program: python.clone(),
            args: vec!["-m".into(), "awslambdaric".into(), "peer.handler".into()],
            kind: EventKind::Status,
            function: false,
        });
    }
    targets
}

/// Each function's first response against the tuned echo's and the Python peer's, same run;
/// and its init against the echo's init.
///
/// Why the init row: the first response holds the function's own work, the dependent store
/// round trips of its first request (4-7 of them, each a real network round trip on AWS), which
/// the echo does not make; against an echo that answers in ~5 ms, 1.3x leaves ~1.5 ms for all
/// of them. Init is where the two do the same kind of thing (the SDK, TLS handshakes, clients),
/// so it is held to 1.3x of the echo's on its own; the first invocation is held to a warm one
/// (`first_invocation_verdict`), so that nothing cold hides in it.
fn cold_start_verdicts(cold: &[(&Target, ColdFigures)]) -> Vec<Row> {
    let figures = |name: &str| cold.iter().find(|(t, _)| t.name == name).map(|(_, f)| *f);
    let (echo, python) = (figures("echo-sdk-tls"), figures("python-peer"));
    let mut rows = Vec::new();
    for (target, own) in cold.iter().filter(|(t, _)| t.function) {
        if let Some(echo) = echo {
            rows.push(at_most_ratio(
                format!("{}: first response / tuned SDK+TLS echo's", target.name),
                own.first.median,
                echo.first.median,
                1,
            ));
            rows.push(at_most_ratio(
                format!("{}: init / tuned SDK+TLS echo's init", target.name),
                own.init.median,
                echo.init.median,
                1,
            ));
        }
        if let Some(python) = python {
            let speedup = python.first.median / own.first.median;
            rows.push(
                Row::new(
                    format!("{}: Python peer's first response / its", target.name),
                    format!(
                        "{speedup:.1}x ({:.1} / {:.1} ms)",
                        python.first.median, own.first.median
                    ),
                )
                .target(
                    format!(">= {MIN_SPEEDUP_OVER_PYTHON}x"),
                    speedup >= MIN_SPEEDUP_OVER_PYTHON,
                ),
            );
        }
    }
    rows
}

/// The first invocation (first `next` to first response, median) against a warm one (the mean
/// of the warm run): what is left cold in it once init is done.
fn first_invocation_verdict(target: &Target, cold: &ColdFigures, warm_ms: f64) -> Row {
    at_most_ratio(
        format!("{}: first invocation / a warm one", target.name),
        cold.invocation.median,
        warm_ms,
        2,
    )
}

/// A row holding `own / reference` (milliseconds, shown with `decimals`) to
/// `MAX_RATIO_TO_TUNED_ECHO`.
fn at_most_ratio(what: String, own: f64, reference: f64, decimals: usize) -> Row {
    let ratio = own / reference;
    Row::new(
        what,
        format!("{ratio:.2}x ({own:.decimals$} / {reference:.decimals$} ms)"),
    )
    .target(
        format!("<= {MAX_RATIO_TO_TUNED_ECHO}x"),
        ratio <= MAX_RATIO_TO_TUNED_ECHO,
    )
}

impl World {
    async fn start(args: &Args) -> Result<World, HarnessError> {
        let boxed = |e: &dyn std::fmt::Display| HarnessError::Other(e.to_string().into());
        let stand_in = match args.moto {
            Some(_) => None,
            None => Some(AwsStandIn::start().await.map_err(|e| boxed(&e))?),
        };
        let store = args
            .moto
            .or(stand_in.as_ref().map(|s| s.addr))
            .expect("moto or the stand-in");
        let fixture = Fixture::seed(&format!("http://{store}"))
            .await
            .map_err(|e| boxed(&e))?;
        let pki = TestPki::generate().map_err(|e| boxed(&e))?;
        let home = tempfile::TempDir::new().map_err(|e| boxed(&e))?;
        let ca = pki.write_ca(home.path()).map_err(|e| boxed(&e))?;
        // The stand-in is served on TLS directly; moto, plain HTTP only, behind a forwarder.
        let endpoint = match &stand_in {
            Some(stand_in) => TlsEndpoint::serving(&pki, stand_in.app.clone()).await,
            None => TlsEndpoint::forwarding_to(&pki, store).await,
        }
        .map_err(|e| boxed(&e))?;
        let provider = MockProvider::start(Duration::ZERO)
            .await
            .map_err(|e| boxed(&e))?;
        let fanout_provider = MockProvider::start(PROVIDER_DELAY)
            .await
            .map_err(|e| boxed(&e))?;
        let ca = ca.to_string_lossy().into_owned();
        let python_dir = std::fs::canonicalize(&args.python_dir)
            .unwrap_or_else(|_| args.python_dir.clone())
            .to_string_lossy()
            .into_owned();
        // What Lambda sets, and nothing from this shell: no profile files, no proxies.
        let mut env: Vec<(String, String)> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", &home.path().to_string_lossy()),
            ("LANG", "C.UTF-8"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_ENDPOINT_URL", &endpoint.endpoint_url()),
            ("SSL_CERT_FILE", &ca),
            ("AWS_CA_BUNDLE", &ca),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            (
                "BYOSMS_SEND_CONCURRENCY",
                &args.send_concurrency.to_string(),
            ),
            ("LAMBDA_TASK_ROOT", &python_dir),
            ("PYTHONPATH", &python_dir),
            ("PYTHONDONTWRITEBYTECODE", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(fixture.env(&provider.url()));
        Ok(World {
            fixture,
            env,
            _endpoint: endpoint,
            stand_in,
            _provider: provider,
            fanout_provider,
            _home: home,
            logs: args.logs.clone(),
        })
    }

    async fn event(&self, target: &Target) -> Result<Vec<u8>, HarnessError> {
        let event = self
            .fixture
            .event(target.kind)
            .await
            .map_err(|e| failed(target.name, e))?;
        Ok(event.to_string().into_bytes())
    }

    /// The stand-in's call counts so far (`None` on moto, which does not count).
    fn store_calls(&self) -> Option<BTreeMap<String, u64>> {
        self.stand_in.as_ref().map(AwsStandIn::calls)
    }

    fn spawn(&self, target: &Target, api: &RuntimeApi) -> Result<Running, HarnessError> {
        self.spawn_with(target, api, &[])
    }

    /// Spawns `target` with `overrides` replacing or adding to the deployment's variables.
    fn spawn_with(
        &self,
        target: &Target,
        api: &RuntimeApi,
        overrides: &[(String, String)],
    ) -> Result<Running, HarnessError> {
        let child = std::process::Command::new(&target.program)
            .args(&target.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(overrides.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
            .env("AWS_LAMBDA_FUNCTION_NAME", target.name)
            .env("_HANDLER", "peer.handler")
            .stdin(Stdio::null())
            .stdout(self.log_sink(target)?)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(target.name, format!("{}: {e}", target.program.display())))?;
        let pid = child.id();
        Ok(Running { child, pid })
    }
}

impl World {
    /// Where a started process's standard output goes: nowhere, or appended to its log file.
    fn log_sink(&self, target: &Target) -> Result<Stdio, HarnessError> {
        let Some(dir) = &self.logs else {
            return Ok(Stdio::null());
        };
        let path = dir.join(format!("{}.log", target.name));
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
            })
            .map(Stdio::from)
            .map_err(|e| failed(target.name, format!("{}: {e}", path.display())))
    }
}

/// A started function process; killed (and reaped) when dropped, whatever happened.
struct Running {
    child: std::process::Child,
    pid: u32,
}

impl Running {
    fn stop(self) {}
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks the answer is the one the event asks for: the echo's own event, a webhook's 200, the
/// send's accepted message(s).
fn check_answer(target: &Target, event: &[u8], body: &[u8]) -> Result<(), HarnessError> {
    let answer: Value =
        serde_json::from_slice(body).map_err(|e| failed(target.name, format!("answer: {e}")))?;
    let ok = match target.kind {
        EventKind::Echo => serde_json::from_slice::<Value>(event).ok().as_ref() == Some(&answer),
        EventKind::Status | EventKind::Inbound => answer["statusCode"] == 200,
        EventKind::Send => answer["results"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|m| m["status"] == "accepted")),
    };
    if ok {
        Ok(())
    } else {
        Err(failed(target.name, format!("unexpected answer {answer}")))
    }
}

async fn cold_starts(
    world: &World,
    target: &Target,
    starts: usize,
) -> Result<Vec<Start>, HarnessError> {
    let mut samples = Vec::with_capacity(starts);
    for i in 0..starts {
        let mut api = RuntimeApi::start()
            .await
            .map_err(|e| failed(target.name, e))?;
        let event = world.event(target).await?;
        let request_id = format!("cold-{i}");
        // Queued first, so the function's first `next` is answered at once, as on Lambda.
        api.invoke(&request_id, event.clone().into())
            .await
            .map_err(|e| failed(target.name, e))?;
        let spawned = Instant::now();
        let running = world.spawn(target, &api)?;
        let measured = async {
            let next = api.expect_next(TIMEOUT).await?;
            let (body, answered) = api.expect_response(&request_id, TIMEOUT).await?;
            Ok::<_, byosms_bench::runtime_api::RuntimeApiError>((next, body, answered))
        }
        .await;
        let rss = rss(running.pid);
        running.stop();
        let (next, body, answered) = measured.map_err(|e| failed(target.name, e))?;
        check_answer(target, &event, &body)?;
        samples.push(Start {
            init: next - spawned,
            first: answered - spawned,
            rss: rss.map_err(|e| failed(target.name, e))?,
        });
    }
    Ok(samples)
}

/// One process answering `warm` invocations: its RSS after the first, the 100th and the last,
/// the store calls an invocation makes (on the stand-in, which counts them), and the mean time
/// of an invocation in milliseconds.
async fn warm_memory(
    world: &World,
    target: &Target,
    warm: usize,
) -> Result<(Vec<Row>, f64), HarnessError> {
    let mut api = RuntimeApi::start()
        .await
        .map_err(|e| failed(target.name, e))?;
    // Made beforehand: a status event stores its sent message first, which is not the
    // function's time nor its store calls.
    let mut events = Vec::with_capacity(warm);
    for _ in 0..warm {
        events.push(world.event(target).await?);
    }
    let running = world.spawn(target, &api)?;
    let result = async {
        api.expect_next(TIMEOUT)
            .await
            .map_err(|e| failed(target.name, e))?;
        let mut samples = Vec::new();
        let calls_before = world.store_calls();
        let started = Instant::now();
        for (i, event) in (1..).zip(events) {
            let body = api
                .round_trip(&format!("warm-{i}"), event.clone().into(), TIMEOUT)
                .await
                .map_err(|e| failed(target.name, e))?;
            check_answer(target, &event, &body)?;
            if i == 1 || i == 100.min(warm) || i == warm {
                samples.push(rss(running.pid).map_err(|e| failed(target.name, e))?);
            }
        }
        let took = started.elapsed();
        let calls = world
            .store_calls()
            .map(|after| calls_since(&calls_before, after));
        Ok::<_, HarnessError>((samples, took, calls))
    }
    .await;
    running.stop();
    let (samples, took, calls) = result?;
    let kib = |r: Option<&Rss>| r.map_or(0, |r| r.current_kib);
    let (first, hundredth, last) = (
        kib(samples.first()),
        // Fewer than 100 invocations: the first sample stands for the 100th.
        kib(samples.get(1).or(samples.first())),
        kib(samples.last()),
    );
    let growth = last.saturating_sub(hundredth);
    let per_invocation = millis(took) / warm.max(1) as f64;
    eprintln!(
        "{}: RSS {first} KiB after 1, {hundredth} after 100, {last} after {warm} warm invocations ({per_invocation:.2} ms each)",
        target.name,
    );
    let row = Row::new(
        format!(
            "{}: RSS after 1 / 100 / {warm} warm invocations",
            target.name
        ),
        format!(
            "{:.1} / {:.1} / {:.1} MiB ({:+} KiB from 100 on)",
            first as f64 / 1024.0,
            hundredth as f64 / 1024.0,
            last as f64 / 1024.0,
            growth as i64
        ),
    )
    .target(
        format!("no growth (<= {FLAT_RSS_KIB} KiB)"),
        growth <= FLAT_RSS_KIB,
    );
    let mut rows = vec![row];
    rows.extend(calls.map(|calls| store_calls_row(target, &calls, warm)));
    Ok((rows, per_invocation))
}

/// Each operation's count in `after` less its count in `before`.
fn calls_since(
    before: &Option<BTreeMap<String, u64>>,
    after: BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .into_iter()
        .map(|(op, n)| {
            let earlier = before.as_ref().and_then(|b| b.get(&op)).copied();
            (op, n - earlier.unwrap_or(0))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The store round trips of one warm invocation, by operation: each is a network round trip on
/// AWS, so this is where a function's time goes there (and it does not vary with the machine).
fn store_calls_row(target: &Target, calls: &BTreeMap<String, u64>, warm: usize) -> Row {
    let per = |n: u64| n as f64 / warm.max(1) as f64;
    let total: u64 = calls.values().sum();
    let each: Vec<String> = calls
        .iter()
        .map(|(op, n)| {
            let op = op.rsplit_once('.').map_or(op.as_str(), |(_, name)| name);
            // A cache's refreshes: a few in the whole run, not a fraction of one per call.
            match per(*n) {
                p if p < 0.1 => format!("{op} {n} in {warm}"),
                p => format!("{op} {p:.1}"),
            }
        })
        .collect();
    Row::new(
        format!("{}: store calls per warm invocation", target.name),
        format!("{:.1} ({})", per(total), each.join(", ")),
    )
}

/// The send function's batch: `fanout` messages in one event to a provider answering in 20 ms.
async fn fan_out(world: &World, args: &Args) -> Result<Row, HarnessError> {
    let target = Target {
        name: "send",
        program: args.bin_dir.join("send"),
        args: Vec::new(),
        kind: EventKind::Send,
        function: true,
    };
    let mut api = RuntimeApi::start()
        .await
        .map_err(|e| failed(target.name, e))?;
    let slow_provider = [(
        "BYOSMS_TWILIO_API_URL".to_string(),
        world.fanout_provider.url(),
    )];
    let running = world.spawn_with(&target, &api, &slow_provider)?;
    let provider = &world.fanout_provider;
    let result = async {
        api.expect_next(TIMEOUT).await?;
        provider.reset_max_in_flight();
        let before = provider.requests();
        let event = world.fixture.send_request(args.fanout).to_string();
        let started = Instant::now();
        api.invoke("fanout", event.into_bytes().into()).await?;
        let (body, answered) = api.expect_response("fanout", TIMEOUT).await?;
        Ok::<_, byosms_bench::runtime_api::RuntimeApiError>((
            body,
            answered - started,
            provider.requests() - before,
        ))
    }
    .await;
    let peak = rss(running.pid);
    running.stop();
    let (body, took, requests) = result.map_err(|e| failed(target.name, e))?;
    let answer: Value = serde_json::from_slice(&body).map_err(|e| failed(target.name, e))?;
    let accepted = answer["results"].as_array().map_or(0, |r| {
        r.iter().filter(|m| m["status"] == "accepted").count()
    });
    let peak = peak.map_err(|e| failed(target.name, e))?.peak_kib;
    let ideal = PROVIDER_DELAY * (args.fanout.div_ceil(args.send_concurrency)) as u32;
    let ratio = took.as_secs_f64() / ideal.as_secs_f64();
    eprintln!(
        "send fan-out: {accepted}/{} accepted, {requests} provider calls, at most {} in flight, {:.0} ms (ideal {:.0} ms), peak RSS {:.1} MiB",
        args.fanout,
        provider.max_in_flight(),
        millis(took),
        millis(ideal),
        peak as f64 / 1024.0
    );
    Ok(Row::new(
        format!(
            "send fan-out: {} messages, provider answers in 20 ms, BYOSMS_SEND_CONCURRENCY={}",
            args.fanout, args.send_concurrency
        ),
        format!(
            "{:.0} ms ({ratio:.2}x the ideal {:.0} ms), {accepted} accepted, at most {} in flight, peak RSS {:.1} MiB",
            millis(took),
            millis(ideal),
            provider.max_in_flight(),
            peak as f64 / 1024.0
        ),
    )
    .target(
        format!("every message accepted, <= {MAX_FANOUT_RATIO}x the ideal"),
        accepted == args.fanout && requests == args.fanout && ratio <= MAX_FANOUT_RATIO,
    ))
}
