//! Scenario tests of successors (`successor.rs`): who stands, when a takeover skips the plan
//! window and when it does not, and how a successor's key holds the group for the others.

use std::collections::BTreeSet;

use super::*;
use crate::testkit::{self, plans, step_fed, told};

const TIMEOUT: Millis = 10_000;

fn cfg() -> Config {
    let mut c = Config::for_cluster_size(3);
    c.startup_wait = 0;
    c.fence_settle = 0;
    c
}

/// The three nodes in web's order: its holder, its successor, the last.
fn order() -> (&'static str, &'static str, &'static str) {
    let o = rank::order("web", ["a", "b", "c"]);
    (o[0], o[1], o[2])
}

/// A view of a, b, c where the holder runs web, under `policy`.
fn view(policy: Policy) -> View {
    let (holder, _, _) = order();
    let mut v = View::default();
    for n in ["a", "b", "c"] {
        let mut m = testkit::alive(&[]);
        m.generation = 7;
        if n == holder {
            m.claims
                .insert("web".into(), Claim::settled("start", State::Done));
        }
        v.members.insert(n.into(), m);
        v.policy.insert(n.into(), policy);
    }
    v.want.insert("web".into(), "start".into());
    v
}

/// Tells whether `out` publishes (`Some(true)`) or withdraws (`Some(false)`) web's
/// successor key.
fn key(out: &[Action]) -> Option<bool> {
    out.iter().find_map(|a| match a {
        Action::Publish { key, value } if *key == keys::successor("web") => Some(value.is_some()),
        _ => None,
    })
}

/// Steps the successor from t = 0 until `lost_at`, when the holder dies; returns it, the view
/// and the actions of that step.
fn successor_sees_holder_die(
    policy: Policy,
    lost_at: Millis,
) -> (Engine, View, Vec<Action>, rand_chacha::ChaCha12Rng) {
    let (holder, next, _) = order();
    let mut r = testkit::rng(1);
    let mut e = Engine::new(next, cfg(), BTreeSet::new());
    let mut v = view(policy);
    let out = e.step(0, &v, &mut r);
    assert_eq!(key(&out), Some(true), "the one after the holder stands");
    // Gossip shows a node its own keys.
    v.members
        .get_mut(next)
        .unwrap()
        .successor
        .insert("web".into());
    for t in (50..lost_at).step_by(50) {
        let out = e.step(t, &v, &mut r);
        assert_eq!(key(&out), None, "it keeps standing");
        assert!(!plans(&out));
    }
    v.members.get_mut(holder).unwrap().alive = false;
    let out = step_fed(&mut e, &mut v, lost_at, &mut r);
    (e, v, out, r)
}

/// Returns the engine of the last node in web's order, stepped once on a view (under
/// `policy`) where the successor stands, with the view and the RNG.
fn last_sees_successor(policy: Policy) -> (Engine, View, rand_chacha::ChaCha12Rng) {
    let (_, next, last) = order();
    let mut r = testkit::rng(1);
    let mut e = Engine::new(last, cfg(), BTreeSet::new());
    let mut v = view(policy);
    let successor = &mut v.members.get_mut(next).unwrap().successor;
    successor.insert("web".into());
    e.step(0, &v, &mut r);
    (e, v, r)
}

#[test]
fn only_the_node_after_the_holder_stands() {
    let (_, next, last) = order();
    let mut r = testkit::rng(1);
    let v = view(Policy::Disabled);
    for (n, stands) in [(next, true), (last, false)] {
        let mut e = Engine::new(n, cfg(), BTreeSet::new());
        assert_eq!(key(&e.step(0, &v, &mut r)).is_some(), stands, "{n}");
    }
}

#[test]
fn a_successor_that_stood_long_enough_takes_over_without_a_plan_window() {
    let wait = cfg().successor_wait;
    let (mut e, mut v, out, mut r) = successor_sees_holder_die(Policy::Disabled, wait + 100);
    assert!(told(&out, "web", PLAN), "{out:?}");
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Event(Event::TakingOver { group }) if group == "web")));
    let out = step_fed(&mut e, &mut v, wait + 150, &mut r);
    assert!(told(&out, "web", TEST), "no plan window: {out:?}");
    let out = step_fed(&mut e, &mut v, wait + 200, &mut r);
    assert!(told(&out, "web", "start"), "{out:?}");
    // The key stays for one step after the claim ran (the claim is out by then).
    assert_eq!(key(&step_fed(&mut e, &mut v, wait + 250, &mut r)), None);
    assert_eq!(
        key(&step_fed(&mut e, &mut v, wait + 300, &mut r)),
        Some(false)
    );
}

#[test]
fn a_young_successor_plans_with_the_window() {
    let (mut e, mut v, out, mut r) = successor_sees_holder_die(Policy::Disabled, 500);
    let taking_over = |out: &[Action]| {
        out.iter()
            .any(|a| matches!(a, Action::Event(Event::TakingOver { .. })))
    };
    assert!(!taking_over(&out));
    // It ranks first now: it plans within its slot (jitter), as any candidate.
    let mut at = (!told(&out, "web", PLAN)).then_some(500);
    let mut t = 500;
    while at.is_some() {
        t += 10;
        let out = step_fed(&mut e, &mut v, t, &mut r);
        assert!(!taking_over(&out));
        if told(&out, "web", PLAN) {
            at = None;
        }
        assert!(t < 500 + cfg().slot, "planned within its slot");
    }
    let window = cfg().plan_window;
    let planned = t;
    for t in (planned + 10..planned + window).step_by(10) {
        let out = step_fed(&mut e, &mut v, t, &mut r);
        assert!(!told(&out, "web", TEST), "tested at {t}, inside the window");
    }
    let out = step_fed(&mut e, &mut v, planned + window + 10, &mut r);
    assert!(told(&out, "web", TEST), "{out:?}");
}

#[test]
fn a_takeover_still_waits_for_the_lost_holder_to_be_fenced() {
    let policy = Policy::Configured { timeout: TIMEOUT };
    let wait = cfg().successor_wait;
    let (mut e, mut v, out, mut r) = successor_sees_holder_die(policy, wait + 100);
    assert!(told(&out, "web", PLAN), "{out:?}");
    for t in (wait + 150..wait + 3000).step_by(50) {
        let out = step_fed(&mut e, &mut v, t, &mut r);
        assert!(
            !told(&out, "web", TEST),
            "tested at {t}, before the fencing"
        );
    }
    let (holder, _, _) = order();
    v.records.insert(
        holder.into(),
        Record {
            generation: 7,
            outcome: Outcome::Fenced,
            by: "x".into(),
            detail: String::new(),
        },
    );
    let out = step_fed(&mut e, &mut v, wait + 3000, &mut r);
    assert!(told(&out, "web", TEST), "at once once fenced: {out:?}");
}

#[test]
fn a_rival_in_sight_restarts_the_wait() {
    let (holder, next, last) = order();
    let mut r = testkit::rng(1);
    let mut e = Engine::new(next, cfg(), BTreeSet::new());
    let mut v = view(Policy::Disabled);
    e.step(0, &v, &mut r);
    v.members
        .get_mut(next)
        .unwrap()
        .successor
        .insert("web".into());
    // The last one stands too for a while (it saw the order otherwise).
    v.members
        .get_mut(last)
        .unwrap()
        .successor
        .insert("web".into());
    let out = e.step(1000, &v, &mut r);
    assert_eq!(key(&out), None, "the one ranked first keeps its key");
    v.members.get_mut(last).unwrap().successor.clear();
    v.members.get_mut(holder).unwrap().alive = false;
    // Stood since 0, but a rival was in sight at 1000: no takeover before 1000 + wait.
    let out = e.step(cfg().successor_wait + 100, &v, &mut r);
    assert!(!out
        .iter()
        .any(|a| matches!(a, Action::Event(Event::TakingOver { .. }))));
}

#[test]
fn a_successor_key_holds_the_group_for_the_others() {
    let (holder, next, _) = order();
    let (mut e, mut v, mut r) = last_sees_successor(Policy::Disabled);
    v.members.get_mut(holder).unwrap().alive = false;
    for t in (50..5000).step_by(50) {
        let out = e.step(t, &v, &mut r);
        assert!(!plans(&out), "planned at {t} while {next} stands");
    }
    // The successor withdrew its key (say it found itself no longer next): the group is
    // placed as usual.
    v.members.get_mut(next).unwrap().successor.clear();
    let planned = (5000..10_000)
        .step_by(50)
        .any(|t| plans(&e.step(t, &v, &mut r)));
    assert!(planned);
}

#[test]
fn a_lost_successor_counts_as_holding_the_group() {
    let (holder, next, _) = order();
    let (mut e, mut v, mut r) = last_sees_successor(Policy::Configured { timeout: TIMEOUT });
    // The successor dies while the holder runs the group: nothing to gate.
    v.members.get_mut(next).unwrap().alive = false;
    e.step(100, &v, &mut r);
    assert!(!e.lost()[next].held.contains("web"), "web runs on {holder}");
    // Then the holder dies too: web waits for both fencings (the successor may have taken
    // it over out of sight).
    v.members.get_mut(holder).unwrap().alive = false;
    e.step(200, &v, &mut r);
    assert!(e.lost()[next].held.contains("web"));
    assert!(e.lost()[holder].held.contains("web"));
}
