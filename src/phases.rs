//! Wall time, peak memory and page faults per phase of a run, for `--timings` and the benchmark.
//! Reads the clock, `/proc/self/status` and `/proc/self/stat` (and `/proc/self/smaps_rollup` where
//! the process may hold huge pages); printing is `main`'s job.

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
    /// CPU seconds (user and system, all threads) the phase used: beside `seconds`, how busy
    /// the cores were.
    pub cpu: f64,
}

pub struct Phases {
    started: Instant,
    faults: u64,
    cpu: f64,
    pub done: Vec<Phase>,
    /// The most anonymous memory held in transparent huge pages at the end of a phase, in KiB
    /// (0 where unknown, and where the process cannot hold any): whether `malloc` got the huge
    /// pages it was asked for (`hugepages`).
    pub huge_kib: u64,
    /// Whether the process may hold huge pages (`hugepages::may_get_here`): only then is
    /// `huge_kib` read.
    watch_huge: bool,
}

impl Phases {
    pub fn start() -> Phases {
        let (faults, cpu) = counters();
        Phases {
            started: Instant::now(),
            faults,
            cpu,
            done: Vec::new(),
            huge_kib: 0,
            watch_huge: crate::hugepages::may_get_here(),
        }
    }

    /// Ends the current phase under `name` and starts the next.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        let (faults, cpu) = counters();
        self.done.push(Phase {
            name,
            seconds: (now - self.started).as_secs_f64(),
            peak_kib: peak_kib(),
            faults: faults.saturating_sub(self.faults),
            cpu: (cpu - self.cpu).max(0.0),
        });
        if self.watch_huge {
            self.huge_kib = self.huge_kib.max(huge_kib());
        }
        self.started = now;
        self.faults = faults;
        self.cpu = cpu;
    }

    /// `read 0.410s cpu 0.79s peak 310 MiB faults 51234, index …`
    pub fn describe(&self) -> String {
        self.done
            .iter()
            .map(|p| {
                format!(
                    "{} {:.3}s cpu {:.2}s peak {} MiB faults {}",
                    p.name,
                    p.seconds,
                    p.cpu,
                    p.peak_kib / 1024,
                    p.faults
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `AnonHugePages` of `/proc/self/smaps_rollup`, in KiB (0 where unknown).
fn huge_kib() -> u64 {
    kib_in("/proc/self/smaps_rollup", "AnonHugePages:")
}

/// The peak resident memory (`VmHWM` of `/proc/self/status`), in KiB (0 where unknown).
fn peak_kib() -> u64 {
    kib_in("/proc/self/status", "VmHWM:")
}

/// The value of the line `<field> <n> kB` in the file at `path`, in KiB (0 where unknown).
fn kib_in(path: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The process's minor page faults and CPU seconds so far (0 where unknown), from
/// `/proc/self/stat`: fields 10 (`minflt`), 14 and 15 (`utime`, `stime`, in ticks of 1/100 s,
/// the value Linux reports to user space on every architecture it runs on), counted after the
/// command name's closing parenthesis, which may itself hold spaces.
fn counters() -> (u64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    (field(10), (field(14) + field(15)) as f64 / 100.0)
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

    #[test]
    fn spinning_counts_cpu_time() {
        let mut phases = Phases::start();
        let started = Instant::now();
        let mut x = 1u64;
        while started.elapsed().as_millis() < 300 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        phases.mark("spin");
        let cpu = phases.done[0].cpu;
        // 0.3 s of wall spent computing on one thread: some of it is counted, never more
        // than the wall time on each of a few cores.
        assert!(cpu >= 0.05, "cpu time {cpu}");
        assert!(cpu <= 0.3 * 8.0 + 0.05, "cpu time {cpu}");
        assert!(
            phases.describe().contains("spin 0."),
            "{}",
            phases.describe()
        );
    }
}
