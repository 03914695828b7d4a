//! The gossip transport: chitchat's datagrams, sealed on the way out and opened, checked and
//! only then decoded on the way in, with traffic and rejections counted.
//!
//! chitchat 0.13 keeps its wire codec private (`ChitchatEnvelope::serialize` is
//! `pub(crate)`), so this transport runs chitchat's own UDP socket as a codec on a private
//! loopback pair: the *codec* socket (chitchat's `UdpSocket`, bound to 127.0.0.1) and a *tap*
//! socket (ours), connected to each other so that no other process can write to either.
//! - Sending: chitchat encodes the envelope into the codec, which sends it to the tap; we
//!   read the plain bytes, seal them ([`super::seal`]) and send them to the peer from the
//!   *outer* socket, the one bound to the gossip address.
//! - Receiving: a datagram on the outer socket is opened (authenticated, fresh, not a
//!   replay), checked ([`super::wire`]: shape, decompression budget), and only then handed to
//!   chitchat's decoder through the tap. One datagram is in the codec at a time, so the sender
//!   it came from is known when chitchat hands back the envelope.
//!
//! Nothing that fails any of these steps is answered or decoded: it is counted by reason, and
//! logged at most once a minute per source address.
//!
//! With `--insecure` there are no keys: datagrams are plain chitchat bytes, still checked by
//! [`super::wire`] before chitchat decodes them.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket as CodecSocket};
use chitchat::{ChitchatEnvelope, ChitchatMessage};
use tracing::{error, warn};

use super::fanout::Fanout;
use super::seal::{self, Fingerprint, Keyring, Opened, Opener, Rejection, Sealer};
use super::wire::{self, WireError};

/// How long a datagram handed to chitchat's decoder may take to come back before we take it
/// as refused by chitchat (it then logs why) and move on.
const DECODE_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the tap may take to see what chitchat encoded.
const ENCODE_TIMEOUT: Duration = Duration::from_secs(1);
/// At most one log line per source address (or destination) and per this period.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Most source addresses tracked one by one; beyond, they are counted together.
const MAX_SOURCES: usize = 256;
/// Most peer addresses whose last key is remembered.
const MAX_PEER_KEYS: usize = 4096;
/// Most rejecting sources listed in [`GossipStats::rejecting`].
const MAX_LISTED: usize = 16;
/// A rejecting source is listed while it was heard this recently.
const LISTED_FOR: Duration = Duration::from_secs(300);

/// Gossip traffic of one node since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Time since the node started gossiping, to turn the counters into rates.
    pub elapsed: Duration,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Payload bytes sent (UDP payload, without IP and UDP headers), sealing included.
    pub bytes_sent: u64,
    /// Datagrams received and accepted.
    pub datagrams_received: u64,
    /// Payload bytes of the datagrams received and accepted.
    pub bytes_received: u64,
    /// Datagrams refused, by reason ([`Rejection::as_str`]).
    pub rejected: BTreeMap<String, u64>,
    /// Sources refused in the last minutes, most recent first (at most 16).
    pub rejecting: Vec<RejectingSource>,
    /// The fingerprint of the key each peer address last sealed with.
    pub peer_keys: BTreeMap<SocketAddr, Fingerprint>,
    /// Sends that failed (unreachable network, full buffers): lost like dropped packets.
    pub send_failures: u64,
    /// Datagrams that passed every check here but that chitchat's decoder refused (it logs
    /// why); each costs up to 200 ms of receive. Zero unless the two disagree on the format.
    pub decoder_refusals: u64,
}

/// A source address whose datagrams are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectingSource {
    /// The address (`None`: every address past the first 256, together).
    pub addr: Option<SocketAddr>,
    /// Why its last datagram was refused.
    pub reason: Rejection,
    /// Datagrams refused since start.
    pub count: u64,
    /// Time since its last refused datagram.
    pub last: Duration,
}

/// What the socket shares with the gossip handle.
#[derive(Default)]
pub(super) struct Shared {
    datagrams_sent: AtomicU64,
    bytes_sent: AtomicU64,
    datagrams_received: AtomicU64,
    bytes_received: AtomicU64,
    send_failures: AtomicU64,
    decoder_refusals: AtomicU64,
    log: Mutex<Log>,
    /// The keys in force; `None` with `--insecure`.
    keys: RwLock<Option<Arc<Keyring>>>,
    /// The gossip addresses of the live peers, refreshed every round (for the fan-out).
    live: RwLock<HashSet<SocketAddr>>,
    /// SYNs to live peers left out by the fan-out.
    syns_skipped: AtomicU64,
}

/// Rejections and failures, bounded, with the rate limit of their log lines.
#[derive(Default)]
struct Log {
    by_reason: BTreeMap<Rejection, u64>,
    sources: BTreeMap<Option<SocketAddr>, Source>,
    peer_keys: BTreeMap<SocketAddr, Fingerprint>,
    send_failures: BTreeMap<Option<SocketAddr>, Source>,
}

/// One rate-limited source of log lines.
struct Source {
    /// Why its last datagram was refused (`None` for failed sends).
    reason: Option<Rejection>,
    total: u64,
    unlogged: u64,
    logged: Instant,
    last: Instant,
}

impl Source {
    /// Counts one more event at `now`; returns how many to report if a line is due.
    fn bump(&mut self, reason: Option<Rejection>, now: Instant) -> Option<u64> {
        self.reason = reason;
        self.total += 1;
        self.unlogged += 1;
        self.last = now;
        if now.duration_since(self.logged) < LOG_EVERY {
            return None;
        }
        self.logged = now;
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// Counts an event for `addr` in `map` (bounded); returns `Some(n)` when a line is due (`n`
/// events since the last one), and whether this is the first event of the source.
fn bump(
    map: &mut BTreeMap<Option<SocketAddr>, Source>,
    addr: SocketAddr,
    reason: Option<Rejection>,
    now: Instant,
) -> (Option<SocketAddr>, Option<u64>) {
    let key = if map.contains_key(&Some(addr)) || map.len() < MAX_SOURCES {
        Some(addr)
    } else {
        None
    };
    match map.get_mut(&key) {
        Some(s) => (key, s.bump(reason, now)),
        None => {
            map.insert(
                key,
                Source {
                    reason,
                    total: 1,
                    unlogged: 0,
                    logged: now,
                    last: now,
                },
            );
            (key, Some(1))
        }
    }
}

impl Shared {
    /// Returns shared state holding `keys` (`None`: insecure).
    pub(super) fn new(keys: Option<Keyring>) -> Shared {
        Shared {
            keys: RwLock::new(keys.map(Arc::new)),
            ..Shared::default()
        }
    }

    /// Replaces the keys in force (they must exist: an insecure node stays insecure).
    pub(super) fn set_keys(&self, keys: Keyring) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(keys));
    }

    /// Returns the fingerprint of the primary key (`None`: insecure).
    pub(super) fn primary(&self) -> Option<Fingerprint> {
        self.keys().map(|k| k.primary())
    }

    /// Replaces the set of live peers' gossip addresses.
    pub(super) fn set_live(&self, live: HashSet<SocketAddr>) {
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = live;
    }

    fn keys(&self) -> Option<Arc<Keyring>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a refused datagram from `from`, logging at most once a minute per source.
    fn reject(&self, from: SocketAddr, reason: Rejection) {
        let now = Instant::now();
        let mut log = self.log();
        *log.by_reason.entry(reason).or_default() += 1;
        let (key, due) = bump(&mut log.sources, from, Some(reason), now);
        drop(log);
        let Some(n) = due else { return };
        let who = key.map_or("more than 256 addresses".to_string(), |a| a.to_string());
        if n == 1 {
            warn!(from = %who, reason = reason.as_str(), "refusing gossip: datagrams from {who} {}", reason.explain());
        } else {
            warn!(from = %who, reason = reason.as_str(), count = n, "refusing gossip: {n} more datagrams from {who} in the last minute {}", reason.explain());
        }
    }

    /// Counts a send that failed, logging at most once a minute per destination.
    fn send_failed(&self, to: SocketAddr, err: &std::io::Error) {
        self.send_failures.fetch_add(1, Ordering::Relaxed);
        let mut log = self.log();
        let (_, due) = bump(&mut log.send_failures, to, None, Instant::now());
        drop(log);
        match due {
            Some(1) => warn!(to = %to, "cannot send gossip to {to}: {err}"),
            Some(n) => {
                warn!(to = %to, count = n, "cannot send gossip to {to}: {err} ({n} times in the last minute)")
            }
            None => {}
        }
    }

    /// Returns the counters now, with `elapsed` filled in by the caller.
    pub(super) fn snapshot(&self, elapsed: Duration) -> GossipStats {
        let log = self.log();
        let now = Instant::now();
        let mut rejecting: Vec<RejectingSource> = log
            .sources
            .iter()
            .filter(|(_, s)| now.duration_since(s.last) < LISTED_FOR)
            .filter_map(|(addr, s)| {
                Some(RejectingSource {
                    addr: *addr,
                    reason: s.reason?,
                    count: s.total,
                    last: now.duration_since(s.last),
                })
            })
            .collect();
        rejecting.sort_by_key(|r| r.last);
        rejecting.truncate(MAX_LISTED);
        GossipStats {
            elapsed,
            datagrams_sent: self.datagrams_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            datagrams_received: self.datagrams_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            rejected: log
                .by_reason
                .iter()
                .map(|(r, n)| (r.as_str().to_string(), *n))
                .collect(),
            rejecting,
            peer_keys: log.peer_keys.clone(),
            send_failures: self.send_failures.load(Ordering::Relaxed),
            decoder_refusals: self.decoder_refusals.load(Ordering::Relaxed),
        }
    }
}

/// The transport chitchat is started with.
pub(super) struct SealedTransport {
    pub(super) shared: Arc<Shared>,
    pub(super) cluster_id: String,
    /// Largest accepted clock skew in seconds (0: unchecked).
    pub(super) max_skew_s: u64,
    /// Time between gossip rounds, and the fixed fan-out if any (see [`Fanout`]).
    pub(super) interval: Duration,
    pub(super) fanout: Option<usize>,
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let outer = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let codec = CodecSocket::open(loopback).await?;
        let codec_addr = codec.local_addr()?;
        let tap = tokio::net::UdpSocket::bind(loopback)
            .await
            .context("binding the gossip codec's loopback socket")?;
        let tap_addr = tap.local_addr()?;
        tap.connect(codec_addr).await?;
        seal_codec(codec_addr, tap_addr).context("making the gossip codec private")?;
        let sealer = match self.shared.keys() {
            Some(_) => Some(Sealer::new().map_err(|e| anyhow::anyhow!("{e:?}"))?),
            None => None,
        };
        Ok(Box::new(SealedSocket {
            outer,
            codec: Box::new(codec),
            tap,
            tap_addr,
            pending: None,
            sealer,
            opener: Opener::new(self.max_skew_s),
            aad: seal::aad_prefix(&self.cluster_id),
            cluster_id: self.cluster_id.clone(),
            shared: self.shared.clone(),
            buf: vec![0u8; 65_536].into_boxed_slice(),
            fanout: Fanout::new(self.interval, self.fanout),
        }))
    }
}

/// Connects chitchat's codec socket (found among this process's descriptors by its address)
/// to the tap, so that the kernel delivers it nothing but the tap's datagrams, and drops
/// whatever reached it before.
fn seal_codec(codec: SocketAddr, tap: SocketAddr) -> anyhow::Result<()> {
    use nix::sys::socket::{connect, getsockname, recv, MsgFlags, SockaddrIn};
    let (SocketAddr::V4(codec), SocketAddr::V4(tap)) = (codec, tap) else {
        anyhow::bail!("the codec pair is not on IPv4 loopback");
    };
    let want = SockaddrIn::from(codec);
    for entry in std::fs::read_dir("/proc/self/fd").context("listing /proc/self/fd")? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if getsockname::<SockaddrIn>(fd).ok() != Some(want) {
            continue;
        }
        connect(fd, &SockaddrIn::from(tap))?;
        let mut sink = [0u8; 1];
        while recv(fd, &mut sink, MsgFlags::MSG_DONTWAIT).is_ok() {}
        return Ok(());
    }
    anyhow::bail!("chitchat's codec socket {codec} is not among this process's descriptors")
}

/// A datagram handed to chitchat's decoder, waiting to come back as an envelope.
struct Pending {
    from: SocketAddr,
    bytes: usize,
    deadline: tokio::time::Instant,
}

/// The socket chitchat gossips through; see the module documentation.
struct SealedSocket {
    outer: tokio::net::UdpSocket,
    codec: Box<dyn Socket>,
    tap: tokio::net::UdpSocket,
    tap_addr: SocketAddr,
    pending: Option<Pending>,
    /// `None` with `--insecure`.
    sealer: Option<Sealer>,
    opener: Opener,
    aad: Vec<u8>,
    cluster_id: String,
    shared: Arc<Shared>,
    buf: Box<[u8]>,
    fanout: Fanout,
}

/// Returns the unix time in seconds.
fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Tells whether a socket error is one a datagram socket goes on after.
fn transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        OutOfMemory
            | ConnectionReset
            | ConnectionRefused
            | HostUnreachable
            | NetworkUnreachable
            | PermissionDenied
            | InvalidInput
            | WouldBlock
            | Interrupted
    ) || err.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32)
}

impl SealedSocket {
    /// Opens and checks one datagram from the outer socket; returns the plain chitchat bytes
    /// to decode, or `None` (refused, counted; or half of a pair).
    fn accept(&mut self, from: SocketAddr, n: usize) -> Option<Vec<u8>> {
        let datagram = &self.buf[..n];
        let plain = match self.shared.keys() {
            Some(ring) => match self.opener.open(&ring, &self.aad, unix_s(), datagram) {
                Ok(Opened::Payload(plain, key)) => {
                    let mut log = self.shared.log();
                    if log.peer_keys.len() < MAX_PEER_KEYS || log.peer_keys.contains_key(&from) {
                        log.peer_keys.insert(from, key);
                    }
                    plain
                }
                Ok(Opened::Half) => return None,
                Err(reason) => {
                    self.shared.reject(from, reason);
                    return None;
                }
            },
            None => datagram.to_vec(),
        };
        match wire::check(&plain) {
            Ok(Some(cluster)) if cluster != self.cluster_id => {
                self.shared.reject(from, Rejection::OtherCluster);
                None
            }
            Ok(_) => Some(plain),
            Err(WireError::TooLarge) => {
                self.shared.reject(from, Rejection::TooLarge);
                None
            }
            Err(WireError::Malformed(_)) => {
                let reason = if self.sealer.is_some() {
                    Rejection::Malformed
                } else {
                    Rejection::NotSealed
                };
                self.shared.reject(from, reason);
                None
            }
        }
    }
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.outer
            .local_addr()
            .context("failed to get UDP socket address")
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        if matches!(envelope.message, ChitchatMessage::Syn { .. }) {
            let live = self
                .shared
                .live
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if !self.fanout.allow(Instant::now(), to, &live) {
                self.shared.syns_skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(SendOutcome { num_bytes_sent: 0 });
            }
        }
        // A send cancelled half-way (only at shutdown) may have left its bytes in the tap.
        while self.tap.try_recv(&mut self.buf).is_ok() {}
        self.codec.send(self.tap_addr, envelope).await?;
        let n = match tokio::time::timeout(ENCODE_TIMEOUT, self.tap.recv(&mut self.buf)).await {
            Ok(r) => r.context("reading the gossip codec")?,
            Err(_) => {
                error!("the gossip codec did not deliver an encoded message; one message lost");
                return Ok(SendOutcome { num_bytes_sent: 0 });
            }
        };
        let datagrams = match (&mut self.sealer, self.shared.keys()) {
            (Some(sealer), Some(ring)) => {
                match sealer.seal(&ring, &self.aad, unix_s(), &self.buf[..n]) {
                    Ok(d) => d,
                    Err(e) => {
                        error!("cannot seal a gossip message of {n} bytes: {e:?}; message lost");
                        return Ok(SendOutcome { num_bytes_sent: 0 });
                    }
                }
            }
            _ => vec![self.buf[..n].to_vec()],
        };
        let mut sent = 0;
        for d in datagrams {
            match self.outer.send_to(&d, to).await {
                Ok(k) => {
                    sent += k;
                    self.shared.datagrams_sent.fetch_add(1, Ordering::Relaxed);
                    self.shared
                        .bytes_sent
                        .fetch_add(k as u64, Ordering::Relaxed);
                }
                Err(e) if transient(&e) => self.shared.send_failed(to, &e),
                Err(e) => return Err(e).context("failed to send a gossip datagram"),
            }
        }
        Ok(SendOutcome {
            num_bytes_sent: sent,
        })
    }

    // Cancel-safe as chitchat requires: each await is on a cancel-safe receive, and the state
    // between them (`pending`) lives in `self`.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            if let Some(deadline) = self.pending.as_ref().map(|p| p.deadline) {
                tokio::select! {
                    r = self.codec.recv() => {
                        let out = r?;
                        if let Some(p) = self.pending.take() {
                            self.shared.datagrams_received.fetch_add(1, Ordering::Relaxed);
                            self.shared.bytes_received.fetch_add(p.bytes as u64, Ordering::Relaxed);
                            return Ok(RecvOutcome {
                                from_addr: p.from,
                                envelope: out.envelope,
                                num_bytes_received: p.bytes,
                            });
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        self.pending = None;
                        self.shared.decoder_refusals.fetch_add(1, Ordering::Relaxed);
                    }
                }
                continue;
            }
            let (n, from) = match self.outer.recv_from(&mut self.buf).await {
                Ok(r) => r,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(e).context("fatal UDP recv error"),
            };
            let Some(plain) = self.accept(from, n) else {
                continue;
            };
            match self.tap.try_send(&plain) {
                Ok(_) => {
                    self.pending = Some(Pending {
                        from,
                        bytes: n,
                        deadline: tokio::time::Instant::now() + DECODE_TIMEOUT,
                    })
                }
                Err(e) => warn!("cannot hand a datagram to the gossip codec: {e}"),
            }
        }
    }
}
