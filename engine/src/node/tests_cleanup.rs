//! Scenario tests of failures an operator can see and clear, through the node cores of a
//! small cluster (the harness of `tests_moves.rs`): a group's own cooldown (`cooldown=`),
//! a cleanup that lets a group no node could take run again, and a cleanup applied once.

use super::tests_moves::Cluster;
use super::*;

/// Returns the placement of a group with a cooldown of `ms` and, when given, only `only`.
fn with_cooldown(ms: Millis, only: Option<&str>) -> Input {
    let p = Placement {
        cooldown: Some(ms),
        only: only.map(|n| [n.to_string()].into()),
        ..Placement::default()
    };
    Input::Placement([("web".to_string(), p)].into())
}

fn cooling(c: &Cluster) -> usize {
    (c.nodes.iter())
        .filter(|b| b.core.engine().cooldowns().contains_key("web"))
        .count()
}

fn cleaned(c: &Cluster, node: &str) -> usize {
    (c.events.iter())
        .filter(|(n, e)| n == node && matches!(e, Event::CleanedUp { group, .. } if group == "web"))
        .count()
}

/// Every node's test fails: each gets the group's own cooldown (not the default 10 min),
/// and the group runs nowhere; the event says that no other node can take it. Once fixed,
/// an operator's cleanup on one node ends every cooldown: the group runs, and the request
/// leaves no key behind.
#[test]
fn a_cleanup_lets_a_group_that_failed_everywhere_run_again() {
    let mut c = Cluster::with(&["web"]);
    c.everyone(&with_cooldown(120_000, None));
    for b in &mut c.nodes {
        b.test_fails = true;
    }
    c.until(20_000, |c| cooling(c) == 4);
    assert!(c.running_of("web").is_empty());
    let until = c.nodes[0].core.engine().cooldowns()["web"];
    assert!(
        until <= c.t + 120_000 && until > c.t + 100_000,
        "the group's own cooldown"
    );
    let last = (c.events.iter()).rev().find_map(|(_, e)| match e {
        Event::TestFailed {
            cooldown_ms,
            elsewhere,
            ..
        } => Some((*cooldown_ms, *elsewhere)),
        _ => None,
    });
    assert_eq!(last, Some((120_000, 0)), "the last failure: nowhere to go");
    for b in &mut c.nodes {
        b.test_fails = false;
    }
    c.tick();
    assert!(c.running_of("web").is_empty(), "nothing happens by itself");
    let i = c.index("n3");
    c.nodes[i].core.observe(Input::Cleanup {
        group: "web".into(),
        node: None,
    });
    let took = c.until(5000, |c| c.running_of("web").len() == 1);
    assert!(took < 3000, "placed {took} ms after the cleanup");
    assert_eq!(cooling(&c), 0);
    assert!((1..=4).all(|n| cleaned(&c, &format!("n{n}")) == 1));
    c.until(crate::cleanup::CLEANUP_TTL + 1000, |c| {
        (c.nodes.iter()).all(|b| b.core.view().members[&b.name].cleanups.is_empty())
    });
}

/// A cleanup while the cause is not fixed: the node plans the group again, fails again and
/// gets a new cooldown, which the same request, still in sight, does not clear a second
/// time. The cooldown also ends by itself after the group's `cooldown=`.
#[test]
fn a_cleanup_is_applied_once_and_a_cooldown_ends_by_itself() {
    let mut c = Cluster::with(&["web"]);
    c.everyone(&with_cooldown(8000, Some("n2")));
    let n2 = c.index("n2");
    c.nodes[n2].test_fails = true;
    c.until(10_000, |c| cooling(c) == 1);
    c.nodes[n2].core.observe(Input::Cleanup {
        group: "web".into(),
        node: Some("n2".into()),
    });
    c.until(2000, |c| cleaned(c, "n2") == 1);
    c.until(4000, |c| cooling(c) == 1);
    let failed = |c: &Cluster| {
        (c.events.iter())
            .filter(|(n, e)| n == "n2" && matches!(e, Event::TestFailed { .. }))
            .count()
    };
    assert_eq!(failed(&c), 2, "failed again after the cleanup");
    for _ in 0..100 {
        c.tick();
    }
    assert_eq!(cleaned(&c, "n2"), 1, "applied once");
    assert_eq!(cleaned(&c, "n1"), 0, "a request for n2 only");
    // Fixed: the cooldown ends by itself (8 s), and n2 runs the group.
    c.nodes[n2].test_fails = false;
    c.until(12_000, |c| c.running_of("web") == ["n2"]);
}

/// A fatal failure (an agent's OCF 6) on one node stops the group everywhere: no other node
/// plans it, however long, until an operator's cleanup.
#[test]
fn a_fatal_failure_keeps_every_node_from_the_group_until_a_cleanup() {
    let mut c = Cluster::with(&["web"]);
    c.everyone(&with_cooldown(2000, None));
    for b in &mut c.nodes {
        b.test_fails = true;
        b.fatal = true;
    }
    c.until(10_000, |c| cooling(c) == 1);
    for _ in 0..200 {
        c.tick();
    }
    assert_eq!(
        cooling(&c),
        1,
        "one node tried; nobody else does, even past cooldown="
    );
    assert!(c.running_of("web").is_empty());
    for b in &mut c.nodes {
        b.test_fails = false;
    }
    let i = c.index("n2");
    c.nodes[i].core.observe(Input::Cleanup {
        group: "web".into(),
        node: None,
    });
    c.until(5000, |c| c.running_of("web").len() == 1);
}
