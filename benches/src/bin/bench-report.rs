//! Turn the latest criterion results (and the scaling runner's JSON) into the markdown
//! tables of `BENCHMARKS.md`, with ratios against the best peer and the targets checked.
//!
//! ```text
//! cargo bench -p benches --bench read_side   # ... and the other benches
//! cargo run --release -p benches --bin scaling -- --out docs/bench
//! cargo run --release -p benches --bin bench-report -- --scaling docs/bench/scaling.json
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use benches::machine::{self, Machine};
use clap::Parser;
use serde_json::Value;

/// Markdown tables from target/criterion and the scaling runner's JSON.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// criterion's output directory.
    #[arg(long, default_value = "target/criterion")]
    criterion: PathBuf,
    /// The scaling runner's JSON (skipped if missing).
    #[arg(long, default_value = "target/scaling/scaling.json")]
    scaling: PathBuf,
    /// Only criterion groups whose name starts with one of these (comma-separated;
    /// default: every group found).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
}

#[derive(Debug, Clone)]
struct Est {
    group: String,
    id: String,
    /// Median time per iteration, ns, with its 95% confidence interval.
    median: f64,
    lo: f64,
    hi: f64,
    elements: Option<u64>,
    when: SystemTime,
}

#[derive(PartialEq, Eq)]
enum Role {
    Ours,
    Peer,
    Baseline,
}

fn role(id: &str) -> Role {
    let first = id.split(['_', '/']).next().unwrap_or("");
    match first {
        "memb" | "mb" | "qsbr" => Role::Ours,
        "baseline" => Role::Baseline,
        _ => Role::Peer,
    }
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn collect(dir: &Path, out: &mut Vec<Est>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            let (Some(b), Some(est)) = (
                read_json(&p.join("benchmark.json")),
                read_json(&p.join("estimates.json")),
            ) else {
                continue;
            };
            let group = b["group_id"].as_str().unwrap_or("").to_owned();
            let mut id = b["function_id"].as_str().unwrap_or("").to_owned();
            if let Some(v) = b["value_str"].as_str() {
                if id.is_empty() {
                    id = v.to_owned();
                } else {
                    id = format!("{id}/{v}");
                }
            }
            let m = &est["median"];
            let when = std::fs::metadata(p.join("estimates.json"))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push(Est {
                group,
                id,
                median: m["point_estimate"].as_f64().unwrap_or(f64::NAN),
                lo: m["confidence_interval"]["lower_bound"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                hi: m["confidence_interval"]["upper_bound"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                elements: b["throughput"]["Elements"].as_u64(),
                when,
            });
        } else if p.file_name().is_some_and(|n| n != "report" && n != "base") {
            collect(&p, out);
        }
    }
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.2} ns")
    }
}

fn group_table(group: &str, rows: &[&Est], extra: Option<&BTreeMap<String, f64>>) -> String {
    // Every row of the call_rcu groups is ours (no peer has call_rcu).
    let has_peers = !group.starts_with("call_rcu");
    let peers: Vec<&&Est> = rows
        .iter()
        .filter(|e| has_peers && role(&e.id) == Role::Peer)
        .collect();
    let best = peers
        .iter()
        .min_by(|a, b| a.median.total_cmp(&b.median))
        .copied();
    let base = rows.iter().find(|e| role(&e.id) == Role::Baseline);
    let thr = rows.iter().any(|e| e.elements.is_some());
    let mut s = String::from("| benchmark | median time | 95% CI |");
    if thr {
        s.push_str(" throughput |");
    }
    if base.is_some() {
        s.push_str(" vs baseline |");
    }
    if best.is_some() {
        s.push_str(" vs best peer |");
    }
    if extra.is_some() {
        s.push_str(" grace periods per call |");
    }
    s.push_str("\n|---|---:|---:|");
    let cols = usize::from(thr)
        + usize::from(base.is_some())
        + usize::from(best.is_some())
        + usize::from(extra.is_some());
    for _ in 0..cols {
        s.push_str("---:|");
    }
    s.push('\n');
    for e in rows {
        let name = if role(&e.id) == Role::Ours || !has_peers {
            format!("**{}**", e.id)
        } else {
            e.id.clone()
        };
        s.push_str(&format!(
            "| {name} | {} | {} – {} |",
            time(e.median),
            time(e.lo),
            time(e.hi)
        ));
        if thr {
            match e.elements {
                Some(n) => s.push_str(&format!(
                    " {} elem/s |",
                    benches::scaling::si(n as f64 / (e.median * 1e-9))
                )),
                None => s.push_str(" - |"),
            }
        }
        if let Some(b) = base {
            s.push_str(&format!(" {:.2}x |", e.median / b.median));
        }
        if let Some(b) = best {
            if std::ptr::eq(*b, *e) {
                s.push_str(" 1.00x (best peer) |");
            } else {
                s.push_str(&format!(" {:.2}x {} |", b.median / e.median, b.id));
            }
        }
        if let Some(x) = extra {
            match x.get(&e.id) {
                Some(v) => s.push_str(&format!(" {v:.3} |")),
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s
}

struct Check {
    what: String,
    target: String,
    measured: String,
    ok: Option<bool>,
}

fn check(out: &mut Vec<Check>, what: &str, target: &str, measured: Option<(String, bool)>) {
    out.push(match measured {
        Some((m, ok)) => Check {
            what: what.to_owned(),
            target: target.to_owned(),
            measured: m,
            ok: Some(ok),
        },
        None => Check {
            what: what.to_owned(),
            target: target.to_owned(),
            measured: "not measured".to_owned(),
            ok: None,
        },
    });
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut all = Vec::new();
    collect(&args.criterion, &mut all);
    if !args.groups.is_empty() {
        all.retain(|e| args.groups.iter().any(|g| e.group.starts_with(g.as_str())));
    }
    all.sort_by_key(|e| e.when);
    let machine = Machine::probe();
    println!(
        "Report generated {} on {} from `{}`{}.\n",
        machine::now_utc(),
        machine.summary_with_load(),
        args.criterion.display(),
        if args.scaling.exists() {
            format!(" and `{}`", args.scaling.display())
        } else {
            String::new()
        }
    );
    println!("Times are criterion's median per iteration; \"vs best peer\" is the best peer's median divided by this row's (above 1: faster than every peer); \"vs baseline\" is this row's median over the baseline's (a cost factor).\n");

    let mut groups: Vec<String> = Vec::new();
    for e in &all {
        if !groups.contains(&e.group) {
            groups.push(e.group.clone());
        }
    }
    let gp_per_call: BTreeMap<String, f64> = all
        .iter()
        .filter(|e| e.group == "synchronize_8_concurrent")
        .filter_map(|e| {
            let v = read_json(
                &args
                    .criterion
                    .join("synchronize_8_concurrent")
                    .join(&e.id)
                    .join("gp_per_call.json"),
            )?;
            Some((e.id.clone(), v["gp_per_call"].as_f64()?))
        })
        .collect();
    for g in &groups {
        let rows: Vec<&Est> = all.iter().filter(|e| &e.group == g).collect();
        println!("### {g}\n");
        let extra = (g == "synchronize_8_concurrent").then_some(&gp_per_call);
        println!("{}", group_table(g, &rows, extra));
    }

    // ----- targets -----
    let get = |g: &str, id: &str| {
        all.iter()
            .find(|e| e.group == g && e.id == id)
            .map(|e| e.median)
    };
    let mut checks = Vec::new();
    let rs = |id: &str| get("read_side", id);
    let memb = rs("memb");
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b / a);
    let x = |r: f64, min: f64| (format!("{r:.2}x"), r >= min);
    check(
        &mut checks,
        "read side: memb vs crossbeam-epoch pin+load",
        ">= 5x cheaper",
        ratio(memb, rs("crossbeam_epoch_pin_load")).map(|r| x(r, 5.0)),
    );
    check(
        &mut checks,
        "read side: memb vs std RwLock::read",
        ">= 10x cheaper",
        ratio(memb, rs("std_rwlock_read")).map(|r| x(r, 10.0)),
    );
    check(
        &mut checks,
        "read side: qsbr (no quiescent state) vs plain-load baseline",
        "<= 1.1x the baseline",
        ratio(rs("baseline_plain_load"), rs("qsbr")).map(|r| (format!("{r:.2}x"), r <= 1.1)),
    );
    checks.push(Check {
        what: "read side: qsbr with a quiescent state every 1024 reads vs baseline".to_owned(),
        target: "(information)".to_owned(),
        measured: ratio(rs("baseline_plain_load"), rs("qsbr_qs_every_1024"))
            .map_or("-".to_owned(), |r| format!("{r:.2}x")),
        ok: None,
    });
    check(
        &mut checks,
        "read side: memb",
        "<= 2.5 ns",
        memb.map(|t| (time(t), t <= 2.5)),
    );
    check(
        &mut checks,
        "read side: memb vs plain-load baseline",
        "<= 2x the baseline",
        ratio(rs("baseline_plain_load"), memb).map(|r| (format!("{r:.2}x"), r <= 2.0)),
    );
    check(
        &mut checks,
        "read side: mb",
        "<= 25 ns",
        rs("mb").map(|t| (time(t), t <= 25.0)),
    );
    // Elements per second of a throughput row.
    let rate = |g: &str, id: &str| {
        all.iter()
            .find(|e| e.group == g && e.id == id)
            .and_then(|e| Some(e.elements? as f64 / (e.median * 1e-9)))
    };
    check(
        &mut checks,
        "call_rcu: 1,000,000 closures + barrier, 1 producer (memb)",
        ">= 52M callbacks/s (4x liburcu's ~13M)",
        rate("call_rcu_memb", "closure/1_producers").map(|r| {
            (
                format!("{} callbacks/s", benches::scaling::si(r)),
                r >= 52e6,
            )
        }),
    );
    check(
        &mut checks,
        "call_rcu: 1,000,000 closures + barrier, 2 producers (memb)",
        ">= 52M callbacks/s (4x liburcu's ~13M)",
        rate("call_rcu_memb", "closure/2_producers").map(|r| {
            (
                format!("{} callbacks/s", benches::scaling::si(r)),
                r >= 52e6,
            )
        }),
    );
    for (id, what) in [
        ("closure_blocking_limit/1_producers", "1 producer"),
        ("closure_blocking_limit/2_producers", "2 producers"),
    ] {
        checks.push(Check {
            what: format!(
                "call_rcu: 1,000,000 closures + barrier, {what} (memb), opt-in blocking limit"
            ),
            target: "(information)".to_owned(),
            measured: rate("call_rcu_memb", id).map_or("-".to_owned(), |r| {
                format!("{} callbacks/s", benches::scaling::si(r))
            }),
            ok: None,
        });
    }
    for (f, limit) in [("memb", 2000.0), ("mb", 1000.0), ("qsbr", 1000.0)] {
        let what = if f == "qsbr" {
            "synchronize, 1 idle (offline) registered reader: qsbr".to_owned()
        } else {
            format!("synchronize, 1 idle registered reader: {f}")
        };
        check(
            &mut checks,
            &what,
            &format!("< {}", time(limit)),
            get("synchronize_idle_readers", &format!("{f}/1")).map(|t| (time(t), t < limit)),
        );
    }

    if let Some(sc) = read_json(&args.scaling) {
        let res: Vec<&Value> = sc["results"].as_array().into_iter().flatten().collect();
        let cell = |imp: &str, readers: u64, writer: &str| {
            res.iter().find(|r| {
                r["impl"] == imp && r["readers"].as_u64() == Some(readers) && r["writer"] == writer
            })
        };
        let per =
            |imp: &str, w: &str| cell(imp, 1, w).and_then(|r| r["reads_per_s_per_reader"].as_f64());
        check(
            &mut checks,
            "busy writer, 1 reader: memb per-reader reads/s vs crossbeam-epoch",
            ">= 5x",
            per("memb", "busy")
                .zip(per("crossbeam-epoch", "busy"))
                .map(|(a, b)| x(a / b, 5.0)),
        );
        check(
            &mut checks,
            "busy writer, 1 reader: memb per-reader reads/s vs std-rwlock",
            ">= 20x",
            per("memb", "busy")
                .zip(per("std-rwlock", "busy"))
                .map(|(a, b)| x(a / b, 20.0)),
        );
        for imp in ["memb", "mb", "qsbr", "crossbeam-epoch", "arc-swap", "seize"] {
            for readers in [1u64, 2] {
                if let Some(r) = cell(imp, readers, "busy") {
                    // Reported, not judged here: one run cannot show whether a peak is a
                    // bound; BENCHMARKS.md discusses it.
                    checks.push(Check {
                        what: format!(
                            "busy writer, {readers} reader(s): {imp} peak pending garbage"
                        ),
                        target: "bounded (reported)".to_owned(),
                        measured: r["peak_pending"]
                            .as_i64()
                            .map_or("-".to_owned(), |p| format!("{p} objects")),
                        ok: None,
                    });
                }
            }
        }
        let agg = |imp: &str, n: u64| cell(imp, n, "none").and_then(|r| r["reads_per_s"].as_f64());
        for (imp, min, scales) in [
            ("memb", 1.8, true),
            ("qsbr", 1.8, true),
            ("std-rwlock", 1.8, false),
            ("std-mutex", 1.8, false),
        ] {
            check(
                &mut checks,
                &format!("readers only: {imp} aggregate reads/s, 2 readers vs 1"),
                if scales {
                    ">= 1.8x"
                } else {
                    "does not scale (< 1.8x)"
                },
                agg(imp, 2).zip(agg(imp, 1)).map(|(a, b)| {
                    let r = a / b;
                    (format!("{r:.2}x"), if scales { r >= min } else { r < min })
                }),
            );
        }
    }

    println!("### Targets\n");
    println!("| what | target | measured | |\n|---|---|---:|---|");
    let mut missed = 0;
    for c in &checks {
        let mark = match c.ok {
            Some(true) => "met",
            Some(false) => {
                missed += 1;
                "**MISSED**"
            }
            None => "see text",
        };
        println!("| {} | {} | {} | {mark} |", c.what, c.target, c.measured);
    }
    eprintln!("{missed} target(s) missed");
    ExitCode::SUCCESS
}
