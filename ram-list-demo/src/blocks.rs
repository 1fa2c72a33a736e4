//! The blocks a destination received: the table of blocks and page counts, and their
//! memory written to files (`inspect --extract`, `incoming --extract` / `--dump`,
//! `migrate --dump`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use ram_list::migration::LoadStats;
use ram_list::{RamBlock, RamList};
use rcu_core::{Memb, Reader};

use crate::error::{DemoError, FileError};

/// Print the blocks of `stats` with their lengths and page counts, and a total.
pub fn print_table(stats: &LoadStats) {
    let row = |name: &str, bytes: u64, data: u64, zero: u64| {
        println!("{name:<28} {bytes:>12} {data:>10} {zero:>10}");
    };
    println!(
        "{:<28} {:>12} {:>10} {:>10}",
        "block", "bytes", "data pages", "zero pages"
    );
    for b in &stats.blocks {
        row(&b.idstr, b.length, b.data_pages, b.zero_pages);
    }
    row(
        "total",
        stats.blocks.iter().map(|b| b.length).sum(),
        stats.data_pages,
        stats.zero_pages,
    );
}

/// Write the used bytes of `block` to the file `out`.
pub fn write_block(block: &RamBlock, out: &Path) -> io::Result<()> {
    let mut w = BufWriter::new(File::create(out)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < block.used_length() {
        let n = (block.used_length() - off).min(buf.len() as u64) as usize;
        block.read(off, &mut buf[..n]).map_err(io::Error::other)?;
        w.write_all(&buf[..n])?;
        off += n as u64;
    }
    w.flush()
}

/// Write block `name` of `list` to `out`; its length. `from` names the source in the
/// error that lists the blocks when there is no such block.
pub fn extract(
    list: &RamList<Memb>,
    reader: &Reader<Memb>,
    name: &str,
    out: &Path,
    from: &str,
) -> Result<u64, DemoError> {
    let g = reader.read_lock();
    let Some(block) = list.block_by_name(name, &g) else {
        let names: Vec<String> = list
            .iter(&g)
            .filter(|b| !b.idstr().is_empty())
            .map(|b| format!("{:?}", b.idstr()))
            .collect();
        return Err(format!(
            "no block \"{name}\" in {from}; its blocks are {}",
            names.join(", ")
        )
        .into());
    };
    write_block(block, out).map_err(|e| FileError::new(out, e))?;
    Ok(block.used_length())
}

/// The file a block's memory goes to in a dump directory: its idstr with every byte
/// other than ASCII letters, digits, `.`, `-`, `_` and `@` written `%XX`, then `.bin`
/// (`/rom@etc/acpi/tables` -> `%2From@etc%2Facpi%2Ftables.bin`).
pub fn file_name(idstr: &str) -> String {
    let mut s = String::with_capacity(idstr.len() + 4);
    for b in idstr.bytes() {
        if b.is_ascii_alphanumeric() || b"._-@".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    // "." and ".." are not files.
    if s.bytes().all(|b| b == b'.') {
        s = s.replace('.', "%2E");
    }
    s.push_str(".bin");
    s
}

/// Write every named block of `list` into `dir` (created if missing), one file each
/// ([`file_name`]); the files written, with the blocks' idstrs and lengths.
pub fn dump_all(
    list: &RamList<Memb>,
    reader: &Reader<Memb>,
    dir: &Path,
) -> Result<Vec<(String, PathBuf, u64)>, DemoError> {
    std::fs::create_dir_all(dir).map_err(|e| FileError::new(dir, e))?;
    let g = reader.read_lock();
    let mut out = Vec::new();
    for b in list.iter(&g).filter(|b| !b.idstr().is_empty()) {
        let path = dir.join(file_name(b.idstr()));
        write_block(b, &path).map_err(|e| FileError::new(&path, e))?;
        out.push((b.idstr().to_owned(), path, b.used_length()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_file_names_are_one_path_component_and_distinct() {
        assert_eq!(file_name("pc.ram"), "pc.ram.bin");
        assert_eq!(
            file_name("/rom@etc/acpi/tables"),
            "%2From@etc%2Facpi%2Ftables.bin"
        );
        assert_eq!(
            file_name("0000:00:02.0/vga.vram"),
            "0000%3A00%3A02.0%2Fvga.vram.bin"
        );
        assert_eq!(file_name(".."), "%2E%2E.bin");
        assert_ne!(file_name("a/b"), file_name("a%2Fb"));
    }
}
