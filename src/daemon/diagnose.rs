//! Why a wanted group runs nowhere, in one sentence for `mosha status` and hastat.json
//! (`wanted start; every node that may run it is in cooldown: n1 (test t2: exit status 3,
//! 9 min left)`): the first of frozen, no quorum, the fencing a lost (or blocked) node's
//! groups wait for, a move under way, a node placing or stopping it, no node allowed to run it alive,
//! every allowed node in cooldown — else it is about to be placed.

use std::collections::BTreeMap;

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
    } else if let Some(waits) = fencing(group, engine) {
        // Before a move: a hand-off whose stop failed waits for the fencing, not the target.
        waits
    } else if let Some(m) = &g.moving {
        format!("it is moving from {} to {}", m.from, m.to)
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
    let fatal: Vec<String> = (ev.members.iter())
        .filter(|(_, m)| m.alive && m.fatal.contains(group))
        .map(
            |(n, _)| match g.failures.get(n).filter(|f| !f.cause.is_empty()) {
                Some(f) => format!("{n} ({})", f.cause),
                None => n.clone(),
            },
        )
        .collect();
    if !fatal.is_empty() {
        return format!(
            "an agent failed FATALLY on {} (its configuration is wrong): no node starts it until `mosha cleanup {group}`",
            fatal.join(", ")
        );
    }
    let mut barred = Vec::new();
    // The nodes in cooldown, by cause, each with the seconds left.
    let mut cooling: BTreeMap<String, Vec<(&str, Option<u64>)>> = BTreeMap::new();
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
            let f = g.failures.get(n);
            let cause = f.map_or(String::new(), |f| f.cause.clone());
            let left = (f.and_then(|f| f.cooldown_until_ms))
                .map(|u| u.saturating_sub(wall_ms).div_ceil(1000));
            cooling.entry(cause).or_default().push((n, left));
        } else {
            able += 1;
        }
    }
    if able > 0 {
        return "it is about to be placed (the best-ranked node plans it within a few slots)"
            .to_string();
    }
    if !cooling.is_empty() {
        let parts: Vec<String> = cooling.iter().map(|(c, n)| cooldown_words(c, n)).collect();
        return format!(
            "every node that may run it is in cooldown: {} (fix the cause, then `mosha cleanup {group}`)",
            parts.join("; ")
        );
    }
    format!("no node may run it now: {}", barred.join(", "))
}

/// Describes the cooldowns of `nodes` that share one `cause`: `n1, n2 (test t: exit
/// status 3, 9 min to 10 min left)`.
fn cooldown_words(cause: &str, nodes: &[(&str, Option<u64>)]) -> String {
    let names: Vec<&str> = nodes.iter().map(|(n, _)| *n).collect();
    let lefts: Vec<u64> = nodes.iter().filter_map(|(_, l)| *l).collect();
    let left = match (lefts.iter().min(), lefts.iter().max()) {
        (Some(a), Some(b)) if duration_words(*a) == duration_words(*b) => {
            Some(format!("{} left", duration_words(*a)))
        }
        (Some(a), Some(b)) => Some(format!(
            "{} to {} left",
            duration_words(*a),
            duration_words(*b)
        )),
        _ => None,
    };
    let parts: Vec<String> = [Some(cause.to_string()).filter(|c| !c.is_empty()), left]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        names.join(", ")
    } else {
        format!("{} ({})", names.join(", "), parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Member;
    use crate::hastat::FailureStat;

    #[test]
    fn every_node_in_cooldown_is_said_once_per_cause_with_the_time_left() {
        let mut ev = View::default();
        let mut g = GroupStat {
            want: "start".into(),
            ..GroupStat::default()
        };
        for (n, cause, left_s) in [
            ("n1", "test t: exit status 3", 600),
            ("n2", "test t: exit status 3", 540),
            ("n3", "", 30),
        ] {
            let m = Member {
                alive: true,
                cooldown: ["web".to_string()].into(),
                ..Member::default()
            };
            ev.members.insert(n.into(), m);
            let f = FailureStat {
                restarts: 0,
                cooldown_until_ms: Some(1_000_000 + left_s * 1000),
                cause: cause.into(),
                checks: String::new(),
            };
            g.failures.insert(n.into(), f);
        }
        assert_eq!(
            candidates("web", &g, &ev, 1_000_000),
            "every node that may run it is in cooldown: n3 (30 s left); n1, n2 (test t: exit \
             status 3, 9 min to 10 min left) (fix the cause, then `mosha cleanup web`)"
        );
        ev.members.get_mut("n3").unwrap().cooldown.clear();
        assert!(candidates("web", &g, &ev, 1_000_000).starts_with("it is about to be placed"));
        ev.members.get_mut("n3").unwrap().alive = false;
        ev.members.get_mut("n1").unwrap().cooldown.clear();
        ev.placement.insert(
            "web".into(),
            crate::engine::Placement {
                only: Some(["n3".to_string()].into()),
                ..Default::default()
            },
        );
        assert_eq!(
            candidates("web", &g, &ev, 1_000_000),
            "no node may run it now: n1 not in only=, n2 not in only=, n3 offline"
        );
    }
}
