//! Planned moves (`mosha move GROUP [NODE]`, like `clusvcadm -r`): an operator's request
//! travels as a gossip key of the node it was made on (`m/<group>` = `to from`); the one node
//! that holds the group (`from`) stops it and *hands it off*: it publishes `h/<group>` = `to`
//! before its claim goes. Nothing is left behind: the request goes once the hand-off is seen
//! (or the move is moot), the hand-off once `to` runs the group (or it lapses).
//!
//! Why a hand-off is safe without a plan window at `to`: gossip delivers one node's keys in
//! the order it published them, so every node that sees `from` no longer holding the group
//! also sees the hand-off, and no node but `to` plans the group while the hand-off stands (a
//! node that has not heard `from` stop still sees it holding). `to` then plans at once and
//! goes on to `test` without waiting. A node that took `from` for dead meanwhile recovers the
//! group only through the usual fencing gate and plan window, which shows it `to`'s older
//! claim. A hand-off counts only while `to` is alive and not in cooldown for the group: if
//! its test fails, the group is placed as usual (back where it was, or on the next node). And
//! since `to` skips the plan window, it may start the group and die before its claim gets
//! out: a hand-off to a lost node that nobody saw take the group counts as that node holding
//! it, so the group waits for its fencing like any group a lost node held, and the hand-off
//! stays until then (every node that sees it gates the group).
//! Pure, like the rest of the engine.

use std::collections::BTreeMap;

pub use crate::admin::can_take;
use crate::admin::Leave;
use crate::{keys, tell, Action, Claim, Engine, Event, Millis, State, View, STOP};

/// How long a move request waits for its group's holder to hand the group off.
pub const MOVE_TTL: Millis = 30_000;

/// How long a hand-off waits for its target to take the group before it lapses and the
/// group is placed as usual.
pub const HANDOFF_TTL: Millis = 10_000;

/// An operator's request to move a group (the value of an `m/<group>` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRequest {
    /// The node the group should run on.
    pub to: String,
    /// The node that held it when the request was made: only it acts on the request.
    pub from: String,
}

impl MoveRequest {
    /// Returns the gossip value: `to from`.
    pub fn encode(&self) -> String {
        format!("{} {}", self.to, self.from)
    }

    /// Parses a value written by [`MoveRequest::encode`].
    pub fn decode(value: &str) -> Option<MoveRequest> {
        let mut w = value.split(' ');
        let r = MoveRequest {
            to: w.next().filter(|s| !s.is_empty())?.to_string(),
            from: w.next().filter(|s| !s.is_empty())?.to_string(),
        };
        w.next().is_none().then_some(r)
    }
}

/// One of this node's requests or hand-offs, with when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending<T> {
    pub what: T,
    pub since: Millis,
}

/// What the moves in sight say of one group at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handed {
    /// No hand-off in force.
    No,
    /// Handed to this node: plan it at once.
    ToMe,
    /// Handed to another node: leave it to that one.
    ToOther,
}

/// The hand-offs and the requests addressed to this node, gathered once per step.
#[derive(Debug, Default)]
pub(crate) struct InSight<'v> {
    /// Group → the node it is handed to, from live members (a valid target only).
    handed: BTreeMap<&'v str, &'v str>,
    /// Group → the node an operator asked this node to move it to.
    asked: BTreeMap<&'v str, &'v str>,
}

impl<'v> InSight<'v> {
    /// Returns whether `group` is handed off, and to whom from `me`'s point of view.
    pub fn handed(&self, group: &str, me: &str) -> Handed {
        match self.handed.get(group) {
            None => Handed::No,
            Some(to) if *to == me => Handed::ToMe,
            Some(_) => Handed::ToOther,
        }
    }
}

impl Engine {
    /// Takes an operator's request, made on this node, to move `group` from `from` to `to`;
    /// it is published at the next step.
    pub fn request_move(&mut self, now: Millis, group: &str, to: &str, from: &str) {
        let what = MoveRequest {
            to: to.to_string(),
            from: from.to_string(),
        };
        self.requests
            .insert(group.to_string(), Pending { what, since: now });
        self.requests_unpublished = true;
    }

    /// Returns this node's move requests in force, by group.
    pub fn move_requests(&self) -> impl Iterator<Item = (&String, &MoveRequest)> {
        self.requests.iter().map(|(g, p)| (g, &p.what))
    }

    /// Returns this node's hand-offs in force: group → the node it is handed to.
    pub fn handoffs(&self) -> impl Iterator<Item = (&String, &String)> {
        self.handoffs.iter().map(|(g, p)| (g, &p.what))
    }

    /// Gathers the hand-offs of live members and the requests addressed to this node.
    pub(crate) fn moves_in_sight<'v>(&self, view: &'v View) -> InSight<'v> {
        let mut s = InSight::default();
        // Hand-offs of one group to two nodes (a node handed it on, by failback or standby,
        // before the hand-off that gave it to it was withdrawn) name no one: the group is
        // placed as usual, with the plan window (found by the simulator: the stale hand-off
        // and the new one each let their target skip the window, and both started it).
        let mut clashing = Vec::new();
        for (name, m) in view.members.iter().filter(|(_, m)| m.alive) {
            for (g, to) in &m.handoffs {
                if to != name && can_take(view, to, g) {
                    let first = *s.handed.entry(g).or_insert(to);
                    if first != to {
                        clashing.push(g.as_str());
                    }
                }
            }
            for (g, r) in &m.moves {
                if r.from == self.me && r.to != self.me {
                    s.asked.entry(g).or_insert(&r.to);
                }
            }
        }
        for g in clashing {
            s.handed.remove(g);
        }
        s
    }

    /// This node holds `group` (`alone`: nobody else claims it): if an operator asked to
    /// move it to a node that can take it, or this node must give it up (see
    /// [`crate::admin`]), hand it off (stop it here) once it runs settled at its wanted level.
    /// Returns whether it acted (handed off, or stopped a group it may not run).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hand_off(
        &mut self,
        now: Millis,
        view: &View,
        group: &str,
        mine: &Claim,
        alone: bool,
        s: &InSight,
        out: &mut Vec<Action>,
    ) -> bool {
        if now < self.frozen_until || mine.leaving() {
            return false;
        }
        let want = view.want.get(group).map_or("", String::as_str);
        let running = alone
            && mine.level == want
            && mine.target == want
            && matches!(mine.state, State::Done | State::Passed);
        let (to, why) = match s.asked.get(group) {
            Some(to) => (to.to_string(), "asked by an operator".to_string()),
            None => match self.leave_for(now, view, group, running, out) {
                Leave::Stay => return false,
                Leave::Stopped => return true,
                Leave::To(to, why) => (to, why),
            },
        };
        if !running || self.no_news.contains(to.as_str()) || !can_take(view, &to, group) {
            return false;
        }
        out.push(Action::Publish {
            key: keys::handoff(group),
            value: Some(to.clone()),
        });
        out.push(Action::Event(Event::HandingOff {
            group: group.to_string(),
            to: to.clone(),
            why,
        }));
        out.push(tell(group, STOP));
        self.handoffs.insert(
            group.to_string(),
            Pending {
                what: to,
                since: now,
            },
        );
        true
    }

    /// Publishes new requests, and withdraws the requests and hand-offs of this node that
    /// are done or moot (see the module documentation), with an event for those that failed.
    pub(crate) fn tend_moves(&mut self, now: Millis, view: &View, out: &mut Vec<Action>) {
        let me = self.me.clone();
        let wanted = |g: &str| {
            view.want
                .get(g)
                .is_some_and(|w| !crate::claim::is_stopped_level(w))
        };
        let claim_of = |node: &str, g: &str| {
            view.members
                .get(node)
                .filter(|m| m.alive)
                .and_then(|m| m.claims.get(g))
        };
        let taken =
            |to: &str, g: &str| claim_of(to, g).is_some_and(|c| c.holds() && c.phase() == 2);
        if std::mem::take(&mut self.requests_unpublished) {
            for (g, r) in &self.requests {
                if view.members.get(&me).and_then(|m| m.moves.get(g)) != Some(&r.what) {
                    out.push(Action::Publish {
                        key: keys::move_request(g),
                        value: Some(r.what.encode()),
                    });
                }
            }
        }
        let mut wakes = Vec::new();
        let mut ended = Vec::new();
        for (g, p) in &self.requests {
            let r = &p.what;
            let handed = view
                .members
                .get(&r.from)
                .is_some_and(|m| m.handoffs.contains_key(g));
            let why = if handed || taken(&r.to, g) {
                None
            } else if !wanted(g) {
                Some("the group is no longer wanted".to_string())
            } else if !self.quorate() {
                Some("this node lost quorum".to_string())
            } else if !can_take(view, &r.to, g) {
                Some(format!(
                    "{} cannot take it (not alive, or in cooldown)",
                    r.to
                ))
            } else if !claim_of(&r.from, g).is_some_and(Claim::holds) {
                Some(format!("{} no longer holds it", r.from))
            } else if now >= p.since + MOVE_TTL {
                Some(format!(
                    "{} did not hand it off within {} s",
                    r.from,
                    MOVE_TTL / 1000
                ))
            } else {
                wakes.push(p.since + MOVE_TTL);
                continue;
            };
            ended.push((g.clone(), why));
        }
        for (g, why) in ended {
            if let Some(p) = self.requests.remove(&g) {
                withdraw(keys::move_request(&g), g, p.what.to, why, out);
            }
        }
        let mut lapsed = Vec::new();
        for (g, p) in &self.handoffs {
            let to = &p.what;
            // A target lost before we saw it take the group may run it: the hand-off stays
            // (it gates the group, see `track_members`) until the target is fenced or back.
            let lost = self.lost.get(to.as_str());
            let why = if taken(to, g) {
                None
            } else if lost.is_some_and(|l| !l.fence.gate_open()) {
                continue;
            } else if lost.is_some() {
                Some(format!("{to} was lost (and fenced)"))
            } else if !wanted(g) {
                Some("the group is no longer wanted".to_string())
            } else if !can_take(view, to, g) {
                Some(format!("{to} cannot take it (gone, or its test failed)"))
            } else if self.no_news.contains(to.as_str()) {
                continue; // it may have taken it out of our sight: wait for news
            } else if now >= p.since + HANDOFF_TTL {
                Some(format!(
                    "{to} did not take it within {} s",
                    HANDOFF_TTL / 1000
                ))
            } else {
                wakes.push(p.since + HANDOFF_TTL);
                continue;
            };
            lapsed.push((g.clone(), why));
        }
        for t in wakes {
            self.wake_at(t);
        }
        for (g, why) in lapsed {
            if let Some(p) = self.handoffs.remove(&g) {
                withdraw(keys::handoff(&g), g, p.what, why, out);
            }
        }
    }
}

/// Deletes gossip key `key` of a request or hand-off of `group` to `to` that ended, with an
/// event when it ended without the move (`why`).
fn withdraw(key: String, group: String, to: String, why: Option<String>, out: &mut Vec<Action>) {
    out.push(Action::Publish { key, value: None });
    if let Some(why) = why {
        out.push(Action::Event(Event::MoveAbandoned { group, to, why }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_gossip_values() {
        let r = MoveRequest {
            to: "n3".into(),
            from: "n1".into(),
        };
        assert_eq!(r.encode(), "n3 n1");
        assert_eq!(MoveRequest::decode("n3 n1"), Some(r));
        for bad in ["", "n3", "n3 ", " n1", "n3 n1 x"] {
            assert_eq!(MoveRequest::decode(bad), None, "{bad:?}");
        }
    }
}
