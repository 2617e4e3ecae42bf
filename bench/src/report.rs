//! The rows of `scripts/bench`'s one summary table. Each benchmark tool appends its rows to a
//! shared file (tab-separated: what, figure, target, verdict); the script prints them together.

use std::io::Write;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub what: String,
    pub figure: String,
    pub target: String,
    pub verdict: Verdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// A figure with no target of its own (a reference, a breakdown).
    Info,
}

impl Verdict {
    pub fn of(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::Info => "",
        }
    }
}

impl Row {
    pub fn new(what: impl Into<String>, figure: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            figure: figure.into(),
            target: String::new(),
            verdict: Verdict::Info,
        }
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.verdict = Verdict::of(met);
        self
    }

    fn cells(&self) -> [&str; 4] {
        [
            &self.what,
            &self.figure,
            &self.target,
            self.verdict.as_str(),
        ]
    }

    pub fn markdown(&self) -> String {
        format!("| {} |", self.cells().join(" | "))
    }

    fn tsv(&self) -> String {
        self.cells()
            .map(|c| c.replace(['\t', '\n'], " "))
            .join("\t")
    }
}

pub const HEADER: &str = "| what | figure | target | verdict |\n|---|---|---|---|";

/// Prints the rows as a table and, with `file`, appends them to it.
pub fn emit(rows: &[Row], file: Option<&Path>) -> std::io::Result<()> {
    println!("{HEADER}");
    for row in rows {
        println!("{}", row.markdown());
    }
    if let Some(path) = file {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for row in rows {
            writeln!(out, "{}", row.tsv())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_with_a_target_says_whether_it_was_met() {
        let row = Row::new("first response", "30 ms").target("<= 40 ms", true);
        assert_eq!(
            row.markdown(),
            "| first response | 30 ms | <= 40 ms | met |"
        );
        let missed = Row::new("p99", "25\tms").target("< 20 ms", false);
        assert_eq!(missed.tsv(), "p99\t25 ms\t< 20 ms\tMISSED");
        assert_eq!(Row::new("echo", "4 ms").markdown(), "| echo | 4 ms |  |  |");
    }
}
