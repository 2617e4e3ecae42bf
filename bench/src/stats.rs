//! Summaries of repeated measurements, and a process's memory as the kernel reports it.

use std::time::Duration;

/// Median and 90th percentile (nearest rank) of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub p90: f64,
    pub n: usize,
}

impl Summary {
    /// `None` for no samples.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            median: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            n: sorted.len(),
        })
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], pct: f64) -> f64 {
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A process's peak (`VmHWM`) and current (`VmRSS`) resident set, in KiB, from
/// `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rss {
    pub peak_kib: u64,
    pub current_kib: u64,
}

pub fn rss(pid: u32) -> std::io::Result<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(parse_rss(&status))
}

fn parse_rss(status: &str) -> Rss {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    Rss {
        peak_kib: field("VmHWM:"),
        current_kib: field("VmRSS:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_by_nearest_rank() {
        let samples: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!((s.median, s.p90, s.n), (10.0, 18.0, 20));
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[3.0]).unwrap().p90, 3.0);
    }

    #[test]
    fn reads_peak_and_current_rss_from_proc_status() {
        let status = "Name:\tsend\nVmHWM:\t   20480 kB\nVmRSS:\t   18000 kB\n";
        assert_eq!(
            parse_rss(status),
            Rss {
                peak_kib: 20480,
                current_kib: 18000
            }
        );
        let own = rss(std::process::id()).unwrap();
        assert!(own.peak_kib >= own.current_kib && own.current_kib > 0);
    }
}
