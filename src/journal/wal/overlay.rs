//! What the log has made durable and sled has not applied yet, readable.
//!
//! A writer is acknowledged when the log's sync returns; its batch reaches
//! sled later (the applier thread, in log order). Until then its puts and
//! removals live here, keyed by the store key, and every read of the store
//! goes through [`Reads`], which merges this overlay over sled: a point
//! read ([`Reads::get`]) and ordered range scans ([`Reads::range`],
//! [`Reads::scan_prefix`], [`Reads::iter`], [`Reads::last_in`]). The merge
//! knows nothing of the journal's key layout (`e`, `x`, `k`, `w`, `t`,
//! `r`, ...): a key prefix added later is covered as long as its reads go
//! through [`Reads`] and not to `sled::Db` directly.
//!
//! Ordering, which makes a read after an acknowledgement see the batch
//! whether or not sled has it yet: the flusher puts a batch here before it
//! acknowledges it; the applier removes a key only after sled has the
//! batch, and only if no later batch wrote the key meanwhile. A point read
//! looks here first, then in sled; a scan copies its range of the overlay
//! first, then walks sled, and the overlay's entry wins on the same key
//! (it is the same value or a newer one).

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, RwLock};

use sled::IVec;

use super::Batch;

/// The newest acknowledged, unapplied write of one key: item `at` of the
/// batch at log position `seq` (an empty value is a removal).
struct Entry {
    seq: u64,
    batch: Arc<Batch>,
    at: usize,
}

impl Entry {
    fn value(&self) -> Option<IVec> {
        let v = &self.batch[self.at].1;
        (!v.is_empty()).then(|| IVec::from(v.as_slice()))
    }
}

/// The unapplied writes, by key.
#[derive(Default)]
pub(crate) struct Overlay {
    map: RwLock<BTreeMap<Vec<u8>, Entry>>,
}

type Owned = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn owned<K: AsRef<[u8]>, R: RangeBounds<K>>(range: &R) -> Owned {
    let own = |b: Bound<&K>| match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}

/// Whether a range holds no key at all (`BTreeMap::range` panics on one
/// whose start lies past its end; sled returns nothing).
fn is_empty(range: &Owned) -> bool {
    match range {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e)) | (Bound::Excluded(s), Bound::Included(e)) => {
            s >= e
        }
        _ => false,
    }
}

impl Overlay {
    /// Record the batches of one synced round, `first` being the log
    /// position of the first; before they are acknowledged.
    pub(crate) fn put(&self, first: u64, batches: &[Arc<Batch>]) {
        let mut map = self.map.write().expect("overlay lock");
        for (n, batch) in batches.iter().enumerate() {
            for (at, (k, _)) in batch.iter().enumerate() {
                map.insert(k.clone(), Entry { seq: first + n as u64, batch: batch.clone(), at });
            }
        }
    }

    /// Forget what these batches wrote, now that sled has them; a key a
    /// later batch wrote again stays.
    pub(crate) fn applied(&self, batches: &[(u64, Arc<Batch>)]) {
        let mut map = self.map.write().expect("overlay lock");
        for (seq, batch) in batches {
            for (k, _) in batch.iter() {
                if map.get(k).is_some_and(|e| e.seq == *seq) {
                    map.remove(k);
                }
            }
        }
    }

    /// How many keys wait for sled.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.read().expect("overlay lock").len()
    }

    /// `Some(value)` (a put, or `None` for a removal) when the overlay holds the key.
    fn get(&self, key: &[u8]) -> Option<Option<IVec>> {
        self.map.read().expect("overlay lock").get(key).map(Entry::value)
    }

    /// A copy of the overlay's entries in `range`, in key order.
    fn snapshot(&self, range: &Owned) -> Vec<(IVec, Option<IVec>)> {
        if is_empty(range) {
            return Vec::new();
        }
        let map = self.map.read().expect("overlay lock");
        if map.is_empty() {
            return Vec::new();
        }
        map.range::<Vec<u8>, _>(range.clone()).map(|(k, e)| (IVec::from(k.as_slice()), e.value())).collect()
    }
}

/// Reads of the store: the overlay merged over sled.
#[derive(Clone, Copy)]
pub(crate) struct Reads<'a> {
    pub(crate) db: &'a sled::Db,
    pub(crate) overlay: &'a Overlay,
}

impl<'a> Reads<'a> {
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        match self.overlay.get(key.as_ref()) {
            Some(v) => Ok(v),
            None => self.db.get(key),
        }
    }

    pub(crate) fn contains_key(&self, key: impl AsRef<[u8]>) -> sled::Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The keys in `range`, in order.
    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Merged {
        self.merged(&range, false)
    }

    /// The keys in `range`, last first.
    pub(crate) fn range_rev<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Merged {
        self.merged(&range, true)
    }

    fn merged<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: &R, back: bool) -> Merged {
        let range = owned(range);
        // The overlay first, then sled (see the module's header).
        let mut over = self.overlay.snapshot(&range);
        if back {
            over.reverse();
        }
        Merged {
            over: over.into_iter(),
            over_next: None,
            sled: self.db.range(range),
            sled_next: None,
            sled_done: false,
            back,
        }
    }

    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Merged {
        let prefix = prefix.as_ref().to_vec();
        // The first key past every key that starts with `prefix`.
        let mut end = prefix.clone();
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                return self.range::<Vec<u8>, _>((Bound::Included(prefix), Bound::Excluded(end)));
            }
        }
        self.range::<Vec<u8>, _>((Bound::Included(prefix), Bound::Unbounded))
    }

    pub(crate) fn iter(&self) -> Merged {
        self.range::<Vec<u8>, _>(..)
    }

    /// The last key in `range`, with its value.
    pub(crate) fn last_in<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Option<sled::Result<(IVec, IVec)>> {
        let range = owned(&range);
        let over = self.overlay.snapshot(&range);
        let over_last = over.iter().rev().find_map(|(k, v)| Some((k.clone(), v.clone()?)));
        // sled's last key the overlay does not override (a key the overlay
        // holds is its value or its removal).
        let mut sled_last = None;
        for kv in self.db.range(range).rev() {
            match kv {
                Err(e) => return Some(Err(e)),
                Ok((k, v)) => {
                    if over.binary_search_by(|(o, _)| o.as_ref().cmp(k.as_ref())).is_err() {
                        sled_last = Some((k, v));
                        break;
                    }
                }
            }
        }
        match (over_last, sled_last) {
            (Some(o), Some(s)) => Some(Ok(if o.0 >= s.0 { o } else { s })),
            (o, s) => o.or(s).map(Ok),
        }
    }
}

/// An ordered scan of the overlay merged over sled: first key first, or
/// (`back`) last key first, the overlay then given in that order too.
pub(crate) struct Merged {
    over: std::vec::IntoIter<(IVec, Option<IVec>)>,
    over_next: Option<(IVec, Option<IVec>)>,
    sled: sled::Iter,
    sled_next: Option<(IVec, IVec)>,
    sled_done: bool,
    back: bool,
}

impl Iterator for Merged {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.sled_next.is_none() && !self.sled_done {
                let next = if self.back { self.sled.next_back() } else { self.sled.next() };
                match next {
                    None => self.sled_done = true,
                    Some(Err(e)) => return Some(Err(e)),
                    Some(Ok(kv)) => self.sled_next = Some(kv),
                }
            }
            if self.over_next.is_none() {
                self.over_next = self.over.next();
            }
            let overlay_first = match (&self.over_next, &self.sled_next) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((o, _)), Some((s, _))) => {
                    // Which comes first in the scan's direction.
                    let order = if self.back { s.cmp(o) } else { o.cmp(s) };
                    match order {
                        std::cmp::Ordering::Greater => false,
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Equal => {
                            self.sled_next = None; // overridden
                            true
                        }
                    }
                }
            };
            if !overlay_first {
                return self.sled_next.take().map(Ok);
            }
            if let Some((k, Some(v))) = self.over_next.take() {
                return Some(Ok((k, v)));
            } // else a removal: nothing to yield
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(kvs: &[(&str, &str)]) -> Arc<Batch> {
        Arc::new(kvs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect())
    }

    fn keys(m: impl Iterator<Item = sled::Result<(IVec, IVec)>>) -> Vec<(String, String)> {
        m.map(|kv| {
            let (k, v) = kv.unwrap();
            (String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap())
        })
        .collect()
    }

    #[test]
    fn puts_and_removals_merge_over_sled_in_key_order_until_applied() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
        for k in ["a1", "a3", "a5", "b1"] {
            db.insert(k, "sled").unwrap();
        }
        let overlay = Overlay::default();
        let first = batch(&[("a2", "o"), ("a3", ""), ("a5", "o1")]);
        let second = batch(&[("a5", "o2"), ("a9", "o")]);
        overlay.put(7, &[first.clone(), second.clone()]);
        let r = Reads { db: &db, overlay: &overlay };
        let want = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(
            keys(r.scan_prefix("a")),
            want(&[("a1", "sled"), ("a2", "o"), ("a5", "o2"), ("a9", "o")]),
            "the removal hides sled's a3, the later put of a5 wins"
        );
        assert_eq!(keys(r.range("a2".."a5")), want(&[("a2", "o")]));
        assert_eq!(
            keys(r.range_rev("a".."b")),
            want(&[("a9", "o"), ("a5", "o2"), ("a2", "o"), ("a1", "sled")]),
            "backwards: the same merge, last key first"
        );
        assert_eq!(keys(r.range_rev("a2".."a5")), want(&[("a2", "o")]));
        assert!(keys(r.range_rev("b".."a")).is_empty());
        assert_eq!(keys(r.iter()).len(), 5);
        assert_eq!(r.get("a3").unwrap(), None);
        assert_eq!(r.get("a5").unwrap().as_deref(), Some(&b"o2"[..]));
        assert_eq!(r.get("b1").unwrap().as_deref(), Some(&b"sled"[..]));
        let last = r.last_in("a".."a4").unwrap().unwrap();
        assert_eq!(&last.0[..], b"a2", "sled's a3 is removed in the overlay");
        assert_eq!(&r.last_in("a".."b").unwrap().unwrap().0[..], b"a9");
        assert!(r.last_in("c".."d").is_none());
        assert!(keys(r.range("b".."a")).is_empty(), "a backwards range is empty, no panic");

        // sled applies the first batch: a5 stays, the second batch wrote it again.
        super::super::apply(&db, &first).unwrap();
        overlay.applied(&[(7, first)]);
        assert_eq!(overlay.len(), 2);
        assert_eq!(r.get("a5").unwrap().as_deref(), Some(&b"o2"[..]));
        assert_eq!(keys(r.scan_prefix("a")), want(&[("a1", "sled"), ("a2", "o"), ("a5", "o2"), ("a9", "o")]));
        super::super::apply(&db, &second).unwrap();
        overlay.applied(&[(8, second)]);
        assert_eq!(overlay.len(), 0);
        assert_eq!(keys(r.scan_prefix("a")), want(&[("a1", "sled"), ("a2", "o"), ("a5", "o2"), ("a9", "o")]));
    }
}
