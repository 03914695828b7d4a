//! Successors: a failover without a plan window. While another node runs a group, the node
//! that would plan it first if that holder died (the first after the holder in the group's
//! order) says so ahead of time with a gossip key, `n/<group>`. When the holder is lost, a
//! successor whose key has stood long enough plans the group at once and goes on to `test`
//! without waiting: its plan window was paid in advance. The fencing gate still holds: the
//! group goes no further than `plan` before the lost holder is fenced.
//!
//! Why that is safe (the plan window has two jobs, and each is done otherwise):
//! - *A node whose packets no longer get out must find out before it moves on.* The key
//!   counts only after it stood for [`crate::Config::successor_wait`]: longer than the news
//!   timeout, a propagation and a tick. A successor quorate when its holder dies was heard by
//!   the others when its key was published, and every other node treats a live successor's
//!   key as a claim: it plans nothing while the key stands, and when the successor is lost
//!   the group counts as held by it, so the group waits for its fencing like any group a lost
//!   node held (without fencing, the others' own plan window outlasts the successor's news
//!   timeout: a successor that lost touch has lost quorum and stopped by then).
//! - *Competing claims must be seen.* Nobody but the successor plans the group while its
//!   key stands; a node that does not see the key has missed the successor's state for
//!   longer than the news timeout, so it has no quorum. Two successors in sight of each
//!   other restart their wait and the one ranked after yields its key; so two keys that both
//!   stood long enough are only possible at nodes that have been deaf for longer than the
//!   news timeout, which have lost quorum. A hand-off (see [`crate::moves`]) waits until the
//!   successor's key is gone, which it is once the successor sees the group handed off.
//!
//! The key goes when the successor no longer would be next (the holder stopped it, handed it
//! off, a better node came, this node lost quorum or was frozen), and after a takeover once
//! its own claim has run for a step (the claim is published by then, and counts if it dies).
//! Pure, like the rest of the engine.

use std::collections::BTreeMap;

use crate::moves::Handed;
use crate::{keys, tell, Action, Candidate, Claim, Engine, Event, GroupMemory, Millis, View, PLAN};

/// A group this node stands as successor for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    /// Since when the key has stood with no rival's key in sight.
    since: Millis,
    /// Its own claim on the group ran at a step before (see the module documentation).
    ran: bool,
    /// Kept at the step in progress (the others are withdrawn at its end).
    kept: bool,
}

/// The groups this node stands as successor for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Successors {
    map: BTreeMap<String, Standing>,
}

impl Successors {
    /// Keeps standing for `group`, publishing the key if it is new; `rival`: another node's
    /// key for it is in sight (the wait starts again).
    fn keep(&mut self, group: &str, now: Millis, rival: bool, out: &mut Vec<Action>) {
        match self.map.get_mut(group) {
            Some(s) => {
                s.kept = true;
                if rival {
                    s.since = now;
                }
            }
            None => {
                let s = Standing {
                    since: now,
                    ran: false,
                    kept: true,
                };
                self.map.insert(group.to_string(), s);
                out.push(Action::Publish {
                    key: keys::successor(group),
                    value: Some("1".to_string()),
                });
            }
        }
    }

    /// This node holds `group` with `claim`: a key it stood with stays until the claim has
    /// run for a step.
    pub(crate) fn holding(&mut self, group: &str, claim: &Claim) {
        if let Some(s) = self.map.get_mut(group) {
            if claim.phase() == 2 && !claim.leaving() {
                s.kept = !s.ran;
                s.ran = true;
            } else {
                s.kept = true;
            }
        }
    }

    /// Withdraws the keys not kept at this step.
    pub(crate) fn end_step(&mut self, out: &mut Vec<Action>) {
        self.map.retain(|g, s| {
            if !s.kept {
                out.push(Action::Publish {
                    key: keys::successor(g),
                    value: None,
                });
            }
            std::mem::replace(&mut s.kept, false)
        });
    }

    /// The node was frozen: every wait starts again (its keys may have gone unseen).
    pub(crate) fn restart(&mut self, now: Millis) {
        for s in self.map.values_mut() {
            s.since = now;
        }
    }
}

/// Returns, per group, the live members other than `me` that stand as its successor.
pub(crate) fn in_sight<'v>(view: &'v View, me: &str) -> BTreeMap<&'v str, Vec<&'v str>> {
    let mut s: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, m) in crate::peers::others(view, me).filter(|(_, m)| m.alive) {
        for g in &m.successor {
            s.entry(g.as_str()).or_default().push(name.as_str());
        }
    }
    s
}

impl Engine {
    /// This node does not hold `group`: stand as its successor while another node runs it
    /// and this one would be next, or take it over at once if its holder was lost and this
    /// node stood long enough. Returns whether it planned the group.
    pub(crate) fn stand(
        &mut self,
        now: Millis,
        group: &str,
        c: &Candidate,
        mem: &mut GroupMemory,
        out: &mut Vec<Action>,
    ) -> bool {
        let free = c.ready
            && !c.barred
            && c.handed == Handed::No
            && now >= mem.hold_off_until
            && !self.cooldown.contains_key(group);
        if !free {
            return false; // the key, if any, is withdrawn at the end of the step
        }
        if let Some(holder) = c.holder {
            let r = self.peers.rank(&self.me, group);
            let next = r == 0 || (r == 1 && self.peers.outranks(group, holder, &self.me));
            let outranked = (c.rivals.iter()).any(|n| self.peers.outranks(group, n, &self.me));
            if next && !outranked {
                (self.successors).keep(group, now, !c.rivals.is_empty(), out);
            }
            return false;
        }
        let Some(s) = self.successors.map.get(group).copied() else {
            return false;
        };
        let due = s.since.saturating_add(self.cfg.successor_wait);
        // Only a holder's death (a lost node held it) lets the group skip the window.
        let was_lost = || self.lost.values().any(|l| l.held.contains(group));
        if c.held || !c.rivals.is_empty() || now < due || !was_lost() {
            return false;
        }
        self.successors.keep(group, now, false, out);
        mem.need_since = None;
        mem.handed = true;
        out.push(Action::Event(Event::TakingOver {
            group: group.to_string(),
        }));
        out.push(tell(group, PLAN));
        true
    }
}
