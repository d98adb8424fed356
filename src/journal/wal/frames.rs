//! The frames of the journal log and of its archive, and reading them back
//! honestly.
//!
//! Frame: `len: u32 LE | crc32(payload): u32 LE | payload`, payload =
//! version byte + postcard of the batch. Reading tells apart a torn tail
//! (an incomplete last frame: a write a crash interrupted, never
//! acknowledged, since a batch is acknowledged only after its sync) from
//! damage (bytes that are there but fail their checksum). Past damage it
//! resynchronises on the next offset where a whole frame holds (header,
//! checksum, version and batch), so valid frames that follow are not lost.

/// Keys and values to write atomically; an empty value removes its key.
pub(crate) type Batch = Vec<(Vec<u8>, Vec<u8>)>;

pub(crate) const VERSION: u8 = 1;
const HEADER: usize = 8;

pub(crate) fn encode(batch: &Batch, out: &mut Vec<u8>) {
    let mut payload = vec![VERSION];
    payload.extend(postcard::to_stdvec(batch).expect("a batch always encodes"));
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// What lies at one offset.
enum At {
    /// A whole frame; the next one starts at the offset given.
    Frame(Batch, usize),
    /// The bytes end inside the header or the payload the header announces.
    Incomplete,
    /// A whole frame's worth of bytes whose checksum, version or batch fails.
    Invalid,
}

fn at(bytes: &[u8], off: usize) -> At {
    let Some(header) = bytes.get(off..).and_then(|b| b.get(..HEADER)) else { return At::Incomplete };
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let Some(payload) = bytes.get(off + HEADER..).and_then(|b| b.get(..len)) else { return At::Incomplete };
    // The version byte first: it rules out most offsets before any checksum.
    if payload.first() != Some(&VERSION) || crc32fast::hash(payload) != crc {
        return At::Invalid;
    }
    match postcard::from_bytes::<Batch>(&payload[1..]) {
        Ok(batch) => At::Frame(batch, off + HEADER + len),
        Err(_) => At::Invalid,
    }
}

/// A stretch of bytes that held no valid frame, and what that means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub offset: usize,
    pub len: usize,
    pub kind: DropKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropKind {
    /// An incomplete last frame (or zeros the file system allocated for
    /// it): a write a crash interrupted. It was never acknowledged.
    TornTail,
    /// A complete last frame that fails its checksum, nothing valid after
    /// it: damage, or a crash in the middle of writing it. If its sync
    /// had completed, it was acknowledged.
    DamagedTail,
    /// Bytes that are no valid frame, with valid frames after them: damage.
    /// The batches in them were acknowledged (a later frame was synced
    /// after them) and are lost unless the store had applied them.
    Damaged,
}

impl Dropped {
    /// One sentence for an operator: where, how much, and what it means.
    pub(crate) fn describe(&self, file: &str) -> String {
        let (at, n) = (self.offset, self.len);
        match self.kind {
            DropKind::TornTail => format!(
                "{file}: dropped {n} bytes at offset {at}: an incomplete last frame, the append a crash interrupted; \
                 it was never acknowledged (a batch is acknowledged only after its sync), so nothing acknowledged is lost"
            ),
            DropKind::DamagedTail => format!(
                "{file}: dropped {n} bytes at offset {at}: the last frame is complete but fails its checksum; \
                 either a crash interrupted its write (then it was never acknowledged) or the disk damaged it \
                 (then it was acknowledged, and it is lost unless the store had already applied it)"
            ),
            DropKind::Damaged => format!(
                "{file}: dropped {n} bytes at offset {at}: damaged frames with valid frames after them (those were \
                 replayed); the batches in these bytes were acknowledged, and are lost unless the store had already \
                 applied them"
            ),
        }
    }
}

/// The batches of a log or archive segment, in order, and what was dropped.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub batches: Vec<Batch>,
    pub dropped: Vec<Dropped>,
}

impl Scan {
    /// Bytes that held valid frames.
    pub(crate) fn valid_bytes(&self, total: usize) -> usize {
        total - self.dropped.iter().map(|d| d.len).sum::<usize>()
    }
}

/// Read every frame of `bytes`, resynchronising past damage.
pub(crate) fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut off = 0;
    while off < bytes.len() {
        let bad = match at(bytes, off) {
            At::Frame(batch, next) => {
                out.batches.push(batch);
                off = next;
                continue;
            }
            bad => bad,
        };
        match resync(bytes, off + 1) {
            Some(next) => {
                out.dropped.push(Dropped { offset: off, len: next - off, kind: DropKind::Damaged });
                off = next;
            }
            None => {
                let rest = &bytes[off..];
                let kind = match bad {
                    _ if rest.iter().all(|&b| b == 0) => DropKind::TornTail,
                    At::Incomplete => DropKind::TornTail,
                    _ => DropKind::DamagedTail,
                };
                out.dropped.push(Dropped { offset: off, len: rest.len(), kind });
                break;
            }
        }
    }
    out
}

/// The first offset at or after `from` where a whole valid frame starts.
fn resync(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(HEADER)).find(|&p| matches!(at(bytes, p), At::Frame(..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Batch {
        vec![(k.as_bytes().to_vec(), v.as_bytes().to_vec())]
    }

    /// Three frames, and where each starts.
    fn three() -> (Vec<u8>, [usize; 3]) {
        let mut buf = Vec::new();
        let mut starts = [0; 3];
        for (i, (k, v)) in [("a", "1"), ("b", "22"), ("c", "333")].into_iter().enumerate() {
            starts[i] = buf.len();
            encode(&put(k, v), &mut buf);
        }
        (buf, starts)
    }

    #[test]
    fn whole_frames_read_back_in_order() {
        let (buf, _) = three();
        let s = scan(&buf);
        assert_eq!(s.batches, vec![put("a", "1"), put("b", "22"), put("c", "333")]);
        assert!(s.dropped.is_empty());
    }

    #[test]
    fn every_cut_of_the_last_frame_is_a_torn_tail_and_loses_nothing_before_it() {
        let (buf, starts) = three();
        for cut in starts[2] + 1..buf.len() {
            let s = scan(&buf[..cut]);
            assert_eq!(s.batches.len(), 2, "cut at {cut}");
            assert_eq!(s.dropped, vec![Dropped { offset: starts[2], len: cut - starts[2], kind: DropKind::TornTail }]);
        }
    }

    #[test]
    fn a_flipped_byte_in_the_last_frame_is_damage_not_a_torn_tail() {
        let (mut buf, starts) = three();
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let s = scan(&buf);
        assert_eq!(s.batches.len(), 2);
        assert_eq!(
            s.dropped,
            vec![Dropped { offset: starts[2], len: buf.len() - starts[2], kind: DropKind::DamagedTail }]
        );
        assert!(s.dropped[0].describe("journal.log").contains("fails its checksum"));
    }

    #[test]
    fn damage_in_the_middle_is_named_and_the_frames_after_it_are_replayed() {
        // Every byte of the middle frame, header included, flipped in turn.
        let (buf, starts) = three();
        for i in starts[1]..starts[2] {
            let mut bad = buf.clone();
            bad[i] ^= 0x5a;
            let s = scan(&bad);
            assert_eq!(s.batches, vec![put("a", "1"), put("c", "333")], "flip at {i}");
            assert_eq!(
                s.dropped,
                vec![Dropped { offset: starts[1], len: starts[2] - starts[1], kind: DropKind::Damaged }],
                "flip at {i}"
            );
            assert_eq!(s.valid_bytes(bad.len()), bad.len() - (starts[2] - starts[1]));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Any bytes: no panic, and every byte is either in a frame read or in a stretch dropped.
        #[test]
        fn any_bytes_scan_without_panicking_and_are_all_accounted_for(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let s = scan(&bytes);
            let mut framed = Vec::new();
            for b in &s.batches {
                encode(b, &mut framed);
            }
            proptest::prop_assert_eq!(framed.len() + s.dropped.iter().map(|d| d.len).sum::<usize>(), bytes.len());
        }

        /// One flipped byte costs exactly the frame that holds it.
        #[test]
        fn one_flipped_byte_loses_only_its_own_frame(
            values in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 1..8),
            at in proptest::num::usize::ANY,
            bit in 0u8..8,
        ) {
            let batches: Vec<Batch> = values.iter().enumerate().map(|(i, v)| vec![(vec![i as u8], v.clone())]).collect();
            let mut bytes = Vec::new();
            let mut starts = Vec::new();
            for b in &batches {
                starts.push(bytes.len());
                encode(b, &mut bytes);
            }
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            let hit = starts.iter().rposition(|&s| s <= at).expect("the first frame starts at 0");
            let mut want = batches.clone();
            want.remove(hit);
            let s = scan(&bytes);
            proptest::prop_assert_eq!(s.batches, want);
            proptest::prop_assert_eq!(s.dropped.len(), 1);
            proptest::prop_assert_eq!(s.dropped[0].offset, starts[hit]);
        }
    }

    #[test]
    fn zeros_after_the_last_frame_are_a_torn_tail() {
        let (mut buf, _) = three();
        let end = buf.len();
        buf.extend_from_slice(&[0; 4096]);
        let s = scan(&buf);
        assert_eq!(s.batches.len(), 3);
        assert_eq!(s.dropped, vec![Dropped { offset: end, len: 4096, kind: DropKind::TornTail }]);
    }
}
