//! Operators' standing orders (the replicated `admin` file, parsed by the driver): nodes in
//! standby, frozen groups, cluster-wide maintenance; and what the engine does when a node
//! must give up a group it runs — it is in standby, `only=` leaves it out, or `failback=`
//! calls the group back to a preferred node that returned.
//!
//! - **Standby** (`mosha standby NODE`, `mosha drain NODE --to OTHER`): the node keeps its
//!   vote and its daemon but runs no group. The node core folds the standby nodes into every
//!   group's [`Placement`], so that a node in standby is never a candidate and ranks before
//!   nobody, exactly as a node that `only=` leaves out. The node itself hands each group it
//!   runs to another node, through the hand-off of a planned move (see [`crate::moves`]),
//!   in group-name order and at most [`LEAVE_WINDOW`] at once: to the drain target when it
//!   can take the group, else to the first node of the group's placed order that can. A
//!   group no node can take is stopped (a node in standby runs nothing: Pacemaker does the
//!   same), and placed again once a node can take it.
//! - **Freeze** (`mosha freeze GROUP`, `mosha maintenance on`): the engine decides nothing
//!   about a frozen group — no plan, no stop, no hand-off, no failover, not even the stop
//!   when quorum is lost (the operator took it over: Pacemaker's `is-managed=false`,
//!   `clusvcadm -Z`). Its claims still travel, so that others see who runs it; nodes are
//!   still fenced when lost. The supervisor stops respawning its entries (the driver tells
//!   it); unfreezing restarts those that died and hands the group back to the engine.
//! - **Failback** (hactl's `failback=`): a node that runs a group settled hands it to the
//!   first node of its `prefer=` list placed before it that can take it and has been alive
//!   for the stated delay — and where the group has not failed since that node started,
//!   or since an operator cleared its failures there (`mosha cleanup`): a node whose test
//!   fails for the group is no preferred node until then, whatever its cooldown says (found
//!   by the simulator: a group went back, failed, came back and went back again at the end
//!   of every cooldown, down a few seconds each time).
//!
//! Pure, like the rest of the engine.

use std::collections::{BTreeMap, BTreeSet};

use crate::{rank, tell, Action, Engine, Event, Millis, Placement, View, STOP};

/// Most groups a node that gives them up (standby, `only=`, failback) hands off at once:
/// enough that twenty groups leave in about a second, few enough that the targets' tests
/// and starts do not all land at the same instant.
pub const LEAVE_WINDOW: usize = 4;

/// The operators' standing orders in force (the `admin` file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Admin {
    /// The nodes in standby, each with the node its groups are drained to (`None`: the
    /// best-ranked node that can take each).
    pub standby: BTreeMap<String, Option<String>>,
    /// The frozen groups.
    pub frozen: BTreeSet<String>,
    /// The whole cluster is in maintenance: every group is frozen.
    pub maintenance: bool,
}

impl Admin {
    /// Tells whether `group` is frozen (by itself, or by maintenance).
    pub fn is_frozen(&self, group: &str) -> bool {
        self.maintenance || self.frozen.contains(group)
    }
}

/// Returns the placement of every group of `want` with the nodes of `standby` left out:
/// `raw` (hactl's options) with [`Placement::standby`] filled in. Without standby nodes,
/// `raw` itself.
pub fn fold_standby(
    raw: &BTreeMap<String, Placement>,
    want: &BTreeMap<String, String>,
    standby: &BTreeMap<String, Option<String>>,
) -> BTreeMap<String, Placement> {
    if standby.is_empty() {
        return raw.clone();
    }
    let nodes: BTreeSet<String> = standby.keys().cloned().collect();
    let groups = want.keys().chain(raw.keys()).collect::<BTreeSet<_>>();
    (groups.into_iter())
        .map(|g| {
            let mut p = raw.get(g).cloned().unwrap_or_default();
            p.standby.clone_from(&nodes);
            (g.clone(), p)
        })
        .collect()
}

/// Tells whether `to` may take `group` as `view` shows it: alive, heard in full, not in
/// cooldown for the group, and allowed by its `only=` option.
pub fn can_take(view: &View, to: &str, group: &str) -> bool {
    let allowed = (view.placement.get(group)).is_none_or(|p| p.allows(to));
    allowed
        && view
            .members
            .get(to)
            .is_some_and(|m| m.alive && !m.blank && !m.left && !m.cooldown.contains(group))
}

/// What a node that holds a group should do about it, by [`Engine::leave_for`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leave {
    /// Keep it (nothing calls it away, or not now).
    Stay,
    /// Hand it to this node, for this reason.
    To(String, String),
    /// It told the supervisor to stop it (this node may not run it, and no node can take it).
    Stopped,
}

impl Engine {
    /// This node holds `group` (`running`: settled at its wanted level, and alone): does it
    /// have to give it up (see the module documentation)? Pushes the stop and its event when
    /// it stops it.
    pub(crate) fn leave_for(
        &mut self,
        now: Millis,
        view: &View,
        group: &str,
        running: bool,
        out: &mut Vec<Action>,
    ) -> Leave {
        let Some(p) = view.placement.get(group) else {
            return Leave::Stay;
        };
        let me = self.me.clone();
        if !p.allows(&me) {
            if !running {
                // A plan or a test here goes no further: leave it to a node that may run it.
                out.push(tell(group, STOP));
                return Leave::Stopped;
            }
            if self.handoffs.len() >= LEAVE_WINDOW {
                return Leave::Stay; // the next one when one of those is done
            }
            let why = if p.standby.contains(&me) {
                format!("{me} is in standby")
            } else {
                format!("option only= leaves {me} out")
            };
            let drain = (view.admin.standby.get(&me).cloned().flatten())
                .filter(|to| self.may_hand_to(view, to, group));
            let best = || {
                let alive = (view.members.iter()).filter(|(_, m)| m.alive);
                let order = rank::order_placed(group, Some(p), alive.map(|(n, _)| n.as_str()));
                (order.into_iter())
                    .find(|n| self.may_hand_to(view, n, group))
                    .map(String::from)
            };
            return match drain.or_else(best) {
                Some(to) => Leave::To(to, why),
                None => {
                    out.push(Action::Event(Event::NowhereToGo {
                        group: group.to_string(),
                        why,
                    }));
                    out.push(tell(group, STOP));
                    Leave::Stopped
                }
            };
        }
        let Some(delay) = p.failback.filter(|_| running) else {
            return Leave::Stay;
        };
        if self.handoffs.len() >= LEAVE_WINDOW {
            return Leave::Stay;
        }
        let mine = p.preference(&me);
        let started = self.started.unwrap_or(now);
        for n in p.prefer.iter().take(mine) {
            let failed = (self.failed_on.get(&(group.to_string(), n.clone())))
                .is_some_and(|g| view.members.get(n).is_some_and(|m| m.generation == *g));
            if failed || !self.may_hand_to(view, n, group) {
                continue;
            }
            // Alive since it came alive here, or since this node started.
            let up = self.came_alive.get(n).copied().unwrap_or(started);
            let due = up.saturating_add(delay);
            if now >= due {
                return Leave::To(n.clone(), "failback to a preferred node".to_string());
            }
            self.wake_at(due);
            return Leave::Stay;
        }
        Leave::Stay
    }

    /// Notes, for the groups with `failback=`, the preferred nodes where they just failed
    /// (a cooldown appeared): no failback goes there until the node restarts or an
    /// operator's cleanup names it (see the module documentation).
    pub(crate) fn note_failures(&mut self, view: &View) {
        let mut cooling = BTreeSet::new();
        for (g, p) in view.placement.iter().filter(|(_, p)| p.failback.is_some()) {
            for n in &p.prefer {
                let Some(m) = view.members.get(n).filter(|m| m.cooldown.contains(g)) else {
                    continue;
                };
                let key = (g.clone(), n.clone());
                if !self.cooling.contains(&key) {
                    self.failed_on.insert(key.clone(), m.generation);
                }
                cooling.insert(key);
            }
        }
        self.cooling = cooling;
        for m in view.members.values().filter(|m| m.alive) {
            for (g, r) in &m.cleanups {
                self.failed_on
                    .retain(|(group, node), _| group != g || !r.names(node));
            }
        }
        let failed = std::mem::take(&mut self.failed_on);
        self.failed_on = (failed.into_iter())
            .filter(|((_, n), gen)| view.members.get(n).is_some_and(|m| m.generation == *gen))
            .collect();
    }

    /// Tells whether this node may hand `group` to `to`: another node that can take it (see
    /// [`can_take`]) and whose news arrive.
    pub(crate) fn may_hand_to(&self, view: &View, to: &str, group: &str) -> bool {
        to != self.me && !self.no_news.contains(to) && can_take(view, to, group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standby_nodes_are_folded_into_every_wanted_group() {
        let raw = BTreeMap::from([(
            "db".to_string(),
            Placement {
                prefer: vec!["n2".into()],
                ..Placement::default()
            },
        )]);
        let want = BTreeMap::from([
            ("db".to_string(), "start".to_string()),
            ("web".to_string(), "start".to_string()),
        ]);
        assert_eq!(fold_standby(&raw, &want, &BTreeMap::new()), raw);
        let standby = BTreeMap::from([("n2".to_string(), None)]);
        let folded = fold_standby(&raw, &want, &standby);
        assert_eq!(folded.len(), 2);
        assert!(folded.values().all(|p| !p.allows("n2") && p.allows("n1")));
        assert_eq!(folded["db"].prefer, ["n2"], "the options stay");
    }

    #[test]
    fn maintenance_freezes_every_group() {
        let mut a = Admin::default();
        a.frozen.insert("web".into());
        assert!(a.is_frozen("web") && !a.is_frozen("db"));
        a.maintenance = true;
        assert!(a.is_frozen("db"));
    }
}
