//! The invariants, checked against the simulator's truth (not against any node's view):
//! (a) no group at its run level on two nodes whose processes really run (a hung node's do,
//! a crashed or fenced node's do not); (b) no recovery of a lost node's groups before it is
//! fenced; (c) no start on a node inside its test-failure cooldown; (d) a node without
//! quorum runs no group after the failure timeout; (e) after every fault heals, every wanted
//! group runs somewhere within [`liveness_bound`] — or was handed off (a planned move: a
//! failback once a fenced node rebooted, say) less than that bound before the end; a node
//! powered off after the heal counts as one more fault.

use mosha::engine::Config;

use crate::net::Timing;
use crate::world::{Checks, World};

pub use crate::net::liveness_bound;

/// The failure timeout for invariant (d): the longest detection (of dead peers, or of
/// missing news when nobody hears this node), a daemon tick, the stop.
pub fn failure_timeout(cfg: &Config, t: &Timing) -> u64 {
    t.detect_max().max(cfg.news_timeout) + 2 * crate::world::TICK + 100
}

/// Records a violation (letter, text) with the seed.
pub fn violation(w: &mut World, k: char, text: String) {
    let line = format!(
        "({k}) t={} {} [seed {} policy {}]",
        w.now,
        text,
        w.p.seed,
        w.p.kind.name()
    );
    w.log(|| format!("VIOLATION {line}"));
    w.stats.violations.push((k, line));
}

/// The census of a group's run level changed on node `x`.
pub fn census(w: &mut World, x: usize, group: &str, runs: bool) {
    let n = w.running.entry(group.to_string()).or_insert(0);
    if runs {
        *n += 1;
    } else {
        *n -= 1;
    }
    let n = *n;
    if runs && n >= 2 {
        w.stats.dup_starts += 1;
        let who: Vec<String> = w
            .nodes
            .iter()
            .filter(|m| m.runs_at(group, "start"))
            .map(|m| format!("{}{}", m.name, if m.hung { "(hung)" } else { "" }))
            .collect();
        violation(
            w,
            'a',
            format!("{group} runs on {} nodes: {}", n, who.join(",")),
        );
        let _ = x;
    }
}

/// Node `x` plans `group`: checks (b) and (c).
///
/// (b) at plan time: no lost, unfenced node may hold the group as far as `x` knows (its view
/// says the lost node holds it): that is the recovery gate's job.
pub fn on_plan(w: &mut World, x: usize, group: &str) {
    if w.nodes[x]
        .cooldown_until
        .get(group)
        .is_some_and(|u| *u > w.now)
    {
        violation(
            w,
            'c',
            format!("n{x} plans {group} inside its test cooldown"),
        );
    }
}

/// Node `x` takes `group` to `test`, the first level that runs the group's own commands:
/// checks (b) against the truth. No node it sees as lost and that was not fenced may still
/// run the group past `plan`, or have gone down running it (as far as its last state that
/// got out said). `plan` is only a claim; a claim that never reached anyone (made just before
/// a crash, or on the far side of a fresh partition) cannot be known, and the lost node that
/// made it loses quorum (or is frozen) before it takes it past `plan`: the plan window is
/// longer than the news timeout and a tick. (a) checks that this holds.
pub fn on_test(w: &mut World, x: usize, group: &str) {
    let lost = lost_holders(w, x, |w, i| {
        let n = &w.nodes[i];
        n.runs_past_plan(group) || n.held_at_down.contains(group)
    });
    if !lost.is_empty() {
        violation(
            w,
            'b',
            format!(
                "n{x} tests {group} while unfenced lost {} runs it",
                lost.join(",")
            ),
        );
    }
}

/// Returns the nodes that `x` sees as dead at their current generation, that no fence agent
/// powered off, and for which `holds` is true.
fn lost_holders(w: &World, x: usize, holds: impl Fn(&World, usize) -> bool) -> Vec<String> {
    let mut lost = Vec::new();
    for (i, n) in w.nodes.iter().enumerate() {
        if i == x || n.fenced_off {
            continue;
        }
        // A node `x` knows nothing of is as lost to it as any.
        let unseen = w.nodes[x]
            .core
            .view()
            .members
            .get(&n.name)
            .is_none_or(|seen| !seen.alive && seen.generation == n.generation);
        if unseen && holds(w, i) {
            lost.push(n.name.clone());
        }
    }
    lost
}

/// Cold start: notes when every wanted group first ran.
pub fn placed(w: &mut World) {
    if w.stats.cold_place.is_some() {
        return;
    }
    let all = w
        .gnames
        .iter()
        .all(|g| w.running.get(g).copied().unwrap_or(0) > 0);
    if all {
        w.stats.cold_place = Some(w.now);
    }
}

/// Every 250 ms: invariant (d).
pub fn periodic(w: &mut World) {
    let limit = failure_timeout(&w.cfg, &w.timing);
    for x in 0..w.nodes.len() {
        let n = &w.nodes[x];
        if !n.ok() {
            continue;
        }
        let Some(since) = n.nonquorate_since else {
            continue;
        };
        if w.now > since + limit {
            if let Some((g, _)) = n.claims.iter().find(|(_, c)| !c.leaving()) {
                let g = g.clone();
                violation(
                    w,
                    'd',
                    format!("n{x} without quorum since {since} still runs {g}"),
                );
                // One report per episode.
                w.nodes[x].nonquorate_since = Some(u64::MAX / 2);
            }
        }
    }
}

/// At the end: invariant (e).
pub fn final_checks(w: &mut World) {
    if !w.healed {
        return;
    }
    let bound = liveness_bound(&w.cfg, &w.timing);
    // A node powered off after the heal (a blocked node fenced late, say) is one more fault:
    // the bound counts from it (it reboots 10 to 30 s later, and quorum may wait for it).
    if w.last_power_off >= w.plan.heal_at && w.now < w.last_power_off + bound {
        return;
    }
    let moving = |g: &str| (w.handed_at.get(g)).is_some_and(|t| t + bound > w.now);
    let missing: Vec<String> = (w.truth().into_iter())
        .filter(|(g, l)| l == "start" && w.running.get(g).copied().unwrap_or(0) == 0)
        .filter(|(g, _)| !moving(g))
        .map(|(g, _)| g)
        .collect();
    if !missing.is_empty() {
        violation(
            w,
            'e',
            format!(
                "{} not running {bound} ms after the heal",
                missing.join(",")
            ),
        );
    }
}

/// The invariants, as the world runs them.
pub const CHECKS: Checks = Checks {
    on_plan,
    on_test,
    census,
    placed,
    periodic,
    finish: final_checks,
};
