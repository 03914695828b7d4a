//! The kit the engine's scenario tests share (`tests.rs`, `tests_fencing.rs`,
//! `tests_news.rs`, `tests_placement.rs`): seeded RNGs, members and views written in one
//! line, and what a step told or fenced.

use std::collections::BTreeSet;

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::{Action, Claim, Config, Member, State, View, PLAN};

/// Returns the tunables of the scenario tests: short slots and windows, no start-up wait.
pub fn cfg() -> Config {
    Config {
        slot: 200,
        plan_window: 400,
        startup_wait: 0,
        test_cooldown: 60_000,
        yield_backoff: 400,
        two_node: false,
        two_node_fence_delay: 5000,
        fence_settle: 500,
        beat: 250,
        news_timeout: 600,
        successor_wait: 1500,
    }
}

/// Returns the generator of `seed`.
pub fn rng(seed: u64) -> ChaCha12Rng {
    ChaCha12Rng::seed_from_u64(seed)
}

/// Returns the set of `v`.
pub fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Returns a live member at generation 1 with `claims`.
pub fn alive(claims: &[(&str, Claim)]) -> Member {
    Member {
        alive: true,
        generation: 1,
        claims: claims
            .iter()
            .map(|(g, c)| (g.to_string(), c.clone()))
            .collect(),
        ..Member::default()
    }
}

/// Returns a live member at generation 1 whose groups are settled (DONE) at their levels.
pub fn running(groups: &[(&str, &str)]) -> Member {
    let claims: Vec<(&str, Claim)> = (groups.iter())
        .map(|(g, l)| (*g, Claim::settled(l, State::Done)))
        .collect();
    alive(&claims)
}

/// Returns the view of `members`, with the levels `want`.
pub fn view(members: &[(&str, Member)], want: &[(&str, &str)]) -> View {
    View {
        members: members
            .iter()
            .map(|(n, m)| (n.to_string(), m.clone()))
            .collect(),
        want: want
            .iter()
            .map(|(g, l)| (g.to_string(), l.to_string()))
            .collect(),
        ..View::default()
    }
}

/// Returns every (group, level) that `actions` tell the supervisor.
pub fn tells(actions: &[Action]) -> Vec<(String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Tell { group, level } => Some((group.clone(), level.clone())),
            _ => None,
        })
        .collect()
}

/// Tells whether `actions` take `group` to `level`.
pub fn told(actions: &[Action], group: &str, level: &str) -> bool {
    tells(actions).iter().any(|(g, l)| g == group && l == level)
}

/// Returns the nodes `actions` fence.
pub fn fences(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Fence { node, .. } => Some(node.as_str()),
            _ => None,
        })
        .collect()
}

/// Tells whether `actions` plan any group.
pub fn plans(actions: &[Action]) -> bool {
    tells(actions).iter().any(|(_, l)| l == PLAN)
}

/// Tells whether `actions` take a group past `plan` (to `test` or its run level): the
/// recovery that a lost node's fencing gates (planning may go on meanwhile).
pub fn recovers(actions: &[Action]) -> bool {
    tells(actions)
        .iter()
        .any(|(_, l)| l != PLAN && !crate::claim::is_stopped_level(l))
}

/// Steps `e` on `v` at `t`, then writes what it told its supervisor into its own claims in
/// `v` (settled at once, `stop` dropping the claim), as a node's supervisor and view would by
/// its next step; returns the actions.
pub fn step_fed(e: &mut crate::Engine, v: &mut View, t: u64, r: &mut ChaCha12Rng) -> Vec<Action> {
    let out = e.step(t, v, r);
    let me = e.me().to_string();
    let m = v.members.entry(me).or_insert_with(|| alive(&[]));
    for (g, l) in tells(&out) {
        if crate::claim::is_stopped_level(&l) {
            m.claims.remove(&g);
        } else {
            m.claims.insert(g, Claim::settled(&l, State::Done));
        }
    }
    out
}
