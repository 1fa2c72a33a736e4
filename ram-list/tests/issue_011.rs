//! Regressions of issue 11: the RAM loader against hostile and stalling peers.
//!
//! Every test that could hang runs under a watchdog that fails it instead.

mod common;

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use ram_list::migration::{load, LoadErrorKind, LoadOptions, LoadReport};
use ram_list::stream::Configuration;
use ram_list::{RamError, RamList, PAGE_BITS};
use rcu_core::{Domain, Memb, Qsbr};

const P: u64 = PAGE as u64;
/// How long any one step may take before the watchdog calls it a deadlock. Generous: the
/// steps take milliseconds, and a hang never ends.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Run `f` on its own thread and return its result, or fail the test if it does not finish
/// within [`WATCHDOG`] (the thread is left behind; the test binary exits anyway).
fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("deadlock: {what} did not finish"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Wait for one message, or fail the test.
fn expect<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(WATCHDOG)
        .unwrap_or_else(|_| panic!("deadlock: {what} never happened"))
}

/// The migration peer: the stream arrives in chunks over a channel, and every time the
/// loader has consumed all it was sent (the peer stalls) the peer says so.
struct StallingPeer {
    chunks: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
    starved: Sender<()>,
}

impl Read for StallingPeer {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            let _ = self.starved.send(());
            match self.chunks.recv() {
                Ok(c) => (self.buf, self.pos) = (c, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Issue 11, item 1. A loader is in the middle of a RAM section on a peer that stalls; the
/// destination's writer holds the list's lock, frees blocks (retiring them through
/// call_rcu) and waits for grace periods while still holding it, first with the loader
/// blocked on the stream, then with the loader about to take the lock for a `MEM_SIZE`
/// record. Nothing deadlocks: the loader holds no read-side critical section while it
/// waits for the peer or for the lock, so every `synchronize` completes while the peer
/// stalls, and the load finishes once the peer sends the rest.
#[test]
fn loader_mid_section_on_a_stalled_peer_holds_up_no_grace_period() {
    let d: Domain<Memb> = Domain::new();
    let dst = Arc::new(RamList::new_in(&d));
    let (chunks_tx, chunks_rx) = mpsc::channel::<Vec<u8>>();
    let (starved_tx, starved_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let loader = {
        let (d, dst) = (d.clone(), dst.clone());
        thread::spawn(move || {
            let r = d.register();
            let peer = StallingPeer {
                chunks: chunks_rx,
                buf: Vec::new(),
                pos: 0,
                starved: starved_tx,
            };
            let res = load(&dst, peer, &LoadOptions::mirror(1 << 30), &r);
            let _ = done_tx.send(res.map(|rep: LoadReport| rep.stats));
        })
    };

    // The peer sends the start of the section, then stalls.
    let mut b = B::stream();
    b.start(4).mem_size(&[("a", 16 * P)]).page("a", 0, false, 1);
    chunks_tx.send(b.0).unwrap();
    expect(&starved_rx, "the loader's first read");
    expect(&starved_rx, "the loader consuming the first chunk");

    // A grace period completes while the loader waits for the peer.
    let d2 = d.clone();
    watchdog("synchronize while the peer stalls", move || {
        d2.synchronize()
    });

    // The writer takes the lock, retires blocks, and waits for grace periods holding it.
    let (locked_tx, locked_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let writer = {
        let (d, dst) = (d.clone(), dst.clone());
        thread::spawn(move || {
            let mut w = dst.lock();
            for i in 0..8 {
                let a = w.alloc(P).unwrap();
                w.set_idstr(a, None, &format!("tmp{i}")).unwrap();
                w.free(a).unwrap();
            }
            d.synchronize();
            locked_tx.send(()).unwrap();
            // The peer resumes with a MEM_SIZE record: the loader decodes it and waits
            // for this lock.
            go_rx.recv().unwrap();
            thread::sleep(Duration::from_millis(100));
            d.synchronize();
            d.barrier();
            drop(w);
        })
    };
    expect(&locked_rx, "the writer's synchronize under the lock");
    let mut b = B::default();
    b.mem_size(&[("a", 16 * P), ("b", 4 * P)]);
    chunks_tx.send(b.0).unwrap();
    go_tx.send(()).unwrap();
    let w = watchdog("the writer holding the lock", move || writer.join());
    w.unwrap();

    // The rest of the stream.
    let mut b = B::default();
    b.page("b", 3 * P, false, 2).eos().footer();
    b.end().zero("a", 5 * P, false, 3).eos().footer().u8(0);
    chunks_tx.send(b.0).unwrap();
    let stats = expect(&done_rx, "the end of the load").unwrap();
    loader.join().unwrap();
    assert_eq!((stats.data_pages, stats.zero_pages), (2, 1));
    let r = d.register();
    let g = r.read_lock();
    let names: Vec<_> = dst.iter(&g).map(|b| b.idstr().to_owned()).collect();
    assert_eq!(names, ["a", "b"]);
    let mut byte = [0u8; 1];
    dst.block_by_name("b", &g)
        .unwrap()
        .read(3 * P, &mut byte)
        .unwrap();
    assert_eq!(byte[0], 2);
    dst.block_by_name("a", &g)
        .unwrap()
        .read(5 * P + 9, &mut byte)
        .unwrap();
    assert_eq!(byte[0], 3);
}

/// Two records naming fresh 1 MiB blocks, each filled: the second can only be applied once
/// the first block's memory is reclaimed.
fn two_renaming_records() -> Vec<u8> {
    let mut b = B::stream();
    b.start(4);
    for name in ["x", "y"] {
        b.mem_size(&[(name, 256 * P)]);
        for page in 0..256 {
            b.zero(name, page * P, page > 0, 7);
        }
    }
    b.close();
    b.0
}

/// Issue 11, item 3, where the loader cannot wait for the removed block to be reclaimed
/// (its thread holds a critical section, or is an online QSBR reader): the record that
/// would need more than the limit is an error, and the list never maps more.
#[test]
fn mirror_limit_holds_where_the_loader_cannot_wait() {
    const LIMIT: u64 = 256 * P;
    let stream = two_renaming_records();
    // A memb reader inside a critical section of the list's domain.
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    let r = d.register();
    let g = r.read_lock();
    let e = load(&l, &stream[..], &LoadOptions::mirror(LIMIT), &r).unwrap_err();
    drop(g);
    assert_eq!(
        e.kind(),
        &LoadErrorKind::OverMemoryLimit {
            needed: 2 * LIMIT,
            limit: LIMIT
        },
        "{e}"
    );
    assert!(l.mapped_bytes() <= LIMIT);
    // With a critical section no longer held, the same stream loads within the limit.
    let l = RamList::new_in(&d);
    let rep = load(&l, &stream[..], &LoadOptions::mirror(LIMIT), &r).unwrap();
    assert!(rep.stats.peak_mapped_bytes <= LIMIT);
    assert_eq!(rep.stats.zero_pages, 512);
    // An online QSBR reader.
    let d: Domain<Qsbr> = Domain::new();
    let l = RamList::new_in(&d);
    let r = d.register();
    let e = load(&l, &stream[..], &LoadOptions::mirror(LIMIT), &r).unwrap_err();
    assert!(
        matches!(e.kind(), LoadErrorKind::OverMemoryLimit { .. }),
        "{e}"
    );
    assert!(l.mapped_bytes() <= LIMIT);
}

/// Issue 11, item 4: a page record with an empty idstr names no block, even where the
/// destination has an unnamed (not migratable) one: QEMU's "should not be migrated". The
/// unnamed block is left as it was.
#[test]
fn a_page_for_the_empty_idstr_is_rejected_and_writes_nothing() {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    l.alloc_named("ram0", 16 * P).unwrap();
    let unnamed = l.lock().alloc(16 * P).unwrap();
    let r = d.register();
    for zero in [false, true] {
        let mut b = B::stream();
        b.start(4);
        if zero {
            b.zero("", 0, false, 9);
        } else {
            b.page("", 0, false, 9);
        }
        b.close();
        let e = load(&l, &b.0[..], &LoadOptions::default(), &r).unwrap_err();
        assert_eq!(
            e.kind(),
            &LoadErrorKind::NotMigratable {
                idstr: String::new()
            },
            "{e}"
        );
        assert!(e.to_string().contains("should not be migrated"), "{e}");
    }
    let g = r.read_lock();
    let b = l.lookup(unnamed, &g).unwrap();
    assert_eq!(b.idstr(), "");
    assert!(b.is_zero(0, 16 * P).unwrap());
    assert!(l.block_by_name("", &g).is_none());
    assert!(l.lock().block_by_name("").is_none());
}

/// Issue 11, item 5: the configuration record's `target-page-bits` is checked. A stream
/// from a source with 1 KiB pages is rejected (its page offsets and MEM_SIZE lengths mean
/// something else); the local value, or none (QEMU sends it only for targets with a
/// variable page size), loads.
#[test]
fn target_page_bits_other_than_ours_are_rejected() {
    let stream = |bits: Option<u32>| {
        let mut s = b"QEVM\0\0\0\x03".to_vec();
        Configuration {
            machine_type: "none".into(),
            target_page_bits: bits,
            capabilities: Vec::new(),
            uuid: None,
        }
        .encode(&mut s);
        let mut b = B(s);
        b.start(4)
            .mem_size(&[("ram0", 4 * P)])
            .page("ram0", P, false, 1)
            .close();
        b.0
    };
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    l.alloc_named("ram0", 4 * P).unwrap();
    let r = d.register();
    for bits in [10, 13, 16] {
        let e = load(&l, &stream(Some(bits))[..], &LoadOptions::default(), &r).unwrap_err();
        assert_eq!(
            e.kind(),
            &LoadErrorKind::PageSizeMismatch {
                target_page_bits: bits
            }
        );
        assert_eq!(e.offset(), 8, "the configuration record");
        assert!(
            e.to_string()
                .contains(&format!("TARGET_PAGE_BITS is {bits}")),
            "{e}"
        );
    }
    let g = r.read_lock();
    assert!(l
        .block_by_name("ram0", &g)
        .unwrap()
        .is_zero(0, 4 * P)
        .unwrap());
    drop(g);
    for bits in [Some(PAGE_BITS), None] {
        let rep = load(&l, &stream(bits)[..], &LoadOptions::default(), &r).unwrap();
        assert_eq!(rep.stats.data_pages, 1);
    }
}

/// Issue 11, item 7: lookups by ram address and by host pointer agree, as in QEMU (whose
/// `qemu_get_ram_block` and `qemu_ram_block_from_host` both use `max_length`): the unused
/// tail of a resizeable block is found by both, and accessing it is `OutOfRange`.
#[test]
fn lookup_by_address_agrees_with_lookup_by_host_pointer() {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    let a = l.alloc_resizeable_named("rom", 16 * P, 256 * P).unwrap();
    let r = d.register();
    let g = r.read_lock();
    let b = l.lookup(a, &g).unwrap();
    let tlb = l.translator();
    for off in [0, 16 * P - 1, 16 * P, 100 * P + 5, 256 * P - 1] {
        let host = b.host().wrapping_add(off as usize);
        let addr = l.ram_addr_from_host(host, &g).expect("inside the mapping");
        assert_eq!(addr, a + off);
        let by_addr = l.lookup(addr, &g).expect("the same block");
        assert!(core::ptr::eq(by_addr, b), "{off:#x}");
        assert!(core::ptr::eq(tlb.lookup(addr, &g).unwrap(), b));
        assert_eq!(l.translate(addr, &g).unwrap().1, off);
        let used = off < 16 * P;
        assert_eq!(l.ptr_length(addr, 1, &g).is_some(), used, "{off:#x}");
        let mut byte = [0u8; 1];
        match l.read(addr, &mut byte, &g) {
            Ok(()) => assert!(used),
            Err(e) => assert!(!used && matches!(e, RamError::OutOfRange { .. }), "{e}"),
        }
    }
    for host in [
        b.host().wrapping_add(256 * P as usize),
        b.host().wrapping_sub(1),
    ] {
        assert!(l.ram_addr_from_host(host, &g).is_none());
    }
    assert!(l.lookup(a + 256 * P, &g).is_none());
}
