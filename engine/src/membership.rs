//! The engine's view of the membership: who is alive and what they hold, who was lost
//! (cleanly or not, and so who must be fenced before recovery), the expected membership that
//! grows with every live member, and quorum over it (a member counts only while news from it
//! arrives and it is more than heartbeats). Called from [`Engine::step`](crate::Engine::step)
//! before any group is looked at.

use std::collections::{BTreeMap, BTreeSet};

use crate::{keys, peers, Action, Claim, Engine, Event, Lost, Member, Millis, Record, State, View};

impl Engine {
    /// Takes every live member one of whose stops failed (a claim [`State::StopFailed`])
    /// for lost: it may still hold the group, so it is fenced before anyone recovers it, like
    /// a member that died. Ends such a loss when the member's claims no longer say so.
    fn track_blocked(&mut self, now: Millis, view: &View, out: &mut Vec<Action>) {
        for (name, m) in peers::others(view, &self.me).filter(|(_, m)| m.alive) {
            let failed: Vec<String> = (m.claims.iter())
                .filter(|(_, c)| c.state == State::StopFailed)
                .map(|(g, _)| g.clone())
                .collect();
            let known = self.lost.get(name);
            match (failed.is_empty(), known) {
                (false, None) => {
                    out.push(Action::Event(Event::NodeBlocked {
                        node: name.clone(),
                        groups: failed,
                    }));
                    let mut lost = Lost::new(m.generation, m.held(), now);
                    lost.blocked = true;
                    self.lost.insert(name.clone(), lost);
                }
                // Its stop succeeded after all, or it restarted (a new generation, whose
                // daemon stopped what the old one left before it started anything; found by
                // the simulator: a node that hung while the blocked member was fenced and
                // rebooted kept it blocked for ever).
                (true, Some(l)) if l.blocked => {
                    if l.attempts.running_since.is_some() {
                        out.push(Action::CancelFence { node: name.clone() });
                    }
                    self.lost.remove(name);
                    self.peers.forget_fence(name);
                    out.push(Action::Event(Event::NodeUnblocked { node: name.clone() }));
                }
                (false, Some(l)) if l.blocked && l.generation != m.generation => {
                    // A new life that failed a stop again: a new loss.
                    let mut lost = Lost::new(m.generation, m.held(), now);
                    lost.blocked = true;
                    self.lost.insert(name.clone(), lost);
                }
                _ => {}
            }
        }
    }

    /// Notes who is alive and what they hold; records unclean losses and returns. Returns the
    /// members that came alive (sorted).
    pub(crate) fn track_members(
        &mut self,
        now: Millis,
        view: &View,
        settled_in: bool,
        out: &mut Vec<Action>,
    ) -> Vec<String> {
        // Still alive, or back with a new generation (a restart, whose daemon stopped the old
        // processes before it started anything), is no change.
        let changes = self.peers.update(&self.me, view);
        for (name, peer) in &changes.departed {
            let left = view.members.get(name).is_some_and(|m| m.left);
            if left && peer.held.is_empty() {
                // A clean shutdown: nothing to fence, and nothing to alarm anyone about.
                out.push(Action::Event(Event::NodeLeft { node: name.clone() }));
                continue;
            }
            out.push(Action::Event(Event::NodeLost {
                node: name.clone(),
                held: peer.held.iter().cloned().collect(),
            }));
            let mut lost = Lost::new(peer.generation, peer.held.clone(), now);
            // What we knew of it was nothing (blank) or long stale: no news from it for much
            // longer than its death takes to detect (a dead node's beats and heartbeats stop
            // together), so it may have held anything when it died (found by the simulator:
            // this node's own gossip was clogged and it had been deaf to the member's state).
            let stale = |m: &Member| {
                m.quiet_since
                    .is_some_and(|t| now >= t + 4 * self.cfg.news_timeout)
            };
            // So may a member found lost just after this node was frozen: what it knows of
            // it is as old as the freeze (its silence was forgiven, see `resumed`).
            let frozen = now < self.frozen_until;
            lost.unknown = frozen || view.members.get(name).is_some_and(|m| m.blank || stale(m));
            self.lost.insert(name.clone(), lost);
        }
        // Members that are dead though we never saw them alive (they fell silent before we
        // started) and did not say goodbye: as lost as any (found by the simulator). What we
        // know of them is what peers relay, which may be stale (a peer deaf while the member
        // still took groups, the only peer that saw it restarted since), so they may hold
        // anything until fenced: Pacemaker's startup-fencing (found by the simulator: a
        // restarted node started a group that a dead member had been handed, as the one peer
        // left had been clogged then). A member already fenced has its record in view and
        // holds nothing up. Only after our start-up wait, so that peers we simply have not
        // heard yet are not taken for lost.
        if settled_in {
            for (name, m) in peers::others(view, &self.me) {
                if m.alive || m.left || self.lost.contains_key(name) {
                    continue;
                }
                if changes.departed(name) || self.seen_dead.contains(name) {
                    continue; // handled above as a transition, or already once
                }
                self.seen_dead.insert(name.clone());
                let mut lost = Lost::new(m.generation, m.held(), now);
                lost.unknown = true;
                self.lost.insert(name.clone(), lost);
            }
            // Expected members of which nothing at all is known: every peer that could tell
            // restarted too, say, while this one hung. It may run anything (found by the
            // simulator: two restarted daemons started the groups of a hung third).
            // Both sorted: one walk over the view's names, not a search for each name.
            let mut known = view.members.keys().peekable();
            for name in &self.expected {
                while known.next_if(|k| *k < name).is_some() {}
                if *name == self.me
                    || known.peek().is_some_and(|k| *k == name)
                    || self.lost.contains_key(name)
                    || self.seen_dead.contains(name)
                {
                    continue;
                }
                self.seen_dead.insert(name.clone());
                out.push(Action::Event(Event::NeverHeard { node: name.clone() }));
                // Its generation is unknown, so a record in force now may be about an
                // earlier life: only a record made from now on opens the gate.
                let old = [view.records.get(name), self.own_records.get(name)];
                let old: Vec<Record> = old.into_iter().flatten().cloned().collect();
                note_obsolete(&mut self.obsolete, name, 0, old);
                let mut lost = Lost::new(0, BTreeSet::new(), now);
                lost.unknown = true;
                self.lost.insert(name.clone(), lost);
            }
        }
        self.track_blocked(now, view, out);
        if !changes.arrived.is_empty() {
            self.quiet_until = self.quiet_until.max(now + self.cfg.startup_wait);
        }
        for n in &changes.arrived {
            self.came_alive.insert(n.clone(), now);
            self.seen_dead.remove(n);
        }
        for (n, _) in &changes.departed {
            self.came_alive.remove(n);
        }
        // Only a member that just came alive can be found lost: the others were alive at
        // the last step already, and left the lost then.
        for name in &changes.arrived {
            if let Some(lost) = self.lost.remove(name) {
                self.peers.forget_fence(name);
                out.push(Action::Event(Event::NodeBack { node: name.clone() }));
                if lost.attempts.running_since.is_some() {
                    out.push(Action::CancelFence { node: name.clone() });
                }
                // Whatever record exists now, or was kept, is about the loss that just ended.
                let kept = self.best_records.remove(name);
                let old: Vec<Record> = [view.records.get(name), self.own_records.get(name)]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .chain(kept)
                    .collect();
                let generation = view.members.get(name).map_or(0, |m| m.generation);
                note_obsolete(&mut self.obsolete, name, generation, old);
                if self.own_records.remove(name).is_some() {
                    out.push(Action::Publish {
                        key: keys::record(name),
                        value: None,
                    });
                }
            }
        }
        // What gossip still tells about a lost node counts too: claims it made where we could
        // not see them (we were partitioned away) reach us only later, with it still dead
        // (found by the simulator: such a group was recovered without fencing).
        for (name, lost) in &mut self.lost {
            let Some(m) = view.members.get(name).filter(|m| !m.alive) else {
                continue;
            };
            if m.generation > lost.generation {
                let unknown = lost.unknown && m.blank;
                *lost = Lost::new(m.generation, std::mem::take(&mut lost.held), now);
                lost.unknown = unknown;
            }
            for (g, c) in &m.claims {
                if c.holds() && !lost.held.contains(g) {
                    lost.held.insert(g.clone());
                }
            }
            // A lost successor may have taken its group over out of everyone's sight (it
            // skips the plan window): the group waits for its fencing (see `successor`).
            for g in &m.successor {
                if !lost.held.contains(g) {
                    lost.held.insert(g.clone());
                }
            }
        }
        // So does a hand-off to a lost node that nobody saw it take: it may have taken it
        // and started it out of everyone's sight, since it takes a group handed to it without
        // a plan window (found by the simulator: the target hung right after it started the
        // group, before its claim got out, and the old holder started it again).
        for (g, to) in view.members.values().flat_map(|m| &m.handoffs) {
            if let Some(lost) = self.lost.get_mut(to) {
                if !lost.held.contains(g) {
                    lost.held.insert(g.clone());
                }
            }
        }
        // A lost node's groups that now run elsewhere (here included) are no longer its own.
        // Run, not planned: a group may be planned and held at `plan` while the lost node is
        // fenced (see `step_candidate`), and stays gated until then.
        let runs = |g: &str| {
            (view.members.values()).any(|m| {
                m.alive
                    && (m.claims.get(g))
                        .is_some_and(|c| c.holds() && c.phase() == 2 && !c.leaving())
            })
        };
        let mine = view.members.get(&self.me);
        let held = |g: &str| {
            self.peers.held(g) || mine.and_then(|m| m.claims.get(g)).is_some_and(Claim::holds)
        };
        for lost in self.lost.values_mut() {
            lost.held.retain(|g| !held(g) || !runs(g));
        }
        changes.arrived
    }

    /// Grows the expected membership with the live members and recomputes quorum: this node
    /// and the live members that it has news from.
    pub(crate) fn update_quorum(
        &mut self,
        now: Millis,
        view: &View,
        arrived: &[String],
        out: &mut Vec<Action>,
    ) -> bool {
        // The live members: the others alive, and this node when the view has it.
        let me_live = view.members.contains_key(&self.me);
        let timeout = self.cfg.news_timeout;
        let mut quiet = BTreeSet::new();
        // Members that said goodbye (a clean shutdown) hold nothing and are going: they count
        // for nothing, and their silence is no alarm (it is not a one-way link).
        let mut leaving = 0;
        for (n, m) in peers::others(view, &self.me) {
            if !m.alive {
                continue;
            }
            if m.left {
                leaving += 1;
                continue;
            }
            // Known from heartbeats only (a new generation whose state has not reached us):
            // no news from it has ever arrived, so it does not count either (found by the
            // simulator running the node core: a clogged node counted a peer that had just
            // restarted, stayed quorate, and started groups that the others started too).
            if m.blank {
                leaving += 1;
                continue;
            }
            let Some(t) = m.quiet_since else {
                continue;
            };
            if now >= t + timeout {
                quiet.insert(n.clone());
            } else {
                self.wake_at(t + timeout);
            }
        }
        for n in quiet.difference(&self.no_news) {
            let ms = view.members[n].quiet_since.map_or(0, |t| now - t);
            out.push(Action::Event(Event::NoNews {
                node: n.clone(),
                ms,
            }));
        }
        for n in self.no_news.difference(&quiet) {
            if view.members.get(n).is_some_and(|m| m.alive) {
                out.push(Action::Event(Event::NewsBack { node: n.clone() }));
            }
        }
        self.no_news = quiet;
        // Members without news, those known from heartbeats only, and those leaving, do not
        // count.
        let live =
            (self.peers.len() + usize::from(me_live)).saturating_sub(self.no_news.len() + leaving);
        let before = self.expected.len();
        // This node is always expected, and every member alive at the last step was added
        // then: only those that just came alive can be new, unless the set was replaced.
        let new: Vec<&str> = if std::mem::take(&mut self.expected_replaced) {
            self.peers.names().collect()
        } else {
            arrived.iter().map(String::as_str).collect()
        };
        for n in new {
            if !self.expected.contains(n) {
                self.expected.insert(n.to_string());
            }
        }
        if self.expected.len() != before {
            out.push(Action::Members(self.expected.clone()));
        }
        let expected = self.expected.len();
        let quorate = live * 2 > expected || (self.cfg.two_node && expected == 2 && live >= 1);
        let holds = view
            .members
            .get(&self.me)
            .is_some_and(|m| m.claims.values().any(Claim::holds));
        match (self.quorate, quorate) {
            // At start nothing is lost, unless this node already holds something.
            (None, false) if !holds => {
                self.waiting = true;
                out.push(Action::Event(Event::QuorumWaiting { live, expected }))
            }
            (Some(true) | None, false) => {
                out.push(Action::Event(Event::QuorumLost { live, expected }))
            }
            (Some(false), true) => {
                out.push(Action::Event(if std::mem::take(&mut self.waiting) {
                    Event::QuorumReached { live, expected }
                } else {
                    Event::QuorumRegained { live, expected }
                }));
                // Back from the minority: look again before fencing anyone it lost meanwhile
                // (found by the simulator: it fenced majority nodes not yet seen back). And
                // what this node knows a still-lost member held dates from before it lost
                // quorum: the majority may have given it groups since, and the state that
                // says so may never reach us (it died after the heal, before anyone relayed
                // it): it may hold anything until it is fenced (found by the simulator: a
                // healed node recovered groups the dead member had started meanwhile).
                for lost in self.lost.values_mut() {
                    lost.since = self.last_now;
                    lost.unknown = true;
                }
                self.quiet_until = self.quiet_until.max(self.last_now + self.cfg.startup_wait);
            }
            _ => {}
        }
        self.quorate = Some(quorate);
        quorate
    }
}

/// The most obsolete records kept per node (see [`note_obsolete`]).
const OBSOLETE_KEPT: usize = 16;

/// Notes records about `name` that speak of a loss now over (it is alive again, at
/// `generation`; 0: unknown) as obsolete: they never open the gate again. Only those that
/// could still pass for a later loss's are kept (a later loss is of `generation` or newer;
/// an older record is ignored anyway), each once, the newest [`OBSOLETE_KEPT`]: a node that
/// comes and goes for weeks must not grow this without bound.
fn note_obsolete(
    obsolete: &mut BTreeMap<String, Vec<Record>>,
    name: &str,
    generation: u64,
    old: Vec<Record>,
) {
    let kept = obsolete.entry(name.to_string()).or_default();
    kept.retain(|r| r.generation >= generation);
    for r in old {
        if r.generation >= generation && !kept.contains(&r) {
            kept.push(r);
        }
    }
    let over = kept.len().saturating_sub(OBSOLETE_KEPT);
    kept.drain(..over);
}
