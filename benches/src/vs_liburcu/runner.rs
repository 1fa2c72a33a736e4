//! The interleaved runs: for each run, each flavor and each measurement, the C twin and
//! the Rust twin back to back (C first on odd runs, Rust first on even runs, so that
//! neither always runs on a machine the other just warmed or heated).

use super::harness::{self, Settings};
use super::ours::Ours;
use super::results::{FlavorName, Lang, Results, Row};
use super::twin::MakeTwin;

/// The twins of one flavor.
#[derive(Clone, Copy)]
pub struct Pair {
    /// The flavor.
    pub flavor: FlavorName,
    /// Ours (rcu-core).
    pub ours: MakeTwin,
    /// liburcu's, when it was found at build time.
    pub liburcu: Option<MakeTwin>,
}

/// The liburcu version the C twin was built against; `None` when liburcu was not found
/// at build time (then only our twin runs).
pub fn liburcu_version() -> Option<&'static str> {
    Some(env!("BENCHES_LIBURCU")).filter(|v| !v.is_empty())
}

/// The twins of every flavor, in column order.
pub fn pairs() -> Vec<Pair> {
    FlavorName::ALL
        .into_iter()
        .map(|flavor| Pair {
            flavor,
            ours: match flavor {
                FlavorName::Memb => Ours::<rcu_core::Memb>::make,
                FlavorName::Qsbr => Ours::<rcu_core::Qsbr>::make,
                FlavorName::Mb => Ours::<rcu_core::Mb>::make,
            },
            liburcu: liburcu_twin(flavor),
        })
        .collect()
}

#[cfg(have_liburcu)]
fn liburcu_twin(flavor: FlavorName) -> Option<MakeTwin> {
    use super::liburcu::Liburcu;
    Some(match flavor {
        FlavorName::Memb => Liburcu::memb,
        FlavorName::Qsbr => Liburcu::qsbr,
        FlavorName::Mb => Liburcu::mb,
    })
}

#[cfg(not(have_liburcu))]
fn liburcu_twin(_flavor: FlavorName) -> Option<MakeTwin> {
    None
}

/// Run every applicable measurement of every pair `runs` times, interleaved; `progress` is
/// told what starts (for a line on stderr).
pub fn run(
    pairs: &[Pair],
    settings: &Settings,
    runs: usize,
    mut progress: impl FnMut(&str),
) -> Results {
    let mut results = Results::default();
    for run in 1..=runs {
        for pair in pairs {
            progress(&format!("run {run}/{runs}: {}", pair.flavor.name()));
            for row in Row::ALL {
                if !row.is_measured() || !row.applies_to(pair.flavor) {
                    continue;
                }
                for (lang, make) in order(run, pair) {
                    let out = harness::measure(row, make, settings);
                    for (r, v) in out.values {
                        results.add(r, pair.flavor, lang, v);
                    }
                    if matches!(row, Row::SyncBusyReader | Row::Updates1 | Row::Updates2) {
                        results.add(
                            Row::TooShortGracePeriods,
                            pair.flavor,
                            lang,
                            out.poisoned as f64,
                        );
                    }
                    results.problems.extend(out.problems.into_iter().map(|p| {
                        format!("run {run}, {} {}: {p}", pair.flavor.name(), lang.name())
                    }));
                }
            }
        }
    }
    results
}

/// The twins of `pair` in the order run `run` uses: liburcu first on odd runs.
fn order(run: usize, pair: &Pair) -> Vec<(Lang, MakeTwin)> {
    let mut v = vec![(Lang::Ours, pair.ours)];
    if let Some(c) = pair.liburcu {
        if run % 2 == 1 {
            v.insert(0, (Lang::Liburcu, c));
        } else {
            v.push((Lang::Liburcu, c));
        }
    }
    v
}
