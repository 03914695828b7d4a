//! Pure encoding of replicated configuration files (`cltab`, `hactl`, later `fencetab`) as gossip
//! keys: file versions ([`Version`]) drawn from a hybrid logical clock ([`Hlc`]), the split of a
//! file's content into chunk keys, and the reading back of what one node publishes.
//!
//! Each node publishes, as its own gossip keys, the version and content of every file it has
//! adopted; the newest version wins everywhere. For a file `cltab` a node publishes
//! `f/cltab/0`, `f/cltab/1`, … (the content, at most [`CHUNK_BYTES`] bytes each) and
//! `f/cltab/v` = `"<version> <hash-hex> <nchunks> <len>"`.
//!
//! This module does no I/O, reads no clock and knows nothing of chitchat: the caller passes wall
//! clock readings in. Which version is in force, which published one to adopt, and what to
//! publish are the node core's ([`crate::node`]); reading files, validating them and writing
//! them belong to its driver (the daemon's `mosha::gossip` carries the keys).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::str::FromStr;

/// Bytes of file content carried by one gossip value (one chunk key).
pub const CHUNK_BYTES: usize = 4096;

/// Size, in bytes, above which a file is refused for replication.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Prefix of every key this module produces.
const KEY_PREFIX: &str = crate::keys::FILE_PREFIX;

/// Suffix (after `f/<file>/`) of the key carrying a file's version line.
const VERSION_SUFFIX: &str = "v";

/// A file version: a hybrid logical clock reading plus the editing node's name as tie-break.
///
/// Versions order by `(ms, seq, node)`, lexicographically (the field order of the derive).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Milliseconds since the Unix epoch, as the hybrid logical clock saw them (never behind any
    /// version the editing node had observed).
    pub ms: u64,
    /// Counter that orders edits within the same `ms`.
    pub seq: u32,
    /// Name of the node that made the edit; breaks ties between equal clock readings.
    pub node: String,
}

impl Version {
    /// Returns the version meaning "no file": ms 0, seq 0, empty node name, older than any edit.
    pub fn zero() -> Version {
        Version {
            ms: 0,
            seq: 0,
            node: String::new(),
        }
    }

    /// Tells whether this is the "no file" version.
    pub fn is_zero(&self) -> bool {
        *self == Version::zero()
    }
}

impl Default for Version {
    /// Returns [`Version::zero`].
    fn default() -> Version {
        Version::zero()
    }
}

impl fmt::Display for Version {
    /// Formats the version as `ms.seq@node`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.ms, self.seq, self.node)
    }
}

impl FromStr for Version {
    type Err = String;

    /// Parses `ms.seq@node` (the inverse of `Display`); the node name is everything after the
    /// first `@` and may be empty.
    fn from_str(s: &str) -> Result<Version, String> {
        let (clock, node) = s
            .split_once('@')
            .ok_or_else(|| format!("version {s:?}: expected ms.seq@node"))?;
        let (ms, seq) = clock
            .split_once('.')
            .ok_or_else(|| format!("version {s:?}: expected ms.seq before '@'"))?;
        let ms = ms
            .parse::<u64>()
            .map_err(|e| format!("version {s:?}: bad milliseconds {ms:?}: {e}"))?;
        let seq = seq
            .parse::<u32>()
            .map_err(|e| format!("version {s:?}: bad sequence {seq:?}: {e}"))?;
        Ok(Version {
            ms,
            seq,
            node: node.to_string(),
        })
    }
}

/// A hybrid logical clock (Kulkarni et al.): never goes backwards, never repeats, and moves past every version it observes, so a newer edit wins even when wall clocks are equal or skewed.
///
/// Reference: Kulkarni, Demirbas et al., "Logical Physical Clocks and Consistent Snapshots in
/// Globally Distributed Databases" (2014). The clock is `(ms, seq)`: `ms` follows the highest
/// wall clock reading or observed version, `seq` counts within one `ms`.
#[derive(Debug, Clone, Default)]
pub struct Hlc {
    /// Highest millisecond reading issued or observed.
    ms: u64,
    /// Highest sequence number issued or observed within `ms`.
    seq: u32,
}

impl Hlc {
    /// Returns a new version for an edit made by `node` at wall clock `wall_ms`, greater than
    /// every version this clock issued or observed before.
    ///
    /// A wall clock behind the clock (equal, or stepped back) only bumps the sequence number.
    /// Should the sequence number overflow, the clock moves to the next millisecond.
    pub fn tick(&mut self, wall_ms: u64, node: &str) -> Version {
        if wall_ms > self.ms {
            self.ms = wall_ms;
            self.seq = 0;
        } else if let Some(seq) = self.seq.checked_add(1) {
            self.seq = seq;
        } else {
            // u64::MAX milliseconds is half a billion years away: saturating is enough.
            self.ms = self.ms.saturating_add(1);
            self.seq = 0;
        }
        Version {
            ms: self.ms,
            seq: self.seq,
            node: node.to_string(),
        }
    }

    /// Moves the clock past `v`, so that the next [`Hlc::tick`] returns a greater version
    /// whatever the node names.
    pub fn observe(&mut self, v: &Version) {
        if (v.ms, v.seq) > (self.ms, self.seq) {
            self.ms = v.ms;
            self.seq = v.seq;
        }
    }
}

/// Returns the 64-bit FNV-1a hash of `content`, which the version line carries so that readers
/// can tell a complete file from a mix of old and new chunks.
pub fn content_hash(content: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    content.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// Returns the gossip keys that publish `content` as `file` at `version`: `f/<file>/<i>` chunks (split on char boundaries, each <= [`CHUNK_BYTES`] bytes) and `f/<file>/v` = `"<version> <hash-hex> <nchunks> <len>"`.
///
/// The keys come in the order they must be applied: every chunk first, the `v` key last. The
/// caller must SET the chunk keys before the `v` key (in one call of
/// the daemon's `Gossip::publish`, which applies changes in order): chitchat sends a node's
/// updates in the order they were made, so a peer never sees a version whose chunks have not been
/// sent. After that, the caller deletes the [`stale_keys`] of a shorter previous publication.
///
/// A peer may still see new chunks before the new `v` key (a delta cut by the datagram size): it
/// then reads the old version with content `None` (hash mismatch) for a moment, and should keep
/// the last content it read whole.
///
/// # Errors
/// Fails when `file` is not a valid file name (empty, or holding `/` or whitespace) or when
/// `content` is larger than [`MAX_FILE_BYTES`].
pub fn publish_keys(
    file: &str,
    version: &Version,
    content: &str,
) -> Result<Vec<(String, String)>, String> {
    check_file_name(file)?;
    if content.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{file}: {} bytes is larger than the {MAX_FILE_BYTES}-byte limit for replicated files",
            content.len()
        ));
    }
    let chunks = split_chunks(content);
    let mut keys = Vec::with_capacity(chunks.len() + 1);
    for (i, chunk) in chunks.iter().enumerate() {
        keys.push((chunk_key(file, i), (*chunk).to_string()));
    }
    let line = format!(
        "{version} {:016x} {} {}",
        content_hash(content),
        chunks.len(),
        content.len()
    );
    keys.push((version_key(file), line));
    Ok(keys)
}

/// Returns the keys of `file` in `published` (a node's key map) that a new publication with `nchunks` chunks no longer uses (old higher-numbered chunks) — to delete.
///
/// Any key under `f/<file>/` other than `v` and the canonical chunk indices below `nchunks`
/// (`0`, `1`, …, not `007`) counts as stale. Delete them after setting the new `v` key.
pub fn stale_keys(file: &str, published: &BTreeMap<String, String>, nchunks: usize) -> Vec<String> {
    let prefix = file_prefix(file);
    published
        .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .take_while(|(key, _)| key.starts_with(&prefix))
        .filter_map(|(key, _)| {
            let suffix = &key[prefix.len()..];
            let in_use = suffix == VERSION_SUFFIX
                || suffix
                    .parse::<usize>()
                    .is_ok_and(|i| i < nchunks && i.to_string() == suffix);
            (!in_use).then(|| key.clone())
        })
        .collect()
}

/// What one node publishes for `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The version the node announces.
    pub version: Version,
    /// The file's content; `None` while chunks are missing or the hash does not match.
    pub content: Option<String>,
}

/// Returns what a node publishes for `file`, read from `keys` (that node's key map).
///
/// Returns `None` when there is no `f/<file>/v` key or it does not parse, and a [`Published`]
/// without content when chunks are missing, the reassembled content does not match the announced
/// length or hash, or the announced length exceeds [`MAX_FILE_BYTES`].
pub fn read_published(file: &str, keys: &BTreeMap<String, String>) -> Option<Published> {
    check_file_name(file).ok()?;
    let line = keys.get(&version_key(file))?;
    let header = parse_version_line(line).ok()?;
    let content = assemble(file, keys, &header);
    Some(Published {
        version: header.version,
        content,
    })
}

/// Returns the file whose version key `key` is (`f/<file>/v`), or `None` for any other key.
pub fn file_of_version_key(key: &str) -> Option<&str> {
    let file = key
        .strip_prefix(KEY_PREFIX)?
        .strip_suffix(VERSION_SUFFIX)?
        .strip_suffix('/')?;
    check_file_name(file).ok().map(|()| file)
}

/// Returns the version that a version key's value (`"<version> <hash-hex> <nchunks> <len>"`)
/// announces, or `None` if it does not parse.
pub fn announced_version(line: &str) -> Option<Version> {
    parse_version_line(line).ok().map(|h| h.version)
}

/// The parsed `v` key of a publication.
struct Header {
    version: Version,
    hash: u64,
    nchunks: usize,
    len: usize,
}

/// Parses `"<version> <hash-hex> <nchunks> <len>"`, splitting from the right so that a node name
/// holding spaces still parses.
fn parse_version_line(line: &str) -> Result<Header, String> {
    let mut fields = line.rsplitn(4, ' ');
    let (Some(len), Some(nchunks), Some(hash), Some(version)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!("version line {line:?}: expected 4 fields"));
    };
    Ok(Header {
        version: version.parse()?,
        hash: u64::from_str_radix(hash, 16).map_err(|e| format!("bad hash {hash:?}: {e}"))?,
        nchunks: nchunks
            .parse()
            .map_err(|e| format!("bad chunk count {nchunks:?}: {e}"))?,
        len: len
            .parse()
            .map_err(|e| format!("bad length {len:?}: {e}"))?,
    })
}

/// Reassembles the content announced by `header`, or `None` if it is not all there and intact.
fn assemble(file: &str, keys: &BTreeMap<String, String>, header: &Header) -> Option<String> {
    if header.len > MAX_FILE_BYTES {
        return None;
    }
    let mut content = String::with_capacity(header.len);
    for i in 0..header.nchunks {
        let chunk = keys.get(&chunk_key(file, i))?;
        if content.len() + chunk.len() > header.len {
            return None;
        }
        content.push_str(chunk);
    }
    (content.len() == header.len && content_hash(&content) == header.hash).then_some(content)
}

/// Splits `content` into pieces of at most [`CHUNK_BYTES`] bytes, each ending on a char boundary.
fn split_chunks(content: &str) -> Vec<&str> {
    let mut chunks = Vec::with_capacity(content.len().div_ceil(CHUNK_BYTES));
    let mut rest = content;
    while !rest.is_empty() {
        let mut end = rest.len().min(CHUNK_BYTES);
        // A char is at most 4 bytes, so this stops at end >= CHUNK_BYTES - 3 > 0.
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (chunk, tail) = rest.split_at(end);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// Refuses file names that would make keys ambiguous or unreadable.
fn check_file_name(file: &str) -> Result<(), String> {
    if file.is_empty() || file.contains('/') || file.chars().any(char::is_whitespace) {
        return Err(format!(
            "{file:?} is not a valid replicated file name (empty, or holds '/' or whitespace)"
        ));
    }
    Ok(())
}

/// Returns `f/<file>/`.
fn file_prefix(file: &str) -> String {
    format!("{KEY_PREFIX}{file}/")
}

/// Returns `f/<file>/<i>`.
fn chunk_key(file: &str, i: usize) -> String {
    format!("{KEY_PREFIX}{file}/{i}")
}

/// Returns `f/<file>/v`.
pub fn version_key(file: &str) -> String {
    format!("{KEY_PREFIX}{file}/{VERSION_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ms: u64, seq: u32, node: &str) -> Version {
        Version {
            ms,
            seq,
            node: node.to_string(),
        }
    }

    fn as_map(keys: &[(String, String)]) -> BTreeMap<String, String> {
        keys.iter().cloned().collect()
    }

    fn round_trip(content: &str) -> Vec<(String, String)> {
        let version = v(1_700_000_000_000, 3, "node-a");
        let keys = publish_keys("cltab", &version, content).unwrap();
        assert_eq!(keys.last().unwrap().0, "f/cltab/v", "the v key comes last");
        let published = read_published("cltab", &as_map(&keys)).unwrap();
        assert_eq!(published.version, version);
        assert_eq!(published.content.as_deref(), Some(content));
        keys
    }

    #[test]
    fn hlc_is_monotonic_under_equal_wall_clock() {
        let mut hlc = Hlc::default();
        let a = hlc.tick(1000, "n");
        let b = hlc.tick(1000, "n");
        let c = hlc.tick(1000, "n");
        assert!(a < b && b < c);
        assert_eq!((b.ms, b.seq), (1000, 1));
    }

    #[test]
    fn hlc_is_monotonic_when_wall_clock_goes_backwards() {
        let mut hlc = Hlc::default();
        let a = hlc.tick(5000, "n");
        let b = hlc.tick(4000, "n");
        let c = hlc.tick(0, "n");
        assert!(a < b && b < c);
        assert_eq!(c.ms, 5000);
        let d = hlc.tick(6000, "n");
        assert_eq!((d.ms, d.seq), (6000, 0));
    }

    #[test]
    fn hlc_first_tick_is_newer_than_zero() {
        let mut hlc = Hlc::default();
        assert!(hlc.tick(0, "") > Version::zero());
    }

    #[test]
    fn hlc_moves_past_observed_remote_version() {
        let mut hlc = Hlc::default();
        hlc.tick(1000, "b");
        // A remote node with a clock one minute ahead, and a name that sorts last.
        let remote = v(61_000, 7, "zzz");
        hlc.observe(&remote);
        let mine = hlc.tick(1001, "a");
        assert!(mine > remote, "{mine} should be newer than {remote}");
        // Observing an older version changes nothing.
        hlc.observe(&v(10, 0, "zzz"));
        assert!(hlc.tick(1002, "a") > mine);
    }

    #[test]
    fn hlc_sequence_overflow_moves_to_next_millisecond() {
        let mut hlc = Hlc::default();
        hlc.observe(&v(10, u32::MAX, "x"));
        let next = hlc.tick(0, "a");
        assert_eq!((next.ms, next.seq), (11, 0));
    }

    #[test]
    fn version_orders_by_ms_then_seq_then_node() {
        assert!(v(1, 9, "z") < v(2, 0, "a"));
        assert!(v(2, 0, "z") < v(2, 1, "a"));
        assert!(v(2, 1, "a") < v(2, 1, "b"));
        assert!(Version::zero() < v(0, 0, "a"));
        assert!(Version::zero().is_zero());
    }

    #[test]
    fn version_display_and_parse_round_trip() {
        for version in [v(1_700_000_000_123, 42, "node-1"), Version::zero()] {
            let text = version.to_string();
            assert_eq!(text.parse::<Version>(), Ok(version));
        }
        assert_eq!(v(5, 6, "a@b").to_string(), "5.6@a@b");
        assert_eq!("5.6@a@b".parse::<Version>(), Ok(v(5, 6, "a@b")));
        for bad in [
            "",
            "5.6",
            "5@n",
            "x.6@n",
            "5.y@n",
            "5.99999999999@n",
            "-1.0@n",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn content_hash_is_fnv1a_64() {
        assert_eq!(content_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(content_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(content_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn round_trip_empty_file() {
        let keys = round_trip("");
        assert_eq!(keys.len(), 1);
        assert!(keys[0].1.ends_with(" 0 0"), "{}", keys[0].1);
    }

    #[test]
    fn round_trip_small_file() {
        let keys = round_trip("group web\n  level 2\n");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].0, "f/cltab/0");
    }

    #[test]
    fn round_trip_exactly_one_chunk() {
        let keys = round_trip(&"x".repeat(CHUNK_BYTES));
        assert_eq!(keys.len(), 2);
        let keys = round_trip(&"x".repeat(CHUNK_BYTES + 1));
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn round_trip_large_multibyte_file() {
        // 512 KiB of 1-, 2-, 3- and 4-byte chars; the 7-byte period does not divide CHUNK_BYTES,
        // so multi-byte chars straddle many chunk boundaries.
        let pattern = "aé€😀";
        let content = pattern.repeat(512 * 1024 / pattern.len());
        let keys = round_trip(&content);
        let nchunks = keys.len() - 1;
        assert!(nchunks > 512 * 1024 / CHUNK_BYTES);
        let shortened = keys[..nchunks]
            .iter()
            .filter(|(_, value)| value.len() < CHUNK_BYTES)
            .count();
        assert!(shortened > 1, "chars should straddle chunk boundaries");
        for (i, (key, _)) in keys[..nchunks].iter().enumerate() {
            assert_eq!(key, &format!("f/cltab/{i}"));
        }
    }

    #[test]
    fn every_value_fits_one_gossip_value() {
        let content = "é".repeat(MAX_FILE_BYTES / 2);
        let version = v(u64::MAX, u32::MAX, &"n".repeat(64));
        let keys = publish_keys("fencetab", &version, &content).unwrap();
        for (key, value) in &keys {
            assert!(
                value.len() <= CHUNK_BYTES + 128,
                "{key}: {} bytes",
                value.len()
            );
            assert!(value.len() <= crate::keys::MAX_VALUE_BYTES);
        }
    }

    #[test]
    fn too_large_file_is_refused() {
        let content = "x".repeat(MAX_FILE_BYTES + 1);
        let err = publish_keys("cltab", &v(1, 0, "a"), &content).unwrap_err();
        assert!(err.contains("cltab") && err.contains("limit"), "{err}");
        assert!(publish_keys("cltab", &v(1, 0, "a"), &content[1..]).is_ok());
    }

    #[test]
    fn bad_file_names_are_refused() {
        for bad in ["", "a/b", "a b"] {
            assert!(publish_keys(bad, &v(1, 0, "a"), "x").is_err(), "{bad:?}");
            assert_eq!(read_published(bad, &BTreeMap::new()), None);
        }
    }

    #[test]
    fn missing_chunk_gives_no_content() {
        let content = "y".repeat(3 * CHUNK_BYTES);
        let keys = publish_keys("hactl", &v(9, 0, "b"), &content).unwrap();
        let mut map = as_map(&keys);
        map.remove("f/hactl/1");
        let published = read_published("hactl", &map).unwrap();
        assert_eq!(published.version, v(9, 0, "b"));
        assert_eq!(published.content, None);
    }

    #[test]
    fn corrupted_chunk_gives_no_content() {
        let content = "z".repeat(2 * CHUNK_BYTES);
        let keys = publish_keys("hactl", &v(9, 0, "b"), &content).unwrap();
        let mut same_length = as_map(&keys);
        same_length.insert("f/hactl/0".into(), "Z".repeat(CHUNK_BYTES));
        assert_eq!(read_published("hactl", &same_length).unwrap().content, None);
        let mut longer = as_map(&keys);
        longer.insert("f/hactl/1".into(), "z".repeat(CHUNK_BYTES + 1));
        assert_eq!(read_published("hactl", &longer).unwrap().content, None);
    }

    #[test]
    fn missing_or_bad_version_line_gives_none() {
        let mut map = BTreeMap::new();
        assert_eq!(read_published("cltab", &map), None);
        map.insert("f/cltab/0".to_string(), "abc".to_string());
        assert_eq!(read_published("cltab", &map), None);
        for bad in ["", "1.0@a", "1.0@a zz 1 3", "1.0@a 0 x 3", "nope 0 1 3"] {
            map.insert("f/cltab/v".to_string(), bad.to_string());
            assert_eq!(read_published("cltab", &map), None, "{bad:?}");
        }
    }

    #[test]
    fn absurd_announced_sizes_give_no_content() {
        let mut map = BTreeMap::new();
        let line = format!(
            "1.0@a {:016x} {} {}",
            content_hash(""),
            usize::MAX,
            usize::MAX
        );
        map.insert("f/cltab/v".to_string(), line);
        let published = read_published("cltab", &map).unwrap();
        assert_eq!(published.content, None);
    }

    #[test]
    fn node_name_with_space_still_parses() {
        let version = v(1, 2, "odd name");
        let keys = publish_keys("cltab", &version, "abc").unwrap();
        let published = read_published("cltab", &as_map(&keys)).unwrap();
        assert_eq!(published.version, version);
        assert_eq!(published.content.as_deref(), Some("abc"));
    }

    #[test]
    fn stale_keys_after_shrinking() {
        let big = publish_keys("cltab", &v(1, 0, "a"), &"x".repeat(5 * CHUNK_BYTES)).unwrap();
        let mut published = as_map(&big);
        // Another file's keys and a prefix-sharing file name are left alone.
        published.insert("f/cltab2/7".into(), "x".into());
        published.insert("f/hactl/3".into(), "x".into());
        published.insert("f/cltab/007".into(), "x".into());
        let small = publish_keys("cltab", &v(2, 0, "a"), &"x".repeat(2 * CHUNK_BYTES)).unwrap();
        let nchunks = small.len() - 1;
        assert_eq!(nchunks, 2);
        let stale = stale_keys("cltab", &published, nchunks);
        assert_eq!(
            stale,
            vec!["f/cltab/007", "f/cltab/2", "f/cltab/3", "f/cltab/4"]
        );
        // Applying the new publication then deleting the stale keys reads back the new content.
        published.extend(small);
        for key in &stale {
            published.remove(key);
        }
        let read = read_published("cltab", &published).unwrap();
        assert_eq!(read.content.map(|c| c.len()), Some(2 * CHUNK_BYTES));
        assert!(stale_keys("cltab", &published, nchunks).is_empty());
    }
}
