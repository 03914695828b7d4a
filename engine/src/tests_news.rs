//! Scenario tests of the rules that keep a node honest about its own isolation: quorum counts
//! only members that news arrives from (one-way links), a daemon that was frozen looks before
//! it moves, and an expected member nobody knows anything of is fenced before recovery.

use rand_chacha::ChaCha12Rng;

use super::*;
use crate::testkit::{self, names, running, told};

fn cfg() -> Config {
    let mut c = Config::for_cluster_size(3);
    c.startup_wait = 1000;
    c.fence_settle = 0;
    c
}

fn rng() -> ChaCha12Rng {
    testkit::rng(3)
}

/// Returns the view of `members` wanting `want` at `start`, every node fenced.
fn view(members: Vec<(&str, Member)>, want: &[&str]) -> View {
    let want: Vec<(&str, &str)> = want.iter().map(|g| (*g, "start")).collect();
    View {
        policy: ["a", "b", "c"]
            .iter()
            .map(|n| (n.to_string(), Policy::Configured { timeout: 10_000 }))
            .collect(),
        ..testkit::view(&members, &want)
    }
}

#[test]
fn a_node_that_gets_no_news_from_its_peers_loses_quorum_and_stops_its_groups() {
    // `a` hears b's and c's heartbeats, but none of their state has arrived since t=5000:
    // its own gossip does not get out (a one-way link), so b and c do not hear it either.
    let mut e = Engine::new("a", cfg(), names(&["a", "b", "c"]));
    let mut r = rng();
    let timeout = e.config().news_timeout;
    let quiet = |since: Option<Millis>| Member {
        quiet_since: since,
        ..running(&[])
    };
    let v = |since| {
        view(
            vec![
                ("a", running(&[("web", "start")])),
                ("b", quiet(since)),
                ("c", quiet(since)),
            ],
            &["web"],
        )
    };
    e.step(0, &v(None), &mut r);
    assert!(e.quorate());
    let out = e.step(5000 + timeout - 1, &v(Some(5000)), &mut r);
    assert!(e.quorate() && !told(&out, "web", STOP));
    assert_eq!(e.next_wakeup(), Some(5000 + timeout));
    let out = e.step(5000 + timeout, &v(Some(5000)), &mut r);
    assert!(!e.quorate() && told(&out, "web", STOP), "{out:?}");
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Event(Event::NoNews { node, .. }) if node == "b")));
    // News again: quorate again.
    let out = e.step(9000, &v(Some(8990)), &mut r);
    assert!(e.quorate());
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Event(Event::NewsBack { node }) if node == "b")));
}

#[test]
fn a_resumed_daemon_moves_nothing_until_it_has_looked_again() {
    let mut e = Engine::new("a", cfg(), names(&["a", "b", "c"]));
    let mut r = rng();
    let plan = view(
        vec![
            ("a", running(&[("web", "plan")])),
            ("b", running(&[])),
            ("c", running(&[])),
        ],
        &["web"],
    );
    e.step(2000, &plan, &mut r);
    // Frozen from 2000 to 6000: far past its plan window, but it must not test yet.
    e.resumed(6000);
    let out = e.step(6000, &plan, &mut r);
    assert!(!told(&out, "web", TEST), "{out:?}");
    let window = e.config().plan_window;
    // The hold lasts the start-up wait; then the plan window starts over.
    let out = e.step(7000, &plan, &mut r);
    assert!(!told(&out, "web", TEST));
    let out = e.step(7000 + window, &plan, &mut r);
    assert!(told(&out, "web", TEST), "{out:?}");
    // Had the others started the group meanwhile, it would yield instead.
    let mut e = Engine::new("a", cfg(), names(&["a", "b", "c"]));
    e.step(2000, &plan, &mut r);
    e.resumed(6000);
    let taken = view(
        vec![
            ("a", running(&[("web", "plan")])),
            ("b", running(&[("web", "start")])),
            ("c", running(&[])),
        ],
        &["web"],
    );
    let out = e.step(6050, &taken, &mut r);
    assert!(told(&out, "web", STOP), "{out:?}");
}

#[test]
fn an_expected_member_nobody_knows_of_is_fenced_before_any_group_is_recovered() {
    // `a` restarted; `b` too; `c` is in the expected membership but neither has heard of it
    // (it hung before they restarted): it may run `web`.
    let mut e = Engine::new("a", cfg(), names(&["a", "b", "c"]));
    let mut r = rng();
    let mut v = view(vec![("a", running(&[])), ("b", running(&[]))], &["web"]);
    let mut fenced = false;
    for t in (0..3000).step_by(50) {
        // It may plan web meanwhile, but takes it no further.
        let out = testkit::step_fed(&mut e, &mut v, t, &mut r);
        assert!(
            !testkit::recovers(&out),
            "took web past plan at {t} with c unknown"
        );
        fenced |= out
            .iter()
            .any(|a| matches!(a, Action::Fence { node, .. } if node == "c"));
    }
    assert!(e.lost()["c"].unknown);
    // Whichever of a and b fences c, its record opens the gate.
    v.records.insert(
        "c".into(),
        Record {
            generation: 0,
            outcome: Outcome::Fenced,
            by: "b".into(),
            detail: "test".into(),
        },
    );
    let mut tested = false;
    for t in (3000..6000).step_by(50) {
        tested |= told(&testkit::step_fed(&mut e, &mut v, t, &mut r), "web", TEST);
    }
    assert!(tested, "web never went on after c was fenced");
    let _ = fenced; // which of a and b fences c is up to the rank
}

#[test]
fn a_start_without_quorum_is_no_alarm_and_reaching_it_is_said_once() {
    // At start a node hears nobody yet: it waits for quorum; it has lost nothing.
    let mut e = Engine::new("a", cfg(), names(&["a", "b", "c"]));
    let mut r = rng();
    let mut dead = running(&[]);
    dead.alive = false;
    let alone = view(
        vec![("a", running(&[])), ("b", dead.clone()), ("c", dead)],
        &["web"],
    );
    let out = e.step(0, &alone, &mut r);
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Event(Event::QuorumWaiting {
                live: 1,
                expected: 3
            })
        )),
        "{out:?}"
    );
    assert!(!out
        .iter()
        .any(|a| matches!(a, Action::Event(Event::QuorumLost { .. }))));
    let all = view(
        vec![
            ("a", running(&[])),
            ("b", running(&[])),
            ("c", running(&[])),
        ],
        &["web"],
    );
    let out = e.step(100, &all, &mut r);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Event(Event::QuorumReached { .. }))));
    // Losing it afterwards is an alarm, and getting it back is "regained".
    let out = e.step(200, &alone, &mut r);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Event(Event::QuorumLost { .. }))));
    let out = e.step(300, &all, &mut r);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Event(Event::QuorumRegained { .. }))));
}

#[test]
fn a_member_that_said_goodbye_is_no_one_way_link() {
    // b shut down cleanly (bye): its state stops changing while the failure detector still
    // holds it alive for a moment. That silence is no alarm, and b counts for nothing.
    let mut e = Engine::new("a", cfg(), names(&["a", "b", "c"]));
    let mut r = rng();
    let timeout = e.config().news_timeout;
    let b = |since: Option<Millis>, left: bool| Member {
        quiet_since: since,
        left,
        ..running(&[])
    };
    let v = |since, left| {
        view(
            vec![
                ("a", running(&[])),
                ("b", b(since, left)),
                ("c", running(&[])),
            ],
            &["web"],
        )
    };
    e.step(0, &v(None, false), &mut r);
    let out = e.step(1000 + timeout + 1, &v(Some(1000), true), &mut r);
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::Event(Event::NoNews { .. }))),
        "{out:?}"
    );
    assert!(e.quorate(), "a and c are two of three");
}
