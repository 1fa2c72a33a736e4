//! The demo with a real QEMU as the destination (`--destination qemu`): QEMU `-M none`
//! with the demo's RAM size, started here with `-incoming tcp:127.0.0.1:0`, receives the
//! live migration (vCPUs dirtying memory during the passes), and its memory, read back
//! with QMP `pmemsave`, is compared with the source's byte for byte.

use std::time::{Duration, Instant};

use ram_list::migration::MACHINE_NONE;
use rcu_core::{Domain, Memb};

use super::MIB;
use crate::cli::DemoArgs;
use crate::error::{DemoError, Hint};
use crate::precopy::Policy;
use crate::qemu::Qemu;
use crate::source::{compare_with_file, migrate, summary, Params};

/// How long QEMU may take to load the stream once it has all of it.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Run the demo into QEMU.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    let started = Instant::now();
    let ram_bytes = args
        .ram_mib
        .checked_mul(MIB)
        .ok_or("--ram-mib does not fit in 64 bits of bytes")?;
    let ram = format!("{}M", args.ram_mib);
    let mut q = Qemu::start(&[
        "-M",
        MACHINE_NONE.name,
        "-m",
        &ram,
        "-nodefaults",
        "-S",
        "-incoming",
        "tcp:127.0.0.1:0",
    ])
    .map_err(|e| Hint::new("cannot start the destination QEMU".into(), e))?;
    let uri = q.incoming_uri()?;
    println!(
        "ram-list demo into QEMU: destination qemu-system-x86_64 -M none -m {ram} -S -incoming {uri} (pid {}); source: {} MiB, {} vCPUs",
        q.process().id(),
        args.ram_mib,
        args.vcpus
    );
    let params = Params {
        machine: MACHINE_NONE,
        ram_bytes,
        preload: Vec::new(),
        vcpus: args.vcpus,
        policy: Policy::new(args.budget_mib, args.downtime_ms, args.max_passes),
        seed: args.seed,
        timeout: Duration::from_secs(60),
    };
    let domain: Domain<Memb> = Domain::new();
    let sent = migrate(&domain, &params, &uri.parse()?).map_err(|e| {
        let why = q.stderr();
        if why.is_empty() {
            e
        } else {
            Box::new(Hint::new(format!("QEMU said: {}", why.trim_end()), e))
        }
    })?;
    let status = q.wait_incoming(LOAD_TIMEOUT)?;
    summary(&sent);
    let t_cmp = Instant::now();
    let file = q.dir().join("ram.bin");
    q.pmemsave(0, params.ram_bytes, &file)?;
    sent.with_ram(&params, |b| compare_with_file(b, &file))?;
    let cmp = t_cmp.elapsed();
    q.quit()?;
    println!(
        "destination matches source: QEMU ({status} after the migration) holds the guest's {} MiB byte for byte (pmemsave + compare {cmp:.1?}), the vCPUs' stop-time state included (total run {:.1?})",
        args.ram_mib,
        started.elapsed()
    );
    Ok(())
}
