//! Reads the webhook bench's criterion results (`cargo bench -p byosms --bench webhook`) and
//! holds them to issue 11's targets: at least 100,000 Twilio status verifications+parses per
//! second on one core, and no provider slower than 20 µs per request, except MessageMedia's RSA
//! verification, reported on its own.

use byosms_bench::report::{Row, emit};
use serde_json::Value;
use std::path::{Path, PathBuf};

const GROUP: &str = "authenticate+parse";
const MIN_TWILIO_STATUS_PER_SECOND: f64 = 100_000.0;
const MAX_MICROS: f64 = 20.0;
/// Verified with RSA, held to no per-request target of its own.
const RSA_PROVIDER: &str = "messagemedia";

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "target/criterion")]
    criterion_dir: PathBuf,
    #[arg(long)]
    rows: Option<PathBuf>,
}

/// One benchmark's function id (`{provider}/{kind}`) and median time per iteration.
struct Measured {
    id: String,
    median_ns: f64,
}

fn read_json(path: &Path) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

fn measured(group_dir: &Path) -> Result<Vec<Measured>, Box<dyn std::error::Error + Send + Sync>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(group_dir)? {
        let new = entry?.path().join("new");
        let (Ok(bench), Ok(estimates)) = (
            read_json(&new.join("benchmark.json")),
            read_json(&new.join("estimates.json")),
        ) else {
            continue;
        };
        if let (Some(id), Some(median_ns)) = (
            bench["function_id"].as_str(),
            estimates["median"]["point_estimate"].as_f64(),
        ) {
            found.push(Measured {
                id: id.to_string(),
                median_ns,
            });
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

fn rows(measured: &[Measured]) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Some(twilio) = measured.iter().find(|m| m.id == "twilio/status") {
        let per_second = 1e9 / twilio.median_ns;
        rows.push(
            Row::new(
                "Twilio status webhook: verifications+parses per second, one core",
                format!(
                    "{per_second:.0}/s ({:.2} µs each)",
                    twilio.median_ns / 1000.0
                ),
            )
            .target(
                format!(">= {MIN_TWILIO_STATUS_PER_SECOND:.0}/s"),
                per_second >= MIN_TWILIO_STATUS_PER_SECOND,
            ),
        );
    }
    for m in measured {
        let micros = m.median_ns / 1000.0;
        let row = Row::new(
            format!("authenticate+parse {}", m.id),
            format!("{micros:.2} µs"),
        );
        rows.push(if m.id.starts_with(RSA_PROVIDER) {
            Row {
                target: "RSA: reported on its own".into(),
                ..row
            }
        } else {
            row.target(format!("<= {MAX_MICROS} µs"), micros <= MAX_MICROS)
        });
    }
    rows
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let measured = measured(&args.criterion_dir.join(GROUP))?;
    if measured.is_empty() {
        return Err(format!(
            "no results under {}: run `cargo bench -p byosms --bench webhook` first",
            args.criterion_dir.join(GROUP).display()
        )
        .into());
    }
    emit(&rows(&measured), args.rows.as_deref())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_each_provider_to_its_target() {
        let m = |id: &str, median_ns: f64| Measured {
            id: id.into(),
            median_ns,
        };
        let rows = rows(&[
            m("messagemedia/status", 90_000.0),
            m("twilio/status", 4_000.0),
            m("vonage/message", 25_000.0),
        ]);
        assert_eq!(rows[0].figure, "250000/s (4.00 µs each)");
        assert_eq!(rows[0].verdict, byosms_bench::report::Verdict::Met);
        assert_eq!(rows[1].target, "RSA: reported on its own");
        assert_eq!(rows[1].verdict, byosms_bench::report::Verdict::Info);
        assert_eq!(rows[3].verdict, byosms_bench::report::Verdict::Missed);
    }
}
