//! Clearing failures (`mosha cleanup GROUP [NODE]`, like `pcs resource cleanup`): an
//! operator's request travels as a gossip key of the node it was made on (`k/<group>` =
//! `<node|*> <seq>`), for [`CLEANUP_TTL`]; every live node it names (`*`: every node) that
//! sees it ends its cooldown for the group, withdraws its `c/<group>` key and tells its
//! driver to forget the group's restarts ([`Action::Cleared`]). The group is then placed
//! as usual.
//!
//! Each request is applied once per node: a node remembers, per requester and group, the
//! generation and sequence number it applied, so that a failure that happens again while the
//! request is still in sight is not cleared a second time. Nothing stays behind: the request
//! goes after its time, and what a node remembers of it goes with the request.
//!
//! Clearing a cooldown is safe: a cooldown only keeps a node that failed from being a
//! candidate again too soon; the placement rules (plan window, priorities, the recovery
//! gate) do not depend on it. Pure, like the rest of the engine.

use std::collections::BTreeMap;

use crate::moves::Pending;
use crate::{keys, Action, Engine, Event, Millis, View};

/// How long a cleanup request stays in gossip: every live node sees it well within that.
pub const CLEANUP_TTL: Millis = 10_000;

/// An operator's request to clear a group's failures (the value of a `k/<group>` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupRequest {
    /// The node whose failures are cleared (`None`: every node).
    pub node: Option<String>,
    /// Tells two requests of one node apart.
    pub seq: u64,
}

impl CleanupRequest {
    /// Returns the gossip value: `<node|*> <seq>`.
    pub fn encode(&self) -> String {
        format!("{} {}", self.node.as_deref().unwrap_or("*"), self.seq)
    }

    /// Parses a value written by [`CleanupRequest::encode`].
    pub fn decode(value: &str) -> Option<CleanupRequest> {
        let (node, seq) = value.split_once(' ')?;
        let node = match node {
            "" => return None,
            "*" => None,
            n => Some(n.to_string()),
        };
        let seq = seq
            .parse()
            .ok()
            .filter(|_| seq.bytes().all(|b| b.is_ascii_digit()))?;
        Some(CleanupRequest { node, seq })
    }

    /// Tells whether the request names `node`.
    pub fn names(&self, node: &str) -> bool {
        self.node.as_deref().is_none_or(|n| n == node)
    }
}

/// This node's cleanup requests and what it applied of everyone's.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cleanups {
    /// Requests made here, by group, until their time is up.
    mine: BTreeMap<String, Pending<CleanupRequest>>,
    /// The last sequence number given.
    seq: u64,
    /// A request was made since the last step.
    unpublished: bool,
    /// (requester, group) → (its generation, the sequence number applied here).
    applied: BTreeMap<(String, String), (u64, u64)>,
}

impl Engine {
    /// Takes an operator's request, made on this node, to clear the failures of `group` on
    /// `node` (`None`: every node); it is published at the next step.
    pub fn request_cleanup(&mut self, now: Millis, group: &str, node: Option<&str>) {
        let c = &mut self.cleanups;
        c.seq += 1;
        let what = CleanupRequest {
            node: node.map(str::to_string),
            seq: c.seq,
        };
        c.mine
            .insert(group.to_string(), Pending { what, since: now });
        c.unpublished = true;
    }

    /// Publishes new cleanup requests and withdraws the old ones; applies every request in
    /// sight that names this node and was not applied yet.
    pub(crate) fn tend_cleanups(&mut self, now: Millis, view: &View, out: &mut Vec<Action>) {
        let c = &mut self.cleanups;
        if std::mem::take(&mut c.unpublished) {
            for (g, p) in &c.mine {
                out.push(Action::Publish {
                    key: keys::cleanup(g),
                    value: Some(p.what.encode()),
                });
            }
        }
        let over: Vec<String> = (c.mine.iter())
            .filter(|(_, p)| now >= p.since.saturating_add(CLEANUP_TTL))
            .map(|(g, _)| g.clone())
            .collect();
        for g in over {
            c.mine.remove(&g);
            out.push(Action::Publish {
                key: keys::cleanup(&g),
                value: None,
            });
        }
        if let Some(next) = c.mine.values().map(|p| p.since + CLEANUP_TTL).min() {
            self.wake_at(next);
        }
        // What was applied goes with its request.
        let in_sight = |(by, g): &(String, String)| {
            (view.members.get(by)).is_some_and(|m| m.cleanups.contains_key(g))
        };
        self.cleanups.applied.retain(|k, _| in_sight(k));
        let me = self.me.clone();
        let mut todo = Vec::new();
        for (by, m) in view.members.iter().filter(|(_, m)| m.alive) {
            for (g, r) in m.cleanups.iter().filter(|(_, r)| r.names(&me)) {
                let key = (by.clone(), g.clone());
                if self.cleanups.applied.get(&key) != Some(&(m.generation, r.seq)) {
                    self.cleanups.applied.insert(key, (m.generation, r.seq));
                    todo.push((by.clone(), g.clone()));
                }
            }
        }
        for (by, group) in todo {
            let cooldown = self.cooldown.remove(&group).is_some();
            if cooldown {
                out.push(Action::Publish {
                    key: keys::cooldown(&group),
                    value: None,
                });
            }
            out.push(Action::Cleared {
                group: group.clone(),
            });
            out.push(Action::Event(Event::CleanedUp {
                group,
                by,
                cooldown,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_gossip_values() {
        for r in [
            CleanupRequest { node: None, seq: 1 },
            CleanupRequest {
                node: Some("n2".into()),
                seq: u64::MAX,
            },
        ] {
            assert_eq!(CleanupRequest::decode(&r.encode()), Some(r));
        }
        for bad in ["", "*", "n2", " 1", "n2 -1", "n2 1 2", "n2 x", "n2 +1"] {
            assert_eq!(CleanupRequest::decode(bad), None, "{bad:?}");
        }
        let all = CleanupRequest { node: None, seq: 1 };
        assert!(all.names("n1") && all.names("n2"));
        let one = CleanupRequest {
            node: Some("n2".into()),
            seq: 1,
        };
        assert!(one.names("n2") && !one.names("n1"));
    }
}
