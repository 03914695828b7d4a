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
//! With `--standby G`: G such groups, all preferring n1 with `failback=1s`; R rounds (`--moves
//! R`) of `mosha standby n1` (measured: command → every group DONE at `start` on another
//! node, by their own clstat) then `mosha unstandby n1` (measured: → every group back on n1
//! through failback; n1 has been alive all along, longer than its 1 s, so at once).
//!
//! Any lock collision (two copies at once) makes the bench exit non-zero.
//!
//! `cargo bench --bench moves -- [--moves K] [--nodes N] [--standby G]` (defaults 20, 5, off).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;

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

/// Prints `title` and, for each row, the median / p95 / max of its times, then the lock
/// collisions; ends the cluster, and exits non-zero on any collision.
fn report(c: Cluster, title: &str, rows: [(&str, &mut Vec<f64>); 2]) {
    let collisions = c.collisions();
    println!("{title} (median / p95 / max):");
    for (what, v) in rows {
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

/// Returns the cltab of `groups` groups `g1`... like `web` of [`CLTAB`].
fn cltab_of(groups: usize) -> String {
    (1..=groups)
        .map(|i| {
            let g = format!("g{i}");
            (CLTAB.replace("web", &g))
                .replace(":p:", &format!(":{g}-p:"))
                .replace(":t:", &format!(":{g}-t:"))
                .replace(":srv:", &format!(":{g}-srv:"))
        })
        .collect()
}

/// Returns the node indices running each group (DONE at `start`), by their own clstat.
fn running(c: &Cluster, groups: usize) -> Vec<Vec<usize>> {
    let docs: Vec<_> = c.indices().map(|i| (i, c.clstat(i))).collect();
    (1..=groups)
        .map(|g| {
            let name = format!("g{g}");
            (docs.iter())
                .filter(|(_, d)| {
                    d.as_ref().is_some_and(|d| {
                        let g = &d["groups"][&name];
                        g["level"] == "start" && g["target"] == "start" && g["state"] == "DONE"
                    })
                })
                .map(|(i, _)| *i)
                .collect()
        })
        .collect()
}

/// Runs `mosha ARGS --dir DIR` to its end and fails the bench unless it succeeds.
fn mosha(dir: &std::path::Path, args: &[&str]) {
    let out = common::verbs::mosha(dir, args);
    assert!(
        out.status.success(),
        "mosha {args:?}: {}",
        common::verbs::text(&out)
    );
}

/// Polls (every 10 ms, 60 s at most) until `done` holds; returns the seconds since `t0`.
fn until(t0: Instant, what: &str, mut done: impl FnMut() -> bool) -> f64 {
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(60), "never {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed().as_secs_f64()
}

/// The standby bench (see the module documentation).
fn standby(n: usize, groups: usize, rounds: usize) {
    let hactl: String = (1..=groups)
        .map(|g| format!("g{g} start prefer=n1 failback=1s\n"))
        .collect();
    let c = common::verbs::start(n, cltab_of(groups), hactl);
    let on_n1 = |c: &Cluster| running(c, groups).iter().all(|r| r == &[1]);
    let t0 = Instant::now();
    until(t0, "all on n1", || on_n1(&c));
    std::thread::sleep(Duration::from_secs(2));
    let (mut away, mut back) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let t0 = Instant::now();
        mosha(c.dir(3), &["standby", "n1"]);
        let took = until(t0, "all off n1", || {
            (running(&c, groups).iter()).all(|on| on.len() == 1 && on[0] != 1)
        });
        let t1 = Instant::now();
        mosha(c.dir(4), &["unstandby", "n1"]);
        let returned = until(t1, "all back on n1", || on_n1(&c));
        eprintln!("round {r}: {groups} groups off n1 in {took:.3} s, back in {returned:.3} s");
        away.push(took);
        back.push(returned);
        std::thread::sleep(Duration::from_secs(1));
    }
    let title = format!("standby of a node running {groups} groups, {n} nodes, {rounds} rounds");
    let rows = [
        ("mosha standby -> every group DONE elsewhere", &mut away),
        ("mosha unstandby -> every group back (failback)", &mut back),
    ];
    report(c, &title, rows);
}

fn main() {
    let (moves, n) = (arg("--moves", 20), arg("--nodes", 5));
    let groups = arg("--standby", 0);
    if groups > 0 {
        return standby(n, groups, moves.min(10));
    }
    assert!(n >= 3, "--nodes must be at least 3");
    let c = common::verbs::start(n, CLTAB.to_string(), "web start\n".to_string());
    let all: Vec<usize> = c.indices().collect();
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
    let title = format!("planned move, {n} nodes, {moves} moves");
    let rows = [
        ("command -> DONE on the target", &mut to_done),
        ("mosha move --wait reports", &mut reported),
    ];
    report(c, &title, rows);
}
