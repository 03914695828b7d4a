//! The engine's per-group decisions, one group at a time: a holder resolves conflicts and
//! moves along plan → test → the wanted level (recording a failed test as a cooldown); a
//! candidate waits for its rank's turn and plans; cooldowns end. Called from
//! [`Engine::step`](crate::Engine::step), which owns the loop over groups.

use rand::Rng;

use crate::moves::Handed;
use crate::{
    keys, rank, tell, Action, Candidate, Claim, Engine, Event, FenceState, GroupMemory, Millis,
    State, View, PLAN, STOP, TEST,
};

impl Engine {
    /// This node holds `group`: resolve conflicts, then move along plan → test → want.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step_holder(
        &mut self,
        now: Millis,
        group: &str,
        want: &str,
        mine: &Claim,
        others: &[(&str, &Claim)],
        gated: bool,
        mem: &mut GroupMemory,
        out: &mut Vec<Action>,
    ) {
        if mine.leaving() {
            return; // stopping; nothing to decide until it is done
        }
        let my_priority = rank::priority(group, &self.me, mine.phase());
        let settle = self.cfg.startup_wait;
        let came_alive = &self.came_alive;
        let winner = others
            .iter()
            .filter(|(_, c)| !c.leaving())
            .filter(|(n, _)| came_alive.get(*n).is_none_or(|t| now >= t + settle))
            .map(|(n, c)| (rank::priority(group, n, c.phase()), *n))
            .filter(|(p, _)| *p > my_priority)
            .max();
        if let Some((_, to)) = winner {
            mem.hold_off_until = now + self.cfg.yield_backoff;
            mem.need_since = None;
            mem.planned_at = None;
            mem.handed = false;
            out.push(Action::Event(Event::Yielding {
                group: group.to_string(),
                to: to.to_string(),
            }));
            out.push(tell(group, STOP));
            return;
        }
        if mine.level != mine.target || !mine.state.settled() {
            return; // in transition
        }
        if matches!(mine.state, State::Failed | State::Fatal) {
            // The cooldown is recorded by `step`, whatever stops the group.
            out.push(tell(group, STOP));
            return;
        }
        if now < self.frozen_until {
            self.wake = Some(
                self.wake
                    .map_or(self.frozen_until, |w| w.min(self.frozen_until)),
            );
            return; // just resumed from a freeze: look before moving on
        }
        let next = match mine.level.as_str() {
            PLAN if want == PLAN => None,
            PLAN => {
                let at = *mem.planned_at.get_or_insert(now);
                // A group handed here needs no window (see `moves`).
                let due = if mem.handed {
                    at
                } else {
                    at + self.cfg.plan_window
                };
                if now < due {
                    self.wake = Some(self.wake.map_or(due, |w| w.min(due)));
                }
                (now >= due).then_some(TEST)
            }
            TEST if want == TEST => None,
            TEST => Some(want),
            level if level != want => Some(want),
            _ => None,
        };
        // Moving forward needs the group to ourselves: a yielding or outranked claim must be
        // gone first. And a plan or a test goes no further while a lost node that may run the
        // group is not fenced (found by the simulator: a node planned, hung, resumed with a
        // stale view and tested a group that a member lost meanwhile had started).
        let before_want = matches!(mine.level.as_str(), PLAN | TEST);
        if let Some(level) = next {
            if others.is_empty() && !(gated && before_want) {
                out.push(tell(group, level));
            }
        }
    }

    /// Starts a failure cooldown for `group` here (its `cooldown=` option, else the
    /// configured test cooldown) and publishes it.
    pub(crate) fn record_failure(
        &mut self,
        now: Millis,
        view: &View,
        group: &str,
        level: &str,
        out: &mut Vec<Action>,
    ) {
        let fatal = (view.members.get(&self.me))
            .and_then(|m| m.claims.get(group))
            .is_some_and(|c| c.state == State::Fatal);
        let cooldown_ms = match (view.placement.get(group)).and_then(|p| p.cooldown) {
            _ if fatal => Millis::MAX, // until an operator's cleanup
            Some(c) => c,
            None => self.cfg.test_cooldown,
        };
        self.cooldown
            .insert(group.to_string(), now.saturating_add(cooldown_ms));
        let elsewhere = (view.members.keys())
            .filter(|n| self.may_hand_to(view, n, group))
            .count();
        out.push(Action::Event(Event::TestFailed {
            group: group.to_string(),
            level: level.to_string(),
            cooldown_ms,
            elsewhere,
        }));
        let value = if fatal { keys::FATAL } else { level };
        out.push(Action::Publish {
            key: keys::cooldown(group),
            value: Some(value.to_string()),
        });
    }

    /// This node does not hold `group`: plan it when nobody does and our rank's turn came.
    pub(crate) fn step_candidate(
        &mut self,
        now: Millis,
        group: &str,
        c: Candidate<'_>,
        mem: &mut GroupMemory,
        rng: &mut dyn Rng,
        out: &mut Vec<Action>,
    ) {
        mem.planned_at = None;
        mem.handed = false;
        if self.stand(now, group, &c, mem, out) {
            return; // taken over as its successor
        }
        // The recovery gate (`gated`): a group that a lost node held waits for that node's
        // fencing. A node its `only=` option leaves out (`barred`) never plans it. Another
        // live node's successor key holds it as a claim would (see `successor`).
        let Candidate {
            ready,
            gated,
            held,
            handed,
            barred,
            ..
        } = c;
        let held = held || !c.rivals.is_empty();
        // A group that a lost node held may be planned while that node is being fenced (the
        // plan window and the rank's turn run meanwhile), but it goes no further than `plan`
        // before the gate opens (see `step_holder`).
        let _ = gated;
        if held
            || barred
            || handed == Handed::ToOther
            || now < mem.hold_off_until
            || !ready
            || self.cooldown.contains_key(group)
        {
            mem.need_since = None;
            let until = mem.hold_off_until;
            if now < until {
                self.wake_at(until);
            }
            return;
        }
        if handed == Handed::ToMe {
            mem.need_since = None;
            mem.handed = true;
            out.push(Action::Event(Event::Planning {
                group: group.to_string(),
                rank: 0,
            }));
            out.push(tell(group, PLAN));
            return;
        }
        // Our rank: how many eligible nodes come before us (rank::order_placed's order, without
        // sorting everyone; kept between steps while the live members stay the same).
        let r = self.peers.rank(&self.me, group);
        if mem.need_since.is_none() {
            mem.need_since = Some(now);
            mem.jitter = rng.next_u64() % (self.cfg.slot / 4).max(1);
        }
        let since = mem.need_since.unwrap_or(now);
        let turn = since + r as Millis * self.cfg.slot + mem.jitter;
        if now < turn {
            self.wake_at(turn);
            return;
        }
        mem.need_since = None;
        for (node, lost) in &self.lost {
            if lost.held.contains(group) && lost.fence == FenceState::Disabled {
                out.push(Action::Event(Event::RecoveringUnfenced {
                    group: group.to_string(),
                    from: node.clone(),
                }));
            }
        }
        out.push(Action::Event(Event::Planning {
            group: group.to_string(),
            rank: r,
        }));
        out.push(tell(group, PLAN));
    }

    /// Ends cooldowns that are over and withdraws their gossip keys.
    pub(crate) fn expire_cooldowns(&mut self, now: Millis, out: &mut Vec<Action>) {
        let over: Vec<String> = self
            .cooldown
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(g, _)| g.clone())
            .collect();
        if let Some(next) = self.cooldown.values().filter(|u| **u > now).min().copied() {
            self.wake_at(next);
        }
        for g in over {
            self.cooldown.remove(&g);
            out.push(Action::Publish {
                key: keys::cooldown(&g),
                value: None,
            });
        }
    }
}
