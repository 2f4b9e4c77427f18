//! Wall time, peak memory and page faults per phase of a run, for `--timings` and the benchmark.
//! Reads the clock, `/proc/self/status` and `/proc/self/stat` only; printing is `main`'s job.

use std::time::Instant;

/// One finished phase.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
    /// The process's peak resident memory so far, in KiB (0 where unknown).
    pub peak_kib: u64,
    /// Minor page faults during the phase: pages of memory touched for the first time (on a
    /// virtual machine each may cost the host a fault of its own).
    pub faults: u64,
}

pub struct Phases {
    started: Instant,
    faults: u64,
    pub done: Vec<Phase>,
}

impl Phases {
    pub fn start() -> Phases {
        Phases {
            started: Instant::now(),
            faults: minor_faults(),
            done: Vec::new(),
        }
    }

    /// Ends the current phase under `name` and starts the next.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        let faults = minor_faults();
        self.done.push(Phase {
            name,
            seconds: (now - self.started).as_secs_f64(),
            peak_kib: peak_kib(),
            faults: faults.saturating_sub(self.faults),
        });
        self.started = now;
        self.faults = faults;
    }

    /// `read 0.410s peak 310 MiB faults 51234, index …`
    pub fn describe(&self) -> String {
        self.done
            .iter()
            .map(|p| {
                format!(
                    "{} {:.3}s peak {} MiB faults {}",
                    p.name,
                    p.seconds,
                    p.peak_kib / 1024,
                    p.faults
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The process's minor page faults so far (0 where unknown): field 10 of `/proc/self/stat`,
/// the eighth after the command name's closing parenthesis.
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_new_memory_counts_faults() {
        let mut phases = Phases::start();
        // 64 MiB written page by page: at least one fault for each of its 16,384 pages, unless
        // the system backs it with huge pages (then fewer; still some).
        let mut v = vec![0u8; 64 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&v);
        phases.mark("touch");
        let touched = phases.done[0].faults;
        assert!(touched > 0, "no fault counted");
        assert!(phases.describe().contains(&format!("faults {touched}")));
    }
}
