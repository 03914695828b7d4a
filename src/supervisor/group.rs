//! One resource group's state machine: which of its cltab entries run, in what order, and what
//! the group's state is (STARTING, DONE, PASSED, FAILED, STOPPING, STOP-FAILED).
//!
//! It decides and asks the [`Os`] to act (spawn, signal); it reads no clock (instants are handed
//! in) and never waits. The rules are Cluster::Init's, with its bugs fixed:
//! - "go to level L" first stops every running entry that is not in L (SIGTERM to the entry's
//!   whole process group, SIGKILL after the grace period); entries in both levels keep running;
//!   then the resources not in L are stopped by their agents, one at a time, last first, once
//!   no process of the group is left (a service before its mount, the mount before its
//!   address); then resources still to be probed are probed;
//! - then L's entries start in file order; `wait`, `test` and a resource's start block the next
//!   entry until they end;
//! - `off` entries never run; a failed exec is that entry's failure and touches nothing else.
//!
//! Resources and health checks (`resource`, `monitor`) are [`super::checks`]'s; a slot and its
//! states are [`super::slot`]'s.

use std::time::Instant;

use tracing::{info, warn};

use super::policy::{RestartPolicy, Restarts};
pub use super::slot::{Act, Health, Run, Slot};
use super::{Exit, Options, Os, Signal};
use crate::config::{Entry, Mode};

/// A group's overall state, as written to clstat: the engine's [`State`], the one type both
/// use (the supervisor reports it, the engine reads it in claims).
pub use crate::engine::State as GroupState;

/// One resource group: its entries and its progress towards the level it was told.
#[derive(Debug, Clone)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// The level whose entries are (being) started; during STOPPING still the previous level.
    pub level: String,
    /// The level the group was last told to go to.
    pub target: String,
    /// Overall state.
    pub state: GroupState,
    /// Current cltab entries of the group, in file order.
    pub slots: Vec<Slot>,
    /// Entries removed from cltab (or changed in command or mode) that are still being stopped.
    pub retiring: Vec<Slot>,
    /// True until the group is first told a level other than `stop`: a group that never ran
    /// has nothing to clean up, so its `stop` entries do not run.
    pub pristine: bool,
    /// An operator froze the group (`mosha freeze`, maintenance): a `respawn` entry that
    /// exits is not restarted, and nothing is checked (see [`Group::set_frozen`]).
    pub frozen: bool,
    /// How many restarts of its `respawn` entries (and recoveries after failed checks) the
    /// group gets here (hactl's options).
    pub policy: RestartPolicy,
    /// The restarts counted against the policy.
    pub restarts: Restarts,
    /// Why the group last failed here (until it is told a level again, or cleaned up).
    pub failure: Option<Failure>,
}

/// Why a group failed on this node: which entry, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The entry's tag.
    pub tag: String,
    /// The entry's mode (`test`, `respawn`...).
    pub mode: &'static str,
    /// What happened (`test exit status 3`, `cannot execute ...`, `exit status 1; restarted
    /// 3 times within 10 min`).
    pub why: String,
    /// The process of the run that failed (its stderr's first line says more), if one ran.
    pub pid: Option<u32>,
}

impl Group {
    /// Creates a group at level `stop` with nothing running.
    pub fn new(name: &str) -> Group {
        Group {
            name: name.to_string(),
            level: crate::config::hactl::STOP.to_string(),
            target: crate::config::hactl::STOP.to_string(),
            state: GroupState::Done,
            slots: Vec::new(),
            retiring: Vec::new(),
            pristine: true,
            frozen: false,
            policy: RestartPolicy::default(),
            restarts: Restarts::default(),
            failure: None,
        }
    }

    /// Replaces the group's entries with `entries` (file order). Entries whose command or mode
    /// changed, and entries no longer present, are stopped; new ones start on the next
    /// [`Group::tell`]. New resources of a group that does not run here are probed.
    pub fn set_entries(
        &mut self,
        opts: &Options,
        now: Instant,
        os: &mut dyn Os,
        entries: &[&Entry],
    ) {
        let mut old = std::mem::take(&mut self.slots);
        let stopped = crate::engine::claim::is_stopped_level(&self.target);
        for e in entries {
            let slot = match old.iter().position(|s| s.entry.tag == e.tag) {
                Some(i) if old[i].entry.same_process(e) => {
                    let mut s = old.remove(i);
                    s.entry = (*e).clone();
                    s
                }
                _ => {
                    let mut s = Slot::new((*e).clone());
                    s.probe_pending = s.agent.is_some() && stopped;
                    s
                }
            };
            self.slots.push(slot);
        }
        for mut s in old {
            info!(group = %self.name, tag = %s.entry.tag, "entry removed or changed in cltab; stopping its old process");
            super::checks::stop_slot(&self.name, opts, now, os, &mut s);
            if s.active && !s.busy() {
                // A resource goes with its agent's stop.
                let (name, level) = (&self.name, &self.level);
                super::checks::start_action(name, level, opts, now, os, &mut s, Act::Stop);
            }
            if s.busy() {
                self.retiring.push(s);
            }
        }
        if self.slots.iter().any(|s| s.probe_pending) && self.state.settled() {
            // Probing holds the group here (its claim shows `probe`) until it is done.
            self.state = GroupState::Stopping;
            self.level = super::checks::PROBE.to_string();
            self.advance(opts, now, os);
        }
    }

    /// Tells the group to go to `level`: stops what does not belong there, then starts the
    /// level's entries in file order.
    pub fn tell(&mut self, opts: &Options, now: Instant, os: &mut dyn Os, level: &str) {
        if self.pristine
            && level == crate::config::hactl::STOP
            && !self.slots.iter().any(|s| s.probe_pending || s.active)
        {
            return;
        }
        if self.state == GroupState::StopFailed {
            // Nothing moves until the failed stop succeeds (see `retry_stop`).
            self.target = level.to_string();
            return;
        }
        self.pristine = false;
        if self.target != level {
            info!(group = %self.name, from = %self.level, to = %level, "changing level");
            if crate::engine::claim::is_stopped_level(level) {
                // It leaves this node: a later start here counts its restarts anew.
                self.restarts.clear();
            } else {
                self.failure = None;
            }
        }
        self.target = level.to_string();
        let name = self.name.clone();
        for s in &mut self.slots {
            if !s.entry.in_level(level) || s.entry.mode == Mode::Off {
                super::checks::leave(&name, opts, now, os, s);
            }
        }
        self.state = GroupState::Stopping;
        self.advance(opts, now, os);
    }

    /// Handles the exit of process `pid`; returns false when it is not one of this group's.
    pub fn child_exited(
        &mut self,
        opts: &Options,
        now: Instant,
        os: &mut dyn Os,
        pid: u32,
        exit: Exit,
    ) -> bool {
        let name = self.name.clone();
        let Some(i) = (self.slots.iter())
            .chain(self.retiring.iter())
            .position(|s| s.pid() == Some(pid))
        else {
            return false;
        };
        let n = self.slots.len();
        let slot = if i < n {
            &mut self.slots[i]
        } else {
            &mut self.retiring[i - n]
        };
        slot.last_exit = Some(exit);
        match slot.run {
            Run::Stopping { .. } => {
                if let Run::Stopping { leader_gone, .. } = &mut slot.run {
                    *leader_gone = true;
                }
                super::checks::check_stopped(os, now, slot);
            }
            Run::Acting { .. } => {
                let verdict = super::checks::action_exited(&name, opts, now, slot, exit);
                if i < n {
                    self.take(opts, now, os, i, verdict);
                } else if let super::checks::Verdict::StopFailed(why) = verdict {
                    // A resource removed from cltab that would not stop.
                    let s = &self.retiring[i - n];
                    self.failure = Some(Failure {
                        tag: s.entry.tag.clone(),
                        mode: "resource",
                        why,
                        pid: s.last_pgid,
                    });
                    self.state = GroupState::StopFailed;
                }
            }
            Run::Running { since, .. } => {
                let tag = slot.entry.tag.clone();
                match slot.entry.mode {
                    Mode::Wait => {
                        if !exit.success() {
                            warn!(group = %name, tag = %tag, "wait entry ended with {exit}");
                        }
                        slot.run = Run::Done;
                    }
                    Mode::Once | Mode::Off | Mode::Monitor | Mode::Resource => slot.run = Run::Done,
                    Mode::Test => {
                        if exit.success() {
                            info!(group = %name, tag = %tag, "test passed");
                            slot.run = Run::Passed;
                        } else {
                            warn!(group = %name, tag = %tag, "test failed: {exit}");
                            slot.run = Run::Failed(exit.to_string());
                        }
                    }
                    Mode::Respawn if self.frozen => {
                        warn!(group = %name, tag = %tag, "exited with {exit}; the group is frozen: not respawning");
                        slot.run = Run::Done;
                    }
                    Mode::Respawn if !self.restarts.exit(&self.policy, now) => {
                        let why = format!(
                            "{exit}; restarted {} time(s) within {}: giving up here",
                            self.policy.max.unwrap_or(0),
                            crate::hastat::duration_words(self.policy.window.as_secs())
                        );
                        warn!(group = %name, tag = %tag, "{why}: the group fails here and goes to another node");
                        self.failure = Some(Failure {
                            tag: tag.clone(),
                            mode: slot.entry.mode.as_str(),
                            why: why.clone(),
                            pid: Some(pid),
                        });
                        slot.run = Run::Failed(why);
                        if self.state.settled() {
                            self.state = GroupState::Failed;
                        }
                    }
                    Mode::Respawn => {
                        let delay = slot.throttle.on_exit(&opts.throttle, since, now);
                        if delay.is_zero() {
                            info!(group = %name, tag = %tag, "respawning after {exit}");
                            slot.restarts += 1;
                            super::checks::start_slot(&name, &self.level, opts, now, os, slot);
                        } else {
                            warn!(group = %name, tag = %tag, "respawning too fast ({exit}); backing off for {delay:?}");
                            slot.run = Run::Backoff {
                                until: crate::deadline::after(now, delay),
                                delay,
                            };
                        }
                    }
                }
            }
            _ => {}
        }
        self.retiring.retain(Slot::busy);
        self.advance(opts, now, os);
        true
    }

    /// Acts on deadlines that have passed: SIGKILL after the grace period or an action's
    /// timeout, restarts after a back-off, checks that are due, and process groups that
    /// outlived their leader.
    pub fn tick(&mut self, opts: &Options, now: Instant, os: &mut dyn Os) {
        let name = self.name.clone();
        let level = self.level.clone();
        let checking = self.checking();
        for slot in self.slots.iter_mut().chain(self.retiring.iter_mut()) {
            match slot.run {
                Run::Stopping {
                    pgid,
                    kill_at,
                    killed: false,
                    ..
                } if now >= kill_at => {
                    warn!(group = %name, tag = %slot.entry.tag, pgid, "still running after the grace period; sending SIGKILL");
                    os.signal_group(pgid, Signal::Kill);
                    if let Run::Stopping { killed, .. } = &mut slot.run {
                        *killed = true;
                    }
                }
                Run::Stopping {
                    leader_gone: true,
                    poll_at,
                    ..
                } if now >= poll_at => super::checks::check_stopped(os, now, slot),
                Run::Backoff { until, .. } if now >= until && !self.frozen => {
                    slot.restarts += 1;
                    super::checks::start_slot(&name, &level, opts, now, os, slot);
                }
                Run::Acting {
                    pid,
                    deadline,
                    killed: false,
                    act,
                } if now >= deadline => {
                    warn!(group = %name, tag = %slot.entry.tag, pid, "{act:?} timed out; killing its process group");
                    os.signal_group(pid, Signal::Kill);
                    if let Run::Acting { killed, .. } = &mut slot.run {
                        *killed = true;
                    }
                }
                _ => {}
            }
        }
        // Checks that are due, and actions that waited for their agent's meta-data.
        for i in 0..self.slots.len() {
            let act = match self.slots[i].run {
                Run::Up { next: Some(at) } if checking && now >= at => Act::Check,
                Run::Waiting { act, .. } => act,
                _ => continue,
            };
            let s = &mut self.slots[i];
            let v = super::checks::start_action(&name, &level, opts, now, os, s, act);
            if v != super::checks::Verdict::Fine {
                self.take(opts, now, os, i, v);
            }
        }
        self.retiring.retain(Slot::busy);
        self.advance(opts, now, os);
    }

    /// Tells whether the group's checks run now: it is settled at the level it was told,
    /// and not frozen.
    fn checking(&self) -> bool {
        !self.frozen
            && self.level == self.target
            && matches!(self.state, GroupState::Done | GroupState::Passed)
    }

    /// Freezes or unfreezes the group. Frozen, its processes are left as they are: a
    /// `respawn` entry that exits stays down, and nothing is checked. Unfrozen, what still
    /// runs is kept, and the `respawn` entries of its level that exited meanwhile start
    /// again.
    pub fn set_frozen(&mut self, opts: &Options, now: Instant, os: &mut dyn Os, frozen: bool) {
        if std::mem::replace(&mut self.frozen, frozen) == frozen || frozen {
            return;
        }
        let name = self.name.clone();
        let level = self.level.clone();
        let settled = matches!(self.state, GroupState::Done | GroupState::Passed);
        for slot in &mut self.slots {
            let dead = matches!(slot.run, Run::Done | Run::Backoff { .. });
            if settled && dead && slot.entry.mode == Mode::Respawn && slot.entry.in_level(&level) {
                info!(group = %name, tag = %slot.entry.tag, "unfrozen: restarting the entry, which exited while frozen");
                slot.restarts += 1;
                super::checks::start_slot(&name, &level, opts, now, os, slot);
            }
        }
    }

    /// Returns the earliest instant at which [`Group::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let checking = self.checking();
        self.slots
            .iter()
            .chain(self.retiring.iter())
            .filter_map(|s| match s.run {
                Run::Stopping {
                    kill_at,
                    killed,
                    leader_gone,
                    poll_at,
                    ..
                } => match (killed, leader_gone) {
                    (false, true) => Some(kill_at.min(poll_at)),
                    (false, false) => Some(kill_at),
                    (true, true) => Some(poll_at),
                    (true, false) => None,
                },
                Run::Backoff { until, .. } if !self.frozen => Some(until),
                Run::Acting {
                    deadline,
                    killed: false,
                    ..
                } => Some(deadline),
                Run::Up { next: Some(at) } if checking => Some(at),
                _ => None,
            })
            .min()
    }

    /// Tells whether any process of this group may still be alive.
    pub fn has_processes(&self) -> bool {
        !self.retiring.is_empty() || self.slots.iter().any(Slot::busy)
    }

    /// Returns the process groups this group has running, for the leftover-process record.
    pub fn pgids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .chain(self.retiring.iter())
            .filter_map(|s| match s.run {
                Run::Running { pid, .. } | Run::Acting { pid, .. } => Some(pid),
                Run::Stopping { pgid, .. } => Some(pgid),
                _ => s.last_pgid,
            })
    }

    /// Moves the group forward: from STOPPING to STARTING once nothing is stopping (and the
    /// resources are stopped and probed), and through the level's entries in file order
    /// until a blocking one runs or all have started.
    pub(super) fn advance(&mut self, opts: &Options, now: Instant, os: &mut dyn Os) {
        if self.state == GroupState::Stopping {
            let name = self.name.clone();
            let level = self.level.clone();
            loop {
                if !self.retiring.is_empty() || self.slots.iter().any(Slot::stopping) {
                    return;
                }
                // Resources stop one at a time, last first; then the probes run.
                if let Some(i) = self.slots.iter().rposition(|s| s.stop_pending) {
                    self.slots[i].stop_pending = false;
                    let s = &mut self.slots[i];
                    let v = super::checks::start_action(&name, &level, opts, now, os, s, Act::Stop);
                    if v != super::checks::Verdict::Fine {
                        self.take(opts, now, os, i, v);
                    }
                    if self.state != GroupState::Stopping {
                        return; // the stop failed
                    }
                    continue;
                }
                if let Some(i) = self.slots.iter().position(|s| s.probe_pending) {
                    self.slots[i].probe_pending = false;
                    let s = &mut self.slots[i];
                    super::checks::start_action(&name, &level, opts, now, os, s, Act::Probe);
                    continue;
                }
                break;
            }
            self.level = self.target.clone();
            if self.pristine && crate::engine::claim::is_stopped_level(&self.target) {
                // Probed, and it never ran here: nothing to start, its stop entries included.
                self.state = GroupState::Done;
                return;
            }
            self.state = GroupState::Starting;
        }
        if self.state != GroupState::Starting {
            return;
        }
        let name = self.name.clone();
        let level = self.level.clone();
        for slot in &mut self.slots {
            if !slot.entry.in_level(&level) || slot.entry.mode == Mode::Off {
                continue;
            }
            if slot.run == Run::Idle {
                super::checks::start_slot(&name, &level, opts, now, os, slot);
            }
            let blocking = slot.entry.mode.blocks() && slot.busy();
            if blocking || matches!(slot.run, Run::Stopping { .. }) {
                return;
            }
        }
        let active = self
            .slots
            .iter()
            .filter(|s| s.entry.in_level(&level) && s.entry.mode != Mode::Off);
        let mut state = GroupState::Done;
        for s in active {
            match (&s.run, s.entry.mode) {
                (Run::Failed(why), _) => {
                    state = if s.fatal {
                        GroupState::Fatal
                    } else {
                        GroupState::Failed
                    };
                    self.failure = Some(Failure {
                        tag: s.entry.tag.clone(),
                        mode: s.entry.mode.as_str(),
                        why: why.clone(),
                        pid: s.last_pgid,
                    });
                    break;
                }
                (_, Mode::Test) => state = GroupState::Passed,
                _ => {}
            }
        }
        info!(group = %name, level = %level, state = state.as_str(), "level reached");
        self.state = state;
    }
}

mod recovery;

#[cfg(test)]
#[path = "group_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "checks_tests.rs"]
mod checks_tests;
