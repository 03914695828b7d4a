//! Tests of sealed gossip over real UDP on 127.0.0.1: nodes with the cluster key form a
//! cluster, a node with another key never does, a rotation keeps everyone alive, and crafted
//! datagrams (plain, replayed, forged with the key, bombs) change nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::seal::{aad_prefix, Keyring, Sealer};
use super::*;
use crate::config::authkey::KEY_BYTES;

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn keys(bytes: &[u8]) -> Keys {
    Keys::new(bytes.iter().map(|b| [*b; KEY_BYTES]).collect()).unwrap()
}

async fn start(name: &str, port: u16, seeds: &[u16], k: Option<Keys>) -> Gossip {
    let mut cfg = GossipConfig::new(name, addr(port));
    cfg.seeds = seeds.iter().map(|p| addr(*p).to_string()).collect();
    cfg.keys = k;
    Gossip::start(cfg, BTreeMap::from([("k".to_string(), name.to_string())]))
        .await
        .unwrap()
}

async fn wait_view(node: &Gossip, timeout: Duration, pred: impl Fn(&ClusterView) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if pred(&node.view().await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn alive(view: &ClusterView) -> Vec<String> {
    view.alive().map(str::to_string).collect()
}

/// Sends `datagram` to `to` from a fresh socket; returns whether anything came back within
/// `wait`.
async fn answered(datagram: &[u8], to: SocketAddr, wait: Duration) -> bool {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(datagram, to).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    tokio::time::timeout(wait, s.recv_from(&mut buf))
        .await
        .is_ok()
}

fn rejected(node: &Gossip, reason: &str) -> u64 {
    node.stats().rejected.get(reason).copied().unwrap_or(0)
}

#[tokio::test]
async fn only_nodes_with_the_key_become_members() {
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a = start("a", pa, &[pb], Some(keys(&[1]))).await;
    let b = start("b", pb, &[pa], Some(keys(&[1]))).await;
    let stranger = start("c", pc, &[pa, pb], Some(keys(&[9]))).await;
    assert!(
        wait_view(&a, Duration::from_secs(5), |v| alive(v) == ["a", "b"]).await,
        "a and b never formed a cluster"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in [&a, &b] {
        let view = node.view().await;
        assert!(view.member("c").is_none(), "{view:?}");
        assert_eq!(
            node.stats().peer_keys.values().collect::<Vec<_>>(),
            vec![&keys(&[1]).fingerprints()[0]]
        );
    }
    assert!(rejected(&a, "unknown-key") > 0, "{:?}", a.stats());
    assert_eq!(alive(&stranger.view().await), ["c"]);
    assert_eq!(stranger.stats().datagrams_received, 0);
    let listed = &a.stats().rejecting;
    assert!(
        listed.iter().any(|r| r.addr == Some(addr(pc))),
        "{listed:?}"
    );
    for n in [a, b, stranger] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_rolling_rotation_keeps_every_member() {
    let (pa, pb) = (free_port(), free_port());
    let a = start("a", pa, &[pb], Some(keys(&[1]))).await;
    let b = start("b", pb, &[pa], Some(keys(&[1]))).await;
    assert!(wait_view(&a, Duration::from_secs(5), |v| alive(v) == ["a", "b"]).await);
    // Each step on one node, then the other, checking both stay alive all along.
    let steps = [keys(&[1, 2]), keys(&[2, 1]), keys(&[2])];
    for k in &steps {
        for node in [&a, &b] {
            node.set_keys(k).unwrap();
            let until = Instant::now() + Duration::from_millis(600);
            while Instant::now() < until {
                for n in [&a, &b] {
                    assert_eq!(alive(&n.view().await), ["a", "b"], "at step {k:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let new = keys(&[2]).fingerprints()[0];
    assert!(a.stats().peer_keys.values().all(|f| *f == new));
    assert_eq!(rejected(&a, "unknown-key") + rejected(&b, "unknown-key"), 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn crafted_datagrams_change_nothing() {
    let (pa, pb) = (free_port(), free_port());
    let a = start("a", pa, &[pb], Some(keys(&[1]))).await;
    let b = start("b", pb, &[pa], Some(keys(&[1]))).await;
    assert!(wait_view(&a, Duration::from_secs(5), |v| alive(v) == ["a", "b"]).await);
    let b_gen = b.generation();
    let wait = Duration::from_millis(500);

    // A plain chitchat SYN gets no answer (no amplification, no leak).
    let plain = wire::tests::syn("mosha", &[]);
    assert!(!answered(&plain, addr(pa), wait).await);
    assert!(rejected(&a, "not-sealed") >= 1);

    // Sealed with the key: answered once; the same bytes again are a replay.
    let ring = Keyring::new(&keys(&[1]));
    let aad = aad_prefix("mosha");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut sealer = Sealer::new().unwrap();
    let syn = sealer.seal(&ring, &aad, now, &plain).unwrap().remove(0);
    assert!(answered(&syn, addr(pa), wait).await);
    assert!(!answered(&syn, addr(pa), wait).await);
    assert!(rejected(&a, "replayed") >= 1);
    // Of another cluster, or too old.
    let other = sealer
        .seal(&ring, &aad_prefix("other"), now, &plain)
        .unwrap()
        .remove(0);
    assert!(!answered(&other, addr(pa), wait).await);
    let old = sealer
        .seal(&ring, &aad, now - 3600, &plain)
        .unwrap()
        .remove(0);
    assert!(!answered(&old, addr(pa), wait).await);
    assert!(rejected(&a, "bad-auth") >= 1 && rejected(&a, "clock-skew") >= 1);

    // A key holder's SYN naming b at generation + 1 does not hide the live b.
    let forged = wire::tests::syn("mosha", &[("b", b_gen + 1, 1_000_000)]);
    let forged = sealer.seal(&ring, &aad, now, &forged).unwrap().remove(0);
    assert!(answered(&forged, addr(pa), wait).await);
    for _ in 0..30 {
        let view = a.view().await;
        let shown = view.member("b").map(|m| (m.generation, m.alive));
        assert_eq!(shown, Some((b_gen, true)), "{view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A bomb sealed with the key is refused before chitchat inflates it.
    let block = zstd::bulk::compress(&[0u8; 65_535], 19).unwrap();
    assert!(block.len() < 100);
    let mut bomb = vec![0x53, 0xb0, 1, 2];
    while bomb.len() + block.len() + 200 < 60_000 {
        bomb.push(1);
        bomb.extend_from_slice(&(block.len() as u16).to_le_bytes());
        bomb.extend_from_slice(&block);
    }
    bomb.push(0);
    let t = Instant::now();
    for _ in 0..20 {
        let sealed = sealer.seal(&ring, &aad, now, &bomb).unwrap().remove(0);
        assert!(!answered(&sealed, addr(pa), Duration::from_millis(10)).await);
    }
    assert!(rejected(&a, "too-large") >= 20, "{:?}", a.stats());
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(alive(&a.view().await), ["a", "b"]);
    a.shutdown().await;
    b.shutdown().await;
}
