//! `ram-list inspect FILE`: the RAM of a real QEMU migration file.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use ram_list::migration::{load, LoadOptions};
use ram_list::RamList;
use rcu_core::{Domain, Memb};

use super::DemoError;

/// List the blocks and page counts of `file`'s RAM section, or extract a block.
pub fn run(file: &Path, extract: Option<&str>, out: Option<&Path>) -> Result<(), DemoError> {
    let f = File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let domain: Domain<Memb> = Domain::new();
    let reader = domain.register();
    // The destination learns the blocks from the stream's MEM_SIZE record.
    let ram = RamList::new_in(&domain);
    let rep = load(
        &ram,
        BufReader::new(f),
        &LoadOptions::mirror(64 << 30),
        &reader,
    )?;
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
    println!(
        "{:<28} {:>12} {:>10} {:>10}",
        "block", "bytes", "data pages", "zero pages"
    );
    for b in &rep.stats.blocks {
        println!(
            "{:<28} {:>12} {:>10} {:>10}",
            b.idstr, b.length, b.data_pages, b.zero_pages
        );
    }
    println!(
        "{:<28} {:>12} {:>10} {:>10}",
        "total",
        rep.stats.blocks.iter().map(|b| b.length).sum::<u64>(),
        rep.stats.data_pages,
        rep.stats.zero_pages
    );
    if let (Some(name), Some(out)) = (extract, out) {
        let g = reader.read_lock();
        let block = ram
            .block_by_name(name, &g)
            .ok_or_else(|| format!("no block \"{name}\" in the stream"))?;
        let mut w =
            BufWriter::new(File::create(out).map_err(|e| format!("{}: {e}", out.display()))?);
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < block.used_length() {
            let n = (block.used_length() - off).min(buf.len() as u64) as usize;
            block.read(off, &mut buf[..n])?;
            w.write_all(&buf[..n])?;
            off += n as u64;
        }
        w.flush()?;
        println!(
            "wrote {} bytes of \"{name}\" to {}",
            block.used_length(),
            out.display()
        );
    }
    Ok(())
}
