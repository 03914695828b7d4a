//! One cltab entry in its group, and where it is in its life ([`Run`]): a process running
//! or stopping, a resource started or stopped by its agent, a health check between runs or
//! running, a failure. The state machines that move slots are [`super::group`] (every mode)
//! and [`super::checks`] (resources and monitors).

use std::time::{Duration, Instant};

use super::throttle::Throttle;
use super::Exit;
use crate::agent::Agent;
use crate::config::{Entry, Mode};

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
    /// A `test` entry exited non-zero, the entry's command could not be executed, a
    /// resource's start failed, or a check failed past the group's restart policy.
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
    /// A resource that started, or a monitor between checks: nothing of it runs; the next
    /// check is due at `next` (`None`: it is not checked).
    Up { next: Option<Instant> },
    /// An agent's action, or a health check, runs as `pid` (its own process group); it is
    /// killed at `deadline`.
    Acting {
        pid: u32,
        act: Act,
        deadline: Instant,
        killed: bool,
    },
    /// A resource's stop failed: this node may still hold it (see
    /// [`crate::engine::State::StopFailed`]).
    StopFailed(String),
    /// An agent's action waits for the agent's meta-data (its timeouts), read once per agent
    /// in the background; it runs with the defaults if that takes too long.
    Waiting { act: Act, since: Instant },
}

/// What an [`Run::Acting`] slot does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// A resource's `start`.
    Start,
    /// A resource's `stop`.
    Stop,
    /// A health check: a monitor's command, or a resource's `monitor`.
    Check,
    /// A resource's probe: does it run here, outside mosha's control?
    Probe,
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
            Run::Up { .. } => "up",
            Run::Acting { act, .. } => match act {
                Act::Start => "starting",
                Act::Stop => "stopping",
                Act::Check => "checking",
                Act::Probe => "probing",
            },
            Run::StopFailed(_) => "stop-failed",
            Run::Waiting { .. } => "waiting",
        }
    }
}

/// How a health check stands (monitors, and resources with an interval).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Health {
    /// Not checked yet.
    #[default]
    Unknown,
    /// The last `rise` checks passed.
    Passing,
    /// It runs, degraded (an OCF agent's 190/191).
    Degraded,
    /// The last check failed, with why.
    Failing(String),
}

impl Health {
    /// Returns the name written in clstat.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Passing => "passing",
            Health::Degraded => "degraded",
            Health::Failing(_) => "failing",
        }
    }
}

/// One cltab entry and what is running for it.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The entry as last read from cltab.
    pub entry: Entry,
    /// The agent a `resource` entry runs (parsed once).
    pub agent: Option<Agent>,
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
    /// A resource may be active here (its start ran, or a probe found it): it gets its stop
    /// when it leaves.
    pub active: bool,
    /// A resource waits for its turn to be stopped (resources stop one at a time, last
    /// first, once no process of the group is left).
    pub stop_pending: bool,
    /// A resource waits to be probed.
    pub probe_pending: bool,
    /// It was taken out of its level while a check of it ran (the check's end is no
    /// verdict).
    pub leaving: bool,
    /// Checks failed in a row, and passed in a row.
    pub fails: u32,
    /// Checks passed in a row.
    pub passes: u32,
    /// Its agent failed fatally (OCF 6, not configured): the group fails everywhere.
    pub fatal: bool,
    /// How its checks stand.
    pub health: Health,
}

impl Slot {
    /// Returns a slot for `entry`, with nothing running.
    pub fn new(entry: Entry) -> Slot {
        let agent = (entry.mode == Mode::Resource)
            .then(|| Agent::parse(&entry.command).and_then(Result::ok))
            .flatten();
        Slot {
            entry,
            agent,
            run: Run::Idle,
            restarts: 0,
            last_pgid: None,
            last_exit: None,
            last_error: None,
            throttle: Throttle::default(),
            active: false,
            stop_pending: false,
            probe_pending: false,
            leaving: false,
            fails: 0,
            passes: 0,
            fatal: false,
            health: Health::Unknown,
        }
    }

    /// Returns the pid of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        match self.run {
            Run::Running { pid, .. } | Run::Acting { pid, .. } => Some(pid),
            Run::Stopping {
                pgid,
                leader_gone: false,
                ..
            } => Some(pgid),
            _ => None,
        }
    }

    /// Tells whether a process of it may be alive (running, stopping, or an action).
    pub fn busy(&self) -> bool {
        matches!(
            self.run,
            Run::Running { .. } | Run::Stopping { .. } | Run::Acting { .. } | Run::Waiting { .. }
        )
    }

    /// Tells whether it is on its way out: a process stopping, a resource's stop or probe
    /// (or waiting for one), a killed action that has not exited yet. A group leaves STOPPING
    /// only once none of its slots is.
    pub fn stopping(&self) -> bool {
        match self.run {
            Run::Stopping { .. } => true,
            Run::Acting { act, killed, .. } => killed || matches!(act, Act::Stop | Act::Probe),
            Run::Waiting { act, .. } => matches!(act, Act::Stop | Act::Probe),
            _ => false,
        }
    }

    /// Tells whether it is checked at an interval (a monitor, or a resource with one).
    pub fn checked(&self) -> bool {
        matches!(self.entry.mode, Mode::Monitor | Mode::Resource)
            && self.entry.params.interval.is_some()
    }
}
