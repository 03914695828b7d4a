//! Membership on loopback with the daemon's defaults: N real `mosha run` processes (no
//! groups), then
//! - gossip bytes/s per node while idle (from each node's hastat counters),
//! - false deaths: any member seen not alive by anyone during an idle period,
//! - detection: SIGKILL one node, time until each other node's hastat says it is not alive
//!   (p50 / max over observers and kills).
//!
//! - CPU per daemon while idle (user + system time from /proc/PID/stat).
//!
//! `cargo bench --bench membership -- [--nodes N] [--idle SECONDS] [--kills K] [--insecure]
//! [--fanout K] [--no-realtime] [--binary PATH [--legacy]]` (defaults 30, 30, 5; the brief's
//! "no false deaths over 10 minutes" is `--idle 600`). Every node gets the same `DIR/authkey`
//! (sealed gossip) unless `--insecure`; `--fanout` passes `--gossip-fanout K` (default: the
//! daemon's adaptive fan-out); `--no-realtime` passes it on (the daemons under the normal
//! policy, not `SCHED_RR`); `--binary` runs another mosha build (to compare with an older one,
//! whose command line `--legacy` leaves without key options).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// Returns the CPU time (user + system) process `pid` has used, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of proc(5) (utime, stime), counted from field 3 after the name.
    let ticks = f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0);
    ticks / 100.0
}

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

impl Drop for Node {
    /// Kills the node's daemon: a run that panics (a cluster that does not converge) must not
    /// leave 100 daemons behind to load the machine for the next run.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn main() {
    let n = arg("--nodes", 30) as usize;
    let idle = arg("--idle", 30);
    let kills = arg("--kills", 5) as usize;
    let insecure = flag("--insecure");
    let legacy = flag("--legacy");
    let fanout = text_arg("--fanout");
    let no_realtime = flag("--no-realtime");
    let binary = text_arg("--binary").unwrap_or_else(|| env!("CARGO_BIN_EXE_mosha").to_string());
    let key: String = {
        use std::io::Read;
        let mut b = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut b)
            .unwrap();
        b.iter().map(|x| format!("{x:02x}")).collect()
    };
    println!(
        "binary {binary}; gossip {}",
        if legacy {
            "as that build does it"
        } else if insecure {
            "NOT sealed (--insecure)"
        } else {
            "sealed (XChaCha20-Poly1305)"
        }
    );
    let top = tempfile::tempdir().unwrap();
    // Below the ephemeral range: a port drawn from bind(0) could be handed to one of the two
    // loopback sockets an earlier daemon binds for its gossip codec before its own daemon
    // started ("Address already in use"; at N = 100 a run in three did not converge).
    let ports = common::cluster::free_loopback_ports(n);
    let mut nodes: Vec<Node> = (1..=n)
        .map(|i| {
            let dir = top.path().join(format!("n{i}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("cltab"), "").unwrap();
            {
                use std::os::unix::fs::PermissionsExt;
                let p = dir.join("authkey");
                std::fs::write(&p, &key).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            let port = ports[i - 1];
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
        let mut cmd = Command::new(&binary);
        cmd.args([
            "run", "--log", "warn", "--node", &node.name, "--listen", &node.addr,
        ])
        .arg("--dir")
        .arg(&node.dir)
        .stderr(Stdio::null());
        if insecure && !legacy {
            cmd.arg("--insecure");
        }
        if let Some(k) = &fanout {
            cmd.args(["--gossip-fanout", k]);
        }
        if no_realtime {
            cmd.arg("--no-realtime");
        }
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
        for x in nodes.iter_mut() {
            if let Some(status) = x.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("{} exited before the cluster converged: {status}", x.name);
            }
        }
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
    let pids: Vec<u32> = nodes
        .iter()
        .filter_map(|x| x.child.as_ref().map(Child::id))
        .collect();
    let cpu_before: Vec<f64> = pids.iter().map(|p| cpu_s(*p)).collect();
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
    let mut cpu: Vec<f64> = pids
        .iter()
        .zip(&cpu_before)
        .map(|(p, b)| 100.0 * (cpu_s(*p) - b) / secs)
        .collect();
    println!(
        "idle {idle} s: gossip sent per node: median {:.1} KB/s, max {:.1} KB/s; false deaths observed: {false_deaths}",
        quantile(&mut rates, 0.5) / 1000.0,
        quantile(&mut rates, 1.0) / 1000.0
    );
    println!(
        "idle CPU per daemon: median {:.2} % of a core, max {:.2} %; all {n} together {:.2} cores",
        quantile(&mut cpu, 0.5),
        quantile(&mut cpu, 1.0),
        cpu.iter().sum::<f64>() / 100.0
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
