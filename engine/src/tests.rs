//! Scenario tests of the engine: one test per rule (rank wait, plan window, yield on conflict,
//! cooldown, quorum, level change, lost owners), each a script of (time, view) → actions.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha12Rng;

use super::*;
use crate::testkit::{self, alive, cfg, tells, told, view};

fn rng() -> ChaCha12Rng {
    testkit::rng(7)
}

fn at(level: &str) -> Claim {
    Claim::settled(level, State::Done)
}

/// Returns the nodes of `names` ordered best first for `group`.
fn ranked<'a>(group: &str, names: &[&'a str]) -> Vec<&'a str> {
    rank::order(group, names.iter().copied())
}

#[test]
fn the_first_ranked_node_plans_within_its_slot_and_the_second_waits_one_slot() {
    let nodes = ranked("web", &["a", "b", "c"]);
    let v = view(
        &[
            (nodes[0], alive(&[])),
            (nodes[1], alive(&[])),
            (nodes[2], alive(&[])),
        ],
        &[("web", "start")],
    );
    let mut first = Engine::new(nodes[0], cfg(), BTreeSet::new());
    let mut second = Engine::new(nodes[1], cfg(), BTreeSet::new());
    let mut r = rng();
    let mut planned_first = None;
    for t in (0..=400).step_by(10) {
        if told(&first.step(t, &v, &mut r), "web", PLAN) && planned_first.is_none() {
            planned_first = Some(t);
        }
    }
    let t = planned_first.expect("rank 0 plans");
    // Steps are 10 ms apart; the jitter is under a quarter slot (50 ms).
    assert!(
        t <= 50,
        "rank 0 planned at {t} ms: jitter stays inside a quarter slot"
    );
    // Rank 1 sees nobody claim the group and plans only after one slot.
    let mut planned_second = None;
    for t in (0..=400).step_by(10) {
        if told(&second.step(t, &v, &mut r), "web", PLAN) && planned_second.is_none() {
            planned_second = Some(t);
        }
    }
    let t = planned_second.expect("rank 1 plans when rank 0 does not");
    assert!((200..=250).contains(&t), "rank 1 planned at {t} ms");
}

#[test]
fn a_node_plans_nothing_while_another_holds_the_group() {
    let v = view(
        &[("a", alive(&[])), ("b", alive(&[("web", at("start"))]))],
        &[("web", "start")],
    );
    let mut e = Engine::new("a", cfg(), BTreeSet::new());
    let mut r = rng();
    for t in (0..5000).step_by(100) {
        assert!(tells(&e.step(t, &v, &mut r)).is_empty());
    }
}

#[test]
fn the_plan_window_holds_the_test_back_then_test_then_the_wanted_level() {
    let mut e = Engine::new("a", cfg(), BTreeSet::new());
    let mut r = rng();
    let at_plan = view(&[("a", alive(&[("web", at(PLAN))]))], &[("web", "start")]);
    assert!(tells(&e.step(1000, &at_plan, &mut r)).is_empty());
    assert!(tells(&e.step(1399, &at_plan, &mut r)).is_empty());
    assert!(told(&e.step(1400, &at_plan, &mut r), "web", TEST));
    let passed = Claim::settled(TEST, State::Passed);
    let at_test = view(&[("a", alive(&[("web", passed)]))], &[("web", "start")]);
    assert!(told(&e.step(1500, &at_test, &mut r), "web", "start"));
    // A test level without tests ends DONE: that counts as passed.
    let at_test = view(&[("a", alive(&[("web", at(TEST))]))], &[("web", "start")]);
    assert!(told(&e.step(1600, &at_test, &mut r), "web", "start"));
}

#[test]
fn on_conflict_exactly_one_side_yields_and_the_winner_waits_for_it_to_leave() {
    let nodes = ranked("web", &["a", "b"]);
    let (hi, lo) = (nodes[0], nodes[1]);
    let both = view(
        &[
            (hi, alive(&[("web", at(PLAN))])),
            (lo, alive(&[("web", at(PLAN))])),
        ],
        &[("web", "start")],
    );
    let mut win = Engine::new(hi, cfg(), BTreeSet::new());
    let mut lose = Engine::new(lo, cfg(), BTreeSet::new());
    let mut r = rng();
    let a = lose.step(0, &both, &mut r);
    assert!(told(&a, "web", STOP));
    assert!(a.contains(&Action::Event(Event::Yielding {
        group: "web".into(),
        to: hi.into()
    })));
    assert!(
        !told(&win.step(0, &both, &mut r), "web", STOP),
        "never both stop"
    );
    // The winner does not move to test while the loser's claim is still there.
    assert!(tells(&win.step(1000, &both, &mut r)).is_empty());
    let alone = view(
        &[(hi, alive(&[("web", at(PLAN))])), (lo, alive(&[]))],
        &[("web", "start")],
    );
    assert!(told(&win.step(1001, &alone, &mut r), "web", TEST));
    // The loser backs off: it does not plan again while the winner holds the group, nor
    // right after the winner's claim disappears.
    let nobody = view(&[(hi, alive(&[])), (lo, alive(&[]))], &[("web", "start")]);
    assert!(tells(&lose.step(100, &nobody, &mut r)).is_empty());
}

#[test]
fn a_later_phase_wins_over_a_higher_rank() {
    let nodes = ranked("web", &["a", "b"]);
    let (hi, lo) = (nodes[0], nodes[1]);
    // The lower-ranked node already runs the group (e.g. the higher one just restarted and
    // planned on a stale view): the running one keeps it.
    let v = view(
        &[
            (hi, alive(&[("web", at(PLAN))])),
            (lo, alive(&[("web", at("start"))])),
        ],
        &[("web", "start")],
    );
    let mut e_hi = Engine::new(hi, cfg(), BTreeSet::new());
    let mut e_lo = Engine::new(lo, cfg(), BTreeSet::new());
    let mut r = rng();
    assert!(told(&e_hi.step(0, &v, &mut r), "web", STOP));
    assert!(tells(&e_lo.step(0, &v, &mut r)).is_empty());
}

#[test]
fn priorities_never_make_both_sides_yield() {
    // Exhaustive over phases and a set of names: for any two claims, at most one side sees
    // the other as higher, even when each sees a stale (earlier) phase of the other.
    let names = ["a", "b", "c", "d", "node-17", "x"];
    for g in ["g0", "web", "db"] {
        for &p in &names {
            for &q in &names {
                if p == q {
                    continue;
                }
                for (pp, pq) in [(0u8, 0u8), (0, 1), (1, 2), (2, 2), (2, 0)] {
                    for stale_p in 0..=pp {
                        for stale_q in 0..=pq {
                            let p_yields = rank::priority(g, q, stale_q) > rank::priority(g, p, pp);
                            let q_yields = rank::priority(g, p, stale_p) > rank::priority(g, q, pq);
                            assert!(!(p_yields && q_yields), "{g} {p}:{pp} {q}:{pq}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_failed_test_publishes_a_cooldown_stops_and_the_next_candidate_takes_over() {
    let mut e = Engine::new("a", cfg(), BTreeSet::new());
    let mut r = rng();
    let failed = Claim::settled(TEST, State::Failed);
    let v = view(
        &[("a", alive(&[("web", failed)])), ("b", alive(&[]))],
        &[("web", "start")],
    );
    let out = e.step(0, &v, &mut r);
    assert!(told(&out, "web", STOP));
    assert!(out.contains(&Action::Publish {
        key: "c/web".into(),
        value: Some(TEST.into())
    }));
    // Stopped and in cooldown: a never plans it, even when it is first in rank.
    let v = view(&[("a", alive(&[])), ("b", alive(&[]))], &[("web", "start")]);
    for t in (10..10_000).step_by(100) {
        assert!(tells(&e.step(t, &v, &mut r)).is_empty());
    }
    // b sees a's cooldown key and is the only candidate: rank 0, plans at once.
    let mut cooled = alive(&[]);
    cooled.cooldown.insert("web".into());
    let v = view(&[("a", cooled), ("b", alive(&[]))], &[("web", "start")]);
    let mut b = Engine::new("b", cfg(), BTreeSet::new());
    assert!(
        told(&b.step(0, &v, &mut r), "web", PLAN) || told(&b.step(60, &v, &mut r), "web", PLAN)
    );
    // After the cooldown the key is withdrawn.
    let out = e.step(60_000, &view(&[("a", alive(&[]))], &[]), &mut r);
    assert!(out.contains(&Action::Publish {
        key: "c/web".into(),
        value: None
    }));
}

#[test]
fn without_quorum_a_node_stops_its_groups_and_plans_nothing() {
    let expected: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let mut e = Engine::new("a", cfg(), expected);
    let mut r = rng();
    let mut dead = alive(&[]);
    dead.alive = false;
    let v = view(
        &[
            ("a", alive(&[("web", at("start"))])),
            ("b", dead.clone()),
            ("c", dead.clone()),
        ],
        &[("web", "start"), ("db", "start")],
    );
    let out = e.step(0, &v, &mut r);
    assert!(told(&out, "web", STOP));
    assert!(out.contains(&Action::Event(Event::QuorumLost {
        live: 1,
        expected: 3
    })));
    assert!(!e.quorate());
    for t in (0..5000).step_by(100) {
        assert!(!told(&e.step(t, &v, &mut r), "db", PLAN));
    }
    // Two of three is a quorum again.
    let v = view(
        &[("a", alive(&[])), ("b", alive(&[])), ("c", dead)],
        &[("db", "start")],
    );
    let out = e.step(6000, &v, &mut r);
    assert!(out.contains(&Action::Event(Event::QuorumRegained {
        live: 2,
        expected: 3
    })));
}

#[test]
fn the_expected_membership_grows_and_two_node_mode_keeps_one_survivor_quorate() {
    let mut r = rng();
    let mut e = Engine::new("a", cfg(), BTreeSet::new());
    let v = view(&[("a", alive(&[])), ("b", alive(&[]))], &[]);
    let out = e.step(0, &v, &mut r);
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Members(m) if m.len() == 2)));
    let mut dead = alive(&[]);
    dead.alive = false;
    let alone = view(&[("a", alive(&[])), ("b", dead)], &[]);
    e.step(100, &alone, &mut r);
    assert!(!e.quorate(), "1 of 2 is not a majority");
    let mut two = cfg();
    two.two_node = true;
    let mut e = Engine::new("a", two, ["a", "b"].iter().map(|s| s.to_string()).collect());
    e.step(0, &alone, &mut r);
    assert!(e.quorate(), "two-node mode: the survivor stays quorate");
}

#[test]
fn a_level_change_in_hactl_is_applied_where_the_group_runs_and_stop_stops_it() {
    let mut e = Engine::new("a", cfg(), BTreeSet::new());
    let mut r = rng();
    let v = view(
        &[("a", alive(&[("web", at("start"))]))],
        &[("web", "maint")],
    );
    assert!(told(&e.step(0, &v, &mut r), "web", "maint"));
    let v = view(&[("a", alive(&[("web", at("start"))]))], &[("web", STOP)]);
    assert!(told(&e.step(10, &v, &mut r), "web", STOP));
    // A group that left hactl is wanted at stop: the daemon passes it as such.
    let leaving = Claim {
        level: "start".into(),
        target: STOP.into(),
        state: State::Stopping,
    };
    let v = view(&[("a", alive(&[("web", leaving)]))], &[("web", STOP)]);
    assert!(
        tells(&e.step(20, &v, &mut r)).is_empty(),
        "no repeated tells"
    );
}

#[test]
fn a_lost_owner_is_remembered_and_its_recovery_reported_as_not_fenced() {
    let mut e = Engine::new("a", cfg(), BTreeSet::new());
    let mut r = rng();
    let mut v = view(
        &[
            ("a", alive(&[])),
            ("b", alive(&[("web", at("start"))])),
            ("c", alive(&[])),
        ],
        &[("web", "start")],
    );
    v.policy.insert("b".into(), Policy::Disabled);
    e.step(0, &v, &mut r);
    v.members.get_mut("b").unwrap().alive = false;
    let out = e.step(100, &v, &mut r);
    assert!(out.contains(&Action::Event(Event::NodeLost {
        node: "b".into(),
        held: vec!["web".into()]
    })));
    assert_eq!(e.lost()["b"].held.len(), 1);
    let mut recovered = false;
    for t in (100..3000).step_by(10) {
        let out = e.step(t, &v, &mut r);
        if told(&out, "web", PLAN) {
            assert!(out.contains(&Action::Event(Event::RecoveringUnfenced {
                group: "web".into(),
                from: "b".into()
            })));
            recovered = true;
            break;
        }
    }
    // `a` plans at once if it outranks `c`, otherwise one slot later (c's engine is not run
    // here, so nobody else claims the group).
    assert!(recovered, "a recovers web");
    // Once the group runs elsewhere, b no longer owns it.
    v.members
        .get_mut("c")
        .unwrap()
        .claims
        .insert("web".into(), at("start"));
    e.step(5000, &v, &mut r);
    assert!(e.lost()["b"].held.is_empty());
}

#[test]
fn nothing_is_planned_during_the_startup_wait() {
    let mut c = cfg();
    c.startup_wait = 1000;
    let mut e = Engine::new("a", c, BTreeSet::new());
    let mut r = rng();
    let v = view(&[("a", alive(&[]))], &[("web", "start")]);
    for t in (5000..5990).step_by(10) {
        assert!(tells(&e.step(t, &v, &mut r)).is_empty(), "at {t}");
    }
    let planned = (6000..6100)
        .step_by(10)
        .any(|t| told(&e.step(t, &v, &mut r), "web", PLAN));
    assert!(planned, "planned within a slot after the wait");
}

/// A tiny instant-propagation cluster: every tell settles at once, every claim is seen by all
/// at the next step. Checks the whole lifecycle end to end.
#[test]
fn a_cluster_places_every_group_exactly_once_and_moves_them_when_a_node_dies() {
    let names = ["n1", "n2", "n3", "n4", "n5"];
    let groups: Vec<String> = (0..20).map(|i| format!("g{i}")).collect();
    let want: BTreeMap<String, String> = groups
        .iter()
        .map(|g| (g.clone(), "start".to_string()))
        .collect();
    let mut engines: BTreeMap<&str, Engine> = names
        .iter()
        .map(|n| (*n, Engine::new(n, cfg(), BTreeSet::new())))
        .collect();
    let mut claims: BTreeMap<&str, BTreeMap<String, Claim>> =
        names.iter().map(|n| (*n, BTreeMap::new())).collect();
    let mut dead: BTreeSet<&str> = BTreeSet::new();
    let mut r = rng();
    let mut run = |t0: u64,
                   t1: u64,
                   engines: &mut BTreeMap<&str, Engine>,
                   claims: &mut BTreeMap<&str, BTreeMap<String, Claim>>,
                   dead: &BTreeSet<&str>| {
        for t in (t0..t1).step_by(20) {
            let v = View {
                members: names
                    .iter()
                    .map(|n| {
                        let m = Member {
                            alive: !dead.contains(n),
                            generation: 1,
                            claims: claims[n].clone().into_iter().collect(),
                            ..Member::default()
                        };
                        (n.to_string(), m)
                    })
                    .collect(),
                want: want.clone(),
                policy: names
                    .iter()
                    .map(|n| (n.to_string(), Policy::Disabled))
                    .collect(),
                ..View::default()
            };
            for n in names.iter().filter(|n| !dead.contains(*n)) {
                let mut mine = v.clone();
                mine.members.get_mut(*n).unwrap().alive = true;
                for a in engines.get_mut(n).unwrap().step(t, &mine, &mut r) {
                    if let Action::Tell { group, level } = a {
                        claims.get_mut(n).unwrap().insert(group, at(&level));
                    }
                }
            }
            // The safety invariant: never two nodes at the start level of one group.
            for g in &groups {
                let running: Vec<_> = names
                    .iter()
                    .filter(|n| !dead.contains(*n))
                    .filter(|n| claims[*n].get(g).is_some_and(|c| c.level == "start"))
                    .collect();
                assert!(running.len() <= 1, "{g} runs on {running:?} at {t}");
            }
        }
    };
    run(0, 3000, &mut engines, &mut claims, &dead);
    let owner =
        |claims: &BTreeMap<&str, BTreeMap<String, Claim>>, dead: &BTreeSet<&str>, g: &str| {
            names
                .iter()
                .filter(|n| !dead.contains(*n))
                .find(|n| claims[*n].get(g).is_some_and(|c| c.level == "start"))
                .copied()
        };
    for g in &groups {
        assert!(owner(&claims, &dead, g).is_some(), "{g} placed");
    }
    let victim = owner(&claims, &dead, "g0").unwrap();
    dead.insert(victim);
    claims.get_mut(victim).unwrap().clear();
    run(3000, 6000, &mut engines, &mut claims, &dead);
    for g in &groups {
        assert!(
            owner(&claims, &dead, g).is_some(),
            "{g} placed again after {victim} died"
        );
    }
}

/// Regression (tests/fencing.rs, partition_only_the_majority_fences): when a partition healed,
/// the former minority saw the majority alive a moment before their new claims arrived, found
/// groups "unplaced", and, ranked first, planned them: two copies, then one moved. A member
/// coming alive now starts a quiet period, as at start-up.
#[test]
fn no_planning_right_after_a_member_comes_back() {
    let mut c = cfg();
    c.startup_wait = 1000;
    let mut e = Engine::new("a", c, BTreeSet::new());
    let mut r = rng();
    let mut gone = alive(&[]);
    gone.alive = false;
    let v = view(&[("a", alive(&[])), ("b", gone)], &[]);
    e.step(0, &v, &mut r);
    // b comes back; its claim on web has not arrived yet.
    let v = view(&[("a", alive(&[])), ("b", alive(&[]))], &[("web", "start")]);
    for t in (5000..5990).step_by(10) {
        assert!(tells(&e.step(t, &v, &mut r)).is_empty(), "at {t}");
    }
    let v = view(
        &[("a", alive(&[])), ("b", alive(&[("web", at("start"))]))],
        &[("web", "start")],
    );
    for t in (6000..9000).step_by(10) {
        assert!(
            tells(&e.step(t, &v, &mut r)).is_empty(),
            "the claim arrived in time"
        );
    }
}

/// Regression (tests/cluster.rs and tests/fencing.rs, partition tests): when a partition
/// healed, the majority still held the returning minority's pre-partition claims ("start
/// DONE", not yet withdrawn); they outranked the majority's running copy, which yielded, and
/// the group moved. A member that just came alive does not outrank anyone until its claims
/// had time to refresh.
#[test]
fn stale_claims_of_a_returning_member_do_not_make_a_running_copy_yield() {
    let mut c = cfg();
    c.startup_wait = 1000;
    let nodes = ranked("web", &["a", "b"]);
    let (hi, lo) = (nodes[0], nodes[1]);
    // `lo` runs web; `hi` comes back from a partition still showing its old claim.
    let mut e = Engine::new(lo, c, BTreeSet::new());
    let mut r = rng();
    let mut gone = alive(&[]);
    gone.alive = false;
    e.step(
        0,
        &view(
            &[(lo, alive(&[("web", at("start"))])), (hi, gone)],
            &[("web", "start")],
        ),
        &mut r,
    );
    let back = view(
        &[
            (lo, alive(&[("web", at("start"))])),
            (hi, alive(&[("web", at("start"))])),
        ],
        &[("web", "start")],
    );
    for t in (5000..5990).step_by(10) {
        assert!(!told(&e.step(t, &back, &mut r), "web", STOP), "at {t}");
    }
    // Still claimed a second later: a real conflict, settled by priority.
    assert!(told(&e.step(6000, &back, &mut r), "web", STOP));
}
