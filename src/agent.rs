//! Resource agents people already have, run unchanged: OCF agents (`ocf:PROVIDER:TYPE
//! key=value ...`, Debian's `resource-agents`), LSB init scripts (`lsb:NAME`) and systemd
//! units (`systemd:UNIT`). This module owns what a cltab command naming an agent means: how
//! it is parsed, how each action is invoked (program, arguments, environment), what the
//! exit codes mean, and the timeouts an OCF agent's `meta-data` declares. It runs nothing
//! itself: the supervisor spawns the [`Invocation`]s and hands the exits back (and
//! `mosha check` runs `validate-all`).
//!
//! The OCF conventions are the resource-agent API 1.1 and Pacemaker's practice (see
//! `shared/reference/resource-agents.md`): the action is the sole argument; parameters go
//! in `OCF_RESKEY_<name>`; `OCF_ROOT`, `OCF_RA_VERSION_MAJOR/MINOR`,
//! `OCF_RESOURCE_INSTANCE/TYPE/PROVIDER`, `OCF_RESKEY_CRM_meta_timeout` and `_interval` (ms),
//! `OCF_CHECK_LEVEL` and `HA_RSCTMP` are set; exit 0 ok, 7 not running, 2–5 hard failures,
//! 6 fatal, 190/191 degraded, 1 and anything else a soft failure (Pacemaker's recovery
//! classes: `OCF_ERR_GENERIC` is what the spec tells a monitor to return for a crashed
//! resource, which a restart in place may cure).
//!
//! LSB scripts get `start`, `stop` and `status`, with the status codes mapped as Pacemaker's
//! `services__lsb2ocf` does (0 runs; 1, 2, 3 do not; 4 unknown). They have no meta-data and no
//! validation: those actions are invocations of `/bin/true`.
//!
//! systemd units are driven through `systemctl start`, `stop` and `is-active --quiet`, not
//! through a D-Bus crate as Pacemaker does: `systemctl` is systemd's documented command-line
//! interface, it adds no dependency, and it has the semantics mosha needs: `start` and
//! `stop` queue the job with mode `replace` and wait until it is done, exiting non-zero when
//! it failed, which is what Pacemaker waits for over D-Bus (`JobRemoved`); `is-active` exits
//! 0 exactly when the unit's state is `active` (or `reloading`). What it does not do (yet):
//! Pacemaker's drop-in that sets `Restart=no`, so that systemd does not restart a unit
//! behind the cluster's back; units run by mosha must not be enabled at boot either.
//!
//! Everything is bounded: at most [`MAX_PARAMS`] parameters (cltab lines are at most
//! 4096 bytes), names of at most 253 bytes, meta-data read up to [`MAX_META_BYTES`] and
//! [`MAX_META_ACTIONS`] actions, exit reasons cut at [`MAX_EXIT_REASON`] characters.

mod meta;
mod parse;
#[cfg(test)]
mod tests;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use meta::{meta_timeouts, parse_timeout, MAX_META_ACTIONS, MAX_META_BYTES};

use crate::exit::Exit;
use parse::{full_unit, parse_lsb, parse_ocf, parse_params, parse_unit};

/// `OCF_ROOT` where Debian and most distributions install OCF agents.
pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";

/// Where LSB init scripts are.
pub const DEFAULT_LSB_DIR: &str = "/etc/init.d";

/// `HA_RSCTMP` as resource-agents' tmpfiles.d creates it; a reboot wipes it (agents keep
/// "running" markers there).
pub const DEFAULT_RSC_TMP: &str = "/run/resource-agents";

/// The timeout of an action whose agent declares none (Pacemaker's default operation
/// timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Most instance parameters one agent command may give.
pub const MAX_PARAMS: usize = 64;

/// Longest exit reason kept, in characters (Pacemaker's `EXIT_REASON_MAX_LEN`).
pub const MAX_EXIT_REASON: usize = 128;

/// The program LSB and systemd agents run for the actions they do not have (`meta-data`,
/// `validate-all`): it exits 0.
pub const TRUE_PROGRAM: &str = "/bin/true";

/// `systemctl`, looked up in `PATH` as the supervisor looks up every directly executed
/// program (Debian installs `/bin/systemctl`, others `/usr/bin/systemctl`; on a merged-/usr
/// system they are one file).
pub const SYSTEMCTL: &str = "systemctl";

/// Where `systemctl` may be, for [`Agent::installed`].
const SYSTEMCTL_PATHS: &[&str] = &["/usr/bin/systemctl", "/bin/systemctl"];

/// The directory that exists exactly when systemd is the running init (`sd_booted()`).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

/// The kind of agent a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// An OCF agent: `OCF_ROOT/resource.d/<provider>/<kind>`.
    Ocf { provider: String, kind: String },
    /// An LSB init script: `<lsb dir>/<script>` (`/etc/init.d`).
    Lsb { script: String },
    /// A systemd unit, driven through `systemctl`: the name as written; `.service` is
    /// implied when it does not end in a unit type (see [`Agent::unit`]).
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

impl Action {
    /// Returns the OCF action name: `start`, `stop`, `monitor` (a probe too), `meta-data`,
    /// `validate-all`.
    pub fn ocf_name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor | Action::Probe => "monitor",
            Action::MetaData => "meta-data",
            Action::ValidateAll => "validate-all",
        }
    }

    /// Tells whether the action asks whether the resource runs (a monitor or a probe).
    fn checks(self) -> bool {
        matches!(self, Action::Monitor | Action::Probe)
    }
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

impl Invocation {
    /// Returns the invocation of `program` with `args` and no environment of its own.
    fn plain(program: impl Into<PathBuf>, args: &[&str]) -> Invocation {
        Invocation {
            program: program.into(),
            args: args.iter().map(ToString::to_string).collect(),
            env: Vec::new(),
        }
    }
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
    /// A failure that a restart here may cure (OCF 1, 9 and any code not named elsewhere, a
    /// kill by a signal; LSB: status unknown; systemd: a failed `systemctl start` or `stop`).
    Soft(String),
    /// A failure a restart here will not cure (OCF 2–5): the group moves, and this node
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
    ///
    /// The syntax: `ocf:PROVIDER:TYPE [name=value ...]`, `lsb:SCRIPT`, `systemd:UNIT`, the
    /// parameters separated by ASCII whitespace; a value may be enclosed whole in double
    /// quotes to hold spaces (`options="-a -b"`), and there is no other quoting.
    pub fn parse(command: &str) -> Option<Result<Agent, String>> {
        let command = command.trim_matches(|c: char| c.is_ascii_whitespace());
        let (spec, rest) = command
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((command, ""));
        let class = if let Some(body) = spec.strip_prefix("ocf:") {
            parse_ocf(spec, body)
        } else if let Some(script) = spec.strip_prefix("lsb:") {
            parse_lsb(spec, script)
        } else if let Some(unit) = spec.strip_prefix("systemd:") {
            parse_unit(spec, unit)
        } else {
            return None;
        };
        Some(class.and_then(|class| {
            let params = parse_params(rest)?;
            if !params.is_empty() && !matches!(class, Class::Ocf { .. }) {
                return Err(format!(
                    "{spec} takes no parameters (only OCF agents do): '{}'",
                    rest.trim_start()
                ));
            }
            Ok(Agent { class, params })
        }))
    }

    /// Returns the agent's name as written: `ocf:heartbeat:IPaddr2`, `lsb:nginx`,
    /// `systemd:nginx.service`.
    pub fn name(&self) -> String {
        match &self.class {
            Class::Ocf { provider, kind } => format!("ocf:{provider}:{kind}"),
            Class::Lsb { script } => format!("lsb:{script}"),
            Class::Systemd { unit } => format!("systemd:{unit}"),
        }
    }

    /// Returns the full name of a systemd agent's unit (`nginx` → `nginx.service`), `None`
    /// for the other classes.
    pub fn unit(&self) -> Option<String> {
        match &self.class {
            Class::Systemd { unit } => Some(full_unit(unit)),
            _ => None,
        }
    }

    /// Returns how to run `action` in `ctx`.
    ///
    /// OCF: `OCF_ROOT/resource.d/PROVIDER/TYPE ACTION` with the OCF environment (the interval
    /// is 0 but for a monitor; `OCF_CHECK_LEVEL=0` for a monitor, a probe and
    /// `validate-all`). LSB: `LSB_DIR/SCRIPT start|stop|status`. systemd: `systemctl start
    /// UNIT`, `systemctl stop UNIT`, `systemctl is-active --quiet UNIT`. LSB scripts and
    /// units have no `meta-data` nor `validate-all`: those are `/bin/true`.
    pub fn invocation(&self, action: Action, ctx: &Context<'_>) -> Invocation {
        match &self.class {
            Class::Ocf { provider, kind } => Invocation {
                program: ctx.ocf_root.join("resource.d").join(provider).join(kind),
                args: vec![action.ocf_name().to_string()],
                env: self.ocf_env(provider, kind, action, ctx),
            },
            Class::Lsb { script } => {
                let verb = match action {
                    Action::Start => "start",
                    Action::Stop => "stop",
                    Action::Monitor | Action::Probe => "status",
                    Action::MetaData | Action::ValidateAll => {
                        return Invocation::plain(TRUE_PROGRAM, &[])
                    }
                };
                Invocation::plain(ctx.lsb_dir.join(script), &[verb])
            }
            Class::Systemd { unit } => {
                let unit = full_unit(unit);
                match action {
                    Action::Start => Invocation::plain(SYSTEMCTL, &["start", &unit]),
                    Action::Stop => Invocation::plain(SYSTEMCTL, &["stop", &unit]),
                    Action::Monitor | Action::Probe => {
                        Invocation::plain(SYSTEMCTL, &["is-active", "--quiet", &unit])
                    }
                    Action::MetaData | Action::ValidateAll => Invocation::plain(TRUE_PROGRAM, &[]),
                }
            }
        }
    }

    /// Returns the environment of an OCF action, in a fixed order.
    fn ocf_env(
        &self,
        provider: &str,
        kind: &str,
        action: Action,
        ctx: &Context<'_>,
    ) -> Vec<(String, String)> {
        let interval = if action == Action::Monitor {
            ctx.interval
        } else {
            Duration::ZERO
        };
        let mut env: Vec<(String, String)> = [
            ("OCF_ROOT", ctx.ocf_root.display().to_string()),
            ("OCF_RA_VERSION_MAJOR", "1".to_string()),
            ("OCF_RA_VERSION_MINOR", "1".to_string()),
            ("OCF_RESOURCE_INSTANCE", ctx.instance.to_string()),
            ("OCF_RESOURCE_TYPE", kind.to_string()),
            ("OCF_RESOURCE_PROVIDER", provider.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(
            self.params
                .iter()
                .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.clone())),
        );
        env.extend(
            [
                ("CRM_meta_timeout", ctx.timeout.as_millis().to_string()),
                ("CRM_meta_interval", interval.as_millis().to_string()),
                ("CRM_meta_on_node", ctx.node.to_string()),
                ("CRM_meta_name", action.ocf_name().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v)),
        );
        if action.checks() || action == Action::ValidateAll {
            env.push(("OCF_CHECK_LEVEL".to_string(), "0".to_string()));
        }
        env.push(("HA_RSCTMP".to_string(), ctx.rsc_tmp.display().to_string()));
        env
    }

    /// Returns what `exit` of `action` means for this agent's class.
    ///
    /// A kill by a signal is a soft failure whatever the class (the supervisor kills an action
    /// at its timeout). OCF: see [`Outcome`]; a `stop` that exits 7 found it stopped (Ok).
    /// LSB: `status` 0 runs, 1–3 not running, 4 unknown (soft), 150 not installed and 151
    /// insufficient privileges (hard), other codes up to 7 as OCF; `start` and `stop` codes
    /// up to 7 as OCF; codes above 7 are soft failures. systemd: `is-active` 0 runs, anything
    /// else does not; a non-zero `start` or `stop` is a soft failure.
    pub fn outcome(&self, action: Action, exit: Exit) -> Outcome {
        let code = match exit {
            Exit::Code(code) => code,
            Exit::Signal(_) => return Outcome::Soft(exit.to_string()),
        };
        match (&self.class, action) {
            (Class::Ocf { .. }, _) => ocf_outcome(action, code),
            (_, Action::MetaData | Action::ValidateAll) => match code {
                0 => Outcome::Ok,
                _ => Outcome::Soft(exit.to_string()),
            },
            (Class::Lsb { .. }, Action::Monitor | Action::Probe) => match code {
                0 => Outcome::Ok,
                1..=3 => Outcome::NotRunning,
                4 => Outcome::Soft("status unknown (4)".to_string()),
                150 => Outcome::Hard("not installed (150)".to_string()),
                151 => Outcome::Hard("insufficient privileges (151)".to_string()),
                _ => lsb_outcome(action, code),
            },
            (Class::Lsb { .. }, _) => lsb_outcome(action, code),
            (Class::Systemd { .. }, Action::Monitor | Action::Probe) => match code {
                0 => Outcome::Ok,
                _ => Outcome::NotRunning,
            },
            (Class::Systemd { .. }, _) => match code {
                0 => Outcome::Ok,
                _ => Outcome::Soft(format!("systemctl exited {code}")),
            },
        }
    }

    /// Tells whether the agent is installed in `ctx` (its program exists and is executable).
    ///
    /// OCF and LSB: the agent's file is a regular file (links followed) with an execute bit.
    /// systemd: `systemctl` exists and systemd is the running init (`/run/systemd/system` is
    /// a directory, as `sd_booted()` tells); whether the unit exists is not checked.
    pub fn installed(&self, ctx: &Context<'_>) -> bool {
        match &self.class {
            Class::Systemd { .. } => {
                SYSTEMCTL_PATHS.iter().any(|p| Path::new(p).exists())
                    && Path::new(SYSTEMD_RUNNING).is_dir()
            }
            _ => executable(&self.invocation(Action::Start, ctx).program),
        }
    }
}

/// Tells whether `p` is a regular file that someone may execute.
fn executable(p: &Path) -> bool {
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Returns what OCF exit `code` of `action` means.
fn ocf_outcome(action: Action, code: i32) -> Outcome {
    match code {
        0 | 8 => Outcome::Ok,
        7 if action.checks() => Outcome::NotRunning,
        7 if action == Action::Stop => Outcome::Ok,
        190 | 191 => Outcome::Degraded,
        2..=5 => Outcome::Hard(describe(code)),
        6 => Outcome::Fatal(describe(code)),
        _ => Outcome::Soft(describe(code)),
    }
}

/// Returns what an LSB exit `code` of `action` means when it has no meaning of its own:
/// codes up to 7 are shared with OCF, the rest are soft failures.
fn lsb_outcome(action: Action, code: i32) -> Outcome {
    match code {
        0..=7 => ocf_outcome(action, code),
        _ => Outcome::Soft(format!("exit status {code}")),
    }
}

/// Returns an OCF exit code's meaning with the code: `not configured (6)`, or `exit status
/// 42` for a code OCF does not name.
fn describe(code: i32) -> String {
    let name = match code {
        1 => "generic error",
        2 => "invalid arguments",
        3 => "unimplemented",
        4 => "insufficient privileges",
        5 => "not installed",
        6 => "not configured",
        7 => "not running",
        8 => "running promoted",
        9 => "failed promoted",
        190 => "degraded",
        191 => "degraded promoted",
        _ => return format!("exit status {code}"),
    };
    format!("{name} ({code})")
}

/// Returns the reason in an OCF agent's stderr line `ocf-exit-reason:<reason>`, if it is one.
pub fn exit_reason(line: &str) -> Option<&str> {
    line.strip_prefix("ocf-exit-reason:").map(str::trim)
}

/// Returns the last exit reason in an OCF agent's stderr (as Pacemaker takes the last), cut
/// at [`MAX_EXIT_REASON`] characters; `None` when no line gives one or only empty ones.
pub fn last_exit_reason(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .rev()
        .filter_map(exit_reason)
        .find(|r| !r.is_empty())
        .map(|r| r.chars().take(MAX_EXIT_REASON).collect())
}
