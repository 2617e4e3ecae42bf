//! Structured logs: JSON lines in Lambda, readable text for the CLI.

pub use tracing_subscriber::EnvFilter;

/// `BYOSMS_LOG` (or `RUST_LOG`) when set, else `default`.
fn filter_or(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("BYOSMS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default))
}

/// JSON logs without ANSI colours or timestamps (CloudWatch adds its own).
pub fn init_json() {
    init_json_to(std::io::stdout, filter_or("info"));
}

/// The Lambdas' log format, written to `writer` (tests read it back to prove no secret is logged).
pub fn init_json_to<W>(writer: W, filter: EnvFilter)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let _ = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_env_filter(filter)
        .with_current_span(true)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// Human-readable logs on stderr, at `default_level` unless `BYOSMS_LOG` says otherwise.
pub fn init_text(default_level: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter_or(default_level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
