//! Fencing: runs fence agents (the `fence_*` programs of the fence-agents package, or any
//! program that speaks their stdin protocol) against a lost node, through the levels fencetab
//! configures, and reports whether the node was fenced.
//!
//! Layout:
//! - [`runner`]: the state machine that runs one job per victim through its levels (decides;
//!   asks an [`AgentOs`] to act);
//! - [`agents`]: the real [`AgentOs`]: agents in their own session, stdin written and closed,
//!   their output forwarded to the log;
//! - [`fence_blocking`]: the same runner driven to the end for `mosha fence NODE`.
//!
//! It does not decide *when* to fence or retry (the engine does), and it does not parse fencetab
//! (`crate::config::fencetab` does). Inside the daemon it never reads the clock and never waits
//! on a child: the daemon hands it `now` and the exits its one reaper collected.

pub mod agents;
pub mod runner;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tracing::warn;

use crate::config::fencetab::Method;
use crate::supervisor::Exit;
pub use agents::OsAgents;
pub use runner::Runner;

/// How often [`fence_blocking`] polls its agents for an exit.
const POLL: Duration = Duration::from_millis(10);

/// The operating system as the fence runner sees it. [`OsAgents`] is the real one; unit tests
/// use a fake.
pub trait AgentOs {
    /// Starts `program` with no arguments as the leader of a new session and process group,
    /// writes `stdin` to it and closes it; its stdout and stderr go to the log (stderr lines at
    /// WARN, with the agent and the target). Returns the pid, which is also the process group.
    ///
    /// # Errors
    /// Fails when the program cannot be found or executed.
    fn spawn_agent(&mut self, program: &str, stdin: &str, target: &str) -> std::io::Result<u32>;
    /// Sends SIGKILL to every process in the agent's process group `pgid`.
    fn kill_agent(&mut self, pgid: u32);
}

/// How a fencing job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceResult {
    /// The node that was (or could not be) fenced.
    pub victim: String,
    /// The victim's generation that was lost, as handed to [`Runner::start`], so that the
    /// engine can tell a result for an old incarnation from one for the current one.
    pub generation: u64,
    /// Tells whether some level fenced the victim.
    pub ok: bool,
    /// What happened, for the log and the operator: the level that succeeded and how it was
    /// confirmed (`fence_dummy (fencetab line 3): off confirmed by status`), or every level's
    /// reason for failing.
    pub detail: String,
}

/// Runs `methods` (levels, in order) against `victim` to the end, blocking, and returns the
/// result. Meant for `mosha fence NODE`, outside the daemon: it waits only on its own agents'
/// pids (polling every 10 ms), never on other children. The result's generation is 0.
pub fn fence_blocking(victim: &str, methods: &[Method]) -> FenceResult {
    let mut os = OsAgents;
    let mut runner = Runner::new();
    runner.start(Instant::now(), &mut os, victim, 0, methods);
    loop {
        if let Some(result) = runner.take_results().pop() {
            // Agents killed at their timeout may not have been reaped yet; SIGKILL makes the
            // wait short.
            for pid in runner.pids() {
                wait_for(pid, None);
            }
            return result;
        }
        for pid in runner.pids() {
            if let Some(exit) = wait_for(pid, Some(WaitPidFlag::WNOHANG)) {
                runner.child_exited(Instant::now(), &mut os, pid, exit);
            }
        }
        runner.tick(Instant::now(), &mut os);
        if runner.busy(victim) {
            std::thread::sleep(POLL);
        }
    }
}

/// Waits for child `pid` (without blocking under `WNOHANG`); returns its exit, or `None` while
/// it runs. A pid that is not (or no longer) our child reads as exit status -1: nobody can tell
/// how it ended.
fn wait_for(pid: u32, flags: Option<WaitPidFlag>) -> Option<Exit> {
    loop {
        match waitpid(Pid::from_raw(pid as i32), flags) {
            Ok(WaitStatus::Exited(_, code)) => return Some(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Some(Exit::Signal(sig as i32)),
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                warn!(pid, "cannot wait for fence agent: {e}");
                return Some(Exit::Code(-1));
            }
        }
    }
}
