//! The fencing state machine: one job per victim, one pass over the victim's levels in order.
//!
//! For each level it runs the agent with the method's action; exit 0 is that step's success,
//! anything else (a failed spawn, a non-zero exit, a signal, the method's timeout) fails the
//! level and moves on to the next one. A successful `off` is confirmed by running the same agent
//! with `action=status`: 2 (off) confirms it, 0 (on) fails the level, anything else means the
//! agent cannot tell and the `off` is accepted. A `reboot` is not confirmed: the node comes back.
//!
//! It decides and asks an [`AgentOs`] to act; it reads no clock (instants are handed in) and
//! never waits on a child (exits are handed in). Retrying a failed job is the engine's business.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{AgentOs, FenceResult};
use crate::config::fencetab::Method;
use crate::supervisor::Exit;

/// The action that is confirmed with `status` after it succeeds.
const OFF: &str = "off";
/// The action that asks an agent for the power state.
const STATUS: &str = "status";

/// One level of a job, with everything needed to run it (the method's stdin, prepared once).
#[derive(Debug, Clone)]
struct Level {
    /// The agent program (a bare name is looked up by the [`AgentOs`]).
    agent: String,
    /// The action the level performs (`off` or `reboot`).
    action: String,
    /// How long each agent run of the level may take before it is killed.
    timeout: Duration,
    /// The method's fencetab line, to name the level in messages.
    line: usize,
    /// The agent's stdin for `action`.
    act_stdin: String,
    /// The agent's stdin for `status`, used to confirm an `off`.
    status_stdin: String,
}

impl Level {
    fn new(method: &Method, victim: &str) -> Level {
        Level {
            agent: method.agent.clone(),
            action: method.action.clone(),
            timeout: method.timeout,
            line: method.line,
            act_stdin: method.stdin_for(victim, &method.action),
            status_stdin: method.stdin_for(victim, STATUS),
        }
    }

    /// Returns the level's name in messages: `fence_dummy (fencetab line 3)`.
    fn name(&self) -> String {
        format!("{} (fencetab line {})", self.agent, self.line)
    }
}

/// Which of a level's agent runs is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The method's own action (`off`, `reboot`).
    Act,
    /// `status` after a successful `off`.
    Confirm,
}

/// An agent run in flight.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    /// The agent's pid, also its process group.
    pid: u32,
    /// What the run is for.
    step: Step,
    /// When the run is killed if it has not exited.
    deadline: Instant,
}

/// How a job ended: success or not, and the detail for [`FenceResult`].
type Outcome = (bool, String);

/// One victim's fencing job.
#[derive(Debug)]
struct Job {
    /// The victim's lost generation, carried into the result.
    generation: u64,
    /// The levels, in order.
    levels: Vec<Level>,
    /// The index of the level being tried.
    current: usize,
    /// Why each level tried so far failed, in order.
    failures: Vec<String>,
    /// The agent run in flight; `None` only while moving between levels.
    attempt: Option<Attempt>,
}

impl Job {
    /// Starts the current level's action, moving on past levels whose agent cannot be spawned.
    /// Returns the job's outcome once no level is left.
    fn start_level(&mut self, now: Instant, os: &mut dyn AgentOs, victim: &str) -> Option<Outcome> {
        while let Some(level) = self.levels.get(self.current) {
            match os.spawn_agent(&level.agent, &level.act_stdin, victim) {
                Ok(pid) => {
                    info!(%victim, agent = %level.agent, pid, "fence agent started: {}", level.action);
                    self.attempt = Some(Attempt {
                        pid,
                        step: Step::Act,
                        deadline: crate::deadline::after(now, level.timeout),
                    });
                    return None;
                }
                Err(e) => {
                    let why = format!("{}: cannot run the agent: {e}", level.name());
                    self.fail_level(victim, why);
                }
            }
        }
        let n = self.levels.len();
        let all = if n == 1 {
            "the only level".to_string()
        } else {
            format!("all {n} levels")
        };
        Some((false, format!("{all} failed: {}", self.failures.join("; "))))
    }

    /// Records why the current level failed and makes the next one current.
    fn fail_level(&mut self, victim: &str, why: String) {
        warn!(%victim, "fencing level failed: {why}");
        self.failures.push(why);
        self.current += 1;
        self.attempt = None;
    }

    /// Returns a success outcome whose detail names the level that worked and, if any, the
    /// levels that failed before it.
    fn succeeded(&self, what: &str) -> Outcome {
        let mut detail = format!("{}: {what}", self.levels[self.current].name());
        if !self.failures.is_empty() {
            detail += &format!(
                " (after earlier levels failed: {})",
                self.failures.join("; ")
            );
        }
        (true, detail)
    }

    /// Handles the exit of the attempt in flight; returns the job's outcome if it ended.
    fn exited(
        &mut self,
        now: Instant,
        os: &mut dyn AgentOs,
        victim: &str,
        step: Step,
        exit: Exit,
    ) -> Option<Outcome> {
        self.attempt = None;
        let level = &self.levels[self.current];
        let name = level.name();
        match step {
            Step::Act if !exit.success() => {
                self.fail_level(victim, format!("{name}: {} failed ({exit})", level.action));
                self.start_level(now, os, victim)
            }
            Step::Act if level.action != OFF => {
                Some(self.succeeded(&format!("{} done", level.action)))
            }
            Step::Act => match os.spawn_agent(&level.agent, &level.status_stdin, victim) {
                Ok(pid) => {
                    info!(%victim, agent = %level.agent, pid, "off done; confirming with status");
                    self.attempt = Some(Attempt {
                        pid,
                        step: Step::Confirm,
                        deadline: crate::deadline::after(now, level.timeout),
                    });
                    None
                }
                Err(e) => Some(self.succeeded(&format!(
                    "off done; status could not be run ({e}), off accepted"
                ))),
            },
            Step::Confirm => match exit {
                Exit::Code(2) => Some(self.succeeded("off confirmed by status")),
                Exit::Code(0) => {
                    self.fail_level(victim, format!("{name}: agent said off but status says on"));
                    self.start_level(now, os, victim)
                }
                other => Some(self.succeeded(&format!(
                    "off done; status could not tell ({other}), off accepted"
                ))),
            },
        }
    }

    /// Kills the attempt in flight if it is past its deadline and moves on to the next level.
    /// Returns the killed pid and, if the job ended, its outcome.
    fn expire(
        &mut self,
        now: Instant,
        os: &mut dyn AgentOs,
        victim: &str,
    ) -> Option<(u32, Option<Outcome>)> {
        let attempt = self.attempt.filter(|a| a.deadline <= now)?;
        os.kill_agent(attempt.pid);
        let level = &self.levels[self.current];
        let what = match attempt.step {
            Step::Act => level.action.as_str(),
            Step::Confirm => STATUS,
        };
        let why = format!(
            "{}: {what} timed out after {}, killed",
            level.name(),
            secs(level.timeout)
        );
        self.fail_level(victim, why);
        Some((attempt.pid, self.start_level(now, os, victim)))
    }
}

/// Formats a timeout for messages: `5s`, `1.5s`.
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Runs fencing jobs, at most one per victim, driven by the daemon's loop (or by
/// [`super::fence_blocking`]).
#[derive(Debug, Default)]
pub struct Runner {
    /// The jobs in progress, by victim.
    jobs: BTreeMap<String, Job>,
    /// Agents killed at their timeout whose exit has not been handed in yet: their exits are
    /// consumed and change nothing.
    killed: BTreeSet<u32>,
    /// Jobs that ended since the last [`Runner::take_results`].
    results: Vec<FenceResult>,
}

impl Runner {
    /// Creates a runner with no jobs.
    pub fn new() -> Runner {
        Runner::default()
    }

    /// Starts fencing `victim` (whose lost generation is `generation`) through `methods`
    /// (levels, in order). A job already running for the victim is left alone. With no methods
    /// the job fails at once.
    pub fn start(
        &mut self,
        now: Instant,
        os: &mut dyn AgentOs,
        victim: &str,
        generation: u64,
        methods: &[Method],
    ) {
        if self.jobs.contains_key(victim) {
            info!(%victim, generation, "fencing already in progress; not starting another job");
            return;
        }
        info!(%victim, generation, levels = methods.len(), "fencing started");
        if methods.is_empty() {
            let detail = "no fencing method is configured".to_string();
            self.finish(victim.to_string(), generation, (false, detail));
            return;
        }
        let mut job = Job {
            generation,
            levels: methods.iter().map(|m| Level::new(m, victim)).collect(),
            current: 0,
            failures: Vec::new(),
            attempt: None,
        };
        match job.start_level(now, os, victim) {
            Some(outcome) => self.finish(victim.to_string(), generation, outcome),
            None => {
                self.jobs.insert(victim.to_string(), job);
            }
        }
    }

    /// Cancels the job for `victim`, if any: its agent's process group is killed and no result
    /// is reported (quorum was lost, or the node was acknowledged off meanwhile). Returns
    /// whether a job was cancelled.
    pub fn cancel(&mut self, os: &mut dyn AgentOs, victim: &str) -> bool {
        let Some(job) = self.jobs.remove(victim) else {
            return false;
        };
        if let Some(a) = job.attempt {
            os.kill_agent(a.pid);
            self.killed.insert(a.pid);
        }
        info!(%victim, generation = job.generation, "fencing cancelled");
        true
    }

    /// Tells whether a job for `victim` is in progress.
    pub fn busy(&self, victim: &str) -> bool {
        self.jobs.contains_key(victim)
    }

    /// Hands over a reaped exit; returns false when `pid` is not one of the runner's agents.
    /// The exit of an agent killed at its timeout is consumed and changes nothing.
    pub fn child_exited(
        &mut self,
        now: Instant,
        os: &mut dyn AgentOs,
        pid: u32,
        exit: Exit,
    ) -> bool {
        if self.killed.remove(&pid) {
            return true;
        }
        let Some((victim, job, step)) = self.jobs.iter_mut().find_map(|(v, j)| {
            let a = j.attempt.filter(|a| a.pid == pid)?;
            Some((v.clone(), j, a.step))
        }) else {
            return false;
        };
        if let Some(outcome) = job.exited(now, os, &victim, step, exit) {
            let generation = job.generation;
            self.jobs.remove(&victim);
            self.finish(victim, generation, outcome);
        }
        true
    }

    /// Kills agents past their method's timeout (SIGKILL to the process group); the attempt
    /// fails with "timed out after Ns" and the job moves on to the next level.
    pub fn tick(&mut self, now: Instant, os: &mut dyn AgentOs) {
        let mut ended = Vec::new();
        for (victim, job) in &mut self.jobs {
            if let Some((pid, outcome)) = job.expire(now, os, victim) {
                self.killed.insert(pid);
                if let Some(outcome) = outcome {
                    ended.push((victim.clone(), job.generation, outcome));
                }
            }
        }
        for (victim, generation, outcome) in ended {
            self.jobs.remove(&victim);
            self.finish(victim, generation, outcome);
        }
    }

    /// Returns the earliest instant at which [`Runner::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.jobs
            .values()
            .filter_map(|j| j.attempt.map(|a| a.deadline))
            .min()
    }

    /// Returns the pids whose exit the runner expects, sorted: running agents and agents killed
    /// at their timeout that were not reaped yet. [`super::fence_blocking`] waits on these.
    pub fn pids(&self) -> Vec<u32> {
        let running = self.jobs.values().filter_map(|j| j.attempt.map(|a| a.pid));
        let mut v: Vec<u32> = running.chain(self.killed.iter().copied()).collect();
        v.sort_unstable();
        v
    }

    /// Tells whether a job finished since the last [`Runner::take_results`].
    pub fn has_results(&self) -> bool {
        !self.results.is_empty()
    }

    /// Returns the jobs that finished since the last call, in the order they finished.
    pub fn take_results(&mut self) -> Vec<FenceResult> {
        std::mem::take(&mut self.results)
    }

    fn finish(&mut self, victim: String, generation: u64, (ok, detail): Outcome) {
        if ok {
            info!(%victim, generation, "fencing succeeded: {detail}");
        } else {
            warn!(%victim, generation, "fencing failed: {detail}");
        }
        self.results.push(FenceResult {
            victim,
            generation,
            ok,
            detail,
        });
    }
}
