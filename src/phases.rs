//! Wall time and peak memory per phase of a run, for `--timings` and the benchmark. Reads the
//! clock and `/proc/self/status` only; printing is `main`'s job.

use std::time::Instant;

/// One finished phase.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
    /// The process's peak resident memory so far, in KiB (0 where unknown).
    pub peak_kib: u64,
}

pub struct Phases {
    started: Instant,
    pub done: Vec<Phase>,
}

impl Phases {
    pub fn start() -> Phases {
        Phases {
            started: Instant::now(),
            done: Vec::new(),
        }
    }

    /// Ends the current phase under `name` and starts the next.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push(Phase {
            name,
            seconds: (now - self.started).as_secs_f64(),
            peak_kib: peak_kib(),
        });
        self.started = now;
    }

    /// `load 0.41s 310 MiB, evaluate …`
    pub fn describe(&self) -> String {
        self.done
            .iter()
            .map(|p| {
                format!(
                    "{} {:.3}s peak {} MiB",
                    p.name,
                    p.seconds,
                    p.peak_kib / 1024
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
