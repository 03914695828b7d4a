//! Stepping a node's daemon (mosha's node core, or the OpenMosix::HA monitor) and carrying
//! out its `Ready`: the modelled supervisor (a level change takes a modelled delay, tests can
//! be slow or fail), publications over modelled gossip, fence passes run by modelled agents.

use mosha::engine::node::{Durable, Input, Ready};
use mosha::engine::{Action, Claim, Event, State, PLAN, STOP, TEST};
use rand::RngExt;

use crate::faults::{self, Agent};
use crate::node::{fence_policy, Kind};
use crate::world::{FenceDone, Kind2, Settle, Upd, World};

impl World {
    /// Steps node `x`'s daemon now and carries out what it decides.
    pub fn step(&mut self, x: usize) {
        self.stats.steps += 1;
        let local = self.nodes[x].local(self.now);
        if self.p.kind == Kind::OpenMosix {
            self.get_latest(x);
            let node = &mut self.nodes[x];
            let om = node.om.as_mut().expect("an OpenMosix node has its monitor");
            let c = om.cycle(&node.name, node.core.view(), &mut node.rng);
            self.stats.conflicts += c.conflicts;
            let next = self.now + c.sleep_ms;
            for a in c.actions {
                if let Action::Tell { group, level } = a {
                    self.tell(x, &group, &level);
                }
            }
            // The monitor loop sleeps whatever happens.
            self.nodes[x].next_step = None;
            self.schedule_step(x, next.max(self.now + 1));
            return;
        }
        // The simulator skips a daemon's idle ticks: it was awake all along, unless it was
        // hung until now (then the core must see the gap, as the daemon's does).
        if !std::mem::take(&mut self.nodes[x].resuming) {
            self.nodes[x].core.observe(Input::Awake { now: local });
        }
        self.feed_beats(x);
        self.nodes[x].tidy(self.now);
        let ready = self.nodes[x].core.ready(local);
        // The disks never fail here.
        if ready.persist.is_some() {
            self.nodes[x].core.advance(Durable::Members, Ok(()));
        }
        if ready.versions.is_some() {
            self.nodes[x].core.advance(Durable::Versions, Ok(()));
        }
        self.adopt(x, &ready.adopt);
        self.apply(x, ready);
        let wake = (self.nodes[x].core.next_wakeup()).map(|w| self.nodes[x].global(w, self.now));
        if let Some(w) = wake {
            self.schedule_step(x, w.max(self.now + 1));
        }
    }

    /// Carries out what node `x`'s core decided.
    pub fn apply(&mut self, x: usize, ready: Ready) {
        for e in &ready.events {
            match e {
                Event::Yielding { .. } => self.stats.conflicts += 1,
                // The node ended its cooldown for the group: planning it is no violation.
                Event::CleanedUp { group, .. } => {
                    self.nodes[x].cooldown_until.remove(group);
                    // The operator stopped it by hand, and the stop is tried again.
                    let failed = self.nodes[x].claims.get(group.as_str());
                    if failed.is_some_and(|c| c.state == State::StopFailed) {
                        self.set_claim(x, group, None, true);
                    }
                }
                Event::HandingOff { group, .. } => {
                    self.handed_at.insert(group.clone(), self.now);
                }
                _ => {}
            }
            self.log(|| format!("n{x} {e:?}"));
        }
        // Beats travel with the state that reaches an observer (see `World::feed_beats`).
        let publish: Vec<_> = (ready.publish.into_iter())
            .filter(|(k, _)| k != mosha::engine::keys::BEAT)
            .collect();
        if !publish.is_empty() && self.nodes[x].ok() {
            self.publish(x, Upd::Keys(publish));
        }
        for (node, generation) in ready.fence {
            self.start_fence(x, &node, generation);
        }
        for node in ready.cancel_fence {
            if let Some(v) = self.nodes.iter().position(|n| n.name == node) {
                self.fence_runs.remove(&(x, v));
                self.log(|| format!("n{x} cancels the fencing of {node}"));
            }
        }
        for (group, level) in ready.tell {
            self.tell(x, &group, &level);
        }
    }

    /// The supervisor of node `x` is told to take `group` to `level`.
    pub fn tell(&mut self, x: usize, group: &str, level: &str) {
        self.log(|| format!("n{x} tell {group} {level}"));
        let cur = self.nodes[x].claims.get(group).cloned();
        let holds = cur.as_ref().is_some_and(Claim::holds);
        let (claim, delay) = if mosha::engine::claim::is_stopped_level(level) {
            let Some(cur) = cur.filter(|_| holds) else {
                return;
            };
            let c = Claim {
                level: cur.level.clone(),
                target: STOP.to_string(),
                state: State::Stopping,
            };
            (c, self.rng.random_range(5..20u64))
        } else {
            if level == PLAN {
                self.stats.plans += 1;
                (self.checks.on_plan)(self, x, group);
            }
            if level == TEST {
                (self.checks.on_test)(self, x, group);
            }
            let gi: usize = group[1..].parse().unwrap_or(0);
            let d = match level {
                PLAN => self.rng.random_range(5..20u64),
                TEST if self.plan.slow.contains(&x) => self.rng.random_range(1000..5000u64),
                TEST => self.rng.random_range(20..50u64),
                _ => self.rng.random_range(5..50u64),
            };
            let _ = gi;
            (
                Claim {
                    level: level.to_string(),
                    target: level.to_string(),
                    state: State::Starting,
                },
                d,
            )
        };
        let op = self.nodes[x].op.get(group).copied().unwrap_or(0) + 1;
        self.nodes[x].op.insert(group.to_string(), op);
        self.set_claim(x, group, Some(claim), true);
        let generation = self.nodes[x].generation;
        self.push(
            self.now + delay,
            Kind2::Settle(Box::new(Settle {
                node: x,
                generation,
                group: group.to_string(),
                op,
            })),
        );
    }

    /// A supervisor operation of node `x` on `group` completes.
    pub fn settle(&mut self, x: usize, generation: u64, group: String, op: u64) {
        let n = &self.nodes[x];
        if !n.up || n.generation != generation || n.op.get(&group) != Some(&op) {
            return;
        }
        let Some(cur) = n.claims.get(&group).cloned() else {
            return;
        };
        let next = if cur.leaving() && self.nodes[x].stop_fails.remove(&group) {
            // The stop failed: the group may still run here.
            self.log(|| format!("n{x} fails to stop {group}"));
            Some(Claim {
                state: State::StopFailed,
                ..cur
            })
        } else if cur.leaving() {
            None
        } else {
            let gi: usize = group[1..].parse().unwrap_or(usize::MAX);
            let state = match cur.level.as_str() {
                TEST if self.plan.failing_tests.contains(&(x, gi)) => State::Failed,
                TEST => State::Passed,
                _ => State::Done,
            };
            if state == State::Failed {
                let cooldown = (self.nodes[x].placement.1.get(&group))
                    .and_then(|p| p.cooldown)
                    .unwrap_or(self.cfg.test_cooldown);
                let until = self.now + cooldown * 998 / 1000;
                self.nodes[x].cooldown_until.insert(group.clone(), until);
            }
            Some(Claim { state, ..cur })
        };
        self.set_claim(x, &group, next, true);
    }

    /// Sets node `x`'s true claim on `group`, keeps the run-level census, publishes it.
    pub fn set_claim(&mut self, x: usize, group: &str, c: Option<Claim>, publish: bool) {
        let before = self.nodes[x].runs_at(group, "start");
        let c = c.filter(Claim::holds);
        {
            let node = &mut self.nodes[x];
            match &c {
                Some(c) => node.claims.insert(group.to_string(), c.clone()),
                None => node.claims.remove(group),
            };
            node.core
                .observe(Input::Claims(vec![(group.to_string(), c.clone())]));
        }
        let after = self.nodes[x].runs_at(group, "start");
        if before != after {
            (self.checks.census)(self, x, group, after);
        }
        if after && c.as_ref().is_some_and(|c| c.state == State::Done) {
            if let Some(t0) = self.pending_failover.remove(group) {
                self.stats.failovers.push(self.now - t0);
            }
            (self.checks.placed)(self);
        }
        // The daemon publishes its claims as its supervisor moves (a hung one does at its
        // next step, which carries them too).
        if publish && self.nodes[x].ok() {
            let ready = self.nodes[x].core.flush();
            if !ready.publish.is_empty() {
                self.publish(x, Upd::Keys(ready.publish));
            }
        }
        self.dirty(x);
    }

    /// Node `x` runs a fence pass on `victim`'s `generation` with a modelled agent.
    fn start_fence(&mut self, x: usize, victim: &str, generation: u64) {
        self.stats.fences += 1;
        let n = self.nodes.len();
        let reach = |x: usize| {
            (0..n)
                .filter(|&y| {
                    y == x
                        || (self.nodes[y].ok() && self.links.heard(x, y) && self.links.heard(y, x))
                })
                .count()
        };
        if reach(x) * 2 <= n {
            self.stats.minority_fences += 1;
        }
        if let Some(v) = self.nodes.iter().position(|m| m.name == victim) {
            if self.nodes[v].ok() && reach(v) * 2 > n {
                self.stats.false_fences += 1;
            }
            if self.fenced_lives.contains(&(v, generation)) {
                self.stats.repeat_fences += 1;
            }
        }
        let Some(v) = self.nodes.iter().position(|n| n.name == victim) else {
            return;
        };
        let agent = faults::agent(&mut self.rng, &self.p.profile, self.healed);
        let timeout = match fence_policy() {
            mosha::engine::Policy::Configured { timeout } => timeout,
            _ => 10_000,
        };
        self.log(|| format!("n{x} fences {victim} (gen {generation}) with agent {agent:?}"));
        let fgen = self.nodes[x].generation;
        let (t, ok, detail) = match agent {
            Agent::Succeed(d) => (d, true, "agent ok"),
            Agent::Fail(d) => (d, false, "agent failed"),
            Agent::Hang => (timeout, false, "agent timed out"),
            Agent::Late(d) => {
                self.push(self.now + timeout + d, Kind2::PowerOff(v));
                (timeout, false, "agent timed out")
            }
        };
        let token = self.now * 1_000_003 + self.stats.fences;
        self.fence_runs.insert((x, v), token);
        self.push(
            self.now + t,
            Kind2::FenceDone(Box::new(FenceDone {
                token,
                fencer: x,
                fgen,
                victim: v,
                vgen: generation,
                ok,
                detail,
            })),
        );
    }

    /// Hands a fence pass's outcome to the fencer's core.
    pub fn fence_result(&mut self, x: usize, victim: usize, vgen: u64, ok: bool, detail: &str) {
        let local = self.nodes[x].local(self.now);
        let vname = self.nodes[victim].name.clone();
        if self.p.kind == Kind::Ours {
            // Like the daemon's, a record's detail says when the agent ran.
            self.nodes[x].core.observe(Input::FenceDone {
                node: vname,
                generation: vgen,
                ok,
                detail: format!("{detail} at {local}"),
            });
        }
        self.dirty(x);
    }
}
