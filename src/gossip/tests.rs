//! Tests of the gossip layer over real UDP on 127.0.0.1, each on ports found free by binding
//! port 0 first (tests run in parallel: never fixed ports). They print what they measure; run
//! with `--nocapture` to see it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

/// Returns `n` UDP ports free on 127.0.0.1 a moment ago.
fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Returns the default configuration of `name` on `port`, seeded with `seeds`.
fn config(name: &str, port: u16, seeds: &[u16]) -> GossipConfig {
    let mut cfg = GossipConfig::new(name, addr(port));
    cfg.seeds = seeds.iter().map(|p| addr(*p).to_string()).collect();
    cfg
}

async fn start(name: &str, port: u16, seeds: &[u16]) -> Gossip {
    Gossip::start(config(name, port, seeds), BTreeMap::new())
        .await
        .unwrap()
}

/// Starts `names.len()` nodes, every one seeded with every port.
async fn cluster(names: &[&str]) -> (Vec<Gossip>, Vec<u16>) {
    let ports = free_ports(names.len());
    let mut nodes = Vec::new();
    for (name, port) in names.iter().zip(&ports) {
        nodes.push(start(name, *port, &ports).await);
    }
    (nodes, ports)
}

/// Polls `node`'s view every 10 ms until `pred` holds; returns how long that took, or `None`
/// after `timeout`.
async fn wait_view(
    node: &Gossip,
    timeout: Duration,
    pred: impl Fn(&ClusterView) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if pred(&node.view().await) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn alive_count(view: &ClusterView) -> usize {
    view.alive().count()
}

fn key_of(view: &ClusterView, node: &str, key: &str) -> Option<String> {
    view.member(node)?.keys.get(key).cloned()
}

/// Waits until every node sees all `n` alive, and returns the slowest time.
async fn all_live(nodes: &[Gossip], n: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for node in nodes {
        let took = wait_view(node, Duration::from_secs(2), |v| alive_count(v) == n)
            .await
            .unwrap_or_else(|| panic!("{} never saw {n} nodes live", node.node()));
        slowest = slowest.max(took);
    }
    slowest
}

async fn shutdown_all(nodes: Vec<Gossip>) {
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn gossip_two_nodes_see_each_other_live() {
    let (nodes, ports) = cluster(&["a", "b"]).await;
    let took = all_live(&nodes, 2).await;
    eprintln!("2 nodes live on both after {took:?}");
    let view = nodes[0].view().await;
    assert_eq!(view.me, "a");
    assert_eq!(view.members.len(), 2);
    let b = view.member("b").unwrap();
    assert_eq!(b.addr, addr(ports[1]));
    assert_eq!(b.generation, nodes[1].generation());
    assert!(
        b.last_heard.is_some_and(|d| d < Duration::from_secs(1)),
        "{b:?}"
    );
    let a = view.member("a").unwrap();
    assert_eq!(a.generation, nodes[0].generation());
    assert_eq!(a.last_heard, Some(Duration::ZERO));
    // The detection timeout needs a few heartbeat samples.
    let timeout = wait_view(&nodes[0], Duration::from_secs(2), |v| {
        v.member("b").is_some_and(|b| b.detection_timeout.is_some())
    })
    .await;
    assert!(timeout.is_some());
    eprintln!(
        "detection timeout of b seen by a: {:?}",
        nodes[0].view().await.member("b").unwrap().detection_timeout
    );
    shutdown_all(nodes).await;
}

#[tokio::test]
async fn gossip_three_nodes_see_each_other_live_through_one_seed() {
    let ports = free_ports(3);
    let mut nodes = Vec::new();
    for (name, port) in ["a", "b", "c"].iter().zip(&ports) {
        // Everyone knows only the first node's address.
        nodes.push(start(name, *port, &ports[..1]).await);
    }
    let took = all_live(&nodes, 3).await;
    eprintln!("3 nodes live on all after {took:?}");
    shutdown_all(nodes).await;
}

#[tokio::test]
async fn gossip_published_key_reaches_peer_and_delete_propagates() {
    let (nodes, _) = cluster(&["a", "b"]).await;
    all_live(&nodes, 2).await;
    nodes[0]
        .publish(&[("role".to_string(), Some("db".to_string()))])
        .await
        .unwrap();
    let took = wait_view(&nodes[1], Duration::from_secs(2), |v| {
        key_of(v, "a", "role").as_deref() == Some("db")
    })
    .await
    .expect("key never reached b");
    eprintln!("key set -> visible on peer after {took:?}");
    assert_eq!(
        key_of(&nodes[0].view().await, "a", "role").as_deref(),
        Some("db")
    );

    nodes[0]
        .publish(&[("role".to_string(), None)])
        .await
        .unwrap();
    let took = wait_view(&nodes[1], Duration::from_secs(2), |v| {
        v.member("a").is_some_and(|a| !a.keys.contains_key("role"))
    })
    .await
    .expect("delete never reached b");
    eprintln!("key delete -> visible on peer after {took:?}");
    // Deleting an absent key is harmless.
    nodes[0]
        .publish(&[("nope".to_string(), None)])
        .await
        .unwrap();
    shutdown_all(nodes).await;
}

#[tokio::test]
async fn gossip_oversized_value_is_refused_and_later_updates_propagate() {
    let (nodes, _) = cluster(&["a", "b"]).await;
    all_live(&nodes, 2).await;
    let big = "x".repeat(MAX_VALUE_BYTES + 1);
    let err = nodes[0]
        .publish(&[
            ("before".to_string(), Some("1".to_string())),
            ("big".to_string(), Some(big)),
        ])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        GossipError::ValueTooLarge {
            key: "big".to_string(),
            bytes: MAX_VALUE_BYTES + 1
        }
    );
    assert!(err.to_string().contains("\"big\""), "{err}");
    // Nothing of the refused batch was applied.
    assert!(!nodes[0].view().await.members["a"]
        .keys
        .contains_key("before"));

    // Far more than one datagram in total (16 values of 8 KiB), then a last small update: every
    // key reaches the peer, over several rounds.
    let mut changes: Vec<(String, Option<String>)> = (0..16)
        .map(|i| {
            (
                format!("chunk/{i:02}"),
                Some(char::from(b'a' + i).to_string().repeat(MAX_VALUE_BYTES)),
            )
        })
        .collect();
    changes.push(("after".to_string(), Some("2".to_string())));
    nodes[0].publish(&changes).await.unwrap();
    let took = wait_view(&nodes[1], Duration::from_secs(5), |v| {
        key_of(v, "a", "after").as_deref() == Some("2")
    })
    .await
    .expect("the update after a large batch never reached b");
    eprintln!("64+ KiB batch then a small key -> visible on peer after {took:?}");
    let view = nodes[1].view().await;
    let a = view.member("a").unwrap();
    assert_eq!(
        a.keys.keys().filter(|k| k.starts_with("chunk/")).count(),
        16
    );
    assert!(!a.keys.contains_key("big"));
    shutdown_all(nodes).await;
}

#[tokio::test]
async fn gossip_restarted_node_is_seen_again_with_one_entry() {
    let (mut nodes, ports) = cluster(&["a", "b"]).await;
    all_live(&nodes, 2).await;
    let b = nodes.pop().unwrap();
    let old_generation = b.generation();
    b.shutdown().await;
    let b = start("b", ports[1], &ports).await;
    let new_generation = b.generation();
    assert!(new_generation > old_generation);
    let took = wait_view(&nodes[0], Duration::from_secs(3), |v| {
        v.member("b")
            .is_some_and(|m| m.alive && m.generation == new_generation)
    })
    .await
    .expect("restarted b never seen live");
    eprintln!("restarted node live again on peer after {took:?}");
    let view = nodes[0].view().await;
    assert_eq!(view.members.len(), 2, "{:?}", view.members.keys());
    assert_eq!(view.members.keys().collect::<Vec<_>>(), ["a", "b"]);
    nodes.push(b);
    shutdown_all(nodes).await;
}

#[tokio::test]
async fn gossip_killed_node_is_seen_dead_with_defaults() {
    let (mut nodes, _) = cluster(&["a", "b", "c"]).await;
    all_live(&nodes, 3).await;
    // Let the failure detector gather a few samples, as in a running cluster.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c = nodes.pop().unwrap();
    let c_generation = c.generation();
    c.shutdown().await;
    let killed = Instant::now();
    for node in &nodes {
        wait_view(node, Duration::from_secs(5), |v| {
            v.member("c").is_some_and(|c| !c.alive)
        })
        .await
        .unwrap_or_else(|| panic!("{} never saw c dead", node.node()));
        let took = killed.elapsed();
        assert!(took < Duration::from_secs(5), "{took:?}");
        let view = node.view().await;
        let c = view.member("c").unwrap();
        assert_eq!(c.generation, c_generation);
        eprintln!(
            "{} saw c dead at most {took:?} after the kill (last heard {:?} ago)",
            node.node(),
            c.last_heard
        );
    }
    shutdown_all(nodes).await;
}

#[tokio::test]
async fn gossip_stats_count_bytes() {
    let (nodes, _) = cluster(&["a", "b", "c"]).await;
    all_live(&nodes, 3).await;
    let before: Vec<GossipStats> = nodes.iter().map(Gossip::stats).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (node, before) in nodes.iter().zip(before) {
        let after = node.stats();
        assert!(after.datagrams_sent > before.datagrams_sent);
        assert!(after.datagrams_received > before.datagrams_received);
        assert!(after.bytes_sent > after.datagrams_sent);
        assert!(after.bytes_received > after.datagrams_received);
        let secs = (after.elapsed - before.elapsed).as_secs_f64();
        eprintln!(
            "idle 3-node cluster, {}: sent {:.0} B/s in {:.0} datagrams/s, received {:.0} B/s",
            node.node(),
            (after.bytes_sent - before.bytes_sent) as f64 / secs,
            (after.datagrams_sent - before.datagrams_sent) as f64 / secs,
            (after.bytes_received - before.bytes_received) as f64 / secs,
        );
    }
    shutdown_all(nodes).await;
}

#[tokio::test]
async fn gossip_termination_resolves_on_shutdown() {
    let (mut nodes, _) = cluster(&["a"]).await;
    let a = nodes.pop().unwrap();
    let ended = a.termination();
    a.shutdown().await;
    let outcome = tokio::time::timeout(Duration::from_secs(2), ended).await;
    assert_eq!(outcome, Ok(Ok(())));
}

#[tokio::test]
async fn gossip_ignores_other_clusters() {
    let ports = free_ports(2);
    let a = start("a", ports[0], &ports).await;
    let mut cfg = config("x", ports[1], &ports);
    cfg.cluster_id = "other".to_string();
    let x = Gossip::start(cfg, BTreeMap::new()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(a.view().await.members.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(x.view().await.members.keys().collect::<Vec<_>>(), ["x"]);
    a.shutdown().await;
    x.shutdown().await;
}

#[tokio::test]
async fn gossip_start_refuses_bad_input() {
    let ports = free_ports(1);
    let big = BTreeMap::from([("k".to_string(), "x".repeat(MAX_VALUE_BYTES + 1))]);
    let err = Gossip::start(config("a", ports[0], &[]), big)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("\"k\""), "{err:#}");
    let err = Gossip::start(config("", ports[0], &[]), BTreeMap::new())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("node name"), "{err:#}");
    // The initial keys are published.
    let initial = BTreeMap::from([("k".to_string(), "v".to_string())]);
    let a = Gossip::start(config("a", ports[0], &[]), initial)
        .await
        .unwrap();
    assert_eq!(key_of(&a.view().await, "a", "k").as_deref(), Some("v"));
    // The port is taken now.
    let err = Gossip::start(config("b", ports[0], &[]), BTreeMap::new())
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("bind"), "{err:#}");
    a.shutdown().await;
}

#[tokio::test]
async fn gossip_replicated_file_reaches_peer_whole() {
    use crate::replica::{publish_keys, read_published, stale_keys, Version};
    let (nodes, _) = cluster(&["a", "b"]).await;
    all_live(&nodes, 2).await;
    let content = "line é€😀\n".repeat(512 * 1024 / 16);
    let version = Version {
        ms: 1,
        seq: 0,
        node: "a".to_string(),
    };
    let keys = publish_keys("cltab", &version, &content).unwrap();
    let nchunks = keys.len() - 1;
    let changes: Vec<(String, Option<String>)> =
        keys.into_iter().map(|(k, v)| (k, Some(v))).collect();
    nodes[0].publish(&changes).await.unwrap();
    let whole = |v: &ClusterView| {
        v.member("a")
            .and_then(|a| read_published("cltab", &a.keys))
            .is_some_and(|p| p.content.is_some())
    };
    let took = wait_view(&nodes[1], Duration::from_secs(10), whole)
        .await
        .expect("the file never reached b whole");
    eprintln!(
        "{} KiB file in {nchunks} chunks -> whole on peer after {took:?}",
        content.len() / 1024
    );
    let view = nodes[1].view().await;
    let published = read_published("cltab", &view.members["a"].keys).unwrap();
    assert_eq!(published.version, version);
    assert_eq!(published.content.as_deref(), Some(content.as_str()));

    // A shorter version replaces it; the stale chunks are deleted after the new `v` key.
    let version = Version {
        ms: 2,
        seq: 0,
        node: "a".to_string(),
    };
    let keys = publish_keys("cltab", &version, "short\n").unwrap();
    let own = nodes[0].view().await.members["a"].keys.clone();
    let mut changes: Vec<(String, Option<String>)> =
        keys.iter().cloned().map(|(k, v)| (k, Some(v))).collect();
    changes.extend(
        stale_keys("cltab", &own, keys.len() - 1)
            .into_iter()
            .map(|k| (k, None)),
    );
    nodes[0].publish(&changes).await.unwrap();
    wait_view(&nodes[1], Duration::from_secs(5), |v| {
        v.member("a").is_some_and(|a| {
            a.keys.len() == 2
                && read_published("cltab", &a.keys)
                    .is_some_and(|p| p.content.as_deref() == Some("short\n"))
        })
    })
    .await
    .expect("the shorter version never replaced the file on b");
    shutdown_all(nodes).await;
}

/// Regression (found by the chaos run): every restart leaves its old generation behind as a
/// dead member, listed in every digest for half the dead-node grace; with a 1 h grace a
/// cluster whose daemons restarted often gossiped 17 times more. The default is 10 min, and
/// a restarted member's old generation leaves the view (and chitchat's digests, which
/// exclude the same members) after half the grace, while the new one stays.
#[tokio::test]
async fn gossip_a_restarts_old_generation_leaves_after_half_the_grace() {
    assert!(GossipConfig::new("x", addr(1)).dead_node_grace <= Duration::from_secs(600));
    let ports = free_ports(2);
    let grace = Duration::from_secs(3);
    let mut cfg = config("a", ports[0], &ports);
    cfg.dead_node_grace = grace;
    let a = Gossip::start(cfg, BTreeMap::new()).await.unwrap();
    let b = start("b", ports[1], &ports).await;
    let old = b.generation();
    assert!(
        wait_view(&a, Duration::from_secs(5), |v| alive_count(v) == 2)
            .await
            .is_some()
    );
    b.shutdown().await;
    let b = start("b", ports[1], &ports).await;
    let new = b.generation();
    assert_ne!(old, new);
    // The old generation is dead (a shadow of the name no more), then gone altogether.
    let gone = wait_view(&a, Duration::from_secs(20), |v| {
        v.member("b")
            .is_some_and(|m| m.generation == new && m.alive)
            && v.shadows.is_empty()
    })
    .await;
    assert!(gone.is_some(), "the new generation of b never showed");
    let start = Instant::now();
    let mut dropped = None;
    while start.elapsed() < grace * 4 {
        if a.doomed().await.contains(&("b".to_string(), old)) {
            dropped = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dropped.is_some(),
        "b's old generation stayed in a's digests"
    );
    shutdown_all(vec![a, b]).await;
}
