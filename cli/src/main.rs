//! `byosms`: the local gateway (`serve`) and the admin and test commands around it. Every command
//! works on the embedded store in `--data-dir` or, with `--aws`, on DynamoDB and Secrets Manager.

use byosms::telemetry::LogFormat;
use byosms::{Deps, Settings};
use byosms_cli::commands::{
    self, CliError, Context, DEFAULT_ADDR, connection, messaging, simulate,
};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use url::Url;

#[derive(Parser)]
#[command(
    name = "byosms",
    version,
    about = "Bring your own SMS provider: local gateway and admin"
)]
struct Cli {
    /// The embedded store's directory (one SQLite file, shared by every command while they run).
    #[arg(
        long,
        global = true,
        env = "BYOSMS_DATA_DIR",
        default_value = "./.byosms"
    )]
    data_dir: PathBuf,
    /// Use DynamoDB and Secrets Manager (default AWS config; AWS_ENDPOINT_URL for an emulator).
    #[arg(long, global = true)]
    aws: bool,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local gateway: the webhook routes, POST /send and GET /healthz.
    Serve {
        #[arg(long, default_value = DEFAULT_ADDR)]
        addr: String,
    },
    /// Run every provider's local stand-in for its send API, each under /{provider}; prints the
    /// BYOSMS_<PROVIDER>_API_URL lines that point the other commands at them.
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:4010")]
        addr: String,
    },
    /// Create the DynamoDB tables as template.yaml defines them (with --aws; for emulators and
    /// development accounts).
    CreateTables,
    /// Add, list, show or remove an org's provider connections.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// The webhook URLs an admin configures at the provider.
    WebhookUrls {
        #[arg(long)]
        org: String,
        /// The public base URL (default: BYOSMS_PUBLIC_BASE_URL, else the local gateway).
        #[arg(long)]
        base_url: Option<Url>,
        /// Only this provider (default: every provider the org has a connection of).
        #[arg(long)]
        provider: Option<String>,
    },
    /// Send one message through the send pipeline.
    Send(SendArgs),
    /// The org's recorded events, oldest first, as JSON lines.
    Events {
        #[arg(long)]
        org: String,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Message records.
    #[command(subcommand)]
    Message(MessageCommand),
    /// Post a correctly signed provider webhook to a running gateway.
    #[command(subcommand)]
    Simulate(SimulateCommand),
}

#[derive(Subcommand)]
enum ConnectionCommand {
    /// Validate a connection file (JSON, camelCase fields) and store it; prints its id and URLs.
    Add {
        #[arg(long)]
        org: String,
        #[arg(long)]
        file: PathBuf,
        /// The connection id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// The provider, if the file has no "provider" field.
        #[arg(long)]
        provider: Option<String>,
        /// The public base URL for the printed webhook URLs.
        #[arg(long)]
        base_url: Option<Url>,
    },
    List {
        #[arg(long)]
        org: String,
    },
    Show {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
    },
    Remove {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Args)]
struct SendArgs {
    #[arg(long)]
    org: String,
    #[arg(long)]
    to: String,
    #[arg(long)]
    body: String,
    /// The connection (default: the org's only enabled connection).
    #[arg(long)]
    connection: Option<String>,
    /// The idempotency key (default: generated).
    #[arg(long)]
    message_id: Option<String>,
    /// The user the access grant is checked for.
    #[arg(long, default_value = "cli")]
    user: String,
}

#[derive(Subcommand)]
enum MessageCommand {
    /// One message record with its current status.
    Show {
        #[arg(long)]
        org: String,
        #[arg(long)]
        message_id: String,
    },
}

#[derive(Subcommand)]
enum SimulateCommand {
    /// A reply from a recipient.
    Inbound {
        #[arg(long)]
        org: String,
        #[arg(long)]
        connection: Option<String>,
        #[arg(long)]
        from: String,
        /// Default: the connection's number.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        text: String,
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        gateway: Url,
    },
    /// A delivery report for a message we sent.
    Status {
        #[arg(long)]
        org: String,
        #[arg(long)]
        message_id: String,
        /// The provider's own status word (Twilio: queued, sent, delivered, undelivered, failed, ...).
        #[arg(long)]
        status: String,
        #[arg(long)]
        error_code: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        gateway: Url,
    },
}

/// Serves the stand-ins and prints, on stdout, the lines that make the other commands use them.
async fn sandbox(addr: &str, settings: &Settings) -> Result<bool, CliError> {
    use byosms_cli::sandbox;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let registry = byosms::providers::Registry::new(settings);
    eprintln!("byosms sandbox on http://{bound}; Ctrl-C stops it. In the other terminals:");
    for adapter in registry.all() {
        for line in sandbox::export_lines(bound, adapter.provider()) {
            println!("{line}");
        }
    }
    sandbox::serve(listener, sandbox::router(registry.all())).await?;
    Ok(true)
}

fn deps(
    cli: &Cli,
    sdk: Option<&aws_config::SdkConfig>,
    settings: Settings,
) -> Result<Deps, CliError> {
    match sdk {
        Some(sdk) => Ok(Deps::aws(sdk, settings)),
        None => Ok(Deps::embedded(&cli.data_dir, settings)?),
    }
}

/// Runs the command; `Ok(false)` when it ran but what it reports failed (a refused send).
async fn run(cli: Cli) -> Result<bool, CliError> {
    let mut settings = Settings::from_env()?;
    let sdk = match cli.aws {
        true => Some(byosms::stores::aws_http::load_sdk_config().await),
        false => None,
    };
    if let Command::Serve { addr } = &cli.command {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let signed_base = settings.public_base_url.clone();
        // Without a public base, callbacks of sends made through this gateway point back at it.
        settings
            .public_base_url
            .get_or_insert_with(|| commands::local_base(&bound.to_string()));
        let deps = deps(&cli, sdk.as_ref(), settings)?;
        let store = if cli.aws {
            "DynamoDB + Secrets Manager".to_string()
        } else {
            cli.data_dir.display().to_string()
        };
        eprintln!("byosms gateway on http://{bound} (store: {store}); Ctrl-C stops it");
        byosms_cli::gateway::serve(listener, deps, signed_base).await?;
        return Ok(true);
    }
    if let Command::Sandbox { addr } = &cli.command {
        return sandbox(addr, &settings).await;
    }
    // Callbacks and printed URLs point at the local gateway unless a public base is configured.
    settings
        .public_base_url
        .get_or_insert_with(|| commands::local_base(DEFAULT_ADDR));
    let ctx = Context {
        deps: deps(&cli, sdk.as_ref(), settings)?,
        json: cli.json,
    };
    match &cli.command {
        Command::Serve { .. } | Command::Sandbox { .. } => unreachable!("handled above"),
        Command::CreateTables => {
            let Some(sdk) = &sdk else {
                return Err(CliError::Usage(
                    "create-tables is for --aws: the embedded store creates its own".into(),
                ));
            };
            let settings = &ctx.deps.settings;
            byosms::stores::dynamodb::create_tables(
                &aws_sdk_dynamodb::Client::new(sdk),
                &settings.connections_table,
                &settings.messages_table,
            )
            .await?;
            println!(
                "created {} and {}",
                settings.connections_table, settings.messages_table
            );
        }
        Command::Connection(c) => match c {
            ConnectionCommand::Add {
                org,
                file,
                id,
                provider,
                base_url,
            } => {
                connection::add(
                    &ctx,
                    org,
                    file,
                    id.as_deref(),
                    provider.as_deref(),
                    base_url.as_ref(),
                )
                .await?
            }
            ConnectionCommand::List { org } => connection::list(&ctx, org).await?,
            ConnectionCommand::Show { org, id } => connection::show(&ctx, org, id).await?,
            ConnectionCommand::Remove { org, id } => connection::remove(&ctx, org, id).await?,
        },
        Command::WebhookUrls {
            org,
            base_url,
            provider,
        } => connection::webhook_urls(&ctx, org, base_url.as_ref(), provider.as_deref()).await?,
        Command::Send(a) => {
            return messaging::send(
                &ctx,
                messaging::SendArgs {
                    org: &a.org,
                    connection: a.connection.as_deref(),
                    user: &a.user,
                    message_id: a.message_id.as_deref(),
                    to: &a.to,
                    body: &a.body,
                },
            )
            .await;
        }
        Command::Events { org, limit } => messaging::events(&ctx, org, *limit).await?,
        Command::Message(MessageCommand::Show { org, message_id }) => {
            messaging::show_message(&ctx, org, message_id).await?
        }
        Command::Simulate(SimulateCommand::Inbound {
            org,
            connection,
            from,
            to,
            text,
            gateway,
        }) => {
            return simulate::inbound(
                &ctx,
                simulate::InboundArgs {
                    org,
                    connection: connection.as_deref(),
                    from,
                    to: to.as_deref(),
                    text,
                    gateway,
                },
            )
            .await;
        }
        Command::Simulate(SimulateCommand::Status {
            org,
            message_id,
            status,
            error_code,
            gateway,
        }) => {
            return simulate::status(
                &ctx,
                simulate::StatusArgs {
                    org,
                    message_id,
                    status,
                    error_code: error_code.as_deref(),
                    gateway,
                },
            )
            .await;
        }
    }
    Ok(true)
}

/// Rust ignores SIGPIPE, so `println!` into a closed pipe (`byosms message show ... | head`)
/// panics with "failed printing to stdout". Like other command-line tools, end quietly instead:
/// the reader has all it wanted.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: SIG_DFL is a valid disposition for SIGPIPE and installs no handler of ours; the
    // disposition is process-wide, so it does not matter that tokio's threads already run.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    restore_default_sigpipe();
    let cli = Cli::parse();
    // The servers report every request; one-shot commands only what went wrong.
    let quiet = !matches!(cli.command, Command::Serve { .. } | Command::Sandbox { .. });
    let format = match LogFormat::from_env(LogFormat::Text) {
        Ok(format) => format,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    byosms::telemetry::init_cli(format, if quiet { "warn" } else { "info" });
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
