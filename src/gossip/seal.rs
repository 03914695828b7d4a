//! Sealed gossip datagrams: authenticated encryption of every datagram with the cluster's
//! keys (XChaCha20-Poly1305, RustCrypto), the cluster id bound in as associated data, a send
//! time checked against a skew window, and a per-sender anti-replay window. This module is
//! pure apart from drawing session ids from the operating system's random source; it knows
//! nothing of sockets or chitchat.
//!
//! A sealed datagram is laid out as:
//!
//! ```text
//! header:      kind (1) | key hint (2) | session (8) | counter (8)
//! ciphertext:  sent, unix s (4) [| message (8)] | payload      then the tag (16)
//! ```
//!
//! The nonce (192 bits) is `session | counter | 0 (8 bytes)`: `session` is drawn at random
//! for each sender run and `counter` counts its datagrams, so no nonce is ever used twice under
//! one key — by construction, where a random nonce per datagram would only make it unlikely
//! (and cost 24 bytes more on every datagram; gossip datagrams average about 90 bytes). The
//! associated data is `"mosha-gossip/1\0" cluster-id "\0"` followed by the header, so a
//! datagram of another cluster, or one whose header was altered, does not open. `kind` is
//! [`WHOLE`] for a whole payload, or [`HALF_1`] / [`HALF_2`] for the halves of a payload too
//! large for one datagram (then `message` is the counter of half 1). The receiver's sliding
//! window over (session, counter) refuses a datagram it has already accepted.

use std::collections::BTreeMap;
use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::config::authkey::{KEY_BYTES, MAX_KEYS};

/// First byte of a sealed datagram holding a whole payload (chitchat's own datagrams start
/// with 0x53).
pub const WHOLE: u8 = 0xA1;
/// First byte of the first half of a payload too large for one datagram.
pub const HALF_1: u8 = 0xA2;
/// First byte of the second half.
pub const HALF_2: u8 = 0xA3;
/// Bytes before the ciphertext: kind, key hint, session, counter.
const OUTER_HEADER: usize = 1 + 2 + 8 + 8;
/// Bytes of the authentication tag.
const TAG: usize = 16;
/// Bytes of the encrypted header of a whole payload (the send time).
const INNER_HEADER: usize = 4;
/// Extra inner bytes of a half.
const HALF_HEADER: usize = 8;
/// Bytes a whole payload grows by when sealed.
pub const OVERHEAD: usize = OUTER_HEADER + INNER_HEADER + TAG;
/// Largest UDP payload over IPv4, which every datagram must fit in.
pub const MAX_DATAGRAM: usize = 65_507;
/// Largest payload that can be sealed (two halves).
pub const MAX_PAYLOAD: usize = 2 * (MAX_DATAGRAM - OVERHEAD - HALF_HEADER);
/// How many counters back the anti-replay window reaches: older datagrams of a session are
/// refused (UDP on a LAN reorders far less than this).
const WINDOW: u64 = 128;
/// Most sender sessions remembered; the least recently heard is forgotten first.
const MAX_SESSIONS: usize = 4096;
/// Most first halves kept waiting for their second half.
const MAX_HALVES: usize = 64;
/// Seconds a first half waits for its second half.
const HALF_TTL_S: u64 = 5;

/// A set of cluster keys, the first one primary. Its `Debug` shows fingerprints, never keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys(Vec<[u8; KEY_BYTES]>);

impl Keys {
    /// Returns the key set `keys` (first = primary), or `None` if it is empty or larger than
    /// [`MAX_KEYS`].
    pub fn new(keys: Vec<[u8; KEY_BYTES]>) -> Option<Keys> {
        (!keys.is_empty() && keys.len() <= MAX_KEYS).then_some(Keys(keys))
    }

    /// Returns the fingerprint of each key, primary first.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        self.0.iter().map(fingerprint).collect()
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Keys").field(&self.fingerprints()).finish()
    }
}

/// A key's public name: 32 bits of a keyed hash of it, shown as 8 hex digits. It tells keys
/// apart in logs and status without revealing them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub u32);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Returns the fingerprint of `key`: the first 4 bytes of the tag of an empty message sealed
/// with it under a fixed nonce and label (a MAC of nothing, which reveals nothing of the key).
pub fn fingerprint(key: &[u8; KEY_BYTES]) -> Fingerprint {
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let tag = cipher
        .encrypt(
            &XNonce::from([0u8; 24]),
            Payload {
                msg: b"",
                aad: b"mosha key fingerprint/1",
            },
        )
        .unwrap_or_default();
    let mut b = [0u8; 4];
    b.copy_from_slice(tag.get(..4).unwrap_or(&[0; 4]));
    Fingerprint(u32::from_be_bytes(b))
}

/// One key of a ring, ready to use.
struct RingKey {
    fingerprint: Fingerprint,
    cipher: XChaCha20Poly1305,
}

impl RingKey {
    /// The two bytes a datagram carries to say which key sealed it.
    fn hint(&self) -> [u8; 2] {
        let b = self.fingerprint.0.to_be_bytes();
        [b[0], b[1]]
    }
}

/// The ciphers of a key set: the primary seals, every key opens.
pub(super) struct Keyring {
    keys: Vec<RingKey>,
}

impl Keyring {
    /// Prepares the ciphers of `keys`.
    pub(super) fn new(keys: &Keys) -> Keyring {
        Keyring {
            keys: keys
                .0
                .iter()
                .map(|k| RingKey {
                    fingerprint: fingerprint(k),
                    cipher: XChaCha20Poly1305::new(&(*k).into()),
                })
                .collect(),
        }
    }

    /// Returns the primary key's fingerprint.
    pub(super) fn primary(&self) -> Fingerprint {
        self.keys[0].fingerprint
    }
}

/// Why a datagram was refused. Every variant is counted; none is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    /// Not a sealed mosha datagram (too short, or another format: plain chitchat, junk).
    NotSealed,
    /// Sealed with a key this node does not hold (its hint matches none of ours).
    UnknownKey,
    /// Does not authenticate: altered, another cluster id, or a key we do not hold.
    BadAuth,
    /// Its send time is further from our clock than the allowed skew.
    Stale,
    /// Already accepted once (a replay), or older than the anti-replay window.
    Replayed,
    /// Authenticated, but its contents are not a well-formed chitchat message.
    Malformed,
    /// Authenticated, but decompresses to more than the limit.
    TooLarge,
    /// A SYN of another cluster id (only seen with `--insecure`: sealed datagrams of
    /// another cluster do not authenticate).
    OtherCluster,
}

impl Rejection {
    /// Returns the name used in status and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::NotSealed => "not-sealed",
            Rejection::UnknownKey => "unknown-key",
            Rejection::BadAuth => "bad-auth",
            Rejection::Stale => "clock-skew",
            Rejection::Replayed => "replayed",
            Rejection::Malformed => "malformed",
            Rejection::TooLarge => "too-large",
            Rejection::OtherCluster => "other-cluster",
        }
    }

    /// Says what the rejection probably means, for an operator.
    pub fn explain(self) -> &'static str {
        match self {
            Rejection::NotSealed | Rejection::UnknownKey | Rejection::BadAuth => {
                "do not authenticate (another cluster, a wrong or rotated key, --insecure, or not mosha)"
            }
            Rejection::Stale => "carry a send time too far from this node's clock (check NTP, or --max-clock-skew)",
            Rejection::Replayed => "were already received once (replayed)",
            Rejection::Malformed => "authenticate but are not well-formed gossip",
            Rejection::TooLarge => "authenticate but decompress to more than the limit",
            Rejection::OtherCluster => "belong to another cluster id",
        }
    }
}

/// Why a payload could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SealError {
    /// The payload exceeds [`MAX_PAYLOAD`].
    TooLarge(usize),
    /// The operating system's random source failed.
    Random(String),
}

/// The sending half: seals payloads with a ring's primary key.
pub(super) struct Sealer {
    session: u64,
    counter: u64,
}

/// Draws `N` random bytes from the operating system.
fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| SealError::Random(e.to_string()))?;
    Ok(b)
}

/// Returns the associated-data prefix of cluster `cluster_id`.
pub(super) fn aad_prefix(cluster_id: &str) -> Vec<u8> {
    let mut aad = b"mosha-gossip/1\0".to_vec();
    aad.extend_from_slice(cluster_id.as_bytes());
    aad.push(0);
    aad
}

impl Sealer {
    /// Returns a sealer with a fresh random session.
    pub(super) fn new() -> Result<Sealer, SealError> {
        Ok(Sealer {
            session: u64::from_be_bytes(random()?),
            counter: 0,
        })
    }

    /// Seals `payload` sent at unix second `now_s`: one datagram, or two halves when it would
    /// not fit in one.
    pub(super) fn seal(
        &mut self,
        ring: &Keyring,
        aad_prefix: &[u8],
        now_s: u64,
        payload: &[u8],
    ) -> Result<Vec<Vec<u8>>, SealError> {
        if payload.len() + OVERHEAD <= MAX_DATAGRAM {
            return Ok(vec![
                self.seal_one(ring, aad_prefix, now_s, WHOLE, None, payload)?
            ]);
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(SealError::TooLarge(payload.len()));
        }
        let (a, b) = payload.split_at(payload.len() / 2);
        let message = self.counter.wrapping_add(1);
        Ok(vec![
            self.seal_one(ring, aad_prefix, now_s, HALF_1, Some(message), a)?,
            self.seal_one(ring, aad_prefix, now_s, HALF_2, Some(message), b)?,
        ])
    }

    fn seal_one(
        &mut self,
        ring: &Keyring,
        aad_prefix: &[u8],
        now_s: u64,
        kind: u8,
        message: Option<u64>,
        payload: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        self.counter = self.counter.wrapping_add(1);
        let key = &ring.keys[0];
        let mut out =
            Vec::with_capacity(OUTER_HEADER + INNER_HEADER + HALF_HEADER + payload.len() + TAG);
        out.push(kind);
        out.extend_from_slice(&key.hint());
        out.extend_from_slice(&self.session.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        let mut inner = Vec::with_capacity(INNER_HEADER + HALF_HEADER + payload.len());
        inner.extend_from_slice(&(now_s as u32).to_be_bytes());
        if let Some(m) = message {
            inner.extend_from_slice(&m.to_be_bytes());
        }
        inner.extend_from_slice(payload);
        let mut aad = aad_prefix.to_vec();
        aad.extend_from_slice(&out);
        let sealed = key
            .cipher
            .encrypt(
                &nonce(&out),
                Payload {
                    msg: &inner,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::TooLarge(payload.len()))?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

/// Returns the nonce of a datagram whose header is `header`: its session and counter, then
/// eight zero bytes.
fn nonce(header: &[u8]) -> XNonce {
    let mut n = [0u8; 24];
    n[..16].copy_from_slice(&header[3..OUTER_HEADER]);
    XNonce::from(n)
}

/// What opening a datagram gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Opened {
    /// A whole payload, and the fingerprint of the key that sealed it.
    Payload(Vec<u8>, Fingerprint),
    /// A valid half whose other half has not arrived yet.
    Half,
}

/// The receiving half: opens datagrams, checks their time, refuses replays, joins halves.
pub(super) struct Opener {
    /// Largest accepted distance between a datagram's send time and our clock, in seconds;
    /// 0 turns the check off.
    max_skew_s: u64,
    sessions: BTreeMap<u64, Session>,
    halves: BTreeMap<(u64, u64), Half>,
}

/// The anti-replay window of one sender session.
#[derive(Debug, Clone, Copy)]
struct Session {
    /// Highest counter accepted.
    top: u64,
    /// Bit `i` set: counter `top - i` was accepted.
    seen: u128,
    /// When the session was last heard (unix s), for eviction.
    heard: u64,
}

/// A first or second half waiting for the other.
struct Half {
    kind: u8,
    payload: Vec<u8>,
    at: u64,
}

impl Opener {
    /// Returns an opener allowing `max_skew_s` seconds between clocks (0: no time check).
    pub(super) fn new(max_skew_s: u64) -> Opener {
        Opener {
            max_skew_s,
            sessions: BTreeMap::new(),
            halves: BTreeMap::new(),
        }
    }

    /// Opens `datagram` received at unix second `now_s` with the keys of `ring`.
    ///
    /// # Errors
    /// Returns why it was refused; nothing is remembered of a refused datagram.
    pub(super) fn open(
        &mut self,
        ring: &Keyring,
        aad_prefix: &[u8],
        now_s: u64,
        datagram: &[u8],
    ) -> Result<Opened, Rejection> {
        let kind = datagram.first().copied();
        if datagram.len() < OUTER_HEADER + INNER_HEADER + TAG
            || !matches!(kind, Some(WHOLE | HALF_1 | HALF_2))
        {
            return Err(Rejection::NotSealed);
        }
        let header = &datagram[..OUTER_HEADER];
        let hint = [header[1], header[2]];
        let mut aad = aad_prefix.to_vec();
        aad.extend_from_slice(header);
        let mut candidates = ring.keys.iter().filter(|k| k.hint() == hint).peekable();
        if candidates.peek().is_none() {
            return Err(Rejection::UnknownKey);
        }
        let (inner, fingerprint) = candidates
            .find_map(|k| {
                k.cipher
                    .decrypt(
                        &nonce(header),
                        Payload {
                            msg: &datagram[OUTER_HEADER..],
                            aad: &aad,
                        },
                    )
                    .ok()
                    .map(|plain| (plain, k.fingerprint))
            })
            .ok_or(Rejection::BadAuth)?;
        let field = |b: &[u8], at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(x)
        };
        let session = field(header, 3);
        let counter = field(header, 11);
        let mut sent = [0u8; 4];
        sent.copy_from_slice(&inner[..4]);
        let sent = u32::from_be_bytes(sent);
        if self.max_skew_s > 0 {
            let skew = i64::from((now_s as u32).wrapping_sub(sent) as i32);
            if skew.unsigned_abs() > self.max_skew_s {
                return Err(Rejection::Stale);
            }
        }
        let kind = header[0];
        let (message, payload) = match kind {
            WHOLE => (None, &inner[INNER_HEADER..]),
            _ if inner.len() >= INNER_HEADER + HALF_HEADER => (
                Some(field(&inner, INNER_HEADER)),
                &inner[INNER_HEADER + HALF_HEADER..],
            ),
            _ => return Err(Rejection::Malformed),
        };
        self.accept(session, counter, now_s)?;
        let Some(message) = message else {
            return Ok(Opened::Payload(payload.to_vec(), fingerprint));
        };
        self.halves.retain(|_, h| now_s <= h.at + HALF_TTL_S);
        match self.halves.remove(&(session, message)) {
            Some(other) if other.kind != kind => {
                let (a, b) = if kind == HALF_2 {
                    (other.payload, payload.to_vec())
                } else {
                    (payload.to_vec(), other.payload)
                };
                let mut whole = a;
                whole.extend_from_slice(&b);
                Ok(Opened::Payload(whole, fingerprint))
            }
            _ => {
                if self.halves.len() >= MAX_HALVES {
                    let oldest = self
                        .halves
                        .iter()
                        .min_by_key(|(_, h)| h.at)
                        .map(|(k, _)| *k);
                    if let Some(k) = oldest {
                        self.halves.remove(&k);
                    }
                }
                self.halves.insert(
                    (session, message),
                    Half {
                        kind,
                        payload: payload.to_vec(),
                        at: now_s,
                    },
                );
                Ok(Opened::Half)
            }
        }
    }

    /// Tells whether the remembered sessions and waiting halves are within their caps.
    #[cfg(test)]
    pub(super) fn bounded(&self) -> bool {
        self.sessions.len() <= MAX_SESSIONS && self.halves.len() <= MAX_HALVES
    }

    /// Records `counter` of `session` as accepted, or refuses it as a replay.
    fn accept(&mut self, session: u64, counter: u64, now_s: u64) -> Result<(), Rejection> {
        if !self.sessions.contains_key(&session) && self.sessions.len() >= MAX_SESSIONS {
            let oldest = self.sessions.iter().min_by_key(|(_, s)| s.heard);
            if let Some(k) = oldest.map(|(k, _)| *k) {
                self.sessions.remove(&k);
            }
        }
        let s = self.sessions.entry(session).or_insert(Session {
            top: counter,
            seen: 0,
            heard: now_s,
        });
        if counter > s.top {
            let shift = counter - s.top;
            s.seen = if shift >= WINDOW { 0 } else { s.seen << shift };
            s.top = counter;
        }
        let back = s.top - counter;
        if back >= WINDOW || s.seen & (1u128 << back) != 0 {
            return Err(Rejection::Replayed);
        }
        s.seen |= 1u128 << back;
        s.heard = now_s;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(bytes: &[u8]) -> Keyring {
        Keyring::new(&Keys::new(bytes.iter().map(|b| [*b; KEY_BYTES]).collect()).unwrap())
    }

    const NOW: u64 = 1_800_000_000;

    fn seal(ring: &Keyring, payload: &[u8]) -> Vec<Vec<u8>> {
        Sealer::new()
            .unwrap()
            .seal(ring, &aad_prefix("c"), NOW, payload)
            .unwrap()
    }

    fn open(o: &mut Opener, ring: &Keyring, d: &[u8]) -> Result<Opened, Rejection> {
        o.open(ring, &aad_prefix("c"), NOW, d)
    }

    #[test]
    fn a_sealed_datagram_opens_once_with_the_right_key_and_cluster() {
        let r = ring(&[1]);
        let d = seal(&r, b"hello").remove(0);
        assert_eq!(d.len(), 5 + OVERHEAD);
        assert!(!d.windows(5).any(|w| w == b"hello"), "encrypted");
        let mut o = Opener::new(30);
        assert_eq!(
            open(&mut o, &r, &d),
            Ok(Opened::Payload(b"hello".to_vec(), r.primary()))
        );
        assert_eq!(open(&mut o, &r, &d), Err(Rejection::Replayed));
        let mut fresh = Opener::new(30);
        assert_eq!(
            open(&mut fresh, &ring(&[2]), &d),
            Err(Rejection::UnknownKey)
        );
        assert_eq!(
            fresh.open(&r, &aad_prefix("other"), NOW, &d),
            Err(Rejection::BadAuth)
        );
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x40;
            let got = Opener::new(30).open(&r, &aad_prefix("c"), NOW, &bad);
            assert!(got.is_err(), "byte {i} flipped still opens");
        }
    }

    #[test]
    fn every_key_of_the_ring_opens_and_the_first_seals() {
        let old = ring(&[1]);
        let both = ring(&[2, 1]);
        let mut o = Opener::new(30);
        let from_old = seal(&old, b"a").remove(0);
        let from_new = seal(&both, b"b").remove(0);
        assert!(
            matches!(open(&mut o, &both, &from_old), Ok(Opened::Payload(_, f)) if f == old.primary())
        );
        assert!(
            matches!(open(&mut o, &both, &from_new), Ok(Opened::Payload(_, f)) if f == both.primary())
        );
        assert_eq!(open(&mut o, &old, &from_new), Err(Rejection::UnknownKey));
    }

    #[test]
    fn send_times_outside_the_skew_are_refused() {
        let r = ring(&[1]);
        let mut s = Sealer::new().unwrap();
        let aad = aad_prefix("c");
        let late = s.seal(&r, &aad, NOW - 31, b"x").unwrap().remove(0);
        let early = s.seal(&r, &aad, NOW + 31, b"x").unwrap().remove(0);
        let ok = s.seal(&r, &aad, NOW - 29, b"x").unwrap().remove(0);
        let mut o = Opener::new(30);
        assert_eq!(o.open(&r, &aad, NOW, &late), Err(Rejection::Stale));
        assert_eq!(o.open(&r, &aad, NOW, &early), Err(Rejection::Stale));
        assert!(o.open(&r, &aad, NOW, &ok).is_ok());
        assert!(Opener::new(0).open(&r, &aad, NOW, &late).is_ok());
    }

    #[test]
    fn the_replay_window_accepts_reordering_and_refuses_repeats() {
        let mut o = Opener::new(0);
        assert_eq!(o.accept(7, 10, NOW), Ok(()));
        assert_eq!(o.accept(7, 12, NOW), Ok(()));
        assert_eq!(o.accept(7, 11, NOW), Ok(()));
        assert_eq!(o.accept(7, 11, NOW), Err(Rejection::Replayed));
        assert_eq!(o.accept(7, 500, NOW), Ok(()));
        assert_eq!(o.accept(7, 500 - WINDOW, NOW), Err(Rejection::Replayed));
        assert_eq!(o.accept(7, 500 - WINDOW + 1, NOW), Ok(()));
        assert_eq!(o.accept(8, 11, NOW), Ok(()), "sessions are apart");
        for s in 0..MAX_SESSIONS as u64 + 10 {
            let _ = o.accept(1000 + s, 1, NOW + s);
        }
        assert_eq!(o.sessions.len(), MAX_SESSIONS);
    }

    #[test]
    fn large_payloads_travel_in_two_halves() {
        let r = ring(&[1]);
        let payload: Vec<u8> = (0..MAX_DATAGRAM).map(|i| (i * 7) as u8).collect();
        let parts = seal(&r, &payload);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.len() <= MAX_DATAGRAM));
        let mut o = Opener::new(30);
        assert_eq!(open(&mut o, &r, &parts[1]), Ok(Opened::Half));
        assert_eq!(
            open(&mut o, &r, &parts[0]),
            Ok(Opened::Payload(payload, r.primary()))
        );
        assert!(o.halves.is_empty());
        let too_big = vec![0u8; MAX_PAYLOAD + 1];
        assert!(matches!(
            Sealer::new()
                .unwrap()
                .seal(&r, &aad_prefix("c"), NOW, &too_big),
            Err(SealError::TooLarge(_))
        ));
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let keys = Keys::new(vec![[0x5a; KEY_BYTES]]).unwrap();
        let shown = format!("{keys:?}");
        assert!(
            !shown.contains("5a5a") && !shown.contains("90, 90"),
            "{shown}"
        );
        assert_eq!(keys.fingerprints()[0], fingerprint(&[0x5a; KEY_BYTES]));
        assert_ne!(fingerprint(&[1; 32]), fingerprint(&[2; 32]));
        assert!(Keys::new(Vec::new()).is_none());
        assert!(Keys::new(vec![[0; 32]; MAX_KEYS + 1]).is_none());
    }
}
