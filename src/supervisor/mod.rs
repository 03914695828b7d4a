//! The local supervisor: runs the processes of this node's resource groups at the level each
//! group is told, as Cluster::Init did, and reports their state for clstat.
//!
//! Layout:
//! - [`group`]: one group's state machine (decides; asks an [`Os`] to act);
//! - [`throttle`]: the respawn back-off rule;
//! - [`process`]: the real [`Os`]: process groups, signals, reaping, child output to the log;
//! - [`leftovers`]: the record of running process groups that lets a restarted daemon stop what
//!   a crashed one left behind.
//!
//! The supervisor never reads the clock or waits: the daemon hands it `now` and the exits it
//! reaped, and sleeps until [`Supervisor::next_deadline`].

pub mod checks;
pub mod group;
pub mod leftovers;
pub mod policy;
pub mod process;
pub mod slot;
pub mod throttle;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Cltab;
pub use group::{Failure, Group, GroupState, Run};
pub use policy::RestartPolicy;
pub use throttle::ThrottleConfig;

pub use crate::exit::Exit;

/// The signals the supervisor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: please stop.
    Term,
    /// SIGKILL: after the grace period.
    Kill,
}

/// What a child is started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnSpec<'a> {
    /// This node's name (`MOSHA_NODE`).
    pub node: &'a str,
    /// The entry's group (`MOSHA_GROUP`).
    pub group: &'a str,
    /// The entry's tag (`MOSHA_TAG`).
    pub tag: &'a str,
    /// The level being started (`MOSHA_LEVEL`).
    pub level: &'a str,
    /// The command line from cltab.
    pub command: &'a str,
    /// For a resource's action: the agent's program, arguments and environment, executed
    /// directly instead of `command`.
    pub exec: Option<&'a crate::agent::Invocation>,
}

/// An agent's timeouts from its meta-data, as far as they are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentMeta {
    /// Being read.
    Pending,
    /// Read (empty: none declared, or the agent could not tell).
    Known(BTreeMap<String, Duration>),
}

/// Where resource agents live (see [`crate::agent::Context`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDirs {
    /// `OCF_ROOT`.
    pub ocf_root: PathBuf,
    /// Where LSB init scripts are.
    pub lsb_dir: PathBuf,
    /// `HA_RSCTMP`.
    pub rsc_tmp: PathBuf,
}

impl Default for AgentDirs {
    fn default() -> AgentDirs {
        AgentDirs {
            ocf_root: crate::agent::DEFAULT_OCF_ROOT.into(),
            lsb_dir: crate::agent::DEFAULT_LSB_DIR.into(),
            rsc_tmp: crate::agent::DEFAULT_RSC_TMP.into(),
        }
    }
}

/// The operating system as the supervisor sees it. [`process::OsProcesses`] is the real one;
/// unit tests use a fake.
pub trait Os {
    /// Starts `spec.command` as the leader of a new process group; returns its pid.
    ///
    /// # Errors
    /// Fails when the command cannot be executed (no such program, not executable, ...).
    fn spawn(&mut self, spec: &SpawnSpec<'_>) -> std::io::Result<u32>;
    /// Sends `signal` to every process in process group `pgid`.
    fn signal_group(&mut self, pgid: u32, signal: Signal);
    /// Tells whether any process is left in process group `pgid`.
    fn group_alive(&mut self, pgid: u32) -> bool;
    /// Returns the first line process `pid` (a recent run of an entry) wrote to its stderr,
    /// if it wrote one (for status: why an entry failed).
    fn stderr_head(&self, _pid: u32) -> Option<String> {
        None
    }
    /// Returns `agent`'s timeouts from its meta-data (read once per agent, in the
    /// background; none by default).
    fn agent_meta(
        &mut self,
        _agent: &crate::agent::Agent,
        _ctx: &crate::agent::Context<'_>,
    ) -> AgentMeta {
        AgentMeta::Known(BTreeMap::new())
    }
}

/// The supervisor's tunables.
#[derive(Debug, Clone)]
pub struct Options {
    /// This node's name, passed to children as `MOSHA_NODE`.
    pub node: String,
    /// How long a stopping process group gets between SIGTERM and SIGKILL (default 10 s).
    pub grace: Duration,
    /// The respawn throttle.
    pub throttle: ThrottleConfig,
    /// Where resource agents live.
    pub agents: AgentDirs,
}

impl Options {
    /// Returns the defaults for node `node`.
    pub fn new(node: &str) -> Options {
        Options {
            node: node.to_string(),
            grace: Duration::from_secs(10),
            throttle: ThrottleConfig::default(),
            agents: AgentDirs::default(),
        }
    }
}

/// All of this node's groups.
#[derive(Debug)]
pub struct Supervisor {
    opts: Options,
    groups: BTreeMap<String, Group>,
}

impl Supervisor {
    /// Creates a supervisor with no groups.
    pub fn new(opts: Options) -> Supervisor {
        Supervisor {
            opts,
            groups: BTreeMap::new(),
        }
    }

    /// Returns the tunables in force.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Applies a new cltab: adds new groups, hands each group its entries (stopping those that
    /// were removed or changed) and stops groups that are no longer in the file. A group that
    /// vanished is forgotten once its processes are gone.
    pub fn configure(&mut self, now: Instant, os: &mut dyn Os, cltab: &Cltab) {
        for name in cltab.groups() {
            self.groups
                .entry(name.to_string())
                .or_insert_with(|| Group::new(name));
        }
        for (name, group) in &mut self.groups {
            let entries: Vec<_> = cltab.entries_of(name).collect();
            group.set_entries(&self.opts, now, os, &entries);
            if entries.is_empty() {
                group.tell(&self.opts, now, os, crate::config::hactl::STOP);
            }
        }
        self.forget_vanished(cltab);
    }

    /// Tells group `group` to go to `level`. Unknown groups are ignored (cltab has no entries
    /// for them, so there is nothing to run).
    pub fn tell(&mut self, now: Instant, os: &mut dyn Os, group: &str, level: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            if g.target != level || g.state.settled() {
                g.tell(&self.opts, now, os, level);
            }
        }
    }

    /// Re-tells every group its current target, so that entries added to cltab start (a
    /// frozen group is left as it is).
    pub fn retell_all(&mut self, now: Instant, os: &mut dyn Os) {
        for g in self.groups.values_mut().filter(|g| !g.frozen) {
            let target = g.target.clone();
            g.tell(&self.opts, now, os, &target);
        }
    }

    /// Freezes the groups `frozen` names and unfreezes the others (see
    /// [`Group::set_frozen`]).
    pub fn set_frozen(&mut self, now: Instant, os: &mut dyn Os, frozen: &dyn Fn(&str) -> bool) {
        for (name, g) in &mut self.groups {
            g.set_frozen(&self.opts, now, os, frozen(name));
        }
    }

    /// Sets every group's restart policy (see [`policy`]) from `policy`, given its name.
    pub fn set_policies(&mut self, policy: &dyn Fn(&str) -> RestartPolicy) {
        for (name, g) in &mut self.groups {
            g.policy = policy(name);
        }
    }

    /// Forgets `group`'s restarts and why it last failed here, and tries a failed stop
    /// again (`mosha cleanup`).
    pub fn clear_failures(&mut self, now: Instant, os: &mut dyn Os, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.clear_failures(&self.opts, now, os);
        }
    }

    /// Handles a reaped child. Exits of processes that are not entries' leaders (grandchildren
    /// re-parented to us) are ignored. Returns whether the exit settled its group at `plan`
    /// or `test`, levels the engine moves on from (the daemon then steps it without waiting
    /// for the next tick).
    pub fn child_exited(&mut self, now: Instant, os: &mut dyn Os, pid: u32, exit: Exit) -> bool {
        for g in self.groups.values_mut() {
            if g.child_exited(&self.opts, now, os, pid, exit) {
                let passing = [crate::engine::PLAN, crate::engine::TEST];
                return g.level == g.target
                    && g.state.settled()
                    && passing.contains(&g.target.as_str());
            }
        }
        false
    }

    /// Acts on every deadline that has passed at `now`.
    pub fn tick(&mut self, now: Instant, os: &mut dyn Os) {
        for g in self.groups.values_mut() {
            g.tick(&self.opts, now, os);
            g.restarts.expire(&g.policy, now);
        }
    }

    /// Returns the earliest instant at which [`Supervisor::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups.values().filter_map(Group::next_deadline).min()
    }

    /// Returns the groups, by name.
    pub fn groups(&self) -> &BTreeMap<String, Group> {
        &self.groups
    }

    /// Tells whether every group is settled at `stop` (or an empty level) with nothing running.
    pub fn all_stopped(&self) -> bool {
        self.groups.values().all(|g| {
            g.target == crate::config::hactl::STOP && g.state.settled() && !g.has_processes()
        })
    }

    /// Returns every process group that may still have processes, sorted.
    pub fn pgids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.groups.values().flat_map(Group::pgids).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Returns this node's status as the clstat document's `groups` part.
    pub fn status(&self) -> BTreeMap<String, GroupStatus> {
        self.groups
            .iter()
            .map(|(name, g)| (name.clone(), GroupStatus::of(g)))
            .collect()
    }

    /// Returns each group's claim as (name, level, target, state): what
    /// [`Supervisor::status`] says of it, without the entries (cheap at every tick).
    pub fn claims(&self) -> impl Iterator<Item = (&str, &str, &str, GroupState)> + '_ {
        (self.groups.iter())
            .map(|(n, g)| (n.as_str(), g.level.as_str(), g.target.as_str(), g.state))
    }

    fn forget_vanished(&mut self, cltab: &Cltab) {
        // Both sorted by name, walked side by side (`retain` goes in key order): a lookup of
        // each of thousands of groups at every turn showed in profiles.
        let mut names = cltab.group_names().peekable();
        self.groups.retain(|name, g| {
            while names.next_if(|n| *n < name.as_str()).is_some() {}
            names.peek() == Some(&name.as_str()) || g.has_processes() || !g.state.settled()
        });
    }

    /// Forgets groups that left cltab and have finished stopping.
    pub fn forget_stopped(&mut self, cltab: &Cltab) {
        self.forget_vanished(cltab);
    }
}

/// A group's status in clstat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStatus {
    /// The level whose entries are (being) started; during STOPPING, the previous level.
    pub level: String,
    /// The level the group was told to go to.
    pub target: String,
    /// `STARTING`, `DONE`, `PASSED`, `FAILED` or `STOPPING`.
    #[serde(serialize_with = "state_name")]
    pub state: GroupState,
    /// Every cltab entry of the group, by tag.
    pub entries: BTreeMap<String, EntryStatus>,
    /// Exits of its `respawn` entries counted against its restart policy (hactl's
    /// `max_restarts=` within `restart_window=`).
    pub restarts: u32,
    /// The most restarts allowed within the window (absent: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
}

/// Writes a group state by its name (`DONE`, ...).
fn state_name<S: serde::Serializer>(state: &GroupState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

/// An entry's status in clstat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryStatus {
    /// `idle`, `running`, `done`, `passed`, `failed`, `backoff` or `stopping`.
    pub state: &'static str,
    /// The entry's mode, as in cltab.
    pub mode: &'static str,
    /// The running process's pid (also its process group), if any.
    pub pid: Option<u32>,
    /// How many times a respawn entry was restarted.
    pub restarts: u32,
    /// The back-off delay in force, in seconds, while a respawn entry is throttled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_s: Option<f64>,
    /// How the last run ended (`exit status 1`, `killed by signal 9 (SIGKILL)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// Why the entry failed or could not be started, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How its health checks stand (`monitor` entries, and resources with an interval):
    /// `unknown`, `passing`, `degraded` or `failing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<&'static str>,
    /// Why the last check failed, while it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_error: Option<String>,
}

impl GroupStatus {
    fn of(g: &Group) -> GroupStatus {
        let entries = g
            .slots
            .iter()
            .map(|s| {
                let error = match &s.run {
                    Run::Failed(why) | Run::StopFailed(why) => Some(why.clone()),
                    _ => s.last_error.clone(),
                };
                let check_error = match &s.health {
                    group::Health::Failing(why) => Some(why.clone()),
                    _ => None,
                };
                let backoff_s = match s.run {
                    Run::Backoff { delay, .. } => Some(delay.as_secs_f64()),
                    _ => None,
                };
                let st = EntryStatus {
                    state: if s.entry.mode == crate::config::Mode::Off {
                        "off"
                    } else {
                        s.run.as_str()
                    },
                    mode: s.entry.mode.as_str(),
                    pid: s.pid(),
                    restarts: s.restarts,
                    backoff_s,
                    last_exit: s.last_exit.map(|e| e.to_string()),
                    error,
                    health: s.checked().then(|| s.health.as_str()),
                    check_error,
                };
                (s.entry.tag.clone(), st)
            })
            .collect();
        GroupStatus {
            level: g.level.clone(),
            target: g.target.clone(),
            state: g.state,
            entries,
            restarts: g.restarts.count(),
            max_restarts: g.policy.max,
        }
    }
}
