//! Helpers shared by the integration tests: a seeded PRNG, a byte-stream builder, and the
//! fixtures' expected RAM contents.
#![allow(dead_code)]

pub const PAGE: usize = 4096;

/// xorshift64*: small, seeded, good enough for tests.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Builds migration streams byte by byte (QEMU's outer format and RAM records).
#[derive(Default, Clone)]
pub struct B(pub Vec<u8>);

impl B {
    /// `QEVM`, version 3, a configuration record for machine `none`.
    pub fn stream() -> Self {
        let mut b = B::default();
        b.bytes(b"QEVM").be32(3).u8(0x07).be32(4).bytes(b"none");
        b
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn be32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn be64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    pub fn idstr(&mut self, s: &str) -> &mut Self {
        self.u8(s.len() as u8).bytes(s.as_bytes())
    }
    /// START "ram" (id 2, instance 0, version `ver`).
    pub fn start(&mut self, ver: u32) -> &mut Self {
        self.u8(0x01).be32(2).idstr("ram").be32(0).be32(ver)
    }
    pub fn part(&mut self) -> &mut Self {
        self.u8(0x02).be32(2)
    }
    pub fn end(&mut self) -> &mut Self {
        self.u8(0x03).be32(2)
    }
    pub fn footer(&mut self) -> &mut Self {
        self.u8(0x7e).be32(2)
    }
    pub fn eos(&mut self) -> &mut Self {
        self.be64(0x10)
    }
    /// EOS and the footer of the open section, then an END section with an empty body,
    /// and EOF.
    pub fn close(&mut self) -> &mut Self {
        self.eos().footer().end().eos().footer().u8(0)
    }
    /// MEM_SIZE with the given blocks (total = sum).
    pub fn mem_size(&mut self, blocks: &[(&str, u64)]) -> &mut Self {
        let total: u64 = blocks.iter().map(|b| b.1).sum();
        self.be64(total | 0x04);
        for (n, l) in blocks {
            self.idstr(n).be64(*l);
        }
        self
    }
    /// A PAGE record (with idstr unless `cont`).
    pub fn page(&mut self, block: &str, offset: u64, cont: bool, byte: u8) -> &mut Self {
        self.be64(offset | 0x08 | if cont { 0x20 } else { 0 });
        if !cont {
            self.idstr(block);
        }
        self.bytes(&[byte; PAGE])
    }
    /// A ZERO record.
    pub fn zero(&mut self, block: &str, offset: u64, cont: bool, fill: u8) -> &mut Self {
        self.be64(offset | 0x02 | if cont { 0x20 } else { 0 });
        if !cont {
            self.idstr(block);
        }
        self.u8(fill)
    }
}

pub const FIXTURE_TEXT: &[u8] = b"Hello from guest RAM page 256! ram-list QEMU migration fixture.";

/// The fixtures' "ram0" contents (tests/fixtures/README.md).
pub fn expected_ram(size: usize) -> Vec<u8> {
    let npages = size / PAGE;
    let mut ram = vec![0u8; size];
    let (mut a, mut b) = (1usize, 2usize);
    while a < npages {
        ram[a * PAGE..(a + 1) * PAGE].fill((a % 256) as u8);
        (a, b) = (b, a + b);
    }
    ram[256 * PAGE..256 * PAGE + FIXTURE_TEXT.len()].copy_from_slice(FIXTURE_TEXT);
    ram[400 * PAGE + PAGE - 1] = 0x5a;
    ram[(npages - 1) * PAGE..].fill(0xff);
    ram
}

pub fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> Vec<u8> {
    let p = fixture_path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Reads a whole block's used bytes.
pub fn block_bytes(b: &ram_list::RamBlock) -> Vec<u8> {
    let mut v = vec![0u8; b.used_length() as usize];
    b.read(0, &mut v).unwrap();
    v
}
