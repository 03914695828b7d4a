//! Scenario tests of the operators' standing orders (standby, drain, freeze, maintenance)
//! and of failback, through the node cores of the small cluster of `tests_moves.rs`: the
//! witness there checks at every tick that no group runs on two nodes at once.

use super::tests_moves::Cluster;
use super::*;
use crate::fencing::Policy;
use crate::Admin;

const GROUPS: [&str; 8] = ["g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8"];

/// Returns the standing orders with `node` in standby, drained to `to`.
fn standby(node: &str, to: Option<&str>) -> Input {
    Input::Admin(Admin {
        standby: [(node.to_string(), to.map(String::from))].into(),
        ..Admin::default()
    })
}

/// Returns the cluster with every group running somewhere, and the node running the most.
fn settled() -> (Cluster, String) {
    let mut c = Cluster::with(&GROUPS);
    c.until(8000, |c| GROUPS.iter().all(|g| c.running_of(g).len() == 1));
    let busiest = (c.nodes.iter())
        .max_by_key(|b| b.claims.len())
        .map(|b| b.name.clone())
        .unwrap();
    (c, busiest)
}

/// Returns where each group runs.
fn layout(c: &Cluster) -> Vec<Vec<String>> {
    let names = |v: Vec<&str>| v.into_iter().map(String::from).collect();
    GROUPS.iter().map(|g| names(c.running_of(g))).collect()
}

/// Returns the groups running on `node`.
fn on(c: &Cluster, node: &str) -> Vec<&'static str> {
    (GROUPS.iter().copied())
        .filter(|g| c.running_of(g) == [node])
        .collect()
}

/// Standby: every group of the node moves away, at most `LEAVE_WINDOW` hand-offs at once,
/// in group-name order; nothing lands on it; unstandby moves nothing back.
#[test]
fn standby_moves_every_group_away_and_nothing_lands_on_the_node() {
    let (mut c, x) = settled();
    let held = on(&c, &x);
    assert!(!held.is_empty());
    c.everyone(&standby(&x, None));
    let i = c.index(&x);
    let mut most = 0;
    c.until(5000, |c| {
        GROUPS
            .iter()
            .all(|g| c.running_of(g).len() == 1 && c.running_of(g) != [x.as_str()])
    });
    for _ in 0..40 {
        most = most.max(c.nodes[i].core.engine().handoffs().count());
        c.tick();
    }
    assert!(most <= crate::admin::LEAVE_WINDOW);
    assert!(on(&c, &x).is_empty(), "nothing runs on {x}");
    let handed: Vec<&str> = (c.events.iter())
        .filter(|(n, _)| *n == x)
        .filter_map(|(_, e)| match e {
            Event::HandingOff { group, why, .. } if why.contains("standby") => Some(group.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(handed, held, "handed off in group-name order");
    c.until(1000, |c| !c.moves_left());
    let before = layout(&c);
    c.everyone(&Input::Admin(Admin::default()));
    for _ in 0..60 {
        c.tick();
    }
    assert_eq!(before, layout(&c), "unstandby moves nothing back");
}

/// Drain: the groups go to the node named, which takes them all.
#[test]
fn drain_sends_every_group_to_the_node_named() {
    let (mut c, x) = settled();
    let to = ["n1", "n2", "n3", "n4"]
        .into_iter()
        .find(|n| *n != x)
        .unwrap();
    let held = on(&c, &x);
    c.everyone(&standby(&x, Some(to)));
    c.until(5000, |c| held.iter().all(|g| c.running_of(g) == [to]));
    c.until(1000, |c| !c.moves_left());
    assert!(on(&c, &x).is_empty());
}

/// A group that only the node in standby may run is stopped (said once), and placed there
/// again once the standby ends.
#[test]
fn standby_stops_a_group_no_other_node_may_run() {
    let mut c = Cluster::with(&["web"]);
    let only_n2 = Placement {
        only: Some(["n2".to_string()].into()),
        ..Placement::default()
    };
    c.everyone(&Input::Placement([("web".to_string(), only_n2)].into()));
    c.until(8000, |c| c.running_of("web") == ["n2"]);
    c.everyone(&standby("n2", None));
    c.until(2000, |c| c.running_of("web").is_empty());
    for _ in 0..40 {
        c.tick();
    }
    assert!(c.running_of("web").is_empty());
    let said = (c.events.iter())
        .filter(|(_, e)| matches!(e, Event::NowhereToGo { .. }))
        .count();
    assert_eq!(said, 1, "{:?}", c.events);
    c.everyone(&Input::Admin(Admin::default()));
    c.until(8000, |c| c.running_of("web") == ["n2"]);
}

/// A frozen group is left alone: its node keeps it when it loses quorum, and nobody
/// recovers it when its node dies; once unfrozen, the engine places it again.
#[test]
fn a_frozen_group_is_neither_stopped_nor_recovered() {
    let mut c = Cluster::with(&["web", "db"]);
    c.everyone(&Input::Fencing(Fencing {
        default: Some(Policy::Disabled),
        nodes: BTreeMap::new(),
    }));
    c.until(8000, |c| {
        c.running_of("web").len() == 1 && c.running_of("db").len() == 1
    });
    let x = c.running_of("web")[0].to_string();
    c.everyone(&Input::Admin(Admin {
        frozen: ["web".to_string()].into(),
        ..Admin::default()
    }));
    // Two of the four die: the holder of web has no quorum, and keeps it.
    let others: Vec<String> = (c.nodes.iter().map(|b| b.name.clone()))
        .filter(|n| *n != x)
        .take(2)
        .collect();
    for n in &others {
        c.set_alive(n, false);
    }
    for _ in 0..60 {
        c.tick();
    }
    assert!(!c.nodes[c.index(&x)].core.engine().quorate());
    assert_eq!(c.running_of("web"), [x.as_str()], "frozen: not stopped");
    for n in &others {
        c.set_alive(n, true);
    }
    c.until(5000, |c| c.nodes.iter().all(|b| b.core.engine().quorate()));
    // Its node dies: nobody recovers it while it is frozen.
    c.set_alive(&x, false);
    for _ in 0..100 {
        c.tick();
    }
    assert!(c.running_of("web").is_empty(), "frozen: not recovered");
    c.everyone(&Input::Admin(Admin::default()));
    c.until(8000, |c| c.running_of("web").len() == 1);
}

/// Failback: `web` prefers n1, which is down at first; it runs elsewhere, and moves to n1
/// once n1 has been alive for the delay, not before. Without failback it stays.
#[test]
fn failback_moves_a_group_to_its_preferred_node_after_the_delay() {
    for failback in [Some(3000), None] {
        let mut c = Cluster::with(&["web"]);
        c.everyone(&Input::Fencing(Fencing {
            default: Some(Policy::Disabled),
            nodes: BTreeMap::new(),
        }));
        let p = Placement {
            prefer: vec!["n1".to_string()],
            failback,
            ..Placement::default()
        };
        c.everyone(&Input::Placement([("web".to_string(), p)].into()));
        c.set_alive("n1", false);
        c.until(8000, |c| c.running_of("web").len() == 1);
        let first = c.running_of("web")[0].to_string();
        assert_ne!(first, "n1");
        c.set_alive("n1", true);
        let back = c.t;
        match failback {
            Some(delay) => {
                c.until(delay + 3000, |c| c.running_of("web") == ["n1"]);
                assert!(c.t >= back + delay, "moved back after {} ms", c.t - back);
            }
            None => {
                for _ in 0..200 {
                    c.tick();
                }
                assert_eq!(c.running_of("web"), [first.as_str()], "no failback");
            }
        }
    }
}

/// A failback to the preferred node whose test then fails there: the group comes back, and
/// no further failback goes to that node when its cooldown ends (it would fail again and
/// the group would be down each time) — until an operator's cleanup names it.
#[test]
fn no_failback_to_a_node_where_the_group_failed_until_a_cleanup() {
    let mut c = Cluster::with(&["web"]);
    c.everyone(&Input::Fencing(Fencing {
        default: Some(Policy::Disabled),
        nodes: BTreeMap::new(),
    }));
    let p = Placement {
        prefer: vec!["n1".to_string()],
        failback: Some(1000),
        cooldown: Some(3000),
        ..Placement::default()
    };
    c.everyone(&Input::Placement([("web".to_string(), p)].into()));
    c.set_alive("n1", false);
    c.until(8000, |c| c.running_of("web").len() == 1);
    let n1 = c.index("n1");
    c.nodes[n1].test_fails = true;
    c.set_alive("n1", true);
    let failed = |c: &Cluster| {
        (c.events.iter())
            .filter(|(n, e)| n == "n1" && matches!(e, Event::TestFailed { .. }))
            .count()
    };
    c.until(8000, |c| failed(c) == 1);
    c.until(5000, |c| c.running_of("web").len() == 1);
    let elsewhere = c.running_of("web")[0].to_string();
    assert_ne!(elsewhere, "n1");
    // Its cooldown (3 s) ends; the failback delay (1 s) is long past: nothing moves.
    for _ in 0..200 {
        c.tick();
    }
    assert_eq!(failed(&c), 1, "no second failback to n1");
    assert_eq!(c.running_of("web"), [elsewhere.as_str()]);
    // Fixed, and cleaned up: the group goes back to n1.
    c.nodes[n1].test_fails = false;
    let i = c.index("n3");
    c.nodes[i].core.observe(Input::Cleanup {
        group: "web".into(),
        node: Some("n1".into()),
    });
    c.until(5000, |c| c.running_of("web") == ["n1"]);
}
