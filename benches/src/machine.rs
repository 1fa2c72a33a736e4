//! Where and when a figure was measured: CPU model, core count, kernel, date.

use std::time::{SystemTime, UNIX_EPOCH};

/// A description of the machine the process runs on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `std::thread::available_parallelism()` (what `nproc` prints).
    pub cpus: usize,
    /// The first `model name` line of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// The 1-, 5- and 15-minute load averages when probed (`/proc/loadavg`): other work on
    /// a shared machine shows up here.
    pub load: String,
    /// Whether the kernel offers `membarrier(PRIVATE_EXPEDITED)`: without it the memb
    /// flavor runs its fence fallback, and its figures are mb's.
    pub membarrier: bool,
}

impl Machine {
    /// Probe the current machine.
    pub fn probe() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine {
            cpus,
            cpu_model,
            kernel,
            load,
            membarrier: rcu_core::membarrier::available(),
        }
    }

    /// One line: "2 CPUs, AMD EPYC, Linux 6.x, membarrier".
    pub fn summary(&self) -> String {
        format!(
            "{} CPUs, {}, Linux {}, {}",
            self.cpus,
            self.cpu_model,
            self.kernel,
            if self.membarrier {
                "membarrier"
            } else {
                "no membarrier (memb runs its fence fallback)"
            }
        )
    }

    /// The summary plus the load average at probe time.
    pub fn summary_with_load(&self) -> String {
        format!("{}, load average {}", self.summary(), self.load)
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
