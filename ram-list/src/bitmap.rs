//! [`PageBitmap`]: one bit per page of a range, with its length in pages, so that a bitmap
//! handed to [`DirtyMemory::sync_range`](crate::DirtyMemory::sync_range) always has room
//! for every page it syncs (the sync covers exactly the bitmap's pages).

use core::fmt;

/// A bitmap of `pages` bits (bit `i` for page `i` of some range) that counts its set bits.
///
/// ```
/// use ram_list::PageBitmap;
///
/// let mut b = PageBitmap::new(100);
/// b.set(3);
/// b.set(70);
/// assert_eq!((b.pages(), b.count()), (100, 2));
/// assert_eq!(b.next_set(4), Some(70));
/// assert!(b.clear(3));
/// assert_eq!(PageBitmap::full(100).count(), 100);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PageBitmap {
    words: Vec<u64>,
    pages: u64,
    /// Set bits.
    count: u64,
}

impl PageBitmap {
    /// A bitmap of `pages` clear bits.
    pub fn new(pages: u64) -> Self {
        PageBitmap {
            words: vec![0; pages.div_ceil(64) as usize],
            pages,
            count: 0,
        }
    }

    /// A bitmap of `pages` set bits.
    pub fn full(pages: u64) -> Self {
        let mut words = vec![u64::MAX; pages.div_ceil(64) as usize];
        if pages % 64 != 0 {
            if let Some(last) = words.last_mut() {
                *last = (1u64 << (pages % 64)) - 1;
            }
        }
        PageBitmap {
            words,
            pages,
            count: pages,
        }
    }

    /// The number of pages (bits).
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The number of set bits.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether bit `page` is set (`false` past the end).
    pub fn get(&self, page: u64) -> bool {
        page < self.pages && self.words[(page / 64) as usize] & (1 << (page % 64)) != 0
    }

    /// Set bit `page`; returns whether it was clear.
    ///
    /// # Panics
    ///
    /// If `page` is past the end.
    pub fn set(&mut self, page: u64) -> bool {
        self.or_word(self.word_of(page), 1 << (page % 64)) != 0
    }

    /// Clear bit `page`; returns whether it was set.
    ///
    /// # Panics
    ///
    /// If `page` is past the end.
    pub fn clear(&mut self, page: u64) -> bool {
        let i = self.word_of(page);
        let w = &mut self.words[i];
        let bit = 1u64 << (page % 64);
        let was = *w & bit != 0;
        *w &= !bit;
        self.count -= u64::from(was);
        was
    }

    fn word_of(&self, page: u64) -> usize {
        assert!(
            page < self.pages,
            "page {page} past the bitmap's {}",
            self.pages
        );
        (page / 64) as usize
    }

    /// The first set bit at or after `from`.
    pub fn next_set(&self, from: u64) -> Option<u64> {
        if from >= self.pages {
            return None;
        }
        let first = (from / 64) as usize;
        let mut word = self.words[first] & (u64::MAX << (from % 64));
        let mut w = first;
        loop {
            if word != 0 {
                return Some(w as u64 * 64 + u64::from(word.trailing_zeros()));
            }
            w += 1;
            word = *self.words.get(w)?;
        }
    }

    /// The bits, 64 pages per word (the bits past the end are clear).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// OR `v` into word `w` (bits past the end must be clear); returns the bits that were
    /// newly set.
    pub(crate) fn or_word(&mut self, w: usize, v: u64) -> u64 {
        let new = v & !self.words[w];
        self.words[w] |= v;
        self.count += u64::from(new.count_ones());
        new
    }

    /// OR the low `n` bits of `v` in at bit position `pos` (`pos + n <= pages`).
    pub(crate) fn or_bits(&mut self, pos: u64, v: u64, n: u64) {
        debug_assert!(pos + n <= self.pages);
        let w = (pos / 64) as usize;
        let b = (pos % 64) as u32;
        let v = if n >= 64 { v } else { v & ((1u64 << n) - 1) };
        self.or_word(w, v << b);
        if b != 0 && v >> (64 - b) != 0 {
            self.or_word(w + 1, v >> (64 - b));
        }
    }
}

impl fmt::Debug for PageBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageBitmap")
            .field("pages", &self.pages)
            .field("set", &self.count)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bits_counts_and_unaligned_ors() {
        let mut b = PageBitmap::new(130);
        assert_eq!(b.next_set(0), None);
        b.or_bits(60, 0b1011, 4);
        assert_eq!(
            (b.count(), b.next_set(0), b.next_set(62)),
            (3, Some(60), Some(63))
        );
        assert!(b.get(61) && !b.get(62));
        b.or_bits(126, u64::MAX, 4);
        assert_eq!(b.count(), 7);
        assert_eq!(b.next_set(64), Some(126));
        assert!(!b.set(126));
        assert!(b.clear(129) && !b.clear(129));
        assert_eq!(b.count(), 6);
        assert!(!b.get(1000));
        let f = PageBitmap::full(130);
        assert_eq!(f.words()[2], 0b11);
        assert_eq!(f.next_set(129), Some(129));
        assert_eq!(f.next_set(130), None);
    }

    #[test]
    #[should_panic(expected = "past the bitmap")]
    fn setting_past_the_end_panics() {
        PageBitmap::new(10).set(10);
    }
}
