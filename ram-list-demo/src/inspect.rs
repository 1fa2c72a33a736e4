//! `ram-list inspect FILE`: the RAM of a real QEMU migration file.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use ram_list::migration::{load, LoadErrorKind, LoadOptions, LoadReport};
use ram_list::{RamBlock, RamList};
use rcu_core::{Domain, Memb};

use crate::cli::InspectArgs;
use crate::error::{DemoError, FileError, Hint};

const MIB: u64 = 1 << 20;

/// List the blocks and page counts of the file's RAM section, or extract a block.
pub fn run(args: &InspectArgs) -> Result<(), DemoError> {
    let file = &args.file;
    let f = File::open(file).map_err(|e| FileError::new(file, e))?;
    let domain: Domain<Memb> = Domain::new();
    let reader = domain.register();
    // The destination learns the blocks from the stream's MEM_SIZE record.
    let ram = RamList::new_in(&domain);
    let limit = args.max_guest_mib.saturating_mul(MIB);
    let rep = load(
        &ram,
        BufReader::new(f),
        &LoadOptions::mirror(limit),
        &reader,
    )
    .map_err(|e| {
        let e: DemoError = if let LoadErrorKind::OverMemoryLimit { .. } = e.kind() {
            let hint = format!(
                "the guest's RAM exceeds --max-guest-mib {}",
                args.max_guest_mib
            );
            Box::new(Hint::new(hint, e))
        } else {
            Box::new(e)
        };
        FileError::new(file, e)
    })?;
    print_report(file, &rep);
    if let (Some(name), Some(out)) = (&args.extract, &args.out) {
        let g = reader.read_lock();
        let Some(block) = ram.block_by_name(name, &g) else {
            let names: Vec<String> = rep
                .stats
                .blocks
                .iter()
                .map(|b| format!("{:?}", b.idstr))
                .collect();
            return Err(format!(
                "no block \"{name}\" in {}; its blocks are {}",
                file.display(),
                names.join(", ")
            )
            .into());
        };
        extract(block, out).map_err(|e| FileError::new(out, e))?;
        println!(
            "wrote {} bytes of \"{name}\" to {}",
            block.used_length(),
            out.display()
        );
    }
    Ok(())
}

fn print_report(file: &Path, rep: &LoadReport) {
    if let Some(cfg) = &rep.configuration {
        println!(
            "{}: machine \"{}\"{}{}",
            file.display(),
            cfg.machine_type,
            if cfg.capabilities.is_empty() {
                String::new()
            } else {
                format!(", capabilities {:?}", cfg.capabilities)
            },
            match cfg.uuid {
                Some(u) => format!(
                    ", uuid {}",
                    u.iter().map(|b| format!("{b:02x}")).collect::<String>()
                ),
                None => String::new(),
            }
        );
    }
    println!(
        "RAM section: {} section bodies, {} MEM_SIZE record(s), ends at byte {}",
        rep.stats.sections, rep.stats.mem_size_records, rep.end_offset
    );
    let row = |name: &str, bytes: u64, data: u64, zero: u64| {
        println!("{name:<28} {bytes:>12} {data:>10} {zero:>10}");
    };
    println!(
        "{:<28} {:>12} {:>10} {:>10}",
        "block", "bytes", "data pages", "zero pages"
    );
    for b in &rep.stats.blocks {
        row(&b.idstr, b.length, b.data_pages, b.zero_pages);
    }
    row(
        "total",
        rep.stats.blocks.iter().map(|b| b.length).sum(),
        rep.stats.data_pages,
        rep.stats.zero_pages,
    );
}

/// Write the used bytes of `block` to the file `out`.
fn extract(block: &RamBlock, out: &Path) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(out)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < block.used_length() {
        let n = (block.used_length() - off).min(buf.len() as u64) as usize;
        block
            .read(off, &mut buf[..n])
            .map_err(std::io::Error::other)?;
        w.write_all(&buf[..n])?;
        off += n as u64;
    }
    w.flush()
}
