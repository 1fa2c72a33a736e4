//! The `vs-liburcu` table (markdown) and its JSON form.

use serde_json::{json, Map, Value};

use super::results::{FlavorName, Kind, Lang, Results, Row, Stat};

/// Where and how the numbers were measured, printed above the table.
#[derive(Debug, Clone)]
pub struct Header {
    /// The machine line (CPU, cores, kernel, membarrier, load).
    pub machine: String,
    /// The commit the binary was built from (with "-dirty" for local changes).
    pub commit: String,
    /// When the run ended.
    pub date: String,
    /// The liburcu version, `None` when the C twin was not built.
    pub liburcu: Option<String>,
    /// Runs per cell.
    pub runs: usize,
    /// The settings, one line.
    pub settings: String,
    /// call_rcu's N.
    pub callbacks: u64,
}

/// A time in ns per operation, to three significant digits.
pub fn fmt_time(ns: f64) -> String {
    scaled(ns, "ns", &[(1e6, "ms"), (1e3, "µs")])
}

/// A rate per second, to three significant digits.
pub fn fmt_rate(per_s: f64) -> String {
    scaled(per_s, "/s", &[(1e6, "M/s"), (1e3, "k/s")])
}

/// `v` in the first of `units` (divisor, name) it reaches, else in `base`.
fn scaled(v: f64, base: &str, units: &[(f64, &str)]) -> String {
    let (div, unit) = units
        .iter()
        .copied()
        .find(|&(d, _)| v >= d)
        .unwrap_or((1.0, base));
    let x = v / div;
    let decimals = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.decimals$} {unit}")
}

fn fmt_value(kind: Kind, v: f64) -> String {
    match kind {
        Kind::Time => fmt_time(v),
        Kind::Throughput => fmt_rate(v),
        Kind::Count => format!("{v:.0}"),
    }
}

/// One cell: the median and the spread across runs, or the count's total.
fn fmt_cell(results: &Results, row: Row, flavor: FlavorName, lang: Lang, have: bool) -> String {
    if !have {
        return "(no liburcu)".into();
    }
    if row.kind() == Kind::Count {
        return results
            .total(row, flavor, lang)
            .map_or_else(|| "(missing)".into(), |t| format!("{t:.0}"));
    }
    match results.stat(row, flavor, lang) {
        Some(s) => format!(
            "{} ({:.0}%)",
            fmt_value(row.kind(), s.median),
            s.spread() * 100.0
        ),
        None => "(missing)".into(),
    }
}

fn fmt_ratio(results: &Results, row: Row, flavor: FlavorName) -> String {
    match (row.kind(), results.ratio(row, flavor)) {
        (Kind::Count, _) => "-".into(),
        (_, None) => "-".into(),
        (_, Some(r)) if r > 1.0 => format!("**{r:.2}**"),
        (_, Some(r)) => format!("{r:.2}"),
    }
}

/// The markdown report: the header lines and one table of medians, spreads and ratios.
pub fn markdown(results: &Results, h: &Header) -> String {
    let have = h.liburcu.is_some();
    let mut s = String::new();
    s.push_str(&format!(
        "rcu-core against liburcu {}: the same work in both languages \
         (`cargo run --release -p benches --bin vs-liburcu`)\n",
        h.liburcu
            .as_deref()
            .unwrap_or("(not found at build time: ours only)")
    ));
    s.push_str(&format!("machine: {}\n", h.machine));
    s.push_str(&format!(
        "commit {}, {}; medians of {} interleaved run(s); (x%) = spread across runs, \
         (max - min) / median\n",
        h.commit, h.date, h.runs
    ));
    s.push_str(&format!("settings: {}\n", h.settings));
    s.push_str(
        "ratio: ours/liburcu for times, liburcu/ours for throughputs; below 1.0 = ours \
         better (bold: liburcu better)\n\n",
    );
    s.push_str("| row (same work) |");
    for f in FlavorName::ALL {
        let n = f.name();
        s.push_str(&format!(" {n} ours | {n} liburcu | {n} ratio |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|---|---:|".repeat(FlavorName::ALL.len()));
    s.push('\n');
    for row in Row::ALL {
        let label = row
            .label()
            .replace(" N ", &format!(" {} ", fmt_count(h.callbacks)));
        s.push_str(&format!("| {label} |"));
        for f in FlavorName::ALL {
            if !row.applies_to(f) {
                let na = row.not_applicable_note();
                s.push_str(&format!(" {na} | {na} | n/a |"));
                continue;
            }
            s.push_str(&format!(
                " {} | {} | {} |",
                fmt_cell(results, row, f, Lang::Ours, true),
                fmt_cell(results, row, f, Lang::Liburcu, have),
                fmt_ratio(results, row, f)
            ));
        }
        s.push('\n');
    }
    s
}

/// 1000000 as "1M", 20000 as "20k", others as they are.
fn fmt_count(n: u64) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n % 1_000 == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn stat_json(s: Option<Stat>, samples: &[f64]) -> Value {
    match s {
        Some(s) => json!({
            "median": s.median, "min": s.min, "max": s.max, "spread": s.spread(),
            "samples": samples,
        }),
        None => Value::Null,
    }
}

/// The same report as JSON: the header, and per row and flavor each twin's statistics and
/// the ratio (null where missing or not applicable).
pub fn json(results: &Results, h: &Header) -> Value {
    let rows: Vec<Value> = Row::ALL
        .iter()
        .map(|&row| {
            let mut cells = Map::new();
            for f in FlavorName::ALL {
                let cell = if row.applies_to(f) {
                    let side =
                        |lang| stat_json(results.stat(row, f, lang), results.samples(row, f, lang));
                    json!({
                        "ours": side(Lang::Ours),
                        "liburcu": side(Lang::Liburcu),
                        "ratio": results.ratio(row, f),
                    })
                } else {
                    json!({ "not_applicable": row.not_applicable_note() })
                };
                cells.insert(f.name().into(), cell);
            }
            json!({
                "row": row.key(),
                "label": row.label(),
                "kind": match row.kind() {
                    Kind::Time => "ns per operation (lower is better)",
                    Kind::Throughput => "per second (higher is better)",
                    Kind::Count => "count summed over runs (must be 0)",
                },
                "cells": cells,
            })
        })
        .collect();
    json!({
        "machine": h.machine,
        "commit": h.commit,
        "date": h.date,
        "liburcu": h.liburcu,
        "runs": h.runs,
        "settings": h.settings,
        "callbacks": h.callbacks,
        "rows": rows,
        "too_short_grace_periods": results.too_short_grace_periods(),
        "problems": results.problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(liburcu: bool) -> Header {
        Header {
            machine: "2 CPUs".into(),
            commit: "abc1234".into(),
            date: "2026-01-01 00:00:00 UTC".into(),
            liburcu: liburcu.then(|| "0.13.2".into()),
            runs: 3,
            settings: "tiny".into(),
            callbacks: 1_000_000,
        }
    }

    fn sample() -> Results {
        let mut r = Results::default();
        for (o, c) in [(2.0, 4.0), (2.2, 4.4), (1.8, 3.6)] {
            r.add(Row::ReadReader, FlavorName::Memb, Lang::Ours, o);
            r.add(Row::ReadReader, FlavorName::Memb, Lang::Liburcu, c);
        }
        r.add(Row::CallRcu, FlavorName::Qsbr, Lang::Ours, 1e6);
        r.add(Row::CallRcu, FlavorName::Qsbr, Lang::Liburcu, 3e6);
        r
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_time(0.374), "0.37 ns");
        assert_eq!(fmt_time(2.345), "2.35 ns");
        assert_eq!(fmt_time(40.71), "40.7 ns");
        assert_eq!(fmt_time(812.0), "812 ns");
        assert_eq!(fmt_time(52_300.0), "52.3 µs");
        assert_eq!(fmt_time(3.1e6), "3.10 ms");
        assert_eq!(fmt_rate(13_000_000.0), "13.0 M/s");
        assert_eq!(fmt_rate(16_000.0), "16.0 k/s");
        assert_eq!(fmt_rate(250.0), "250 /s");
        assert_eq!(fmt_count(1_000_000), "1M");
        assert_eq!(fmt_count(20_000), "20k");
        assert_eq!(fmt_count(1234), "1234");
    }

    #[test]
    fn table_has_medians_spreads_ratios_and_marks() {
        let t = markdown(&sample(), &header(true));
        let line = |prefix: &str| {
            t.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no line {prefix:?} in\n{t}"))
                .to_owned()
        };
        // memb read: ours 2.00 ns (spread 0.4/2.0 = 20%), liburcu 4.00 ns (20%), ratio 0.50.
        let read = line("| read lock");
        assert!(
            read.contains("| 2.00 ns (20%) | 4.00 ns (20%) | 0.50 |"),
            "{read}"
        );
        // qsbr call_rcu: liburcu 3x ours' throughput -> ratio 3.00, bold (liburcu better).
        let call = line("| call_rcu × 1M + barrier");
        assert!(
            call.contains("| 1.00 M/s (0%) | 3.00 M/s (0%) | **3.00** |"),
            "{call}"
        );
        // Rows without samples say so instead of disappearing.
        assert!(line("| synchronize, no registered").contains("(missing)"));
        // mb has no free functions: said in its cells.
        assert!(line("| the same through").contains("n/a (no default mb domain)"));
        assert_eq!(
            t.lines().filter(|l| l.starts_with("| ")).count(),
            Row::ALL.len() + 1
        );
    }

    #[test]
    fn table_without_liburcu_says_so() {
        let t = markdown(&sample(), &header(false));
        assert!(t.contains("not found at build time"));
        assert!(t.contains("(no liburcu)"));
    }

    #[test]
    fn json_has_every_row_and_the_ratios() {
        let v = json(&sample(), &header(true));
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), Row::ALL.len());
        assert_eq!(rows[0]["row"], "read_reader");
        assert_eq!(rows[0]["cells"]["memb"]["ratio"], 0.5);
        assert_eq!(rows[0]["cells"]["memb"]["ours"]["median"], 2.0);
        assert!(rows[0]["cells"]["qsbr"]["ours"].is_null());
        assert!(rows[1]["cells"]["mb"]["not_applicable"].is_string());
        assert_eq!(v["too_short_grace_periods"], 0.0);
    }
}
