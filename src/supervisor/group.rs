//! One resource group's state machine: which of its cltab entries run, in what order, and what
//! the group's state is (STARTING, DONE, PASSED, FAILED, STOPPING).
//!
//! It decides and asks the [`Os`] to act (spawn, signal); it reads no clock (instants are handed
//! in) and never waits. The rules are Cluster::Init's, with its bugs fixed:
//! - "go to level L" first stops every running entry that is not in L (SIGTERM to the entry's
//!   whole process group, SIGKILL after the grace period); entries in both levels keep running;
//! - then L's entries start in file order; `wait` and `test` block the next entry until they exit;
//! - `off` entries never run; a failed exec is that entry's failure and touches nothing else.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::policy::{RestartPolicy, Restarts};
use super::throttle::Throttle;
use super::{Exit, Options, Os, Signal, SpawnSpec};
use crate::config::{Entry, Mode};

/// How often a stopping entry whose leader already exited is checked for surviving members.
const POLL: Duration = Duration::from_millis(50);

/// A group's overall state, as written to clstat: the engine's [`State`], the one type both
/// use (the supervisor reports it, the engine reads it in claims).
pub use crate::engine::State as GroupState;

/// Where one entry's process is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// Not started at the current level (or `off`).
    Idle,
    /// Its process is running; `pid` is also its process group id.
    Running { pid: u32, since: Instant },
    /// A `wait` entry ran to its end, or a `once` entry's process exited.
    Done,
    /// A `test` entry exited 0.
    Passed,
    /// A `test` entry exited non-zero, or the entry's command could not be executed.
    Failed(String),
    /// A `respawn` entry waits out a back-off delay before its next start.
    Backoff { until: Instant, delay: Duration },
    /// Its process group was sent SIGTERM; SIGKILL follows at `kill_at`.
    Stopping {
        pgid: u32,
        leader_gone: bool,
        kill_at: Instant,
        killed: bool,
        poll_at: Instant,
    },
}

impl Run {
    /// Returns the state's name as written in clstat.
    pub fn as_str(&self) -> &'static str {
        match self {
            Run::Idle => "idle",
            Run::Running { .. } => "running",
            Run::Done => "done",
            Run::Passed => "passed",
            Run::Failed(_) => "failed",
            Run::Backoff { .. } => "backoff",
            Run::Stopping { .. } => "stopping",
        }
    }
}

/// One cltab entry and what is running for it.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The entry as last read from cltab.
    pub entry: Entry,
    /// Where its process is.
    pub run: Run,
    /// How many times a `respawn` entry was restarted.
    pub restarts: u32,
    /// The process group of the last run, kept after the leader exits so that a stop can still
    /// reach anything it left behind in its group.
    pub last_pgid: Option<u32>,
    /// How the last run ended, for status.
    pub last_exit: Option<Exit>,
    /// The last failure to start, for status.
    pub last_error: Option<String>,
    /// Respawn bookkeeping.
    pub throttle: Throttle,
}

impl Slot {
    fn new(entry: Entry) -> Slot {
        Slot {
            entry,
            run: Run::Idle,
            restarts: 0,
            last_pgid: None,
            last_exit: None,
            last_error: None,
            throttle: Throttle::default(),
        }
    }

    /// Returns the pid of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        match self.run {
            Run::Running { pid, .. } => Some(pid),
            Run::Stopping {
                pgid,
                leader_gone: false,
                ..
            } => Some(pgid),
            _ => None,
        }
    }
}

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
    /// exits is not restarted (see [`Group::set_frozen`]).
    pub frozen: bool,
    /// How many restarts of its `respawn` entries the group gets here (hactl's options).
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
    /// [`Group::tell`].
    pub fn set_entries(
        &mut self,
        opts: &Options,
        now: Instant,
        os: &mut dyn Os,
        entries: &[&Entry],
    ) {
        let mut old = std::mem::take(&mut self.slots);
        for e in entries {
            let slot = match old.iter().position(|s| s.entry.tag == e.tag) {
                Some(i) if old[i].entry.same_process(e) => {
                    let mut s = old.remove(i);
                    s.entry = (*e).clone();
                    s
                }
                _ => Slot::new((*e).clone()),
            };
            self.slots.push(slot);
        }
        for mut s in old {
            info!(group = %self.name, tag = %s.entry.tag, "entry removed or changed in cltab; stopping its old process");
            stop_slot(&self.name, opts, now, os, &mut s);
            if matches!(s.run, Run::Stopping { .. }) {
                self.retiring.push(s);
            }
        }
    }

    /// Tells the group to go to `level`: stops what does not belong there, then starts the
    /// level's entries in file order.
    pub fn tell(&mut self, opts: &Options, now: Instant, os: &mut dyn Os, level: &str) {
        if self.pristine && level == crate::config::hactl::STOP {
            return;
        }
        self.pristine = false;
        if self.target != level {
            info!(group = %self.name, from = %self.level, to = %level, "changing level");
            if level == crate::config::hactl::STOP || level.is_empty() {
                // It leaves this node: a later start here counts its restarts anew.
                self.restarts.clear();
            } else {
                self.failure = None;
            }
        }
        self.target = level.to_string();
        for s in &mut self.slots {
            if !s.entry.in_level(level) || s.entry.mode == Mode::Off {
                stop_slot(&self.name, opts, now, os, s);
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
        let Some(slot) = self
            .slots
            .iter_mut()
            .chain(self.retiring.iter_mut())
            .find(|s| s.pid() == Some(pid))
        else {
            return false;
        };
        slot.last_exit = Some(exit);
        match slot.run {
            Run::Stopping { .. } => {
                if let Run::Stopping { leader_gone, .. } = &mut slot.run {
                    *leader_gone = true;
                }
                check_stopped(os, now, slot);
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
                    Mode::Once | Mode::Off => slot.run = Run::Done,
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
                            start_slot(&name, &self.level, opts, now, os, slot);
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
        self.retiring
            .retain(|s| matches!(s.run, Run::Stopping { .. }));
        self.advance(opts, now, os);
        true
    }

    /// Acts on deadlines that have passed: SIGKILL after the grace period, restarts after a
    /// back-off, checks for process groups that outlived their leader.
    pub fn tick(&mut self, opts: &Options, now: Instant, os: &mut dyn Os) {
        let name = self.name.clone();
        let level = self.level.clone();
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
                } if now >= poll_at => check_stopped(os, now, slot),
                Run::Backoff { until, .. } if now >= until && !self.frozen => {
                    slot.restarts += 1;
                    start_slot(&name, &level, opts, now, os, slot);
                }
                _ => {}
            }
        }
        self.retiring
            .retain(|s| matches!(s.run, Run::Stopping { .. }));
        self.advance(opts, now, os);
    }

    /// Freezes or unfreezes the group. Frozen, its processes are left as they are: a
    /// `respawn` entry that exits stays down. Unfrozen, what still runs is kept, and the
    /// `respawn` entries of its level that exited meanwhile start again.
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
                start_slot(&name, &level, opts, now, os, slot);
            }
        }
    }

    /// Returns the earliest instant at which [`Group::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
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
                _ => None,
            })
            .min()
    }

    /// Tells whether any process of this group may still be alive.
    pub fn has_processes(&self) -> bool {
        !self.retiring.is_empty()
            || self
                .slots
                .iter()
                .any(|s| matches!(s.run, Run::Running { .. } | Run::Stopping { .. }))
    }

    /// Returns the process groups this group has running, for the leftover-process record.
    pub fn pgids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .chain(self.retiring.iter())
            .filter_map(|s| match s.run {
                Run::Running { pid, .. } => Some(pid),
                Run::Stopping { pgid, .. } => Some(pgid),
                _ => s.last_pgid,
            })
    }

    /// Moves the group forward: from STOPPING to STARTING once nothing is stopping, and through
    /// the level's entries in file order until a blocking one runs or all have started.
    fn advance(&mut self, opts: &Options, now: Instant, os: &mut dyn Os) {
        if self.state == GroupState::Stopping {
            let stopping = self.retiring.len()
                + self
                    .slots
                    .iter()
                    .filter(|s| matches!(s.run, Run::Stopping { .. }))
                    .count();
            if stopping > 0 {
                return;
            }
            self.level = self.target.clone();
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
                start_slot(&name, &level, opts, now, os, slot);
            }
            let blocking = slot.entry.mode.blocks() && matches!(slot.run, Run::Running { .. });
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
                    state = GroupState::Failed;
                    self.failure = Some(Failure {
                        tag: s.entry.tag.clone(),
                        mode: s.entry.mode.as_str(),
                        why: why.clone(),
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

/// Starts `slot`'s command. A failed exec marks the entry failed (for `respawn`, it counts as
/// an exit and is retried under the throttle).
fn start_slot(
    group: &str,
    level: &str,
    opts: &Options,
    now: Instant,
    os: &mut dyn Os,
    slot: &mut Slot,
) {
    loop {
        let spec = SpawnSpec {
            node: &opts.node,
            group,
            tag: &slot.entry.tag,
            level,
            command: &slot.entry.command,
        };
        match os.spawn(&spec) {
            Ok(pid) => {
                info!(group = %group, tag = %slot.entry.tag, pid, mode = %slot.entry.mode, "started");
                slot.run = Run::Running { pid, since: now };
                slot.last_pgid = Some(pid);
                slot.last_error = None;
                return;
            }
            Err(e) => {
                let why = format!("cannot execute {:?}: {e}", slot.entry.command);
                warn!(group = %group, tag = %slot.entry.tag, "{why}");
                slot.last_error = Some(why.clone());
                if slot.entry.mode != Mode::Respawn {
                    slot.run = Run::Failed(why);
                    return;
                }
                let delay = slot.throttle.on_exit(&opts.throttle, now, now);
                if !delay.is_zero() {
                    slot.run = Run::Backoff {
                        until: crate::deadline::after(now, delay),
                        delay,
                    };
                    return;
                }
                slot.restarts += 1;
            }
        }
    }
}

/// Begins stopping `slot`: SIGTERM to its process group if anything of it is alive; otherwise
/// it simply becomes idle.
fn stop_slot(group: &str, opts: &Options, now: Instant, os: &mut dyn Os, slot: &mut Slot) {
    let (pgid, leader_gone) = match slot.run {
        Run::Stopping { .. } => return,
        Run::Running { pid, .. } => (pid, false),
        _ => match slot.last_pgid {
            Some(pgid) if os.group_alive(pgid) => (pgid, true),
            _ => {
                slot.run = Run::Idle;
                slot.last_pgid = None;
                return;
            }
        },
    };
    info!(group = %group, tag = %slot.entry.tag, pgid, "stopping: SIGTERM to the process group");
    os.signal_group(pgid, Signal::Term);
    slot.run = Run::Stopping {
        pgid,
        leader_gone,
        kill_at: crate::deadline::after(now, opts.grace),
        killed: false,
        poll_at: crate::deadline::after(now, POLL),
    };
}

/// Finishes a stop once the leader has exited and no process is left in its group.
fn check_stopped(os: &mut dyn Os, now: Instant, slot: &mut Slot) {
    if let Run::Stopping {
        pgid,
        leader_gone: true,
        poll_at,
        ..
    } = &mut slot.run
    {
        if os.group_alive(*pgid) {
            *poll_at = crate::deadline::after(now, POLL);
        } else {
            slot.run = Run::Idle;
            slot.last_pgid = None;
        }
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
