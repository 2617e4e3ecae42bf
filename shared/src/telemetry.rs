//! Structured logs: JSON lines in Lambda (and wherever `BYOSMS_LOG_FORMAT=json`), readable text
//! for the CLI. Nothing logged carries a secret or a message body; phone numbers appear only
//! through [`mask_phone`].

pub use tracing_subscriber::EnvFilter;

/// `BYOSMS_LOG` (or `RUST_LOG`) when set, else `default`.
fn filter_or(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("BYOSMS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default))
}

/// How log lines are written (`BYOSMS_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// `BYOSMS_LOG_FORMAT` read by [`LogFormat::parse`], else `default`.
    pub fn from_env(default: LogFormat) -> Result<LogFormat, String> {
        match std::env::var("BYOSMS_LOG_FORMAT") {
            Ok(value) => LogFormat::parse(&value),
            Err(_) => Ok(default),
        }
    }

    /// `json` or `text`, in any case and padding.
    pub fn parse(value: &str) -> Result<LogFormat, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!(
                "BYOSMS_LOG_FORMAT must be json or text, not '{other}'"
            )),
        }
    }
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

/// The CLI's logs: `format` on stderr (JSON lines keep their timestamps there: no CloudWatch
/// adds them), at `default_level` unless `BYOSMS_LOG` says otherwise.
pub fn init_cli(format: LogFormat, default_level: &str) {
    match format {
        LogFormat::Text => init_text(default_level),
        LogFormat::Json => {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_writer(std::io::stderr)
                .with_env_filter(filter_or(default_level))
                .with_current_span(true)
                .with_target(false)
                .with_ansi(false)
                .try_init();
        }
    }
}

/// A phone number as logs show it: its last 4 digits, the rest masked (`+14155550100` →
/// `*******0100`). Short codes and alphanumeric senders are masked the same way; a value of 4
/// characters or fewer is masked whole, so nothing shorter than a number leaks either.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let (hidden, shown) = chars.split_at(chars.len() - 4);
    let mut masked = "*".repeat(hidden.len());
    masked.extend(shown);
    masked
}

/// `text` with every double-quoted value replaced by `"…"`: a parser's error may quote the value
/// it could not read (a message body, a number), and an error text may reach a log line.
pub fn without_quoted_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    // Odd pieces are inside quotes; an unclosed quote hides the rest.
    let rest: Vec<&str> = parts.collect();
    for (i, piece) in rest.iter().enumerate() {
        if i % 2 == 0 {
            out.push_str("\"…");
            if i + 1 < rest.len() {
                out.push('"');
            }
        } else {
            out.push_str(piece);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_keep_their_last_four_digits() {
        assert_eq!(mask_phone("+14155550100"), "********0100");
        assert_eq!(mask_phone(" 4915112345678 "), "*********5678");
        assert_eq!(mask_phone("1234"), "****");
        assert_eq!(mask_phone(""), "");
        assert_eq!(mask_phone("MyBrand"), "***rand");
    }

    #[test]
    fn quoted_values_are_hidden() {
        assert_eq!(
            without_quoted_values(r#"invalid type: string "call +14155550100", expected u16"#),
            r#"invalid type: string "…", expected u16"#
        );
        assert_eq!(without_quoted_values("no quotes"), "no quotes");
        assert_eq!(without_quoted_values(r#"open "secret"#), r#"open "…"#);
    }

    #[test]
    fn log_formats() {
        assert_eq!(LogFormat::parse(" JSON "), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Text));
        assert!(
            LogFormat::parse("yaml")
                .unwrap_err()
                .contains("json or text")
        );
    }
}
