//! The samples of a `vs-liburcu` run and their statistics: per row, flavor and twin, one
//! sample per run; medians, spread across runs and the ratio of the medians.

use std::collections::BTreeMap;

/// The rows of the table, in print order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Row {
    /// Read lock + dereference + field read + unlock through a `Reader` (C: liburcu's API).
    ReadReader,
    /// The same through the C-named free functions (C: the same API again).
    ReadFree,
    /// The same loop with a plain acquire load and no RCU.
    PlainLoad,
    /// `synchronize` with no registered reader.
    SyncNoReader,
    /// `synchronize` with one idle registered reader (QSBR: offline).
    SyncIdleReader,
    /// `synchronize` with one reader in a tight read loop.
    SyncBusyReader,
    /// Updates/s of a swap + synchronize + free updater, 1 busy reader.
    Updates1,
    /// The same with 2 busy readers.
    Updates2,
    /// Reads/s of each busy reader, 1 reader + the updater.
    Reads1,
    /// The same, 2 readers + the updater.
    Reads2,
    /// call_rcu × N + barrier, callbacks/s.
    CallRcu,
    /// Reads that saw a poisoned (freed) value: too-short grace periods, summed over runs.
    TooShortGracePeriods,
}

/// How a row's numbers compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nanoseconds per operation: lower is better; ratio ours/liburcu.
    Time,
    /// Operations per second: higher is better; ratio liburcu/ours.
    Throughput,
    /// A count that must be 0, summed over runs; no ratio.
    Count,
}

impl Row {
    /// Every row, in print order.
    pub const ALL: [Row; 12] = [
        Row::ReadReader,
        Row::ReadFree,
        Row::PlainLoad,
        Row::SyncNoReader,
        Row::SyncIdleReader,
        Row::SyncBusyReader,
        Row::Updates1,
        Row::Updates2,
        Row::Reads1,
        Row::Reads2,
        Row::CallRcu,
        Row::TooShortGracePeriods,
    ];

    /// How the row compares.
    pub fn kind(self) -> Kind {
        match self {
            Row::ReadReader
            | Row::ReadFree
            | Row::PlainLoad
            | Row::SyncNoReader
            | Row::SyncIdleReader
            | Row::SyncBusyReader => Kind::Time,
            Row::Updates1 | Row::Updates2 | Row::Reads1 | Row::Reads2 | Row::CallRcu => {
                Kind::Throughput
            }
            Row::TooShortGracePeriods => Kind::Count,
        }
    }

    /// A stable key for JSON.
    pub fn key(self) -> &'static str {
        match self {
            Row::ReadReader => "read_reader",
            Row::ReadFree => "read_free_fns",
            Row::PlainLoad => "plain_load",
            Row::SyncNoReader => "sync_no_reader",
            Row::SyncIdleReader => "sync_idle_reader",
            Row::SyncBusyReader => "sync_busy_reader",
            Row::Updates1 => "updates_1_reader",
            Row::Updates2 => "updates_2_readers",
            Row::Reads1 => "reads_per_reader_1",
            Row::Reads2 => "reads_per_reader_2",
            Row::CallRcu => "call_rcu_barrier",
            Row::TooShortGracePeriods => "too_short_grace_periods",
        }
    }

    /// The label printed in the table.
    pub fn label(self) -> &'static str {
        match self {
            Row::ReadReader => "read lock + dereference + unlock through a `Reader` (time)",
            Row::ReadFree => "the same through the C-named free functions (time)",
            Row::PlainLoad => "plain load + field read, no RCU (baseline, time)",
            Row::SyncNoReader => "synchronize, no registered reader (time)",
            Row::SyncIdleReader => "synchronize, one idle registered reader (qsbr: offline)",
            Row::SyncBusyReader => "synchronize, one busy reader",
            Row::Updates1 => "updates/s (swap + synchronize + free), 1 busy reader",
            Row::Updates2 => "same, 2 busy readers",
            Row::Reads1 => "reads/s per busy reader, 1 reader + updater",
            Row::Reads2 => "same, 2 readers + updater",
            Row::CallRcu => "call_rcu × N + barrier (callbacks/s)",
            Row::TooShortGracePeriods => "too-short grace periods (poisoned reads; must be 0)",
        }
    }

    /// Whether the row names a measurement of its own (the others are by-products: the
    /// updater rows' readers, and the busy readers' poisoned reads).
    pub fn is_measured(self) -> bool {
        !matches!(self, Row::Reads1 | Row::Reads2 | Row::TooShortGracePeriods)
    }

    /// Whether the row exists for `flavor` (mb has no default domain, hence no free
    /// functions).
    pub fn applies_to(self, flavor: FlavorName) -> bool {
        !(self == Row::ReadFree && flavor == FlavorName::Mb)
    }

    /// Why the row does not exist for `flavor`, printed in its cells.
    pub fn not_applicable_note(self) -> &'static str {
        "n/a (no default mb domain)"
    }
}

/// A flavor, in the order of the table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlavorName {
    /// liburcu's urcu-memb and our `Memb`.
    Memb,
    /// urcu-qsbr and `Qsbr`.
    Qsbr,
    /// urcu-mb and `Mb`.
    Mb,
}

impl FlavorName {
    /// Every flavor, in column order.
    pub const ALL: [FlavorName; 3] = [FlavorName::Memb, FlavorName::Qsbr, FlavorName::Mb];

    /// "memb", "qsbr", "mb".
    pub fn name(self) -> &'static str {
        match self {
            FlavorName::Memb => "memb",
            FlavorName::Qsbr => "qsbr",
            FlavorName::Mb => "mb",
        }
    }
}

/// Which twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lang {
    /// rcu-core (the Rust twin).
    Ours,
    /// liburcu (the C twin).
    Liburcu,
}

impl Lang {
    /// "ours", "liburcu".
    pub fn name(self) -> &'static str {
        match self {
            Lang::Ours => "ours",
            Lang::Liburcu => "liburcu",
        }
    }
}

/// Summary of one cell's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// How many samples.
    pub n: usize,
}

impl Stat {
    /// The statistics of `samples`; `None` if there are none.
    pub fn of(samples: &[f64]) -> Option<Stat> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: s[0],
            max: s[n - 1],
            n,
        })
    }

    /// (max − min) / median: the spread across runs, as a fraction (0 for one sample or
    /// a zero median).
    pub fn spread(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median.abs()
        }
    }
}

/// Ours against liburcu, below 1.0 meaning ours is better: ours/liburcu for times,
/// liburcu/ours for throughputs; `None` for counts or a zero denominator.
pub fn ratio(kind: Kind, ours: f64, liburcu: f64) -> Option<f64> {
    let (num, den) = match kind {
        Kind::Time => (ours, liburcu),
        Kind::Throughput => (liburcu, ours),
        Kind::Count => return None,
    };
    (den > 0.0 && num.is_finite()).then(|| num / den)
}

/// Every sample of a run, and the problems seen on the way.
#[derive(Debug, Default, Clone)]
pub struct Results {
    samples: BTreeMap<(Row, FlavorName, Lang), Vec<f64>>,
    /// What went wrong (a kernel that did no work, a callback count that does not add up,
    /// a worker that never arrived), one line each.
    pub problems: Vec<String>,
}

impl Results {
    /// Record one sample.
    pub fn add(&mut self, row: Row, flavor: FlavorName, lang: Lang, value: f64) {
        self.samples
            .entry((row, flavor, lang))
            .or_default()
            .push(value);
    }

    /// The samples of a cell (empty if none).
    pub fn samples(&self, row: Row, flavor: FlavorName, lang: Lang) -> &[f64] {
        self.samples
            .get(&(row, flavor, lang))
            .map_or(&[], Vec::as_slice)
    }

    /// The statistics of a cell.
    pub fn stat(&self, row: Row, flavor: FlavorName, lang: Lang) -> Option<Stat> {
        Stat::of(self.samples(row, flavor, lang))
    }

    /// A count row's total over runs.
    pub fn total(&self, row: Row, flavor: FlavorName, lang: Lang) -> Option<f64> {
        let s = self.samples(row, flavor, lang);
        (!s.is_empty()).then(|| s.iter().sum())
    }

    /// The ratio of the medians (see [`ratio`]).
    pub fn ratio(&self, row: Row, flavor: FlavorName) -> Option<f64> {
        let ours = self.stat(row, flavor, Lang::Ours)?;
        let theirs = self.stat(row, flavor, Lang::Liburcu)?;
        ratio(row.kind(), ours.median, theirs.median)
    }

    /// Too-short grace periods seen in total, both twins.
    pub fn too_short_grace_periods(&self) -> f64 {
        FlavorName::ALL
            .iter()
            .flat_map(|&f| [Lang::Ours, Lang::Liburcu].map(|l| (f, l)))
            .filter_map(|(f, l)| self.total(Row::TooShortGracePeriods, f, l))
            .sum()
    }

    /// Cells that should hold a finite, non-negative number and do not (every applicable
    /// row, every flavor, ours and, if `with_liburcu`, liburcu's), one line each.
    pub fn missing(&self, with_liburcu: bool) -> Vec<String> {
        let langs: &[Lang] = if with_liburcu {
            &[Lang::Ours, Lang::Liburcu]
        } else {
            &[Lang::Ours]
        };
        let mut out = Vec::new();
        for row in Row::ALL {
            for flavor in FlavorName::ALL.into_iter().filter(|&f| row.applies_to(f)) {
                for &lang in langs {
                    let s = self.samples(row, flavor, lang);
                    let bad = s.is_empty()
                        || s.iter().any(|v| !v.is_finite() || *v < 0.0)
                        || (row.kind() != Kind::Count && s.contains(&0.0));
                    if bad {
                        out.push(format!(
                            "{} / {} / {}: no number ({s:?})",
                            row.key(),
                            flavor.name(),
                            lang.name()
                        ));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_and_unsorted() {
        let s = Stat::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (3.0, 1.0, 5.0, 3));
        let s = Stat::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Stat::of(&[]).is_none());
    }

    #[test]
    fn spread_is_range_over_median() {
        let s = Stat::of(&[9.0, 10.0, 11.0]).unwrap();
        assert!((s.spread() - 0.2).abs() < 1e-12);
        assert_eq!(Stat::of(&[7.0]).unwrap().spread(), 0.0);
        assert_eq!(Stat::of(&[0.0, 0.0]).unwrap().spread(), 0.0);
    }

    #[test]
    fn ratio_below_one_means_ours_better() {
        // Times: ours 2 ns, liburcu 4 ns -> 0.5 (ours better).
        assert_eq!(ratio(Kind::Time, 2.0, 4.0), Some(0.5));
        // Throughputs: ours 4 M/s, liburcu 2 M/s -> 0.5 (ours better).
        assert_eq!(ratio(Kind::Throughput, 4.0, 2.0), Some(0.5));
        assert_eq!(ratio(Kind::Throughput, 1.0, 3.0), Some(3.0));
        assert_eq!(ratio(Kind::Count, 1.0, 1.0), None);
        assert_eq!(ratio(Kind::Time, 1.0, 0.0), None);
    }

    #[test]
    fn results_medians_ratios_and_totals() {
        let mut r = Results::default();
        for (o, c) in [(3.0, 2.0), (1.0, 4.0), (2.0, 8.0)] {
            r.add(Row::ReadReader, FlavorName::Memb, Lang::Ours, o);
            r.add(Row::ReadReader, FlavorName::Memb, Lang::Liburcu, c);
        }
        assert_eq!(
            r.stat(Row::ReadReader, FlavorName::Memb, Lang::Ours)
                .unwrap()
                .median,
            2.0
        );
        assert_eq!(r.ratio(Row::ReadReader, FlavorName::Memb), Some(0.5));
        assert_eq!(r.ratio(Row::ReadReader, FlavorName::Qsbr), None);
        r.add(Row::TooShortGracePeriods, FlavorName::Mb, Lang::Ours, 2.0);
        r.add(Row::TooShortGracePeriods, FlavorName::Mb, Lang::Ours, 1.0);
        r.add(
            Row::TooShortGracePeriods,
            FlavorName::Qsbr,
            Lang::Liburcu,
            4.0,
        );
        assert_eq!(
            r.total(Row::TooShortGracePeriods, FlavorName::Mb, Lang::Ours),
            Some(3.0)
        );
        assert_eq!(r.too_short_grace_periods(), 7.0);
    }

    fn complete(with_liburcu: bool) -> Results {
        let mut r = Results::default();
        for row in Row::ALL {
            for f in FlavorName::ALL.into_iter().filter(|&f| row.applies_to(f)) {
                let v = if row.kind() == Kind::Count { 0.0 } else { 1.5 };
                r.add(row, f, Lang::Ours, v);
                if with_liburcu {
                    r.add(row, f, Lang::Liburcu, v);
                }
            }
        }
        r
    }

    #[test]
    fn missing_names_every_empty_or_bad_cell() {
        assert!(complete(true).missing(true).is_empty());
        assert!(complete(false).missing(false).is_empty());
        // Without liburcu's samples, asking for them names every applicable cell.
        let applicable = Row::ALL
            .iter()
            .map(|r| FlavorName::ALL.iter().filter(|&&f| r.applies_to(f)).count())
            .sum::<usize>();
        assert_eq!(complete(false).missing(true).len(), applicable);
        let mut r = complete(true);
        r.add(Row::SyncIdleReader, FlavorName::Qsbr, Lang::Ours, f64::NAN);
        r.add(Row::CallRcu, FlavorName::Mb, Lang::Liburcu, 0.0);
        let m = r.missing(true);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("sync_idle_reader / qsbr / ours"), "{m:?}");
        assert!(m[1].starts_with("call_rcu_barrier / mb / liburcu"), "{m:?}");
    }

    #[test]
    fn mb_has_no_free_function_row_only() {
        let skipped: Vec<_> = Row::ALL
            .iter()
            .flat_map(|&r| FlavorName::ALL.map(|f| (r, f)))
            .filter(|&(r, f)| !r.applies_to(f))
            .collect();
        assert_eq!(skipped, [(Row::ReadFree, FlavorName::Mb)]);
    }
}
