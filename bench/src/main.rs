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
    /// Serves the in-memory DynamoDB and Secrets Manager stand-in until stopped (to run the
    /// store tests on it: `BYOSMS_TEST_MOTO_URL=http://ADDR`).
    AwsStandIn,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match Command::parse() {
        Command::Coldstart(args) => coldstart::run(args).await?,
        Command::GatewayLoad(args) => gateway_load::run(args).await?,
        Command::CriterionRows(args) => criterion_rows::run(args)?,
        Command::AwsStandIn => {
            let stand_in = byosms_bench::aws_stand_in::AwsStandIn::start().await?;
            println!("http://{}", stand_in.addr);
            tokio::signal::ctrl_c().await?;
        }
    }
    Ok(())
}
