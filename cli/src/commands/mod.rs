//! One module per command group. Each command takes the shared [`Context`] and prints its result:
//! text for people, JSON with `--json`.

pub mod connection;
pub mod messaging;
pub mod simulate;

use byosms::Deps;
use byosms::pipeline::admin::AdminError;
use byosms::pipeline::send::SendRequestError;
use byosms::stores::StoreError;
use url::Url;

/// The gateway's default address, and so the default base of local webhook URLs.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8787";

pub struct Context {
    pub deps: Deps,
    pub json: bool,
}

impl Context {
    /// The public base URL: `BYOSMS_PUBLIC_BASE_URL`, else the local gateway's default address.
    pub fn base_url(&self) -> Url {
        self.deps
            .settings
            .public_base_url
            .clone()
            .unwrap_or_else(|| local_base(DEFAULT_ADDR))
    }
}

pub fn local_base(addr: &str) -> Url {
    Url::parse(&format!("http://{addr}")).expect("an address makes a valid URL")
}

/// Everything a command can fail with; printed on stderr, exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("{}: {err}", err.code())]
    Send { err: SendRequestError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    NotFound(String),
    #[error("gateway at {url}: {reason}")]
    Gateway { url: String, reason: String },
    #[error("{0}")]
    Config(#[from] byosms::config::ConfigError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<SendRequestError> for CliError {
    fn from(err: SendRequestError) -> Self {
        CliError::Send { err }
    }
}

/// Prints a value as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    );
}
