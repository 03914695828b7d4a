//! The chaos run: hundreds of mixed faults on a 5-node cluster of real `mosha` daemons, each
//! PID 1's child in its own PID namespace and in its own network namespace on a bridge
//! (`tests/common/cluster.rs`), gossip sealed with a cluster key, fencing through a power
//! switch that really kills the victim's namespace (`rig::Switch`), and 10 groups whose
//! services hold a witness lock and record every start, stop and failed lock (`check`).
//!
//! Each iteration draws a fault (or two overlapping) from the seed (`faults`), injects it,
//! heals it, restarts what was killed, waits until the cluster settles and checks from
//! outside: no collision, no recovery before fencing, every wanted group running again
//! within [`RECOVERY_BOUND`] of the heal, no service left behind, no daemon crash, no
//! healthy node fenced by a fault that should not fence. Prints a table per fault kind; keeps
//! the logs of a failing iteration under `/tmp/mosha-chaos/`.
//!
//! `cargo bench --bench chaos -- [--faults N] [--seed S] [--start K] [--groups G]`
//! (defaults: 300 faults, a random seed (printed), from iteration 0, 10 groups): iterations
//! run until N faults were injected (an iteration with two overlapping counts two). Iteration
//! K of seed S draws the same fault whatever ran before it: `--seed S --start K --faults 1`
//! replays it. Exits 1 on any violation.

#[path = "../../tests/common/mod.rs"]
mod common;

mod check;
mod faults;
mod rig;
mod table;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use common::cluster::{joined, Cluster, ClusterOpts};
use common::power::unix;
use common::witness::lock_held;

use faults::{Fault, Kind, Rng, Run};
use table::{Outcome, Table};

/// The number of nodes.
const NODES: usize = 5;
/// How long after the heal every wanted group must run again (on the nodes that run).
pub const RECOVERY_BOUND: Duration = Duration::from_secs(40);
/// How long the whole cluster may take to be back (all nodes joined, every group placed)
/// once the killed nodes were restarted.
const SETTLE_BOUND: Duration = Duration::from_secs(60);
/// How often the waits look.
const POLL: Duration = Duration::from_millis(50);

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    Some(
        args.get(i + 1)
            .unwrap_or_else(|| panic!("{name} needs a value"))
            .clone(),
    )
}

fn num(name: &str, default: u64) -> u64 {
    arg(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} needs a number, not {v:?}"))
    })
}

fn main() {
    let faults = num("--faults", 300);
    let seed = num(
        "--seed",
        u64::from_le_bytes(common::random_bytes::<8>()) >> 16,
    );
    let start = num("--start", 0);
    let groups = num("--groups", 10) as usize;
    for prog in ["nft", "tc", "flock", "unshare", "ip", "mount"] {
        let found = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .chain(["/usr/sbin", "/sbin"])
            .any(|d| std::path::Path::new(d).join(prog).exists());
        assert!(
            found,
            "the chaos run needs {prog} (apt-get install nftables iproute2 util-linux)"
        );
    }
    println!(
        "chaos run: seed {seed}, {faults} faults from iteration {start}, {NODES} nodes, {groups} groups"
    );
    let names: Vec<String> = (1..=groups).map(|g| format!("g{g}")).collect();
    let mut c = Cluster::start_with(
        ClusterOpts {
            nodes: NODES,
            cltab: check::cltab(groups),
            hactl: names.iter().map(|g| format!("{g} start\n")).collect(),
            fencetab: rig::FENCETAB.to_string(),
            extra_args: Vec::new(),
            netns: true,
        },
        |spec| rig::node_argv(spec, &[]),
    );
    let mut run = Run::new(&c, groups);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run.go(&mut c, seed, start, faults)
    }));
    rig::unmount_dirs(&c);
    drop(c);
    let mut table = match outcome {
        Ok(t) => t,
        Err(e) => std::panic::resume_unwind(e),
    };
    println!("{}", table.render());
    println!("seed {seed}: {}", table.verdict());
    if !table.clean() {
        std::process::exit(1);
    }
}

impl Run {
    fn go(&mut self, c: &mut Cluster, seed: u64, start: u64, faults: u64) -> Table {
        check::install_service(c);
        let mut table = Table::default();
        let all: Vec<usize> = c.indices().collect();
        let t = Instant::now();
        if let Err(e) = self.settle(c, &all, SETTLE_BOUND) {
            self.keep(c, seed, start, "cold start");
            c.fail(&format!("the cluster never formed: {e}"));
        }
        println!(
            "cluster formed and every group placed in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let mut seen = 0;
        let mut injected = 0;
        for k in start.. {
            if injected >= faults {
                break;
            }
            let mut rng = Rng::new(seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let plan = faults::draw(&mut rng, self, c);
            injected += plan.len() as u64;
            let label = plan
                .iter()
                .map(|f| f.describe(c))
                .collect::<Vec<_>>()
                .join(" + ");
            let t0 = Instant::now();
            let started = unix(SystemTime::now());
            let mut out = self.iterate(c, &plan);
            // The checks from outside, on what happened since the last iteration.
            let recs = check::records(c);
            let fresh = &recs[seen.min(recs.len())..];
            out.collisions = fresh.iter().filter(|r| r.what == "collision").count();
            let fences = check::fence_times(c, &self.switch.fences);
            let early = check::early_recoveries(&recs, &fences, &self.restarts, seen);
            out.early = early.len();
            for e in &early {
                out.details.push(format!(
                    "{} started on {} at unix {:.3} while its copy on {} had neither stopped nor been fenced",
                    e.group, e.to, e.at, e.from
                ));
            }
            seen = recs.len();
            out.crashes = self.crashes(c);
            let bad = !out.clean();
            println!(
                "[{k}] at unix {started:.0}: {label}: {} ({:.1} s){}",
                out.summary(),
                t0.elapsed().as_secs_f64(),
                if bad { "  <-- VIOLATION" } else { "" }
            );
            if bad {
                for d in &out.details {
                    println!("      {d}");
                }
                self.keep(c, seed, k, &label);
            }
            table.add(plan.iter().map(|f| f.kind).collect(), out);
        }
        table
    }

    /// Injects `plan` (each fault at its offset, healed after its hold), restarts what was
    /// killed, waits for the cluster to settle; watches the wanted groups' locks throughout.
    fn iterate(&mut self, c: &mut Cluster, plan: &[Fault]) -> Outcome {
        let mut out = Outcome::default();
        let fenced_before = self.switch.fences.len();
        let watched = self.wanted();
        self.outage = check::Outage::new(&watched);
        let t0 = Instant::now();
        let mut events: Vec<(Instant, usize, bool)> = Vec::new();
        for (n, f) in plan.iter().enumerate() {
            events.push((t0 + f.offset, n, true));
            if !f.hold.is_zero() {
                events.push((t0 + f.offset + f.hold, n, false));
            }
        }
        events.sort();
        for (at, n, inject) in events {
            self.pause(c, at.saturating_duration_since(Instant::now()));
            if inject {
                self.inject(c, &plan[n]);
            } else {
                self.heal_one(c, &plan[n]);
            }
        }
        self.heal_soft(c);
        let healed_at = Instant::now();
        // Every wanted group running again on the nodes that run (a killed node stays down
        // until then).
        let running: Vec<usize> = c.indices().filter(|&i| self.daemon_up(c, i)).collect();
        if running.len() * 2 > NODES {
            if let Err(e) = self.settle(c, &running, RECOVERY_BOUND) {
                out.unrecovered = self.unplaced(c, &running);
                out.details.push(format!(
                    "not recovered within {RECOVERY_BOUND:?} of the heal on {running:?}: {e}"
                ));
            }
        } else {
            out.details
                .push(format!("only {running:?} ran a daemon after the heal"));
            out.no_quorum = true;
        }
        out.recovered = Some(healed_at.elapsed().as_secs_f64());
        self.heal(c);
        self.restart_all(c, &mut out);
        let all: Vec<usize> = c.indices().collect();
        if let Err(e) = self.settle(c, &all, SETTLE_BOUND) {
            out.unrecovered = out.unrecovered.max(self.unplaced(c, &all));
            out.details.push(format!(
                "the cluster did not settle within {SETTLE_BOUND:?} after the restarts: {e}"
            ));
        }
        let still = self.wanted();
        out.outage = self.outage.longest(&still);
        let placed = self.placed.clone();
        for l in check::leftovers(c, &placed) {
            out.leftovers += 1;
            out.details.push(l);
        }
        for f in &self.switch.fences[fenced_before..] {
            if f.was_running {
                if plan.iter().any(|p| p.fences(f.node)) {
                    out.fences += 1;
                } else {
                    out.false_fences += 1;
                    out.details.push(format!(
                        "{} fenced though no fault of this iteration cut it off",
                        c.node_name(f.node)
                    ));
                }
            }
        }
        out
    }

    /// Sleeps `d`, serving the power switch and watching the locks.
    pub fn pause(&mut self, c: &mut Cluster, d: Duration) {
        let end = Instant::now() + d;
        loop {
            self.switch.serve(c);
            self.outage.sample(c);
            if Instant::now() >= end {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every node of `live` runs a daemon, sees exactly `live` alive and is
    /// quorate, the nodes agree on one hactl (adopted as the wanted set), every wanted group
    /// runs on exactly one node of `live` at `start`, DONE, with its lock held, and no other
    /// group's lock is held.
    fn settle(&mut self, c: &mut Cluster, live: &[usize], bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        let mut why = String::new();
        while Instant::now() < deadline {
            self.pause(c, Duration::ZERO);
            if live.len() == NODES {
                // A node fenced late (its fault's fence still in flight at the heal) is
                // powered on again.
                let mut out = Outcome::default();
                self.restart_all(c, &mut out);
            }
            match self.settled(c, live) {
                Ok(placed) => {
                    self.placed = placed;
                    return Ok(());
                }
                Err(e) => why = e,
            }
            std::thread::sleep(POLL);
        }
        Err(why)
    }

    fn settled(
        &mut self,
        c: &mut Cluster,
        live: &[usize],
    ) -> Result<BTreeMap<String, usize>, String> {
        if let Some(&i) = live.iter().find(|&&i| !self.daemon_up(c, i)) {
            return Err(format!("{}'s daemon does not run", c.node_name(i)));
        }
        if !joined(c, live) {
            return Err(format!(
                "nodes {live:?} do not all see exactly each other alive, quorate"
            ));
        }
        let texts: Vec<Option<String>> = live.iter().map(|&i| c.read_file(i, "hactl")).collect();
        if texts.windows(2).any(|w| w[0] != w[1]) {
            return Err("the nodes' hactl files differ".into());
        }
        if let Some(Some(t)) = texts.first() {
            self.adopt_hactl(t);
        }
        let wanted = self.wanted();
        let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let placed = c.placement(live, &names, "start").ok_or_else(|| {
            format!(
                "not every wanted group runs settled on one node: {}",
                self.where_runs(c, live)
            )
        })?;
        for g in &self.groups {
            let want = wanted.contains(g);
            if lock_held(c, g) != want {
                return Err(format!(
                    "{g}'s lock is {}held",
                    if want { "not " } else { "" }
                ));
            }
        }
        Ok(placed.into_iter().collect())
    }

    fn where_runs(&self, c: &Cluster, live: &[usize]) -> String {
        let Some(h) = live.first().and_then(|&i| c.hastat(i)) else {
            return "no hastat".into();
        };
        self.groups
            .iter()
            .map(|g| format!("{g}={}", h["groups"][g]["running_on"]))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// How many wanted groups do not run on a node of `live`.
    fn unplaced(&self, c: &Cluster, live: &[usize]) -> usize {
        let wanted = self.wanted();
        wanted
            .iter()
            .filter(|g| c.placement(live, &[g.as_str()], "start").is_none())
            .count()
    }

    fn daemon_up(&self, c: &mut Cluster, i: usize) -> bool {
        rig::daemon_pid(c, i).is_some()
    }

    /// Restarts every node whose namespace is gone and every daemon that is not running. A
    /// node the run killed itself is restarted once the cluster fenced it (as a machine that
    /// reboots takes longer than that): a fence in flight would power off its new life.
    fn restart_all(&mut self, c: &mut Cluster, out: &mut Outcome) {
        let killed = std::mem::take(&mut self.killed_at);
        let running = c.indices().filter(|&i| self.daemon_up(c, i)).count();
        // Without a quorum nobody fences: nothing to wait for.
        for (&i, &at) in killed.iter().filter(|_| running * 2 > NODES) {
            let fenced = |r: &Run| r.switch.fences.iter().any(|f| f.node == i && f.done >= at);
            let deadline = Instant::now() + RECOVERY_BOUND;
            while !fenced(self) && Instant::now() < deadline {
                self.pause(c, POLL);
            }
            if !fenced(self) {
                out.details.push(format!(
                    "{} was not fenced within {RECOVERY_BOUND:?} of the heal",
                    c.node_name(i)
                ));
            }
        }
        let now = unix(SystemTime::now());
        for i in c.indices().collect::<Vec<_>>() {
            let flag = c.shared().join(format!("restart-{}", c.node_name(i)));
            if !c.is_running(i) {
                let _ = std::fs::remove_file(&flag);
                rig::unstarve(c, i);
                self.switch.power_on(c, i);
                c.restart_node(i);
                self.restarts.push((c.node_name(i), now));
            } else if rig::init_waiting(c, i) && !flag.exists() {
                rig::restart_daemon(c, i);
                self.restarts.push((c.node_name(i), now));
            }
        }
    }

    /// Daemon exits nobody asked for, since the last look (kept in the log).
    fn crashes(&mut self, c: &Cluster) -> usize {
        let mut n = 0;
        for i in c.indices() {
            let exits = rig::exits(c, i);
            let node = c.node_name(i);
            let seen = self.exits_seen.entry(node.clone()).or_insert(0);
            for &(t, rc) in exits.iter().skip(*seen) {
                let asked = self.kills_asked.entry(node.clone()).or_insert(0);
                if rc == 137 && *asked > 0 {
                    *asked -= 1;
                } else {
                    n += 1;
                    println!("      CRASH: {node}'s daemon exited with status {rc} at unix {t:.3}");
                }
            }
            *seen = exits.len();
        }
        n
    }

    /// Copies every node's log, the witness and the switch's records under
    /// `/tmp/mosha-chaos/seed-S-iter-K/`.
    fn keep(&self, c: &Cluster, seed: u64, k: u64, label: &str) {
        let dir = std::path::PathBuf::from(format!("/tmp/mosha-chaos/seed-{seed}-iter-{k}"));
        let _ = std::fs::create_dir_all(&dir);
        for i in c.indices() {
            let _ = std::fs::copy(
                c.path(i, "mosha.log"),
                dir.join(format!("{}.log", c.node_name(i))),
            );
            let _ = std::fs::copy(
                c.path(i, "hastat.json"),
                dir.join(format!("{}.hastat.json", c.node_name(i))),
            );
        }
        let _ = std::fs::copy(c.shared().join("witness"), dir.join("witness"));
        let fences: String = self
            .switch
            .fences
            .iter()
            .map(|f| {
                format!(
                    "{} asked {:.3} done {:.3} running {}\n",
                    c.node_name(f.node),
                    f.asked,
                    f.done,
                    f.was_running
                )
            })
            .collect();
        let _ = std::fs::write(dir.join("fences"), fences);
        let _ = std::fs::write(
            dir.join("fault"),
            format!("seed {seed} iteration {k}: {label}\n"),
        );
        println!("      logs kept in {}", dir.display());
    }
}

/// Kinds whose fault may rightly end with a live node fenced: it is cut off (partition,
/// one-way), frozen past the failure detector (hang), or its daemon died leaving its
/// services unsupervised (daemon-kill, when the restart comes later than the detection).
pub const FENCING_KINDS: [Kind; 4] = [Kind::Partition, Kind::OneWay, Kind::Hang, Kind::DaemonKill];
