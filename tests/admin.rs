//! The operators' standing orders on a real cluster (issue 11): `mosha standby`, `drain`,
//! `unstandby`, `freeze`, `unfreeze`, `maintenance`, and hactl's `failback=`, on five
//! `mosha run` daemons, checked through what an operator sees (the commands' answers, every
//! node's hastat and `mosha status`) and the witness lock each service takes
//! (`tests/common/witness.rs`): no moment with two copies.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{wait_joined, Cluster, Timer};
use common::verbs::{mosha, start, text, SETTLE};
use common::witness::{cltab_of, lock_held, srv};

/// Runs `mosha ARGS` on node `i`'s directory and fails the test unless it succeeds.
fn ok(c: &Cluster, i: usize, args: &[&str]) -> String {
    let o = mosha(c.dir(i), args);
    let out = text(&o);
    assert!(o.status.success(), "mosha {args:?}: {out}\n{}", c.report());
    out
}

/// Tells whether every live node's hastat shows `node` in standby (`want`) or not.
fn standby_everywhere(c: &Cluster, live: &[usize], node: &str, want: bool) -> bool {
    live.iter().all(|&i| {
        c.status(i)
            .is_some_and(|h| h.admin.standby.contains_key(node) == want)
    })
}

/// Waits until `groups` (which prefer n1) are placed, moves those that some node planned
/// before n1 saw its hactl line to n1, and returns the placement: all on n1.
fn all_on_n1(c: &Cluster, groups: &[&str]) -> std::collections::BTreeMap<String, usize> {
    let all: Vec<usize> = c.indices().collect();
    let placed = c.wait_placed(&all, groups, "start");
    for (g, _) in placed.iter().filter(|(_, i)| **i != 1) {
        ok(c, 2, &["move", g, &c.node_name(1), "--wait"]);
    }
    let placed = c.wait_placed(&all, groups, "start");
    assert!(placed.values().all(|&i| i == 1), "all on n1: {placed:?}");
    placed
}

/// Standby of the node that runs every group: each group moves to another node, none comes
/// back on it; status says standby; unstandby moves nothing back. Then a drain to a node
/// that dies during the drain: the groups still all run elsewhere, each once.
#[test]
fn standby_and_drain_empty_a_node_even_when_the_target_dies() {
    let _t = Timer::start("standby_and_drain_empty_a_node_even_when_the_target_dies");
    let groups = ["g1", "g2", "g3", "g4", "g5", "g6"];
    let mut c = start(5, cltab_of(&groups), String::new());
    let all: Vec<usize> = c.indices().collect();
    let n1 = c.node_name(1);
    let hactl: String = (groups.iter())
        .map(|g| format!("{g} start prefer={n1}\n"))
        .collect();
    c.write_file(1, "hactl", &hactl);
    all_on_n1(&c, &groups);

    let out = ok(&c, 3, &["standby", &n1, "--wait"]);
    assert!(out.contains(&format!("{n1} runs no group")), "{out}");
    let placed = c.wait_placed(&all, &groups, "start");
    assert!(placed.values().all(|&i| i != 1), "{placed:?}");
    assert!(standby_everywhere(&c, &all, &n1, true));
    let shown = ok(&c, 4, &["status"]);
    assert!(
        shown.contains(&format!("{n1}: standby; runs no group")),
        "{shown}"
    );
    // It stays empty.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.wait_placed(&all, &groups, "start"), placed);

    ok(&c, 5, &["unstandby", &n1]);
    c.wait_for("the standby ends everywhere", SETTLE, |c| {
        standby_everywhere(c, &all, &n1, false)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.wait_placed(&all, &groups, "start"),
        placed,
        "unstandby moves nothing back"
    );

    // Drain the busiest node to another one, which dies at once.
    let busiest = (all.iter().copied())
        .max_by_key(|i| placed.values().filter(|x| *x == i).count())
        .unwrap();
    let target = all.iter().copied().find(|&i| i != busiest).unwrap();
    let out = ok(
        &c,
        busiest,
        &["drain", &c.node_name(busiest), "--to", &c.node_name(target)],
    );
    assert!(out.contains("drained to"), "{out}");
    c.kill_node(target);
    let live: Vec<usize> = all.iter().copied().filter(|&i| i != target).collect();
    c.wait_for(
        "every group runs once, off the drained and the dead node",
        SETTLE,
        |c| {
            (c.placement(&live, &groups, "start"))
                .is_some_and(|p| p.values().all(|&i| i != busiest && i != target))
        },
    );
    for g in groups {
        assert!(lock_held(&c, g), "{g} runs");
    }
    c.assert_no_collisions();
}

/// Freeze: the frozen group's service is killed and not respawned (status FROZEN), nor
/// failed over; unfreeze restarts it where it was. Maintenance freezes every group.
#[test]
fn freeze_leaves_a_killed_service_down_until_unfreeze() {
    let _t = Timer::start("freeze_leaves_a_killed_service_down_until_unfreeze");
    let groups = ["web", "db"];
    let c = start(
        5,
        cltab_of(&groups),
        common::witness::hactl_of(&groups, "start"),
    );
    let all: Vec<usize> = c.indices().collect();
    let placed = c.wait_placed(&all, &groups, "start");
    let x = placed["web"];
    let out = ok(&c, 2, &["freeze", "web"]);
    assert!(out.contains("web frozen"), "{out}");
    c.wait_for("web is frozen on its node", SETTLE, |c| {
        c.status(x).is_some_and(|h| h.groups["web"].frozen)
    });
    let pid_of = |c: &Cluster| -> Option<u32> {
        let cl = c.clstat(x)?;
        cl["groups"]["web"]["entries"][srv("web")]["pid"]
            .as_u64()
            .map(|p| p as u32)
    };
    let pid = pid_of(&c).expect("web's server runs");
    let host = c.host_pid(x, pid).expect("its host pid");
    // The whole process group: the entry's flock and the sleep that holds the lock.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(host as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    c.wait_for("the lock is free", SETTLE, |c| !lock_held(c, "web"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!lock_held(&c, "web"), "frozen: not respawned");
    assert_eq!(pid_of(&c), None);
    let shown = ok(&c, x, &["status"]);
    assert!(
        shown
            .lines()
            .any(|l| l.contains("web") && l.contains("FROZEN")),
        "{shown}"
    );
    // Nobody else starts it either.
    assert_eq!(c.wait_placed(&all, &["db"], "start")["db"], placed["db"]);
    let h = c.status(1).unwrap();
    assert_eq!(h.groups["web"].nodes.len(), 1, "{:?}", h.groups["web"]);

    let started = Instant::now();
    ok(&c, 3, &["unfreeze", "web"]);
    c.wait_for("web's server runs again", SETTLE, |c| lock_held(c, "web"));
    eprintln!("unfreeze -> running again in {:?}", started.elapsed());
    assert_eq!(
        c.wait_placed(&all, &groups, "start")["web"],
        x,
        "where it was"
    );

    // Maintenance: every group frozen, shown so; off again.
    ok(&c, 4, &["maintenance", "on"]);
    c.wait_for("every node shows maintenance", SETTLE, |c| {
        all.iter().all(|&i| {
            c.status(i)
                .is_some_and(|h| h.admin.maintenance && h.groups["db"].frozen)
        })
    });
    let shown = ok(&c, 5, &["status"]);
    assert!(shown.contains("MAINTENANCE"), "{shown}");
    ok(&c, 5, &["maintenance", "off"]);
    c.wait_for("maintenance ends everywhere", SETTLE, |c| {
        all.iter()
            .all(|&i| c.status(i).is_some_and(|h| !h.admin.maintenance))
    });
    // Orders that make no sense are refused with the reason.
    for (args, why) in [
        (vec!["freeze", "nosuch"], "no group \"nosuch\" in cltab"),
        (vec!["standby", "n9"], "no node \"n9\" is known"),
        (vec!["maintenance", "maybe"], "invalid value 'maybe'"),
    ] {
        let o = mosha(c.dir(1), &args);
        let out = text(&o);
        assert!(!o.status.success(), "{out}");
        assert!(out.contains(why), "{args:?}: {out}");
    }
    c.assert_no_collisions();
}

/// Failback: both groups prefer n1; its death sends them elsewhere; when it returns, the
/// group with `failback=4s` moves back once n1 has been up that long, the one with
/// `failback=no` stays where it runs.
#[test]
fn a_preferred_node_that_returns_gets_back_only_the_failback_groups() {
    let _t = Timer::start("a_preferred_node_that_returns_gets_back_only_the_failback_groups");
    let groups = ["web", "db"];
    let mut c = start(5, cltab_of(&groups), String::new());
    let all: Vec<usize> = c.indices().collect();
    let n1 = c.node_name(1);
    // Written on n1, which sees it first and so takes both groups.
    c.write_file(
        1,
        "hactl",
        &format!("web start prefer={n1} failback=no\ndb start prefer={n1} failback=4s\n"),
    );
    all_on_n1(&c, &groups);
    c.kill_node(1);
    let live: Vec<usize> = (2..=5).collect();
    let moved = c.wait_placed(&live, &groups, "start");
    c.restart_node(1);
    wait_joined(&c, &all);
    let back = Instant::now();
    c.wait_for("db moves back to n1", SETTLE, |c| {
        c.placement(&all, &["db"], "start")
            .is_some_and(|p| p["db"] == 1)
    });
    let took = back.elapsed();
    assert!(took >= Duration::from_secs(3), "moved back after {took:?}");
    std::thread::sleep(Duration::from_secs(3));
    let now = c.wait_placed(&all, &groups, "start");
    assert_eq!(now["web"], moved["web"], "failback=no: web stays");
    c.assert_no_collisions();
}
