//! `byosms-bench`: the benchmark tools `scripts/bench` runs, one binary (one release link).

mod commands;

use clap::Parser;
use commands::{coldstart, criterion_rows, gateway_load};

#[derive(Parser)]
#[command(about = "byosms benchmarks (scripts/bench runs them all)")]
enum Command {
    /// Cold starts, warm memory and send fan-out of the release functions.
    Coldstart(coldstart::Args),
    /// `byosms serve` under signed status webhooks from concurrent clients.
    GatewayLoad(gateway_load::Args),
    /// The webhook bench's criterion results against their targets.
    CriterionRows(criterion_rows::Args),
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match Command::parse() {
        Command::Coldstart(args) => coldstart::run(args).await?,
        Command::GatewayLoad(args) => gateway_load::run(args).await?,
        Command::CriterionRows(args) => criterion_rows::run(args)?,
    }
    Ok(())
}
