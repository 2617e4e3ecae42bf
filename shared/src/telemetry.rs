//! Structured logs: JSON lines in Lambda, readable text for the CLI.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("BYOSMS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON logs without ANSI colours or timestamps (CloudWatch adds its own).
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(true)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// Human-readable logs on stderr.
pub fn init_text() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
