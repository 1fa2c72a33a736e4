//! `ram-list inspect FILE`: the RAM of a real QEMU migration file.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ram_list::migration::{load, LoadError, LoadErrorKind, LoadOptions, LoadReport};
use ram_list::stream::Configuration;
use ram_list::RamList;
use rcu_core::{Domain, Memb};

use crate::blocks::{extract, print_table};
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
    .map_err(|e| FileError::new(file, limit_hint(e, args.max_guest_mib)))?;
    print_report(file, &rep);
    if let (Some(name), Some(out)) = (&args.extract, &args.out) {
        let len = extract(&ram, &reader, name, out, &file.display().to_string())?;
        println!("wrote {len} bytes of \"{name}\" to {}", out.display());
    }
    Ok(())
}

/// `e`, explained when it is the `--max-guest-mib` limit.
pub fn limit_hint(e: LoadError, max_guest_mib: u64) -> DemoError {
    if let LoadErrorKind::OverMemoryLimit { .. } = e.kind() {
        let hint = format!("the guest's RAM exceeds --max-guest-mib {max_guest_mib}");
        Box::new(Hint::new(hint, e))
    } else {
        Box::new(e)
    }
}

/// The machine line of a stream's configuration record.
pub fn machine_line(cfg: &Configuration) -> String {
    format!(
        "machine \"{}\"{}{}",
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
    )
}

fn print_report(file: &Path, rep: &LoadReport) {
    if let Some(cfg) = &rep.configuration {
        println!("{}: {}", file.display(), machine_line(cfg));
    }
    println!(
        "RAM section: {} section bodies, {} MEM_SIZE record(s), ends at byte {}",
        rep.stats.sections, rep.stats.mem_size_records, rep.end_offset
    );
    print_table(&rep.stats);
}
