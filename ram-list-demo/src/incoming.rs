//! `ram-list incoming URI`: the destination of a live migration from a real QEMU.

use std::io::{self, BufReader, Write};
use std::time::Duration;

use ram_list::migration::{
    receive, runstate, IncomingEvent, IncomingOptions, IncomingReport, LoadError, LoadErrorKind,
    LoadStats,
};
use ram_list::stream::{SectionKind, StreamErrorKind, MAX_DEVICE_STATE};
use ram_list::RamList;
use rcu_core::{Domain, Memb};

use crate::blocks::{dump_all, extract, print_table};
use crate::cli::IncomingArgs;
use crate::error::{DemoError, Hint};
use crate::inspect::{limit_hint, machine_line};
use crate::uri::{Listener, MigrationUri};

const MIB: u64 = 1 << 20;

/// Listen, receive one migration, print what came, write the blocks asked for.
pub fn run(args: &IncomingArgs) -> Result<(), DemoError> {
    let uri: MigrationUri = args.uri.parse()?;
    let listener =
        Listener::bind(&uri).map_err(|e| Hint::new(format!("cannot listen on {uri}"), e))?;
    println!("ram-list incoming: listening on {}", listener.local_uri());
    let idle = (args.idle_timeout_s > 0).then(|| Duration::from_secs(args.idle_timeout_s));
    let mut conn = listener
        .accept(idle)
        .map_err(|e| Hint::new(format!("cannot accept a source on {uri}"), e))?;
    drop(listener);
    println!("source: {}", conn.peer);
    let domain: Domain<Memb> = Domain::new();
    let reader = domain.register();
    let list = RamList::new_in(&domain);
    let opts = IncomingOptions {
        machine: args.machine.clone(),
        max_device_state: MAX_DEVICE_STATE,
        ..IncomingOptions::mirror(args.max_guest_mib.saturating_mul(MIB))
    };
    let mut progress = Progress::default();
    let res = receive(
        &list,
        BufReader::with_capacity(1 << 20, &mut conn.reader),
        conn.return_path.as_deref_mut().map(|w| w as &mut dyn Write),
        &opts,
        &reader,
        |e| progress.event(e),
    );
    let rep = res.map_err(|e| explain(e, &conn.peer, args))?;
    summary(&rep);
    if let (Some(name), Some(out)) = (&args.extract, &args.out) {
        let len = extract(&list, &reader, name, out, "the migration")?;
        println!("wrote {len} bytes of \"{name}\" to {}", out.display());
    }
    if let Some(dir) = &args.dump {
        for (idstr, path, len) in dump_all(&list, &reader, dir)? {
            println!("wrote {len} bytes of \"{idstr}\" to {}", path.display());
        }
    }
    Ok(())
}

/// What happened, in front of the error: the source went away, went silent, or sent
/// something this destination refuses.
fn explain(e: LoadError, peer: &str, args: &IncomingArgs) -> DemoError {
    let at = e.offset();
    let io_kind = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    let hint = match (e.kind(), io_kind) {
        (LoadErrorKind::Stream(StreamErrorKind::Truncated { .. }), _)
        | (
            _,
            Some(
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted,
            ),
        ) => format!(
            "the source ({peer}) closed the connection at byte {at}, before the end of the migration (killed, or it failed)"
        ),
        (_, Some(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)) => format!(
            "the source ({peer}) sent nothing for {} s (--idle-timeout-s) at byte {at}",
            args.idle_timeout_s
        ),
        (LoadErrorKind::MachineMismatch { .. }, _) => {
            format!("the source ({peer}) is another machine type than --machine")
        }
        (LoadErrorKind::OverMemoryLimit { .. }, _) => return limit_hint(e, args.max_guest_mib),
        _ => format!("the stream from {peer} cannot be loaded"),
    };
    Box::new(Hint::new(hint, e))
}

/// Prints the migration as it arrives: the source, the setup, each new pass, the end.
#[derive(Default)]
struct Progress {
    passes: u64,
    pages: u64,
}

impl Progress {
    fn event(&mut self, e: IncomingEvent<'_>) {
        match e {
            IncomingEvent::Configuration(c) => println!("source {}", machine_line(c)),
            IncomingEvent::ReturnPath => {
                println!("return path open: the source waits for our SHUT")
            }
            IncomingEvent::RamSection {
                kind,
                offset,
                stats,
            } => self.section(kind, offset, stats),
            _ => {}
        }
    }

    fn section(&mut self, kind: SectionKind, offset: u64, stats: &LoadStats) {
        let pages = stats.data_pages + stats.zero_pages;
        match kind {
            SectionKind::Start => {
                let total: u64 = stats.blocks.iter().map(|b| b.length).sum();
                let names: Vec<String> = stats
                    .blocks
                    .iter()
                    .map(|b| format!("{} ({})", b.idstr, size(b.length)))
                    .collect();
                println!(
                    "setup: {} block(s), {}: {}",
                    stats.blocks.len(),
                    size(total),
                    names.join(", ")
                );
            }
            SectionKind::End => println!(
                "completion: {} pages in the final section, {:.1} MiB received in all",
                pages - self.pages,
                offset as f64 / MIB as f64
            ),
            _ if stats.passes > self.passes => println!(
                "pass {}: {} pages received so far ({} data, {} zero), {:.1} MiB",
                stats.passes,
                pages,
                stats.data_pages,
                stats.zero_pages,
                offset as f64 / MIB as f64
            ),
            _ => {}
        }
        self.passes = stats.passes;
        self.pages = pages;
    }
}

/// `bytes` as MiB or KiB.
fn size(bytes: u64) -> String {
    if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

fn summary(rep: &IncomingReport) {
    let s = &rep.stats;
    let secs = rep.elapsed.as_secs_f64().max(1e-6);
    println!("---------------------------------------------------------------- summary");
    print_table(s);
    println!(
        "blocks:      {} ({})",
        s.blocks.len(),
        size(s.blocks.iter().map(|b| b.length).sum())
    );
    println!(
        "pages:       {} data + {} zero = {}",
        s.data_pages,
        s.zero_pages,
        s.data_pages + s.zero_pages
    );
    println!(
        "passes:      {} ({} RAM sections: setup, {} iterations, completion)",
        s.passes,
        s.sections,
        s.sections.saturating_sub(2)
    );
    println!(
        "bytes:       {} in {:.2?} ({:.1} MiB/s)",
        rep.bytes,
        rep.elapsed,
        rep.bytes as f64 / MIB as f64 / secs
    );
    let devices: Vec<String> = rep
        .devices
        .iter()
        .map(|d| format!("{}[{}]", d.header.idstr, d.header.instance_id))
        .collect();
    let device_bytes: usize = rep.devices.iter().map(|d| d.body.len()).sum();
    println!(
        "devices:     {} section(s) skipped, not modelled ({device_bytes} bytes){}{}",
        devices.len(),
        if devices.is_empty() { "" } else { ": " },
        devices.join(", ")
    );
    if let Some(state) = runstate(&rep.devices) {
        println!("run state:   the source was {state}");
    }
    println!(
        "vmdesc:      {}; return path: {}",
        rep.vmdesc
            .as_ref()
            .map_or("none".to_owned(), |d| format!("{} bytes", d.len())),
        if rep.return_path {
            "open, SHUT sent"
        } else {
            "not used"
        }
    );
}
