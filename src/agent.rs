//! Resource agents people already have, run unchanged: OCF agents (`ocf:PROVIDER:TYPE
//! key=value ...`, Debian's `resource-agents`), LSB init scripts (`lsb:NAME`) and systemd
//! units (`systemd:UNIT`). This module owns what a cltab command naming an agent means: how
//! it is parsed, how each action is invoked (program, arguments, environment), what the
//! exit codes mean, and the timeouts an OCF agent's `meta-data` declares. It runs nothing
//! itself: the supervisor spawns the [`Invocation`]s and hands the exits back.
//!
//! The OCF conventions are the resource-agent API 1.1 and Pacemaker's practice (see
//! `shared/reference/resource-agents.md`): the action is the sole argument; parameters go
//! in `OCF_RESKEY_<name>`; `OCF_ROOT`, `OCF_RA_VERSION_MAJOR/MINOR`,
//! `OCF_RESOURCE_INSTANCE/TYPE/PROVIDER`, `OCF_RESKEY_CRM_meta_timeout` and `_interval` (ms),
//! `OCF_CHECK_LEVEL` and `HA_RSCTMP` are set; exit 0 ok, 7 not running, 1–5 hard failures,
//! 6 fatal, 190/191 degraded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::supervisor::Exit;

/// The kind of agent a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// An OCF agent: `OCF_ROOT/resource.d/<provider>/<kind>`.
    Ocf { provider: String, kind: String },
    /// An LSB init script: `<lsb dir>/<script>` (`/etc/init.d`).
    Lsb { script: String },
    /// A systemd unit, driven through `systemctl`.
    Systemd { unit: String },
}

/// An agent and its instance parameters, as a cltab command names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Which agent.
    pub class: Class,
    /// The instance parameters, in the order written (OCF only: `OCF_RESKEY_<name>`).
    pub params: Vec<(String, String)>,
}

/// What an agent is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Start the resource (idempotent).
    Start,
    /// Stop the resource (idempotent; a failure means the node may still hold it).
    Stop,
    /// Check a running resource, at an interval.
    Monitor,
    /// Check, once, whether the resource runs on a node that does not hold it (a `monitor`
    /// with interval 0).
    Probe,
    /// Print the agent's XML description.
    MetaData,
    /// Check the parameters (`mosha check`).
    ValidateAll,
}

/// Where agents live and what every invocation gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context<'a> {
    /// `OCF_ROOT` (`/usr/lib/ocf`).
    pub ocf_root: &'a Path,
    /// Where LSB init scripts are (`/etc/init.d`).
    pub lsb_dir: &'a Path,
    /// `HA_RSCTMP`: where agents keep state that a reboot wipes (`/run/resource-agents`).
    pub rsc_tmp: &'a Path,
    /// `OCF_RESOURCE_INSTANCE`: the entry's tag (unique in cltab).
    pub instance: &'a str,
    /// This node's name (`OCF_RESKEY_CRM_meta_on_node`).
    pub node: &'a str,
    /// The action's timeout (`OCF_RESKEY_CRM_meta_timeout`, in ms).
    pub timeout: Duration,
    /// The monitor's interval (`OCF_RESKEY_CRM_meta_interval`, in ms; 0 for a probe and for
    /// other actions).
    pub interval: Duration,
}

/// How to run one action: the program, its arguments and the environment it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program to execute (never through a shell).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables it gets on top of the daemon's `MOSHA_*` ones.
    pub env: Vec<(String, String)>,
}

/// What an action's exit means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; for a monitor or a probe: the resource runs.
    Ok,
    /// It runs, degraded (OCF 190, 191): counts as running, shown in status.
    Degraded,
    /// Monitor or probe: it does not run (OCF 7; LSB status 1–3; an inactive unit).
    NotRunning,
    /// A failure that a restart here may cure (OCF: any code not below; LSB: unknown).
    Soft(String),
    /// A failure a restart here will not cure (OCF 1–5): the group moves, and this node
    /// gets a cooldown for it.
    Hard(String),
    /// The configuration is wrong everywhere (OCF 6): the group is stopped on every node and
    /// not started again until an operator clears it.
    Fatal(String),
}

impl Agent {
    /// Parses a cltab command that names an agent. Returns `None` when `command` names no
    /// agent class (it is an ordinary command), or the error with what is wrong
    /// (`ocf:heartbeat:` without a type, a parameter that is not `key=value`, a name with
    /// characters that cannot be an environment variable or a file name...).
    pub fn parse(command: &str) -> Option<Result<Agent, String>> {
        let _ = command;
        todo!("helper")
    }

    /// Returns the agent's name as written: `ocf:heartbeat:IPaddr2`, `lsb:nginx`,
    /// `systemd:nginx.service`.
    pub fn name(&self) -> String {
        todo!("helper")
    }

    /// Returns how to run `action` in `ctx`.
    pub fn invocation(&self, action: Action, ctx: &Context<'_>) -> Invocation {
        let _ = (action, ctx);
        todo!("helper")
    }

    /// Returns what `exit` of `action` means for this agent's class.
    pub fn outcome(&self, action: Action, exit: Exit) -> Outcome {
        let _ = (action, exit);
        todo!("helper")
    }

    /// Tells whether the agent is installed in `ctx` (its program exists and is executable).
    pub fn installed(&self, ctx: &Context<'_>) -> bool {
        let _ = ctx;
        todo!("helper")
    }
}

/// Returns the timeouts an OCF agent's `meta-data` XML declares, by action name
/// (`start` → 20 s); actions without a valid timeout are left out. Never fails: a broken
/// document gives what could be read.
pub fn meta_timeouts(xml: &str) -> BTreeMap<String, Duration> {
    let _ = xml;
    todo!("helper")
}

/// Returns the reason in an OCF agent's stderr line `ocf-exit-reason:<reason>`, if it is one.
pub fn exit_reason(line: &str) -> Option<&str> {
    line.strip_prefix("ocf-exit-reason:").map(str::trim)
}
