//! What the daemon hands the node core from its configuration files: how each node is fenced
//! (fencetab), the wanted level and placement options of each group (cltab and hactl), each
//! group's restart policy for the supervisor, and a summary of the standing orders for the log.

use std::collections::BTreeMap;

use crate::config::{self, Cltab, Fencetab, Fencing, Hactl};
use crate::engine::node;
use crate::engine::{self, Policy};

/// Returns how `node` is fenced according to `tab`, with the time one pass may take (every
/// level's timeout, twice for `off` which is confirmed by `status`, plus a margin). The sum
/// saturates: it can never overflow, whatever a table holds.
pub fn policy(tab: &Fencetab, node: &str) -> Policy {
    match tab.for_node(node) {
        Fencing::Methods(ms) => {
            let total = ms.iter().fold(2000u64, |total, m| {
                let t = u64::try_from(m.timeout.as_millis()).unwrap_or(u64::MAX);
                let runs = if m.action == "off" { 2 } else { 1 };
                total.saturating_add(t.saturating_mul(runs))
            });
            Policy::Configured { timeout: total }
        }
        Fencing::Disabled => Policy::Disabled,
        Fencing::Unconfigured => Policy::Unconfigured,
    }
}

/// Returns how every node is fenced according to `tab`, for the node core.
pub fn fencing(tab: &Fencetab) -> node::Fencing {
    let named = tab.methods.keys().chain(tab.off.keys());
    node::Fencing {
        default: Some(policy(tab, config::fencetab::ANY_NODE)),
        nodes: named
            .filter(|n| *n != config::fencetab::ANY_NODE)
            .map(|n| (n.clone(), policy(tab, n)))
            .collect(),
    }
}

/// Describes the standing orders `a` in a few words, for the log.
pub fn summary(a: &engine::Admin) -> String {
    let mut parts: Vec<String> = (a.standby.iter())
        .map(|(n, to)| match to {
            Some(to) => format!("{n} standby (drained to {to})"),
            None => format!("{n} standby"),
        })
        .collect();
    parts.extend(a.frozen.iter().map(|g| format!("{g} frozen")));
    if a.maintenance {
        parts.push("maintenance: every group frozen".into());
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// Returns the placement options (`prefer=`, `only=`, `failback=`) of the groups of `hactl`
/// that have some.
pub fn placement(hactl: &Hactl) -> BTreeMap<String, engine::Placement> {
    (hactl.groups.iter())
        .filter_map(|(group, want)| {
            let prefer: Vec<String> = want.prefer().into_iter().map(String::from).collect();
            let only = (want.only()).map(|o| o.into_iter().map(String::from).collect());
            let failback = want.failback().map(|s| s.saturating_mul(1000));
            let cooldown = want.cooldown().map(|s| s.saturating_mul(1000));
            let p = engine::Placement {
                prefer,
                only,
                failback,
                cooldown,
                standby: Default::default(),
            };
            (p != engine::Placement::default()).then(|| (group.clone(), p))
        })
        .collect()
}

/// Returns the restart policy of `group` according to `hactl` (the defaults when it has no
/// line).
pub fn restart_policy(hactl: &Hactl, group: &str) -> crate::supervisor::RestartPolicy {
    hactl
        .groups
        .get(group)
        .map_or_else(Default::default, |w| crate::supervisor::RestartPolicy {
            max: w.max_restarts(),
            window: std::time::Duration::from_secs(w.restart_window()),
        })
}

/// Returns every group of `cltab` with the level `hactl` wants.
pub fn wanted(cltab: &Cltab, hactl: &Hactl) -> BTreeMap<String, String> {
    cltab
        .groups()
        .into_iter()
        .map(|g| (g.to_string(), hactl.level_of(g).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_holds_the_groups_with_options_only() {
        let text = "web start prefer=n3,n1\ndb start only=n2,n1 prefer=n2\nmail start\n";
        let hactl = Hactl::parse("hactl", text).unwrap();
        let names = |v: &[&str]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let web = engine::Placement {
            prefer: names(&["n3", "n1"]),
            only: None,
            ..engine::Placement::default()
        };
        let db = engine::Placement {
            prefer: names(&["n2"]),
            only: Some(names(&["n1", "n2"]).into_iter().collect()),
            ..engine::Placement::default()
        };
        let want = BTreeMap::from([("db".to_string(), db), ("web".to_string(), web)]);
        assert_eq!(placement(&hactl), want);
        assert!(placement(&Hactl::default()).is_empty());
    }
}
