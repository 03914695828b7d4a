//! Scenario tests of the placement options (hactl's `prefer=` and `only=`): which node plans
//! a group when its preferred nodes are eligible, in cooldown or dead; a group restricted to
//! some nodes never planned elsewhere; and ranks without options exactly as before.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::testkit::{self, alive, cfg, names, told};

const NODES: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];

/// Returns the options `prefer` (in order) and `only` (`None`: every node).
fn placement(prefer: &[&str], only: Option<&[&str]>) -> Placement {
    Placement {
        prefer: prefer.iter().map(|n| n.to_string()).collect(),
        only: only.map(names),
        ..Placement::default()
    }
}

/// Returns the view of the five nodes wanting `web` at `start` under `p`: the `dead` ones
/// not alive, the `cooled` ones in test-failure cooldown for it, none fenced.
fn view(p: &Placement, dead: &[&str], cooled: &[&str]) -> View {
    let members: Vec<(&str, Member)> = NODES
        .iter()
        .map(|n| {
            let mut m = alive(&[]);
            m.alive = !dead.contains(n);
            if cooled.contains(n) {
                m.cooldown.insert("web".into());
            }
            (*n, m)
        })
        .collect();
    View {
        policy: NODES
            .iter()
            .map(|n| (n.to_string(), Policy::Disabled))
            .collect(),
        placement: BTreeMap::from([("web".to_string(), p.clone())]),
        ..testkit::view(&members, &[("web", "start")])
    }
}

/// Returns the engines of the five nodes, those in `cooled` having failed a test of `web`
/// at t = 0 (so in cooldown for it).
fn engines(r: &mut dyn rand::Rng, cooled: &[&str]) -> BTreeMap<&'static str, Engine> {
    let mut all = BTreeMap::new();
    for n in NODES {
        let mut e = Engine::new(n, cfg(), BTreeSet::new());
        if cooled.contains(&n) {
            let failed = Claim::settled(TEST, State::Failed);
            let v = testkit::view(&[(n, alive(&[("web", failed)]))], &[("web", "start")]);
            assert!(told(&e.step(0, &v, r), "web", STOP), "{n} fails its test");
        }
        all.insert(n, e);
    }
    all
}

/// Returns the nodes that plan `web` (each once, in the order they first do) when every live node steps `v` every 10 ms from `t0`
/// to `t0 + until`.
fn planners(
    engines: &mut BTreeMap<&'static str, Engine>,
    v: &View,
    t0: Millis,
    until: Millis,
    r: &mut dyn rand::Rng,
) -> Vec<&'static str> {
    let mut planned = Vec::new();
    for t in (t0..=t0 + until).step_by(10) {
        for (n, e) in engines.iter_mut() {
            // The view never shows its claim, so a node that planned plans again: once is
            // enough.
            if v.members[*n].alive && told(&e.step(t, v, r), "web", PLAN) && !planned.contains(n) {
                planned.push(*n);
            }
        }
    }
    planned
}

/// Returns the node that plans `web` first, within its slot (rank 0; rank 1 would wait
/// until 200 ms), with the `dead` and `cooled` nodes as [`view`] says.
fn first(p: &Placement, dead: &[&str], cooled: &[&str]) -> Vec<&'static str> {
    let mut r = testkit::rng(11);
    let mut e = engines(&mut r, cooled);
    planners(&mut e, &view(p, dead, cooled), 100, 190, &mut r)
}

#[test]
fn a_preferred_node_is_chosen_while_eligible_then_the_next_then_rendezvous_hashing() {
    // The two nodes rendezvous hashing ranks last for web, preferred in that order.
    let plain = rank::order("web", NODES);
    let (best, next) = (plain[4], plain[3]);
    let p = placement(&[best, next], None);
    assert_eq!(first(&Placement::default(), &[], &[]), [plain[0]]);
    assert_eq!(first(&p, &[], &[]), [best]);
    // The first preferred in cooldown, or dead: the next preferred.
    assert_eq!(first(&p, &[], &[best]), [next]);
    assert_eq!(first(&p, &[best], &[]), [next]);
    // Neither eligible: the others by rendezvous hashing, as without options.
    assert_eq!(first(&p, &[best], &[next]), [plain[0]]);
    assert_eq!(first(&p, &[best, next, plain[0]], &[]), [plain[1]]);
}

#[test]
fn a_group_restricted_to_some_nodes_waits_for_one_of_them() {
    let p = placement(&[], Some(&["n2", "n3"]));
    let mut r = testkit::rng(5);
    let mut e = engines(&mut r, &[]);
    let both = rank::order("web", ["n2", "n3"]);
    // While n2 and n3 are dead, nobody plans it: it stays unplaced.
    let down = view(&p, &["n2", "n3"], &[]);
    assert_eq!(
        planners(&mut e, &down, 0, 10_000, &mut r),
        Vec::<&str>::new()
    );
    // One of them returns (the second by weight): it plans, and nobody else.
    let back = view(&p, &[both[0]], &[]);
    assert_eq!(planners(&mut e, &back, 10_010, 2_000, &mut r), [both[1]]);
    // Both alive: the first of the two by weight plans, at once; the others do not count.
    let mut e = engines(&mut r, &[]);
    assert_eq!(
        planners(&mut e, &view(&p, &[], &[]), 0, 190, &mut r),
        [both[0]]
    );
    // With both in cooldown, nobody plans either.
    let mut e = engines(&mut r, &["n2", "n3"]);
    let cooled = view(&p, &[], &["n2", "n3"]);
    assert_eq!(
        planners(&mut e, &cooled, 100, 10_000, &mut r),
        Vec::<&str>::new()
    );
}

#[test]
fn prefer_within_only_ranks_the_preferred_node_first() {
    let only = ["n1", "n4", "n5"];
    let last = *rank::order("web", only).last().unwrap();
    let p = placement(&[last], Some(&only));
    assert_eq!(first(&p, &[], &[]), [last]);
    let rest = rank::order("web", only.into_iter().filter(|n| *n != last));
    assert_eq!(first(&p, &[last], &[]), [rest[0]]);
}

/// Returns, for every node alive in `v`, its kept rank for `group` after a step of its engine
/// (`engines`, stepped at `t`).
fn ranks(engines: &mut BTreeMap<&str, Engine>, v: &View, group: &str, t: Millis) -> Vec<usize> {
    let mut r = testkit::rng(1);
    let mut out = Vec::new();
    for (n, e) in engines.iter_mut() {
        if v.members[*n].alive {
            e.step(t, v, &mut r);
            out.push(e.peers.rank(n, group));
        }
    }
    out
}

#[test]
fn kept_ranks_follow_the_order_of_the_options_as_they_change() {
    let mut r = testkit::rng(2);
    let mut e = engines(&mut r, &[]);
    let options = [
        placement(&["n4"], None),
        placement(&["n2", "n5"], Some(&["n1", "n2", "n5"])),
        Placement::default(),
        placement(&[], Some(&["n3"])),
        placement(&["n3", "n1"], None),
    ];
    // Options change between steps, and so do the live members: the kept counts are those
    // of a fresh ranking every time.
    const DEAD: [&[&str]; 3] = [&[], &["n1"], &["n5", "n2"]];
    for (t, p) in options.iter().cycle().take(15).enumerate() {
        let dead = DEAD[t % 3];
        let v = view(p, dead, &[]);
        let got = ranks(&mut e, &v, "web", 1000 * t as Millis);
        let live = NODES.iter().copied().filter(|n| !dead.contains(n));
        let order = rank::order_placed("web", Some(p), live.clone());
        let want: Vec<usize> = live
            .map(|n| order.iter().position(|o| *o == n).unwrap_or(order.len()))
            .collect();
        let allowed: Vec<bool> = NODES
            .iter()
            .filter(|n| !dead.contains(n))
            .map(|n| p.allows(n))
            .collect();
        // A node left out is never planned; its rank is nobody's business: skip it.
        for ((g, w), ok) in got.iter().zip(&want).zip(&allowed) {
            if *ok {
                assert_eq!(g, w, "{p:?} with {dead:?} dead");
            }
        }
    }
}

#[test]
fn without_options_ranks_are_exactly_as_before() {
    // The rank before placement options: the live members of higher weight, or of equal
    // weight and a smaller name.
    let old = |group: &str, me: &str, live: &[&str]| {
        let mine = rank::weight(group, me);
        (live.iter())
            .filter(|n| **n != me)
            .filter(|n| {
                let w = rank::weight(group, n);
                w > mine || (w == mine && **n < me)
            })
            .count()
    };
    let mut r = testkit::rng(3);
    let mut e = engines(&mut r, &[]);
    let groups: Vec<String> = (0..50).map(|i| format!("g{i}")).collect();
    // Options for another group change nothing for these.
    let other = BTreeMap::from([("web".to_string(), placement(&["n1"], Some(&["n1"])))]);
    for (t, placement) in [BTreeMap::new(), other].into_iter().enumerate() {
        let mut v = view(&Placement::default(), &["n4"], &[]);
        v.placement = placement;
        v.want = groups.iter().map(|g| (g.clone(), "start".into())).collect();
        let live = ["n1", "n2", "n3", "n5"];
        for g in &groups {
            let got = ranks(&mut e, &v, g, 100 * t as Millis);
            let want: Vec<usize> = live.iter().map(|n| old(g, n, &live)).collect();
            assert_eq!(got, want, "{g}");
            assert_eq!(
                rank::order(g, live),
                rank::order_placed(g, None, live),
                "{g}"
            );
        }
    }
}
