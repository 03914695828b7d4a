//! The invariants, checked against the simulator's truth (not against any node's view):
//! (a) no group at its run level on two nodes whose processes really run (a hung node's do,
//! a crashed or fenced node's do not); (b) no recovery of a lost node's groups before it is
//! fenced; (c) no start on a node inside its test-failure cooldown; (d) a node without
//! quorum runs no group after the failure timeout; (e) after every fault heals, every wanted
//! group runs somewhere within [`liveness_bound`].

use mosha::engine::Config;

use crate::net::Timing;
use crate::world::World;

/// The longest a group may stay unplaced after every fault healed, for the defaults of
/// `cfg` and `timing`. Justification, in order: a restarted node waits `startup_wait`
/// (1 s) before it plans; peers see it after at most one dissemination (`dissem_max`) and
/// drop the dead after `detect_max`; the first-ranked eligible node plans within its
/// jitter (< `slot`/4); a conflict costs a yield back-off (2 slots) and a new rank turn (1
/// slot), allowed twice; the plan window is 2 slots; the test takes up to 5 s (slow tests)
/// and the start 50 ms, each published in `dissem_max`; a fence pass of a node lost just
/// before the heal takes up to its 10 s timeout. Plus 2 s of margin.
pub fn liveness_bound(cfg: &Config, t: &Timing) -> u64 {
    cfg.startup_wait
        + t.dissem_max
        + t.detect_max()
        + cfg.slot
        + 2 * (cfg.yield_backoff + cfg.slot)
        + cfg.plan_window
        + 5_000
        + 50
        + 4 * t.dissem_max
        + 10_000
        + 2_000
}

/// The failure timeout for invariant (d): the longest detection, a daemon tick, the stop.
pub fn failure_timeout(t: &Timing) -> u64 {
    t.detect_max() + 2 * crate::world::TICK + 100
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
    let mut lost = Vec::new();
    for (i, n) in w.nodes.iter().enumerate() {
        if i == x {
            continue;
        }
        let seen = w.nodes[x].view.members.get(&n.name);
        let dead_to_x = seen.is_none_or(|m| !m.alive);
        let same_gen = seen.is_some_and(|m| m.generation == n.generation);
        let runs = n.up && n.claims.get(group).is_some_and(|c| c.holds());
        if dead_to_x && same_gen && (runs || n.held_at_down.contains(group)) {
            lost.push(n.name.clone());
        }
    }
    if !lost.is_empty() {
        violation(
            w,
            'b',
            format!(
                "n{x} recovers {group} held by unfenced lost {}",
                lost.join(",")
            ),
        );
    }
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
    let limit = failure_timeout(&w.timing);
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
    let missing: Vec<String> = w
        .gnames
        .iter()
        .zip(w.want.iter())
        .filter(|(g, (l, _))| l == "start" && w.running.get(*g).copied().unwrap_or(0) == 0)
        .map(|(g, _)| g.clone())
        .collect();
    if !missing.is_empty() {
        let bound = liveness_bound(&w.cfg, &w.timing);
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
