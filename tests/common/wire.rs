//! The gossip wire format, written again from its description (README "Security", and
//! chitchat 0.13's `message_serialize.rs`, `delta.rs`, `serialize.rs`), so that tests can craft
//! datagrams the way an attacker or a broken peer would: plain chitchat messages, and sealed
//! ones with any key, cluster id, time, session and counter. Nothing here calls mosha's own
//! code: if the two disagree, the tests fail.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// chitchat's magic number.
const MAGIC: u16 = 45_139;
/// The first byte of a sealed datagram holding a whole payload.
const WHOLE: u8 = 0xA1;

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// Appends a chitchat node id: name, generation, address (IPv4).
fn put_id(b: &mut Vec<u8>, name: &str, generation: u64, addr: SocketAddr) {
    put_str(b, name);
    b.extend_from_slice(&generation.to_le_bytes());
    let SocketAddr::V4(a) = addr else {
        panic!("IPv4 only")
    };
    b.push(4);
    b.extend_from_slice(&a.ip().octets());
    b.extend_from_slice(&a.port().to_le_bytes());
}

/// A plain chitchat SYN (protocol 0) of `cluster` whose digest lists `nodes`: (name,
/// generation, address, heartbeat).
pub fn syn(cluster: &str, nodes: &[(&str, u64, SocketAddr, u64)]) -> Vec<u8> {
    let mut b = MAGIC.to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&(nodes.len() as u16).to_le_bytes());
    for (name, generation, addr, heartbeat) in nodes {
        put_id(&mut b, name, *generation, *addr);
        b.extend_from_slice(&heartbeat.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes()); // last gc version
        b.extend_from_slice(&0u64.to_le_bytes()); // max version
    }
    put_str(&mut b, cluster);
    b
}

/// A plain chitchat ACK whose delta sets `keys` (key, value) on node `name` at `generation`
/// and `addr`, with versions 1.., as one uncompressed block.
pub fn ack(name: &str, generation: u64, addr: SocketAddr, keys: &[(&str, &str)]) -> Vec<u8> {
    let mut ops = vec![0u8];
    put_id(&mut ops, name, generation, addr);
    ops.extend_from_slice(&0u64.to_le_bytes()); // last gc version
    ops.extend_from_slice(&0u64.to_le_bytes()); // from version (excluded)
    for (i, (k, v)) in keys.iter().enumerate() {
        ops.push(1);
        put_str(&mut ops, k);
        put_str(&mut ops, v);
        ops.extend_from_slice(&(i as u64 + 1).to_le_bytes());
        ops.push(0); // set
    }
    ops.push(2);
    ops.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    let mut b = MAGIC.to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 2]);
    for chunk in ops.chunks(16_384) {
        b.push(2);
        b.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
        b.extend_from_slice(chunk);
    }
    b.push(0);
    b
}

/// A plain chitchat ACK whose delta is `blocks` zstd blocks, each inflating to 64 KB of
/// zeros: a decompression bomb of about `blocks` × 64 KB in far fewer bytes.
pub fn bomb(blocks: usize) -> Vec<u8> {
    let block = zstd::bulk::compress(&[0u8; 65_535], 19).expect("compressing zeros");
    let mut b = MAGIC.to_le_bytes().to_vec();
    b.extend_from_slice(&[1, 2]);
    for _ in 0..blocks {
        b.push(1);
        b.extend_from_slice(&(block.len() as u16).to_le_bytes());
        b.extend_from_slice(&block);
    }
    b.push(0);
    b
}

/// Decodes a key line (64 hex digits).
pub fn key_bytes(hex: &str) -> [u8; 32] {
    let hex = hex.trim();
    assert_eq!(hex.len(), 64, "a key is 64 hex digits");
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digit");
    }
    k
}

/// Returns a key's fingerprint as mosha shows it (8 hex digits): the first 4 bytes of the
/// tag of an empty message under a zero nonce and the label "mosha key fingerprint/1".
pub fn fingerprint(key: &[u8; 32]) -> String {
    fingerprint_bytes(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fingerprint_bytes(key: &[u8; 32]) -> [u8; 4] {
    let tag = XChaCha20Poly1305::new(&(*key).into())
        .encrypt(
            &XNonce::from([0u8; 24]),
            Payload {
                msg: b"",
                aad: b"mosha key fingerprint/1",
            },
        )
        .expect("sealing nothing");
    tag[..4].try_into().unwrap()
}

/// What a sealed datagram says besides its payload.
#[derive(Clone, Debug)]
pub struct Seal {
    pub key: [u8; 32],
    pub cluster: String,
    /// Send time, unix seconds.
    pub sent: u64,
    pub session: u64,
    pub counter: u64,
}

impl Seal {
    /// A seal with `key` for cluster `mosha`, sent now, with a random session, counter 1.
    pub fn new(key: [u8; 32]) -> Seal {
        Seal {
            key,
            cluster: "mosha".to_string(),
            sent: unix_now(),
            session: u64::from_le_bytes(super::random_bytes()),
            counter: 1,
        }
    }

    /// Seals `payload` as one whole datagram, then counts one more datagram.
    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        let hint = fingerprint_bytes(&self.key);
        let mut out = vec![WHOLE, hint[0], hint[1]];
        out.extend_from_slice(&self.session.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        self.counter += 1;
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(&out[3..19]);
        let mut inner = (self.sent as u32).to_be_bytes().to_vec();
        inner.extend_from_slice(payload);
        let mut aad = b"mosha-gossip/1\0".to_vec();
        aad.extend_from_slice(self.cluster.as_bytes());
        aad.push(0);
        aad.extend_from_slice(&out);
        let sealed = XChaCha20Poly1305::new(&self.key.into())
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &inner,
                    aad: &aad,
                },
            )
            .expect("sealing");
        out.extend_from_slice(&sealed);
        out
    }
}

/// Returns the unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A UDP socket on 127.0.0.1 to send crafted datagrams from and read answers on.
pub struct Prober(pub UdpSocket);

impl Prober {
    pub fn new() -> Prober {
        Prober(UdpSocket::bind("127.0.0.1:0").expect("binding a probe socket"))
    }

    /// Sends `datagram` to `to`; returns the size of the first answer within `wait`, if any.
    pub fn ask(&self, datagram: &[u8], to: SocketAddr, wait: Duration) -> Option<usize> {
        let mut buf = vec![0u8; 65_536];
        self.0.set_nonblocking(true).unwrap();
        while self.0.recv_from(&mut buf).is_ok() {}
        self.0.set_nonblocking(false).unwrap();
        self.0.send_to(datagram, to).expect("sending a datagram");
        self.0.set_read_timeout(Some(wait)).unwrap();
        self.0.recv_from(&mut buf).ok().map(|(n, _)| n)
    }

    /// Sends `datagram` to `to` without waiting for anything.
    pub fn send(&self, datagram: &[u8], to: SocketAddr) {
        let _ = self.0.send_to(datagram, to);
    }
}
