//! A structural check of chitchat 0.13 datagrams before chitchat's decoder sees them: the
//! header, digest and delta are walked, every compressed block is decompressed within a
//! budget ([`MAX_DECOMPRESSED`] per datagram), and every item is checked for the shape
//! chitchat expects. chitchat's own decoder has no such budget: a 65 KB datagram of tiny
//! zstd blocks decompresses to hundreds of megabytes.
//!
//! Why the budget is megabytes and not 64 KB: chitchat fills a delta until its *compressed*
//! size reaches the datagram limit, compressing 16 KiB blocks one by one, so a genuine delta
//! of repetitive content (the same cltab chunks from several nodes, thousands of similar
//! claims) decompresses to many times 64 KB. A budget genuine deltas can exceed would refuse
//! the same delta at every round, and so block every later update of its sender for good
//! (chitchat's 64 KB pitfall). 8 MiB needs an average compression ratio over 128:1 across a
//! whole datagram, which no real cltab, hactl or claim set approaches.
//!
//! The wire format (little-endian), from chitchat's `message_serialize.rs`, `digest.rs`,
//! `delta.rs` and `serialize.rs`:
//!
//! ```text
//! datagram: magic u16 = 45139 | protocol u8 (0, 1) | type u8 | body
//!   Syn 0:       digest | cluster id (str)
//!   SynAck 1:    digest | delta
//!   Ack 2:       delta
//!   BadCluster 3 (empty)
//! digest v0:     count u16 | (node id, heartbeat u64, last gc u64, max version u64)*
//! digest v1:     stream of (node id, heartbeat u64, last gc u64, max version u64)
//! delta:         stream of ops: 0 node (node id, last gc u64, from version u64)
//!                               1 key-value (key str, value str, version u64, status u8 0-2)
//!                               2 max version (u64)
//! stream:        blocks: 1 zstd (len u16, bytes) | 2 raw (len u16, bytes) | 0 end
//! node id:       name (str) | generation u64 | ip (4 + 4 bytes, or 6 + 16) | port u16
//! str:           len u16 | UTF-8 bytes
//! ```
//!
//! Pure: no I/O. Only the shape is checked here; what the content means is chitchat's and the
//! daemon's business.

/// Most bytes the compressed streams of one datagram (its digest and its delta together) may
/// decompress to; see the module documentation.
pub const MAX_DECOMPRESSED: usize = 8 * 1024 * 1024;

/// chitchat's magic number, the first two bytes of each of its datagrams.
const MAGIC: u16 = 45_139;

/// Why a datagram is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A compressed stream decompresses to more than [`MAX_STREAM_BYTES`].
    TooLarge,
    /// Not the shape of a chitchat message; says where.
    Malformed(&'static str),
}

/// Checks that `datagram` is a chitchat message whose compressed streams fit the budget;
/// returns the cluster id a SYN names (`None` for other messages).
///
/// # Errors
/// Returns [`WireError::TooLarge`] for a decompression bomb, [`WireError::Malformed`] for
/// anything chitchat would not decode.
pub fn check(datagram: &[u8]) -> Result<Option<&str>, WireError> {
    let mut r = Reader(datagram);
    let mut budget = MAX_DECOMPRESSED;
    if r.u16("magic")? != MAGIC {
        return Err(WireError::Malformed("magic number"));
    }
    let version = r.u8("protocol version")?;
    if version > 1 {
        return Err(WireError::Malformed("protocol version"));
    }
    match r.u8("message type")? {
        0 => {
            digest(&mut r, version, &mut budget)?;
            return r.str("cluster id").map(Some);
        }
        1 => {
            digest(&mut r, version, &mut budget)?;
            delta(&mut r, &mut budget)?;
        }
        2 => delta(&mut r, &mut budget)?,
        3 => {}
        _ => return Err(WireError::Malformed("message type")),
    }
    Ok(None)
}

/// Walks a digest in protocol `version`.
fn digest(r: &mut Reader<'_>, version: u8, budget: &mut usize) -> Result<(), WireError> {
    if version == 0 {
        for _ in 0..r.u16("digest size")? {
            node_digest(r)?;
        }
        return Ok(());
    }
    let items = stream(r, budget)?;
    let mut items = Reader(&items);
    while !items.0.is_empty() {
        node_digest(&mut items)?;
    }
    Ok(())
}

/// Walks one digest entry.
fn node_digest(r: &mut Reader<'_>) -> Result<(), WireError> {
    node_id(r)?;
    r.take(24, "node digest").map(|_| ())
}

/// Walks a delta.
fn delta(r: &mut Reader<'_>, budget: &mut usize) -> Result<(), WireError> {
    let ops = stream(r, budget)?;
    let mut ops = Reader(&ops);
    while !ops.0.is_empty() {
        match ops.u8("delta op")? {
            0 => {
                node_id(&mut ops)?;
                ops.take(16, "node op")?;
            }
            1 => {
                ops.str("key")?;
                ops.str("value")?;
                ops.take(8, "key version")?;
                if ops.u8("deletion status")? > 2 {
                    return Err(WireError::Malformed("deletion status"));
                }
            }
            2 => {
                ops.take(8, "max version")?;
            }
            _ => return Err(WireError::Malformed("delta op")),
        }
    }
    Ok(())
}

/// Walks a node id.
fn node_id(r: &mut Reader<'_>) -> Result<(), WireError> {
    r.str("node name")?;
    r.take(8, "generation")?;
    match r.u8("ip version")? {
        4 => r.take(4, "ipv4 address")?,
        6 => r.take(16, "ipv6 address")?,
        _ => return Err(WireError::Malformed("ip version")),
    };
    r.take(2, "port").map(|_| ())
}

thread_local! {
    /// One decompression context and block buffer per thread, kept between datagrams: a
    /// fresh zstd context per block (what `zstd::bulk::decompress_to_buffer` makes) cost more
    /// than the decompression itself, a few percent of an idle daemon's CPU.
    static SCRATCH: std::cell::RefCell<Option<(zstd::bulk::Decompressor<'static>, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Reads a block stream, returning its decompressed content, which it takes out of `budget`.
fn stream(r: &mut Reader<'_>, budget: &mut usize) -> Result<Vec<u8>, WireError> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.is_none() {
            let dctx = zstd::bulk::Decompressor::new()
                .map_err(|_| WireError::Malformed("no memory for a decompression context"))?;
            // chitchat decompresses each block into a buffer of u16::MAX bytes.
            *scratch = Some((dctx, vec![0u8; usize::from(u16::MAX)]));
        }
        match scratch.as_mut() {
            Some((dctx, buf)) => stream_with(r, budget, dctx, buf),
            None => Err(WireError::Malformed("no decompression context")),
        }
    })
}

fn stream_with(
    r: &mut Reader<'_>,
    budget: &mut usize,
    dctx: &mut zstd::bulk::Decompressor<'static>,
    buf: &mut [u8],
) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    loop {
        let kind = r.u8("block type")?;
        if kind == 0 {
            return Ok(out);
        }
        let len = usize::from(r.u16("block length")?);
        let block = r.take(len, "block")?;
        let cap = (*budget).min(buf.len());
        let n = match kind {
            1 => dctx
                .decompress_to_buffer(block, &mut buf[..cap])
                .map_err(|_| {
                    if cap < buf.len() {
                        WireError::TooLarge
                    } else {
                        WireError::Malformed("compressed block")
                    }
                })?,
            2 if len <= cap => {
                buf[..len].copy_from_slice(block);
                len
            }
            2 => return Err(WireError::TooLarge),
            _ => return Err(WireError::Malformed("block type")),
        };
        *budget -= n;
        out.extend_from_slice(&buf[..n]);
    }
}

/// A cursor over bytes that never reads past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Malformed(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn str(&mut self, what: &'static str) -> Result<&'a str, WireError> {
        let len = usize::from(self.u16(what)?);
        std::str::from_utf8(self.take(len, what)?).map_err(|_| WireError::Malformed(what))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Appends a chitchat string.
    pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&(s.len() as u16).to_le_bytes());
        buf.extend_from_slice(s.as_bytes());
    }

    /// Appends a node id of `name` at 127.0.0.1:`port`.
    pub(crate) fn put_node_id(buf: &mut Vec<u8>, name: &str, generation: u64, port: u16) {
        put_str(buf, name);
        buf.extend_from_slice(&generation.to_le_bytes());
        buf.extend_from_slice(&[4, 127, 0, 0, 1]);
        buf.extend_from_slice(&port.to_le_bytes());
    }

    /// Returns a V0 SYN of cluster `cluster` whose digest lists `nodes` (name, generation,
    /// heartbeat).
    pub(crate) fn syn(cluster: &str, nodes: &[(&str, u64, u64)]) -> Vec<u8> {
        let mut b = MAGIC.to_le_bytes().to_vec();
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&(nodes.len() as u16).to_le_bytes());
        for (name, generation, heartbeat) in nodes {
            put_node_id(&mut b, name, *generation, 7000);
            b.extend_from_slice(&heartbeat.to_le_bytes());
            b.extend_from_slice(&[0; 16]);
        }
        put_str(&mut b, cluster);
        b
    }

    /// Returns an Ack whose delta stream is `blocks` (kind, bytes) then the end tag.
    fn ack(blocks: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut b = MAGIC.to_le_bytes().to_vec();
        b.extend_from_slice(&[1, 2]);
        for (kind, bytes) in blocks {
            b.push(*kind);
            b.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            b.extend_from_slice(bytes);
        }
        b.push(0);
        b
    }

    fn kv_op(key: &str, value: &str) -> Vec<u8> {
        let mut op = vec![1];
        put_str(&mut op, key);
        put_str(&mut op, value);
        op.extend_from_slice(&7u64.to_le_bytes());
        op.push(0);
        op
    }

    #[test]
    fn genuine_shapes_pass() {
        assert_eq!(
            check(&syn("mosha", &[("n1", 5, 9), ("n2", 6, 1)])),
            Ok(Some("mosha"))
        );
        let mut node = vec![0];
        put_node_id(&mut node, "n1", 5, 7000);
        node.extend_from_slice(&[0; 16]);
        let ops = [node, kv_op("g/web", "start start DONE")].concat();
        assert_eq!(check(&ack(&[(2, ops.clone())])), Ok(None));
        let packed = zstd::bulk::compress(&ops, 0).unwrap();
        assert_eq!(check(&ack(&[(1, packed)])), Ok(None));
        assert_eq!(check(&[0x53, 0xb0, 1, 3]), Ok(None));
    }

    #[test]
    fn decompression_bombs_are_refused_within_the_budget() {
        // One block that decompresses to 60 KB of a repeated op.
        let op = kv_op("k", &"x".repeat(200));
        let big: Vec<u8> = op.iter().cycle().take(op.len() * 290).copied().collect();
        let block = zstd::bulk::compress(&big, 3).unwrap();
        assert!(block.len() < 1000);
        // Genuine deltas of repetitive content decompress to far more than 64 KB.
        let fine: Vec<(u8, Vec<u8>)> = (0..60).map(|_| (1, block.clone())).collect();
        assert_eq!(check(&ack(&fine)), Ok(None));
        // What chitchat alone would inflate without limit is refused at the budget.
        let per_block = big.len();
        let blocks = MAX_DECOMPRESSED / per_block + 1;
        let bomb: Vec<(u8, Vec<u8>)> = (0..blocks).map(|_| (1, block.clone())).collect();
        assert_eq!(check(&ack(&bomb)), Err(WireError::TooLarge));
    }

    #[test]
    fn truncations_and_bad_tags_are_malformed_not_panics() {
        let mut node = vec![0];
        put_node_id(&mut node, "n1", 5, 7000);
        node.extend_from_slice(&[0; 16]);
        let good = ack(&[(2, [node, kv_op("a", "b")].concat())]);
        for cut in 0..good.len() {
            assert!(check(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_status = good.clone();
        let at = bad_status.len() - 2;
        bad_status[at] = 9;
        assert_eq!(
            check(&bad_status),
            Err(WireError::Malformed("deletion status"))
        );
        assert_eq!(
            check(&ack(&[(2, vec![1, 2, 0, 0xff, 0xfe])])),
            Err(WireError::Malformed("key"))
        );
        assert_eq!(check(b"junk"), Err(WireError::Malformed("magic number")));
        assert_eq!(
            check(&ack(&[(1, vec![1, 2, 3])])),
            Err(WireError::Malformed("compressed block"))
        );
    }
}
