//! Many groups on a real cluster (loopback, each node PID 1 of its own PID namespace, see
//! `tests/common/cluster.rs`): G groups, each one entry at `start` whose service holds a lock
//! in the shared directory (a second holder records a collision), all wanted at once.
//! Measured:
//! - cold start → every group DONE at `start` on exactly one node (by each node's clstat);
//! - the node holding the most groups killed (its PID namespace dies) → every one of them
//!   DONE on a survivor;
//! - the longest event-loop turn each daemon reports (hastat `loop`), false deaths (a live
//!   node seen dead by another) and quorum losses seen while polling, lock collisions (each
//!   line stamped with its time, and those before the kill counted apart: a collision after
//!   it, while the kernel still tears the victim's namespace down, is what unverified
//!   fencing allows), and how long the kill took.
//!
//! `cargo bench --bench groups -- [--groups G] [--nodes N] [--fencing none|dummy|switch]
//! [--beat MS] [--no-realtime]` (defaults 2000, 5, none; `--no-realtime` is passed to the
//! daemons: their threads under the normal policy, not `SCHED_RR`). With `dummy`, the lost
//! node is fenced through Debian's real `fence_dummy` before its groups may start elsewhere;
//! `fence_dummy` reports `off` without turning anything off, so a group may start while the
//! kernel still tears the victim's namespace down. With `switch`, through the tests' power switch
//! (`tests/common/power.rs`): the bench kills the victim as the switch does, and the agent
//! reports it off only once its whole namespace is gone (a request to fence any other node is
//! not served: it fails after 10 s, which holds that node's groups where they are).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, ClusterOpts};

/// The longest the bench waits for a placement.
const TIMEOUT: Duration = Duration::from_secs(300);
/// How often it polls the nodes' status documents.
const POLL: Duration = Duration::from_millis(100);

/// Tells whether `name` is among the bench's arguments.
fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => default.to_string(),
        Some(i) => args
            .get(i + 1)
            .cloned()
            .unwrap_or_else(|| panic!("{name} needs a value")),
    }
}

/// What one poll of every node's documents found.
#[derive(Default)]
struct Seen {
    /// Group → the nodes running it (DONE at `start`, by their own clstat).
    running: BTreeMap<String, Vec<usize>>,
    /// (observer, member) pairs where a node that runs is seen dead.
    false_deaths: usize,
    /// Nodes not quorate.
    unquorate: usize,
}

/// Reads every node's clstat, and with `members` its hastat too (the larger document: read
/// at every poll by five nodes' worth of bench, it took a share of the machine's CPU from
/// the daemons it measures; quorum losses and lost members are also counted from the logs).
fn look(c: &Cluster, live: &[usize], members: bool) -> Seen {
    let mut seen = Seen::default();
    for &i in live {
        if let Some(d) = c.clstat(i) {
            for (g, s) in d["groups"].as_object().into_iter().flatten() {
                if s["level"] == "start" && s["target"] == "start" && s["state"] == "DONE" {
                    seen.running.entry(g.clone()).or_default().push(i);
                }
            }
        }
        if let Some(h) = c.hastat(i).filter(|_| members) {
            if h["quorate"] == false {
                seen.unquorate += 1;
            }
            for &j in live {
                if h["members"][c.node_name(j)]["alive"] == false {
                    seen.false_deaths += 1;
                }
            }
        }
    }
    seen
}

/// Polls until `done`, counting false deaths and quorum losses into `totals`; returns the
/// seconds since `t0`.
fn until(
    c: &Cluster,
    live: &[usize],
    t0: Instant,
    totals: &mut (usize, usize),
    what: &str,
    mut done: impl FnMut(&Seen) -> bool,
) -> f64 {
    let mut n = 0u64;
    loop {
        n += 1;
        let seen = look(c, live, n % 5 == 1);
        totals.0 += seen.false_deaths;
        totals.1 += seen.unquorate;
        if done(&seen) {
            return t0.elapsed().as_secs_f64();
        }
        if t0.elapsed() > TIMEOUT {
            let placed = seen.running.values().filter(|v| v.len() == 1).count();
            keep_logs(c);
            c.fail(&format!("never {what} ({placed} groups placed)"));
        }
        std::thread::sleep(POLL);
    }
}

/// Copies every node's log to `/tmp/mosha-groups-bench/` (the cluster's directory goes).
fn keep_logs(c: &Cluster) {
    let keep = std::path::Path::new("/tmp/mosha-groups-bench");
    let _ = std::fs::create_dir_all(keep);
    for i in c.indices() {
        let _ = std::fs::copy(c.path(i, "mosha.log"), keep.join(format!("n{i}.log")));
    }
    eprintln!("logs kept in {}", keep.display());
}

fn main() {
    let groups: usize = arg("--groups", "2000").parse().expect("--groups G");
    let n: usize = arg("--nodes", "5").parse().expect("--nodes N");
    let fencing = arg("--fencing", "none");
    assert!(
        ["none", "dummy", "switch"].contains(&fencing.as_str()),
        "--fencing none|dummy|switch"
    );
    let dummy = fencing == "dummy";
    assert!(n >= 3, "--nodes must be at least 3");
    let cltab: String = (1..=groups)
        .map(|g| {
            format!(
                "g{g}:g{g}-s:start:respawn:flock -n {{SHARED}}/g{g}.lock -c 'exec sleep 100000' || \
                 echo \"g{g} $MOSHA_NODE $(date +%s.%N)\" >> {{SHARED}}/collisions\n"
            )
        })
        .collect();
    let hactl: String = (1..=groups).map(|g| format!("g{g} start\n")).collect();
    let fencetab = if dummy {
        (1..=n)
            .map(|i| format!("n{i} fence_dummy status_file={{SHARED}}/n{i}.status action=off\n"))
            .collect()
    } else if fencing == "switch" {
        common::power::SWITCH_FENCETAB.to_string()
    } else {
        "* none\n".to_string()
    };
    let t0 = Instant::now();
    let mut c = Cluster::start(ClusterOpts {
        nodes: n,
        cltab,
        hactl,
        fencetab,
        // `--beat MS` and `--no-realtime` are passed to the daemons (see `mosha run --help`).
        extra_args: {
            let mut a = Vec::new();
            if flag("--beat") {
                a.extend(["--beat".to_string(), arg("--beat", "250")]);
            }
            if flag("--no-realtime") {
                a.push("--no-realtime".to_string());
            }
            a
        },
        netns: false,
    });
    let mut switch = (fencing == "switch").then(|| common::power::PowerSwitch::install(&c));
    if dummy {
        for i in 1..=n {
            std::fs::write(c.shared().join(format!("n{i}.status")), "on").unwrap();
        }
    }
    let all: Vec<usize> = c.indices().collect();
    // Members are not alive to each other before their first heartbeats: not counted.
    let mut starting = (0, 0);
    let placed = |s: &Seen| s.running.len() == groups && s.running.values().all(|v| v.len() == 1);
    let cold = until(&c, &all, t0, &mut starting, "placed every group", placed);
    let mut totals = (0, 0);
    println!(
        "{groups} groups, {n} nodes, fencing {}: all placed {cold:.2} s after the cold start",
        match fencing.as_str() {
            "dummy" => "fence_dummy",
            "switch" => "the power switch",
            _ => "none",
        }
    );
    let t = Instant::now();
    until(&c, &all, t, &mut totals, "", |_| {
        t.elapsed() > Duration::from_secs(5)
    });
    let seen = look(&c, &all, false);
    let mut held: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (g, on) in &seen.running {
        held.entry(on[0]).or_default().push(g.clone());
    }
    let spread: Vec<String> = (held.iter())
        .map(|(i, g)| format!("{} {}", c.node_name(*i), g.len()))
        .collect();
    println!("groups per node: {}", spread.join(", "));
    let (&victim, lost) = held.iter().max_by_key(|(_, g)| g.len()).unwrap();
    let lost = lost.clone();
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    let t1 = Instant::now();
    let kill_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if let Some(switch) = switch.as_mut() {
        switch.power_off(&mut c, victim);
    } else {
        c.kill_node(victim);
    }
    let killed_in = t1.elapsed().as_secs_f64();
    let moved = |s: &Seen| {
        lost.iter()
            .all(|g| s.running.get(g).is_some_and(|v| v.len() == 1))
    };
    let failover = until(&c, &survivors, t1, &mut totals, "recovered", moved);
    println!(
        "{} killed holding {} groups: all running on survivors after {failover:.2} s",
        c.node_name(victim),
        lost.len()
    );
    let mut turns = Vec::new();
    for &i in &survivors {
        if let Some(h) = c.hastat(i) {
            turns.push(format!(
                "{} {} ms",
                c.node_name(i),
                h["loop"]["longest_ms"].as_u64().unwrap_or(0)
            ));
        }
    }
    println!("longest event-loop turn: {}", turns.join(", "));
    for &i in &survivors {
        for line in c.log(i).lines().filter(|l| {
            l.contains("event loop took")
                || l.contains("did not run for a while")
                || l.contains("DEBUG")
        }) {
            println!("  {}: {}", c.node_name(i), line.trim());
        }
    }
    // From the logs, whatever the polls missed: quorum lost anywhere, a member other than
    // the victim taken for lost.
    let victim_name = format!("node={}", c.node_name(victim));
    let (mut quorum_lost, mut members_lost) = (0, 0);
    for i in c.indices() {
        let log = c.log(i);
        quorum_lost += log.matches("quorum lost").count();
        members_lost += (log.lines())
            .filter(|l| l.contains("member lost") && !l.contains(&victim_name))
            .count();
    }
    println!("in the logs: quorum lost {quorum_lost} times, live members taken for lost {members_lost} times");
    let collisions = c.collisions();
    let before = (collisions.lines())
        .filter(|l| {
            (l.split(' ').nth(2))
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(|t| t < kill_at)
        })
        .count();
    println!(
        "the kill took {killed_in:.2} s (the victim's namespace gone); lock collisions before \
         it: {before}"
    );
    println!(
        "false deaths seen: {}; quorum losses seen: {}; lock collisions: {}",
        totals.0,
        totals.1,
        collisions.lines().count()
    );
    keep_logs(&c);
    drop(c);
    if !collisions.is_empty() {
        eprintln!("COLLISIONS:\n{collisions}");
        std::process::exit(1);
    }
}
