//! [`BlockNames`]: the loader's index of the destination's named blocks, kept between
//! records (and across read-side critical sections) and revalidated by the list's
//! `version`, so that a page record costs one hash lookup and no list walk.

use std::collections::HashMap;

use rcu_core::{Flavor, ReadGuard};

use crate::block::RamBlock;
use crate::translator::{sightings, Sighting};
use crate::RamList;

/// The named blocks of one list as seen under one version of it (empty idstrs are never
/// indexed: an unnamed block is not migratable).
#[derive(Debug, Default)]
pub(super) struct BlockNames {
    by_name: HashMap<String, Sighting>,
    /// The version the map was built under; `None` before the first build.
    version: Option<u64>,
}

impl BlockNames {
    /// The block named `name`: from the map while the list's version is the one it was
    /// built under, else after rebuilding it (one walk of the list per version).
    pub(super) fn find<'g, F: Flavor>(
        &mut self,
        list: &'g RamList<F>,
        name: &str,
        guard: &'g ReadGuard<'_, F>,
    ) -> Option<(&'g RamBlock, Sighting)> {
        if let Some(s) = self.by_name.get(name) {
            if let Some(b) = s.get(list, guard) {
                return Some((b, *s));
            }
        }
        // Absent, or the list changed since the map was built.
        if self.version == Some(list.version()) {
            return None;
        }
        self.by_name.clear();
        let (version, walk) = sightings(list, guard);
        for (b, s) in walk {
            if !b.idstr().is_empty() {
                self.by_name.entry(b.idstr().to_owned()).or_insert(s);
            }
        }
        self.version = Some(version);
        let s = *self.by_name.get(name)?;
        s.get(list, guard).map(|b| (b, s))
    }
}
