//! Why a wanted group runs nowhere, in one sentence for `mosha status` and hastat.json
//! (`wanted start; every node that may run it is in cooldown: n1 (test t2: exit status 3,
//! 9 min left)`): the first of frozen, no quorum, a move under way, the fencing a lost
//! node's groups wait for, a node placing or stopping it, no node allowed to run it alive,
//! every allowed node in cooldown — else it is about to be placed.

use crate::engine::{claim, Engine, View};
use crate::hastat::{duration_words, GroupStat};

/// Returns why `group`, wanted at `want` and shown as `g`, runs nowhere (`None`: it runs,
/// or it is not wanted). `ev` is the engine's view, `wall_ms` the time now (unix ms), to
/// say how long cooldowns last.
pub fn why_not_running(
    group: &str,
    want: &str,
    g: &GroupStat,
    ev: &View,
    engine: &Engine,
    wall_ms: u64,
) -> Option<String> {
    if claim::is_stopped_level(want) || !g.running_on.is_empty() {
        return None;
    }
    let why = if g.frozen {
        format!("it is frozen: mosha leaves it alone (`mosha unfreeze {group}`)")
    } else if !engine.quorate() {
        "this node has no quorum: nothing is started in its partition".to_string()
    } else if let Some(m) = &g.moving {
        format!("it is moving from {} to {}", m.from, m.to)
    } else if let Some(waits) = fencing(group, engine) {
        waits
    } else if let Some((node, c)) = g.nodes.iter().next() {
        if claim::is_stopped_level(&c.target) {
            format!("it is stopping on {node} ({} {})", c.level, c.state)
        } else {
            format!("{node} is placing it ({} {})", c.target, c.state)
        }
    } else {
        candidates(group, g, ev, wall_ms)
    };
    Some(format!("wanted {want}; {why}"))
}

/// Says which lost nodes the group waits for the fencing of, if any.
fn fencing(group: &str, engine: &Engine) -> Option<String> {
    let waits: Vec<String> = (engine.lost().iter())
        .filter(|(_, l)| l.gates(group))
        .map(|(n, l)| format!("{n} ({})", l.fence.describe()))
        .collect();
    (!waits.is_empty()).then(|| {
        format!(
            "it waits for the fencing of {} (a lost node may still run it)",
            waits.join(", ")
        )
    })
}

/// Says why no node plans the group: none may run it, every one that may is in cooldown,
/// or one is about to.
fn candidates(group: &str, g: &GroupStat, ev: &View, wall_ms: u64) -> String {
    let placement = ev.placement.get(group);
    let mut barred = Vec::new();
    let mut cooling = Vec::new();
    let mut able = 0;
    for (n, m) in &ev.members {
        let allowed = placement.is_none_or(|p| p.allows(n));
        if !allowed {
            let why = if placement.is_some_and(|p| p.standby.contains(n)) {
                "standby"
            } else {
                "not in only="
            };
            barred.push(format!("{n} {why}"));
        } else if !m.alive || m.left {
            barred.push(format!("{n} offline"));
        } else if m.cooldown.contains(group) {
            cooling.push(cooldown_words(n, g, wall_ms));
        } else {
            able += 1;
        }
    }
    if able > 0 {
        return "it is about to be placed (the best-ranked node plans it within a few slots)"
            .to_string();
    }
    if !cooling.is_empty() {
        return format!(
            "every node that may run it is in cooldown: {} (fix the cause, then `mosha cleanup {group}`)",
            cooling.join(", ")
        );
    }
    format!("no node may run it now: {}", barred.join(", "))
}

/// Describes `node`'s cooldown for the group: its cause and the time left.
fn cooldown_words(node: &str, g: &GroupStat, wall_ms: u64) -> String {
    let Some(f) = g.failures.get(node) else {
        return node.to_string();
    };
    let left = (f.cooldown_until_ms).map(|u| {
        format!(
            "{} left",
            duration_words(u.saturating_sub(wall_ms).div_ceil(1000))
        )
    });
    let parts: Vec<String> = [Some(f.cause.clone()).filter(|c| !c.is_empty()), left]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        node.to_string()
    } else {
        format!("{node} ({})", parts.join(", "))
    }
}
