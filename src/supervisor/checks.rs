//! Resources and health checks in a group: a `resource` entry's agent actions (start when
//! its level is entered, stop when it is left, probe before the group first runs here,
//! monitor at its interval) and a `monitor` entry's recurring check, each run as its own
//! process group and killed at its timeout; and what their exits mean for the group
//! ([`Verdict`]): nothing, a recovery here (the group restarts at its level, under its restart
//! policy), a failure (it relocates), or a failed stop (this node may still hold it, and is
//! fenced before it starts elsewhere).
//!
//! It also owns how a slot's process is started and stopped ([`start_slot`],
//! [`stop_slot`]: SIGTERM to its process group, SIGKILL after the grace), for every mode.
//! Decisions only, like [`super::group`]: it asks the [`Os`] to spawn and signal, and is
//! handed instants and exits.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::slot::{Act, Health, Run, Slot};
use super::{AgentMeta, Exit, Options, Os, Signal, SpawnSpec};
use crate::agent::{Action, Context, Outcome};
use crate::config::Mode;

/// The level a group shows while its resources are probed (see [`crate::config::modes::PROBE`]).
pub use crate::config::modes::PROBE;

/// How long an action waits for its agent's meta-data before it runs with the defaults.
const META_WAIT: Duration = Duration::from_secs(5);

/// What a finished action or check means for its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing more than what the slot says.
    Fine,
    /// The group fails here (a hard failure: it relocates).
    Failed(String),
    /// A check failed `fall` times: restart the group here, if its policy allows.
    Recover(String),
    /// A resource's stop failed: the group is blocked here until fenced or cleaned up.
    StopFailed(String),
}

/// Takes `slot` out of its level: a process gets SIGTERM, a resource waits for its turn to
/// be stopped by its agent, a running check is killed, a monitor stops checking. A
/// resource's stop or probe that runs (or waits for its meta-data) goes on: it is what
/// leaving asks for, and killing it would read as a timeout (a failed stop, a resource
/// taken for running here). A resource that never started (or failed to) is idle again, so
/// that it starts when the group next enters its level.
pub(super) fn leave(group: &str, opts: &Options, now: Instant, os: &mut dyn Os, slot: &mut Slot) {
    let stopping = matches!(
        slot.run,
        Run::Acting { act: Act::Stop, .. } | Run::Waiting { act: Act::Stop, .. }
    );
    match (slot.entry.mode, &slot.run) {
        (
            Mode::Resource,
            Run::Acting {
                act: Act::Stop | Act::Probe,
                ..
            }
            | Run::Waiting {
                act: Act::Stop | Act::Probe,
                ..
            },
        ) => {}
        (Mode::Resource | Mode::Monitor, Run::Acting { pid, killed, .. }) => {
            if !killed {
                os.signal_group(*pid, Signal::Kill);
            }
            if let Run::Acting { killed, .. } = &mut slot.run {
                *killed = true;
            }
        }
        (Mode::Monitor, _) => slot.run = Run::Idle,
        (Mode::Resource, Run::StopFailed(_)) => {}
        (
            Mode::Resource,
            Run::Idle
            | Run::Failed(_)
            | Run::Waiting {
                act: Act::Start, ..
            },
        ) => slot.run = Run::Idle,
        (Mode::Resource, _) => slot.run = Run::Up { next: None },
        _ => stop_slot(group, opts, now, os, slot),
    }
    slot.stop_pending = slot.active && slot.entry.mode == Mode::Resource && !stopping;
    slot.leaving = matches!(slot.run, Run::Acting { .. });
    slot.fatal = false;
    slot.fails = 0;
    slot.passes = 0;
    slot.health = Health::Unknown;
}

/// A `monitor` entry reached in its level: its first check is due an interval later.
pub(super) fn schedule(now: Instant, slot: &mut Slot) {
    let next = slot.entry.params.interval.map(|i| now + i);
    slot.run = Run::Up { next };
    slot.leaving = false;
}

/// Starts `act` for `slot` (an agent's action, or a monitor's command); returns what it
/// means when it could not even start.
pub(super) fn start_action(
    group: &str,
    level: &str,
    opts: &Options,
    now: Instant,
    os: &mut dyn Os,
    slot: &mut Slot,
    act: Act,
) -> Verdict {
    if act == Act::Stop && !slot.active {
        slot.run = Run::Idle;
        return Verdict::Fine;
    }
    let params = slot.entry.params;
    let (invocation, timeout) = match &slot.agent {
        Some(agent) => {
            let meta = match os.agent_meta(agent, &opts.agents.context(&slot.entry.tag, &opts.node))
            {
                AgentMeta::Known(m) => m,
                AgentMeta::Pending if !matches!(slot.run, Run::Waiting { since, .. } if now >= since + META_WAIT) =>
                {
                    if !matches!(slot.run, Run::Waiting { .. }) {
                        slot.run = Run::Waiting { act, since: now };
                    }
                    return Verdict::Fine;
                }
                AgentMeta::Pending => Default::default(),
            };
            let (action, timeout, interval) = match act {
                Act::Start => (
                    Action::Start,
                    params.start.or(meta.get("start").copied()),
                    None,
                ),
                Act::Stop => (
                    Action::Stop,
                    params.stop.or(meta.get("stop").copied()),
                    None,
                ),
                Act::Check => (
                    Action::Monitor,
                    Some(params.timeout_or(meta.get("monitor").copied())),
                    params.interval,
                ),
                Act::Probe => (Action::Probe, meta.get("monitor").copied(), None),
            };
            let timeout = timeout.unwrap_or(crate::agent::DEFAULT_TIMEOUT);
            let mut ctx = opts.agents.context(&slot.entry.tag, &opts.node);
            ctx.timeout = timeout;
            ctx.interval = interval.unwrap_or_default();
            (Some(agent.invocation(action, &ctx)), timeout)
        }
        None if slot.entry.mode == Mode::Resource => {
            let why = format!("'{}' is no agent mosha can run", slot.entry.command);
            slot.run = Run::Failed(why.clone());
            return Verdict::Failed(why);
        }
        None => (None, params.timeout_or(None)),
    };
    if act == Act::Start {
        slot.active = true;
    }
    let spec = SpawnSpec {
        node: &opts.node,
        group,
        tag: &slot.entry.tag,
        level,
        command: &slot.entry.command,
        exec: invocation.as_ref(),
    };
    match os.spawn(&spec) {
        Ok(pid) => {
            if act != Act::Check {
                info!(group = %group, tag = %slot.entry.tag, pid, "{}: {act:?}", slot.entry.command);
            }
            slot.run = Run::Acting {
                pid,
                act,
                deadline: crate::deadline::after(now, timeout),
                killed: false,
            };
            slot.last_pgid = Some(pid);
            Verdict::Fine
        }
        Err(e) => {
            let why = format!("cannot execute {:?} ({act:?}): {e}", slot.entry.command);
            warn!(group = %group, tag = %slot.entry.tag, "{why}");
            slot.last_error = Some(why.clone());
            match act {
                Act::Start => {
                    slot.run = Run::Failed(why.clone());
                    Verdict::Fine
                }
                Act::Stop => {
                    slot.run = Run::StopFailed(why.clone());
                    Verdict::StopFailed(why)
                }
                Act::Check => {
                    slot.run = Run::Up {
                        next: next_check(now, slot),
                    };
                    Verdict::Recover(why)
                }
                Act::Probe => {
                    // Not installed here: it cannot run here either.
                    slot.run = Run::Idle;
                    Verdict::Fine
                }
            }
        }
    }
}

/// Returns when `slot`'s next check is due after one at `now`.
fn next_check(now: Instant, slot: &Slot) -> Option<Instant> {
    slot.entry
        .params
        .interval
        .map(|i| crate::deadline::after(now, i))
}

/// Handles the end of `slot`'s action or check (`exit`); returns what it means for the group.
pub(super) fn action_exited(
    group: &str,
    _opts: &Options,
    now: Instant,
    slot: &mut Slot,
    exit: Exit,
) -> Verdict {
    let Run::Acting {
        act,
        killed,
        deadline,
        ..
    } = slot.run.clone()
    else {
        return Verdict::Fine;
    };
    let tag = slot.entry.tag.clone();
    let outcome = match (&slot.agent, killed) {
        (_, true) => Outcome::Soft(format!("timed out ({act:?} killed at its deadline)")),
        (Some(agent), false) => {
            let action = match act {
                Act::Start => Action::Start,
                Act::Stop => Action::Stop,
                Act::Check => Action::Monitor,
                Act::Probe => Action::Probe,
            };
            agent.outcome(action, exit)
        }
        (None, false) if exit.success() => Outcome::Ok,
        (None, false) => Outcome::Soft(exit.to_string()),
    };
    let _ = deadline;
    let leaving = std::mem::take(&mut slot.leaving);
    match act {
        Act::Start => match outcome {
            Outcome::Ok | Outcome::Degraded => {
                info!(group = %group, tag = %tag, "started");
                slot.run = Run::Up {
                    next: next_check(now, slot),
                };
                Verdict::Fine
            }
            o => {
                slot.fatal = matches!(o, Outcome::Fatal(_));
                let why = format!("start failed: {}", words(&o));
                warn!(group = %group, tag = %tag, "{why}");
                slot.run = Run::Failed(why);
                Verdict::Fine // the group fails as its level ends (see `Group::advance`)
            }
        },
        Act::Stop => match outcome {
            Outcome::Ok | Outcome::NotRunning => {
                info!(group = %group, tag = %tag, "stopped");
                slot.active = false;
                slot.run = Run::Idle;
                Verdict::Fine
            }
            o => {
                let why = format!("stop failed: {}", words(&o));
                warn!(group = %group, tag = %tag, "{why}: this node may still hold it");
                slot.run = Run::StopFailed(why.clone());
                Verdict::StopFailed(why)
            }
        },
        Act::Probe => {
            slot.run = Run::Idle;
            match outcome {
                Outcome::NotRunning => {}
                Outcome::Ok | Outcome::Degraded => {
                    warn!(group = %group, tag = %tag, "probe: {} runs here outside mosha's control; stopping it", slot.entry.command);
                    slot.active = true;
                    slot.stop_pending = true;
                }
                o => {
                    warn!(group = %group, tag = %tag, "probe failed ({}): taking it for running here and stopping it", words(&o));
                    slot.active = true;
                    slot.stop_pending = true;
                }
            }
            Verdict::Fine
        }
        Act::Check if leaving => {
            slot.run = if slot.entry.mode == Mode::Monitor {
                Run::Idle
            } else {
                Run::Up { next: None }
            };
            Verdict::Fine
        }
        Act::Check => {
            slot.run = Run::Up {
                next: next_check(now, slot),
            };
            let rise = slot.entry.params.rise.max(1);
            match outcome {
                Outcome::Ok | Outcome::Degraded => {
                    slot.fails = 0;
                    slot.passes = slot.passes.saturating_add(1);
                    let degraded = outcome == Outcome::Degraded;
                    if slot.passes >= rise || slot.health == Health::Unknown {
                        if slot.health != Health::Passing
                            && !degraded
                            && slot.health != Health::Unknown
                        {
                            info!(group = %group, tag = %tag, "check passes again");
                        }
                        slot.health = if degraded {
                            Health::Degraded
                        } else {
                            Health::Passing
                        };
                    }
                    Verdict::Fine
                }
                o @ (Outcome::Hard(_) | Outcome::Fatal(_)) => {
                    slot.fatal = matches!(o, Outcome::Fatal(_));
                    let why = format!("check failed: {}", words(&o));
                    warn!(group = %group, tag = %tag, "{why}: no restart here cures that");
                    slot.health = Health::Failing(why.clone());
                    slot.run = Run::Failed(why.clone());
                    Verdict::Failed(why)
                }
                o => {
                    slot.passes = 0;
                    slot.fails = slot.fails.saturating_add(1);
                    let why = format!("check failed: {}", words(&o));
                    slot.health = Health::Failing(why.clone());
                    let fall = slot.entry.params.fall.max(1);
                    if slot.fails >= fall {
                        slot.fails = 0;
                        Verdict::Recover(format!("{why} ({fall} in a row)"))
                    } else {
                        warn!(group = %group, tag = %tag, "{why} ({} of {fall} in a row)", slot.fails);
                        Verdict::Fine
                    }
                }
            }
        }
    }
}

/// Says what an outcome was, in words.
fn words(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "ok".into(),
        Outcome::Degraded => "degraded".into(),
        Outcome::NotRunning => "not running".into(),
        Outcome::Soft(w) | Outcome::Hard(w) => w.clone(),
        Outcome::Fatal(w) => format!("FATAL: {w}"),
    }
}

impl super::AgentDirs {
    /// Returns the context of an action of the entry `tag` on node `node`, with no timeout
    /// or interval yet.
    pub fn context<'a>(&'a self, tag: &'a str, node: &'a str) -> Context<'a> {
        Context {
            ocf_root: &self.ocf_root,
            lsb_dir: &self.lsb_dir,
            rsc_tmp: &self.rsc_tmp,
            instance: tag,
            node,
            timeout: Duration::ZERO,
            interval: Duration::ZERO,
        }
    }
}

/// How often a stopping entry whose leader already exited is checked for surviving members.
const POLL: Duration = Duration::from_millis(50);

/// Starts `slot`'s command (a resource's agent `start`; a monitor waits for its first
/// check). A failed exec marks the entry failed (for `respawn`, it counts as an exit and is
/// retried under the throttle).
pub(super) fn start_slot(
    group: &str,
    level: &str,
    opts: &Options,
    now: Instant,
    os: &mut dyn Os,
    slot: &mut Slot,
) {
    match slot.entry.mode {
        Mode::Resource => {
            // A start that cannot even be spawned fails the slot, and the group with it.
            start_action(group, level, opts, now, os, slot, Act::Start);
            return;
        }
        Mode::Monitor => return schedule(now, slot),
        _ => {}
    }
    loop {
        let spec = SpawnSpec {
            node: &opts.node,
            group,
            tag: &slot.entry.tag,
            level,
            command: &slot.entry.command,
            exec: None,
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

/// Begins stopping `slot`'s process: SIGTERM to its process group if anything of it is
/// alive; otherwise it simply becomes idle. (A resource's agent `stop` is [`super::checks`]'.)
pub(super) fn stop_slot(
    group: &str,
    opts: &Options,
    now: Instant,
    os: &mut dyn Os,
    slot: &mut Slot,
) {
    let (pgid, leader_gone) = match slot.run {
        Run::Stopping { .. } | Run::Acting { .. } | Run::StopFailed(_) => return,
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
pub(super) fn check_stopped(os: &mut dyn Os, now: Instant, slot: &mut Slot) {
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
