//! Membership on loopback with the daemon's defaults: N real `mosha run` processes (no
//! groups), then
//! - gossip bytes/s per node while idle (from each node's hastat counters),
//! - false deaths: any member seen not alive by anyone during an idle period,
//! - detection: SIGKILL one node, time until each other node's hastat says it is not alive
//!   (p50 / max over observers and kills).
//!
//! `cargo bench --bench membership -- [--nodes N] [--idle SECONDS] [--kills K]`
//! (defaults 30, 30, 5; the brief's "no false deaths over 10 minutes" is `--idle 600`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn hastat(dir: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("hastat.json")).ok()?).ok()
}

struct Node {
    name: String,
    dir: PathBuf,
    addr: String,
    child: Option<Child>,
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn main() {
    let n = arg("--nodes", 30) as usize;
    let idle = arg("--idle", 30);
    let kills = arg("--kills", 5) as usize;
    let top = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=n)
        .map(|i| {
            let dir = top.path().join(format!("n{i}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("cltab"), "").unwrap();
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            Node {
                name: format!("n{i}"),
                dir,
                addr: format!("127.0.0.1:{port}"),
                child: None,
            }
        })
        .collect();
    let seeds: Vec<String> = nodes.iter().take(3).map(|n| n.addr.clone()).collect();
    let start = |node: &mut Node| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mosha"));
        cmd.args([
            "run", "--log", "warn", "--node", &node.name, "--listen", &node.addr,
        ])
        .arg("--dir")
        .arg(&node.dir)
        .stderr(Stdio::null());
        for s in seeds.iter().filter(|s| **s != node.addr) {
            cmd.args(["--seed", s]);
        }
        node.child = Some(cmd.spawn().unwrap());
    };
    for node in nodes.iter_mut() {
        start(node);
    }
    let t = Instant::now();
    let all_live = |nodes: &[Node]| {
        nodes.iter().filter(|x| x.child.is_some()).all(|x| {
            hastat(&x.dir).is_some_and(|h| {
                h["live"].as_u64()
                    == Some(nodes.iter().filter(|y| y.child.is_some()).count() as u64)
            })
        })
    };
    while !all_live(&nodes) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "cluster did not converge"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "N = {n}: every node sees every other alive after {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // Idle: traffic and false deaths.
    let sent = |nodes: &[Node]| -> Vec<f64> {
        nodes
            .iter()
            .map(|x| {
                hastat(&x.dir).map_or(0.0, |h| h["gossip"]["bytes_sent"].as_f64().unwrap_or(0.0))
            })
            .collect()
    };
    std::thread::sleep(Duration::from_secs(2));
    let before = sent(&nodes);
    let t = Instant::now();
    let mut false_deaths = 0;
    while t.elapsed() < Duration::from_secs(idle) {
        for x in &nodes {
            if let Some(h) = hastat(&x.dir) {
                if let Some(m) = h["members"].as_object() {
                    false_deaths += m.values().filter(|m| m["alive"] == false).count();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1100)); // hastat counters refresh every second
    let secs = t.elapsed().as_secs_f64();
    let mut rates: Vec<f64> = sent(&nodes)
        .iter()
        .zip(&before)
        .map(|(a, b)| (a - b) / secs)
        .collect();
    println!(
        "idle {idle} s: gossip sent per node: median {:.1} KB/s, max {:.1} KB/s; false deaths observed: {false_deaths}",
        quantile(&mut rates, 0.5) / 1000.0,
        quantile(&mut rates, 1.0) / 1000.0
    );

    // Detection.
    let mut samples = Vec::new();
    for k in 0..kills.min(n - 1) {
        let victim = n - 1 - k;
        let name = nodes[victim].name.clone();
        let t = Instant::now();
        if let Some(mut c) = nodes[victim].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let mut pending: Vec<usize> = (0..n).filter(|i| nodes[*i].child.is_some()).collect();
        while !pending.is_empty() && t.elapsed() < Duration::from_secs(30) {
            pending.retain(|&i| {
                let dead =
                    hastat(&nodes[i].dir).is_some_and(|h| h["members"][&name]["alive"] == false);
                if dead {
                    samples.push(t.elapsed().as_secs_f64());
                }
                !dead
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            pending.is_empty(),
            "{name} not detected by every node in 30 s"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    if !samples.is_empty() {
        let max = quantile(&mut samples, 1.0);
        println!(
            "detection of a killed node ({} observations): p50 {:.2} s, p99 {:.2} s, max {:.2} s",
            samples.len(),
            quantile(&mut samples, 0.5),
            quantile(&mut samples, 0.99),
            max
        );
    }
    for x in nodes.iter_mut() {
        if let Some(mut c) = x.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
