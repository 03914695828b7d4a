//! Fault profiles and the fault schedule of a run. The schedule is drawn up front from the
//! seed alone (not from the policy's behaviour), so both policies face the same faults.

use std::collections::{BTreeMap, BTreeSet};

use mosha::engine::Placement;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha12Rng;

/// A fault, or the end of one, at a point of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The machine dies: its processes die, it stays down until `Restart`.
    Crash(usize),
    /// The daemon hangs: alive to itself, silent to others, its processes keep running.
    Hang(usize),
    /// The daemon resumes after a hang.
    Unhang(usize),
    /// The node (re)starts its daemon with a new generation; running processes are killed.
    Restart(usize),
    /// The nodes listed go to side 1 of a partition, the others stay on side 0.
    Partition(Vec<usize>),
    /// Every partition heals.
    Heal,
    /// The node's outgoing gossip is dropped (one-way): others stop hearing it.
    Clog(usize),
    /// The node's outgoing gossip flows again.
    Unclog(usize),
    /// An operator edits hactl on a node: `group` to `level`.
    Hactl {
        node: usize,
        group: usize,
        level: String,
    },
    /// An operator on `node` moves `group` to node `to` (`mosha move`): the request names
    /// the holder that node sees (none: nothing is asked, as the daemon would refuse).
    Move {
        node: usize,
        group: usize,
        to: usize,
    },
    /// An operator puts `node` in standby (`mosha standby`, or `mosha drain --to` when `to`).
    Standby { node: usize, to: Option<usize> },
    /// An operator ends the standby of `node`.
    Unstandby(usize),
    /// An operator edits hactl's options of `group` (`prefer=`, `only=`, `failback=`; its
    /// `cooldown=` stays): they reach every node as an edit of hactl does.
    Options { group: usize, placement: Placement },
    /// The next stop of `group` on `node` fails (a resource agent's stop).
    StopFails { node: usize, group: usize },
    /// An operator on `node` clears the failures of `group` on `on` (`None`: every node),
    /// as `mosha cleanup` does.
    Cleanup {
        node: usize,
        group: usize,
        on: Option<usize>,
    },
    /// `fault` (a crash, hang, restart or clog) hits a node that runs `group` past `plan` when
    /// it happens, if one does (the node `fault` names otherwise); the node it hit is kept
    /// for the fault's end under `slot` (see [`Fault::AtSlot`]).
    AtHolder {
        group: usize,
        slot: usize,
        fault: Box<Fault>,
    },
    /// `fault` (an unhang, restart or unclog) ends the fault of `slot` on the node that one hit.
    AtSlot { slot: usize, fault: Box<Fault> },
    /// Heal everything: restart down nodes, unhang, unclog, heal partitions, agents succeed.
    HealAll,
}

impl Fault {
    /// Returns the fault aimed at node `x` instead (the faults that name one node).
    pub fn at(self, x: usize) -> Fault {
        match self {
            Fault::Crash(_) => Fault::Crash(x),
            Fault::Hang(_) => Fault::Hang(x),
            Fault::Unhang(_) => Fault::Unhang(x),
            Fault::Restart(_) => Fault::Restart(x),
            Fault::Clog(_) => Fault::Clog(x),
            Fault::Unclog(_) => Fault::Unclog(x),
            f => f,
        }
    }
}

/// What a fence agent does when run (drawn per attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// Powers the victim off and reports success after the delay.
    Succeed(u64),
    /// Reports failure after the delay; the victim stays as it is.
    Fail(u64),
    /// Never returns: the daemon kills it at its timeout and reports failure.
    Hang,
    /// Reports failure at the timeout, but the victim powers off this long after it.
    Late(u64),
}

/// A named set of fault rates.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Its name on the command line.
    pub name: String,
    /// How many faults to schedule in the fault window.
    pub faults: usize,
    /// Gossip loss rate.
    pub loss: f64,
    /// Whether fence agents misbehave (fail, hang, succeed late).
    pub bad_agents: bool,
    /// Probability that a group's test fails on one (random) node.
    pub test_fail: f64,
    /// Probability that a node's tests are slow (1–5 s).
    pub slow_tests: f64,
    /// Largest clock drift, in parts per million.
    pub drift_ppm: i64,
    /// Whether one-way and swizzle clogging are among the faults.
    pub clogs: bool,
    /// How many operator moves to schedule (drawn from a stream of their own, so that the
    /// other faults of a seed are those of the profile without moves).
    pub moves: usize,
    /// How many standbys (each ended a while later) to schedule, from a stream of their own.
    pub standbys: usize,
    /// How many cleanups (`mosha cleanup`) to schedule, from a stream of their own.
    pub cleanups: usize,
    /// How many failed stops to schedule (armed at random moments, each failing the next
    /// stop of a random group on a random node), from a stream of their own.
    pub stop_fails: usize,
    /// Whether groups have placement options (`prefer=`, `only=`, `failback=`,
    /// `cooldown=`), drawn per group at the start and edited at random moments.
    pub placement: bool,
    /// Whether the faults that hit one node (crash, hang, restart, clog) hit a node that runs
    /// a group (drawn from a stream of its own) when they happen: at a thousand nodes and a
    /// few faults, a node drawn at random seldom runs anything, and no failover is seen.
    pub owners: bool,
    /// How many daemons to kill alone (their processes left running, the daemon silent)
    /// and start again 0.2 to 4 s later, as systemd restarts a unit (the new daemon stops
    /// what the old one left before it starts anything), from a stream of their own: the
    /// chaos run's "daemon kill".
    pub daemon_kills: usize,
}

impl Profile {
    /// Returns the profile called `name`: `none`, `default`, `heavy`, `symmetric` (the
    /// default without one-way or swizzle clogging), `operator` (the default's faults, and
    /// operator moves at random moments among them), `admin` (the operator's, and standby
    /// or drain of random nodes, each ended a while later), `failures` (the admin's, with
    /// three times the failing tests, failed stops and operators' cleanups at random
    /// moments), or
    /// `placement` (the admin's, with placement options on groups, edited at random
    /// moments), `owners` (the default's, aimed at nodes that run a group), or `daemons`
    /// (the default's, and three daemons killed alone and restarted).
    pub fn named(name: &str) -> Option<Profile> {
        let p = |faults, loss, bad_agents, test_fail, slow_tests, drift_ppm| Profile {
            name: name.to_string(),
            faults,
            loss,
            bad_agents,
            test_fail,
            slow_tests,
            drift_ppm,
            clogs: true,
            moves: 0,
            standbys: 0,
            cleanups: 0,
            stop_fails: 0,
            placement: false,
            owners: false,
            daemon_kills: 0,
        };
        Some(match name {
            "none" => p(0, 0.0, false, 0.0, 0.0, 0),
            "default" => p(4, 0.01, true, 0.1, 0.2, 500),
            "heavy" => p(12, 0.05, true, 0.2, 0.3, 2000),
            "symmetric" => Profile {
                clogs: false,
                ..p(4, 0.01, true, 0.1, 0.2, 500)
            },
            "operator" => Profile {
                moves: 6,
                ..p(4, 0.01, true, 0.1, 0.2, 500)
            },
            "admin" => Profile {
                moves: 6,
                standbys: 3,
                ..p(4, 0.01, true, 0.1, 0.2, 500)
            },
            "placement" => Profile {
                moves: 6,
                standbys: 3,
                placement: true,
                ..p(4, 0.01, true, 0.1, 0.2, 500)
            },
            "owners" => Profile {
                owners: true,
                ..p(4, 0.01, true, 0.1, 0.2, 500)
            },
            "daemons" => Profile {
                daemon_kills: 3,
                ..p(4, 0.01, true, 0.1, 0.2, 500)
            },
            "failures" => Profile {
                moves: 6,
                standbys: 3,
                cleanups: 6,
                stop_fails: 1,
                ..p(4, 0.01, true, 0.3, 0.2, 500)
            },
            _ => return None,
        })
    }
}

/// Everything about the faults of one run, drawn from the seed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Faults in time order.
    pub schedule: Vec<(u64, Fault)>,
    /// When every fault is healed.
    pub heal_at: u64,
    /// (node, group) pairs whose test fails.
    pub failing_tests: BTreeSet<(usize, usize)>,
    /// Nodes with slow tests.
    pub slow: BTreeSet<usize>,
    /// Clock drift of each node (ppm) and offset (ms).
    pub clocks: Vec<(i64, u64)>,
    /// The groups' placement options at the start (none unless the profile has them).
    pub placement: BTreeMap<String, Placement>,
}

/// Draws the placement options of group `grp` among `n` nodes: often a preference, now
/// and then a restriction (holding the preferred nodes, and two nodes at least, so that a
/// group whose test fails on one of them still has another), failback behind a preference,
/// and the group's own cooldown (`cooldown`, which option edits keep).
pub fn draw_placement(rng: &mut ChaCha12Rng, n: usize, cooldown: Option<u64>) -> Placement {
    let node = |i: usize| format!("n{i}");
    let mut p = Placement {
        cooldown,
        ..Placement::default()
    };
    if n < 2 {
        return p;
    }
    if rng.random_bool(0.5) {
        let k = rng.random_range(1..=2usize);
        while p.prefer.len() < k {
            let v = node(rng.random_range(0..n));
            if !p.prefer.contains(&v) {
                p.prefer.push(v);
            }
        }
    }
    if n >= 3 && rng.random_bool(0.3) {
        let mut only: BTreeSet<String> = p.prefer.iter().cloned().collect();
        let k = rng.random_range(2..=3usize).max(only.len());
        while only.len() < k {
            only.insert(node(rng.random_range(0..n)));
        }
        p.only = Some(only);
    }
    if !p.prefer.is_empty() && rng.random_bool(0.4) {
        p.failback = Some(rng.random_range(1_000..10_000u64));
    }
    p
}

/// Draws the fault plan of a run of `n` nodes and `g` groups, healing at `heal_at`.
pub fn plan(seed: u64, prof: &Profile, n: usize, g: usize, heal_at: u64) -> Plan {
    let mut rng = ChaCha12Rng::seed_from_u64(seed ^ 0x5eed_fa17);
    let mut s: Vec<(u64, Fault)> = Vec::new();
    // The groups whose holders the faults hit, from a stream of their own (see `owners`).
    let mut owners = ChaCha12Rng::seed_from_u64(seed ^ 0x0e0e_4e25);
    let start = 3000u64;
    let window = heal_at.saturating_sub(start).max(1);
    for _ in 0..prof.faults {
        let t = start + rng.random_range(0..window);
        let node = rng.random_range(0..n);
        let dur = rng.random_range(500..15_000u64);
        let mut kind = rng.random_range(0..8u32);
        if !prof.clogs && (kind == 4 || kind == 5) {
            kind = 3;
        }
        // A fault on one node, and its end (if any); at a group's holder if the profile says.
        let mut one = |s: &mut Vec<(u64, Fault)>, start: Fault, end: Option<Fault>| {
            if !prof.owners || g == 0 {
                s.push((t, start));
                s.extend(end.map(|e| (t + dur, e)));
                return;
            }
            let (group, slot) = (owners.random_range(0..g), s.len());
            let fault = Box::new(start);
            s.push((t, Fault::AtHolder { group, slot, fault }));
            s.extend(end.map(|e| {
                (
                    t + dur,
                    Fault::AtSlot {
                        slot,
                        fault: Box::new(e),
                    },
                )
            }));
        };
        match kind {
            0 | 7.. => one(&mut s, Fault::Crash(node), Some(Fault::Restart(node))),
            1 => one(&mut s, Fault::Hang(node), Some(Fault::Unhang(node))),
            2 => one(&mut s, Fault::Restart(node), None),
            3 => {
                let k = rng.random_range(1..=n.div_ceil(2).max(1));
                let mut side: Vec<usize> = (0..n).collect();
                for i in 0..k {
                    let j = rng.random_range(i..n);
                    side.swap(i, j);
                }
                side.truncate(k);
                side.sort_unstable();
                s.push((t, Fault::Partition(side)));
                s.push((t + dur, Fault::Heal));
            }
            4 => one(&mut s, Fault::Clog(node), Some(Fault::Unclog(node))),
            5 => {
                // Swizzle clogging: clog a few nodes one by one, unclog in reverse order.
                let k = rng.random_range(2..=4usize).min(n);
                let mut nodes: Vec<usize> = Vec::new();
                while nodes.len() < k {
                    let v = rng.random_range(0..n);
                    if !nodes.contains(&v) {
                        nodes.push(v);
                    }
                }
                for (i, v) in nodes.iter().enumerate() {
                    s.push((t + 500 * i as u64, Fault::Clog(*v)));
                    s.push((t + dur + 500 * (k - i) as u64, Fault::Unclog(*v)));
                }
            }
            6 if g > 0 => {
                // hactl edits racing on two nodes: one stops a group, one starts it, 0–200 ms
                // apart; a later edit sets it back to start.
                let group = rng.random_range(0..g);
                let other = rng.random_range(0..n);
                let gap = rng.random_range(0..200u64);
                s.push((
                    t,
                    Fault::Hactl {
                        node,
                        group,
                        level: "stop".into(),
                    },
                ));
                s.push((
                    t + gap,
                    Fault::Hactl {
                        node: other,
                        group,
                        level: "start".into(),
                    },
                ));
                s.push((
                    t + dur,
                    Fault::Hactl {
                        node: other,
                        group,
                        level: "start".into(),
                    },
                ));
            }
            6 => one(&mut s, Fault::Crash(node), Some(Fault::Restart(node))),
        }
    }
    if prof.moves > 0 && g > 0 && n > 1 {
        let mut ops = ChaCha12Rng::seed_from_u64(seed ^ 0x0be7_a70e);
        for _ in 0..prof.moves {
            let t = start + ops.random_range(0..window);
            let (node, group, to) = (
                ops.random_range(0..n),
                ops.random_range(0..g),
                ops.random_range(0..n),
            );
            s.push((t, Fault::Move { node, group, to }));
        }
    }
    if prof.standbys > 0 && n > 1 {
        let mut ops = ChaCha12Rng::seed_from_u64(seed ^ 0x57a0_db1e);
        for _ in 0..prof.standbys {
            let t = start + ops.random_range(0..window);
            let node = ops.random_range(0..n);
            let to = (ops.random_bool(0.5))
                .then(|| ops.random_range(0..n))
                .filter(|v| *v != node);
            let dur = ops.random_range(2_000..20_000u64);
            s.push((t, Fault::Standby { node, to }));
            s.push(((t + dur).min(heal_at - 1), Fault::Unstandby(node)));
        }
    }
    if prof.daemon_kills > 0 {
        let mut ops = ChaCha12Rng::seed_from_u64(seed ^ 0xdae3_0b11);
        for _ in 0..prof.daemon_kills {
            let t = start + ops.random_range(0..window);
            let node = ops.random_range(0..n);
            let dur = ops.random_range(200..4_000u64);
            s.push((t, Fault::Hang(node)));
            s.push((t + dur, Fault::Restart(node)));
        }
    }
    if prof.cleanups > 0 && g > 0 {
        let mut ops = ChaCha12Rng::seed_from_u64(seed ^ 0xc1ea_0b5e);
        for _ in 0..prof.cleanups {
            let t = start + ops.random_range(0..window);
            let (node, group) = (ops.random_range(0..n), ops.random_range(0..g));
            let on = ops.random_bool(0.5).then(|| ops.random_range(0..n));
            s.push((t, Fault::Cleanup { node, group, on }));
        }
    }
    if prof.stop_fails > 0 && g > 0 {
        let mut ops = ChaCha12Rng::seed_from_u64(seed ^ 0x5709_fa11);
        for _ in 0..prof.stop_fails {
            let t = start + ops.random_range(0..window);
            let (node, group) = (ops.random_range(0..n), ops.random_range(0..g));
            s.push((t, Fault::StopFails { node, group }));
        }
    }
    let mut placement = BTreeMap::new();
    if prof.placement && g > 0 {
        let mut ops = ChaCha12Rng::seed_from_u64(seed ^ 0x91ac_e0b7);
        let cooldowns: Vec<Option<u64>> = (0..g)
            .map(|_| {
                ops.random_bool(0.5)
                    .then(|| ops.random_range(3_000..20_000u64))
            })
            .collect();
        for (grp, cd) in cooldowns.iter().enumerate() {
            placement.insert(format!("g{grp}"), draw_placement(&mut ops, n, *cd));
        }
        for _ in 0..4 {
            let t = start + ops.random_range(0..window);
            let group = ops.random_range(0..g);
            let p = draw_placement(&mut ops, n, cooldowns[group]);
            s.push((
                t,
                Fault::Options {
                    group,
                    placement: p,
                },
            ));
        }
    }
    s.retain(|(t, _)| *t < heal_at);
    s.push((heal_at, Fault::HealAll));
    s.sort_by_key(|(t, _)| *t);
    let mut failing_tests = BTreeSet::new();
    for grp in 0..g {
        if n > 1 && rng.random_bool(prof.test_fail) {
            failing_tests.insert((rng.random_range(0..n), grp));
        }
    }
    let slow = (0..n)
        .filter(|_| rng.random_bool(prof.slow_tests))
        .collect();
    let clocks = (0..n)
        .map(|_| {
            let d = if prof.drift_ppm > 0 {
                rng.random_range(-prof.drift_ppm..=prof.drift_ppm)
            } else {
                0
            };
            (d, rng.random_range(0..1_000_000u64))
        })
        .collect();
    Plan {
        schedule: s,
        heal_at,
        failing_tests,
        slow,
        clocks,
        placement,
    }
}

/// Draws what a fence agent does on one attempt.
pub fn agent(rng: &mut ChaCha12Rng, prof: &Profile, healed: bool) -> Agent {
    let d = rng.random_range(500..3000u64);
    if healed || !prof.bad_agents {
        return Agent::Succeed(d);
    }
    match rng.random_range(0..100u32) {
        0..60 => Agent::Succeed(d),
        60..75 => Agent::Fail(d),
        75..85 => Agent::Hang,
        _ => Agent::Late(rng.random_range(100..5000u64)),
    }
}
