//! Planned moves on a real cluster (loopback, each node PID 1 of its own PID namespace, see
//! `tests/common/cluster.rs`): one group `web` whose plan, test, stop and start take ~0 s
//! (`true` entries and a server holding a lock in the shared directory). K times: `mosha move
//! web NODE --wait`, asked on a node that neither runs web nor is the target, to a random
//! other node. Measured per move:
//! - command → DONE on the target: from the moment the command is started until the
//!   target's own clstat says `web` is at `start`, `DONE` (polled every 5 ms);
//! - what `mosha move --wait` reports (it follows the asking node's hastat, so it includes
//!   the last gossip hop back to the asker).
//!
//! Any lock collision (two copies at once) makes the bench exit non-zero.
//!
//! `cargo bench --bench moves -- [--moves K] [--nodes N]` (defaults 20, 5).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{wait_joined, Cluster, ClusterOpts};

const CLTAB: &str = "\
web:p:plan:wait:true
web:t:test:test:true
web:srv:start:respawn:flock -n {SHARED}/web.lock -c 'exec sleep 100000' || echo \"web $MOSHA_NODE $(date +%s.%N)\" >> {SHARED}/collisions
";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => default,
        Some(i) => (args.get(i + 1).and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| panic!("{name} needs a number")),
    }
}

/// Nearest-rank quantile `q` of `v` (sorted in place).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// Tells whether node `i`'s clstat says `web` is at `start`, `DONE`.
fn done_on(c: &Cluster, i: usize) -> bool {
    c.clstat(i).is_some_and(|d| {
        let g = &d["groups"]["web"];
        g["level"] == "start" && g["target"] == "start" && g["state"] == "DONE"
    })
}

fn main() {
    let (moves, n) = (arg("--moves", 20), arg("--nodes", 5));
    assert!(n >= 3, "--nodes must be at least 3");
    let c = Cluster::start(ClusterOpts {
        nodes: n,
        cltab: CLTAB.to_string(),
        hactl: "web start\n".to_string(),
        fencetab: "* none\n".to_string(),
        extra_args: Vec::new(),
        netns: false,
    });
    let all: Vec<usize> = c.indices().collect();
    wait_joined(&c, &all);
    let mut owner = c.wait_placed(&all, &["web"], "start")["web"];
    // Let every node's start-up wait pass.
    std::thread::sleep(Duration::from_secs(2));
    let mut to_done = Vec::new();
    let mut reported = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for k in 0..moves {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != owner).collect();
        let to = others[(seed >> 33) as usize % others.len()];
        let asker = *all.iter().find(|&&i| i != owner && i != to).unwrap();
        let t0 = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_mosha"))
            .args(["move", "web", &c.node_name(to), "--wait", "--dir"])
            .arg(c.dir(asker))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running mosha move");
        while !done_on(&c, to) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "move {k} never done"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let took = t0.elapsed().as_secs_f64();
        let out = child.wait_with_output().expect("mosha move");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "move {k}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // "... in 0.42 s"
        let said: f64 = (stdout.rsplit(" in ").next())
            .and_then(|s| s.trim().trim_end_matches(" s").parse().ok())
            .unwrap_or_else(|| panic!("move {k}: unexpected output {stdout}"));
        eprintln!(
            "move {k}: {} -> {} (asked on {}): DONE on the target after {took:.3} s, mosha move --wait said {said:.2} s",
            c.node_name(owner),
            c.node_name(to),
            c.node_name(asker)
        );
        to_done.push(took);
        reported.push(said);
        owner = c.wait_placed(&all, &["web"], "start")["web"];
        assert_eq!(owner, to);
        // Let the hand-off and the request go before the next move.
        std::thread::sleep(Duration::from_millis(500));
    }
    let collisions = c.collisions();
    println!("planned move, {n} nodes, {moves} moves (median / p95 / max):");
    for (what, v) in [
        ("command -> DONE on the target", &mut to_done),
        ("mosha move --wait reports", &mut reported),
    ] {
        let (med, p95) = (quantile(v, 0.5), quantile(v, 0.95));
        let max = v.iter().copied().fold(0.0, f64::max);
        println!("  {what}: {med:.3} / {p95:.3} / {max:.3} s");
    }
    println!("  lock collisions: {}", collisions.lines().count());
    drop(c);
    if !collisions.is_empty() {
        eprintln!("COLLISIONS:\n{collisions}");
        std::process::exit(1);
    }
}
