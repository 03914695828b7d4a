//! Failover on a real cluster (loopback, each node PID 1 of its own PID namespace, see
//! `tests/common/cluster.rs`): one group `web` whose server holds a lock in the shared
//! directory, started through the real lifecycle (plan → test → start). Then K times: SIGKILL
//! the node that runs it (its whole PID namespace dies) and time until another node runs it
//! at `start`, `DONE` (the acceptance's "kill → group DONE at its level elsewhere"); restart
//! the killed node and let it rejoin. Also measured:
//! - lock collisions: a server that found the lock taken, i.e. two nodes running `web` at
//!   once (lines in `SHARED/collisions`; any makes the bench exit non-zero),
//! - gossip bytes sent per node per second over a 10 s quiet period before the kills,
//! - the daemons' resident memory (VmRSS) after the run.
//!
//! `cargo bench --bench failover -- [--kills K] [--nodes N] [--fencing dummy|none]
//! [--insecure] [--beat MS]` (defaults 30, 5, dummy when /usr/sbin/fence_dummy exists; `--beat`
//! is passed to the daemons, see `mosha run --help`). Gossip is sealed
//! with a cluster key unless `--insecure`. With `dummy`, every node is
//! fenced through Debian's real `fence_dummy` (action=off, confirmed by status) before its
//! group may start elsewhere, so the figures include fencing; `none` turns fencing off.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cluster::{gen_of, Cluster, ClusterOpts};

/// How often the failover wait polls the survivors' hastat.
const FAILOVER_POLL: Duration = Duration::from_millis(5);
/// The longest a failover may take before the bench gives up.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest the cluster may take to form, or a restarted node to rejoin.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest `web` may take to settle on exactly one node.
const PLACE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restarted node is left alone before the next kill, so that its startup wait
/// (1 s by default) is over.
const REJOIN_SETTLE: Duration = Duration::from_secs(2);
/// The quiet period over which gossip traffic is measured.
const QUIET: Duration = Duration::from_secs(10);

const CLTAB: &str = "\
web:p:plan:wait:true
web:t:test:test:true
web:srv:start:respawn:flock -n {SHARED}/web.lock -c 'exec sleep 100000' || echo \"web $MOSHA_NODE $(date +%s.%N)\" >> {SHARED}/collisions
";
const HACTL: &str = "web start\n";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => default,
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} needs a number")),
    }
}

/// Nearest-rank quantile `q` of `v` (sorted in place).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// `hastat.groups.web.running_on` of node `i`, if it has a hastat.
fn running_on(c: &Cluster, i: usize) -> Option<Vec<String>> {
    let h = c.hastat(i)?;
    let on = h["groups"]["web"]["running_on"].as_array()?;
    Some(
        on.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
    )
}

/// The node number of `name` (`n<i>`).
fn index_of(c: &Cluster, name: &str) -> Option<usize> {
    c.indices().find(|&i| c.node_name(i) == name)
}

/// Tells whether node `i`'s own daemon reports `web` settled at `start`: its clstat says
/// level and target `start`, state `DONE`, and its hastat claim agrees.
fn web_done_on(c: &Cluster, i: usize) -> bool {
    let name = c.node_name(i);
    let clstat_ok = c.clstat(i).is_some_and(|d| {
        let g = &d["groups"]["web"];
        g["level"] == "start" && g["target"] == "start" && g["state"] == "DONE"
    });
    let hastat_ok = c.hastat(i).is_some_and(|h| {
        let g = &h["groups"]["web"]["nodes"][&name];
        g["level"] == "start" && g["state"] == "DONE"
    });
    clstat_ok && hastat_ok
}

/// The node every live node agrees runs `web` (alone), if they agree and it is `DONE` there.
fn agreed_owner(c: &Cluster, live: &[usize]) -> Option<usize> {
    let mut owner = None;
    for &i in live {
        let on = running_on(c, i)?;
        if on.len() != 1 {
            return None;
        }
        let x = index_of(c, &on[0])?;
        if owner.is_some_and(|o| o != x) {
            return None;
        }
        owner = Some(x);
    }
    owner.filter(|&x| live.contains(&x) && web_done_on(c, x))
}

/// Node `i`'s generation as its own hastat says.
fn generation(c: &Cluster, i: usize) -> Option<u64> {
    gen_of(&c.hastat(i)?["generation"])
}

/// Tells whether every node sees every other alive, with its current generation.
fn all_joined(c: &Cluster) -> bool {
    let n = c.len();
    let gens: Vec<Option<u64>> = c.indices().map(|i| generation(c, i)).collect();
    c.indices().all(|i| {
        let Some(h) = c.hastat(i) else {
            return false;
        };
        h["live"].as_u64() == Some(n as u64)
            && c.indices().all(|j| {
                let m = &h["members"][c.node_name(j)];
                m["alive"] == true
                    && gens[j - 1].is_some()
                    && gen_of(&m["generation"]) == gens[j - 1]
            })
    })
}

/// `gossip.bytes_sent` of every node.
fn bytes_sent(c: &Cluster) -> Vec<Option<u64>> {
    c.indices()
        .map(|i| c.hastat(i)?["gossip"]["bytes_sent"].as_u64())
        .collect()
}

/// For every node, the moment its hastat's `bytes_sent` next changes (hastat is rewritten about
/// once a second), and the new value: so that a rate is taken between two rewrites.
fn next_counters(c: &Cluster) -> Vec<(Instant, u64)> {
    let before = bytes_sent(c);
    let mut got: Vec<Option<(Instant, u64)>> = vec![None; c.len()];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.iter().any(Option::is_none) {
        let now = Instant::now();
        for (k, v) in bytes_sent(c).into_iter().enumerate() {
            if got[k].is_none() {
                if let Some(v) = v.filter(|&v| Some(v) != before[k]) {
                    got[k] = Some((now, v));
                }
            }
        }
        if now >= deadline {
            c.fail("a node's hastat gossip counters did not change within 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    got.into_iter().map(Option::unwrap).collect()
}

/// Runs the benchmark; returns the number of lock collisions. The cluster is dropped (every
/// node killed, the directory removed) before this returns or unwinds.
fn run(kills: usize, n: usize, dummy: bool, insecure: bool, extra: Vec<String>) -> usize {
    assert!(n >= 2, "--nodes must be at least 2");
    let fencetab = if dummy {
        (1..=n)
            .map(|i| {
                format!(
                    "n{i} fence_dummy status_file={{SHARED}}/n{i}.status action=off timeout=10\n"
                )
            })
            .collect::<String>()
    } else {
        "* none\n".to_string()
    };
    let mut c = Cluster::start(ClusterOpts {
        nodes: n,
        cltab: CLTAB.to_string(),
        hactl: HACTL.to_string(),
        fencetab,
        extra_args: extra,
        netns: false,
    });
    eprintln!(
        "gossip: {}",
        if insecure {
            "NOT sealed (--insecure)"
        } else {
            "sealed (XChaCha20-Poly1305)"
        }
    );
    if dummy {
        for i in 1..=n {
            std::fs::write(c.shared().join(format!("n{i}.status")), "on").unwrap();
        }
    }
    eprintln!(
        "fencing: {}",
        if dummy {
            "fence_dummy (off + status)"
        } else {
            "none"
        }
    );
    let all: Vec<usize> = c.indices().collect();
    let t = Instant::now();
    c.wait_for(
        "every node to see every other alive",
        JOIN_TIMEOUT,
        all_joined,
    );
    let mut owner = None;
    c.wait_for("web to run on exactly one node, DONE", PLACE_TIMEOUT, |c| {
        owner = agreed_owner(c, &all);
        owner.is_some()
    });
    eprintln!(
        "{n} nodes up, web on {} after {:.2} s",
        c.node_name(owner.unwrap()),
        t.elapsed().as_secs_f64()
    );

    // Gossip traffic while quiet.
    std::thread::sleep(Duration::from_secs(1));
    let start = next_counters(&c);
    std::thread::sleep(QUIET);
    let end = next_counters(&c);
    let mut rates: Vec<f64> = start
        .iter()
        .zip(&end)
        .map(|((t0, b0), (t1, b1))| (b1 - b0) as f64 / (*t1 - *t0).as_secs_f64())
        .collect();
    let gossip_median = quantile(&mut rates, 0.5);

    let mut samples = Vec::with_capacity(kills);
    for k in 1..=kills {
        let mut owner = None;
        c.wait_for(
            &format!("kill {k}: web to run on exactly one node, DONE"),
            PLACE_TIMEOUT,
            |c| {
                owner = agreed_owner(c, &all);
                owner.is_some()
            },
        );
        let owner = owner.unwrap();
        let old_gen = generation(&c, owner);
        let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != owner).collect();
        let owner_name = c.node_name(owner);

        let t0 = Instant::now();
        c.kill_node(owner);
        let new_owner = loop {
            let found = survivors.iter().find_map(|&i| {
                let on = running_on(&c, i)?;
                let x = match on.as_slice() {
                    [x] if *x != owner_name => index_of(&c, x)?,
                    _ => return None,
                };
                (x != owner && web_done_on(&c, x)).then_some(x)
            });
            if let Some(x) = found {
                break x;
            }
            if t0.elapsed() >= FAILOVER_TIMEOUT {
                c.fail(&format!(
                    "kill {k}: web not DONE at start on another node within \
                     {FAILOVER_TIMEOUT:?} of killing {owner_name}"
                ));
            }
            std::thread::sleep(FAILOVER_POLL);
        };
        let dt = t0.elapsed().as_secs_f64();
        samples.push(dt);
        eprintln!(
            "kill {k}/{kills}: {owner_name} -> {} in {dt:.3} s",
            c.node_name(new_owner)
        );

        // The machine is powered on again before the node restarts.
        let status = c.shared().join(format!("{}.status", c.node_name(owner)));
        if status.exists() {
            std::fs::write(&status, "on").unwrap();
        }
        c.restart_node(owner);
        c.wait_for(
            &format!("kill {k}: restarted {owner_name} alive in every node's hastat"),
            JOIN_TIMEOUT,
            |c| generation(c, owner).is_some_and(|g| Some(g) != old_gen) && all_joined(c),
        );
        std::thread::sleep(REJOIN_SETTLE);
    }

    let mut rss: Vec<f64> = c
        .indices()
        .map(|i| common::rss_kib(c.pid_of_daemon(i)) as f64 / 1024.0)
        .collect();
    let collisions = std::fs::read_to_string(c.shared().join("collisions"))
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);

    if !samples.is_empty() {
        let max = quantile(&mut samples, 1.0);
        println!(
            "failover over {kills} kills ({n} nodes): p50 {:.2} s, p99 {:.2} s, max {:.2} s",
            quantile(&mut samples, 0.5),
            quantile(&mut samples, 0.99),
            max
        );
    }
    println!("lock collisions: {collisions}");
    println!(
        "gossip sent per node: median {:.1} KB/s",
        gossip_median / 1000.0
    );
    let rss_max = quantile(&mut rss, 1.0);
    println!(
        "daemon RSS: median {:.1} MiB, max {:.1} MiB",
        quantile(&mut rss, 0.5),
        rss_max
    );
    if collisions > 0 {
        eprintln!(
            "collisions:\n{}",
            std::fs::read_to_string(c.shared().join("collisions")).unwrap_or_default()
        );
    }
    collisions
}

fn main() {
    let kills = arg("--kills", 30) as usize;
    let n = arg("--nodes", 5) as usize;
    let args: Vec<String> = std::env::args().collect();
    let fencing = args
        .iter()
        .position(|a| a == "--fencing")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| {
            if std::path::Path::new("/usr/sbin/fence_dummy").exists() {
                "dummy"
            } else {
                "none"
            }
            .to_string()
        });
    let insecure = args.iter().any(|a| a == "--insecure");
    // Daemon options passed through: --insecure, --beat MS.
    let mut extra = Vec::new();
    if insecure {
        extra.push("--insecure".to_string());
    }
    if args.iter().any(|a| a == "--beat") {
        extra.extend(["--beat".to_string(), arg("--beat", 250).to_string()]);
    }
    let collisions = run(kills, n, fencing == "dummy", insecure, extra);
    if collisions > 0 {
        std::process::exit(1);
    }
}
