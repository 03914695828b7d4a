//! The real [`AgentOs`]: starts fence agents in their own session and process group with no
//! arguments, writes their stdin and closes it, forwards their output to the log, and kills
//! their whole process group at a timeout.
//!
//! It does not reap: inside the daemon `supervisor::process::reap` does, and
//! [`super::fence_blocking`] waits on its own agents. Output is copied by a thread per stream
//! rather than by tokio tasks, so that the same code serves the daemon and the CLI.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tracing::{info, warn};

use super::AgentOs;

/// Where bare agent names are looked up after `PATH`: fence-agents installs into `/usr/sbin`,
/// which an operator's `PATH` often lacks.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin"];

/// The operating system's processes, for fence agents.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsAgents;

/// Returns the executable that `program` names: a name with a `/` is taken as a path; a bare
/// name is looked up in `PATH`, then in `/usr/sbin` and `/sbin`.
pub fn resolve(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl AgentOs for OsAgents {
    fn spawn_agent(&mut self, program: &str, stdin: &str, target: &str) -> io::Result<u32> {
        let path = resolve(program).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{program} not found in PATH, /usr/sbin or /sbin"),
            )
        })?;
        let mut cmd = Command::new(&path);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A process group of its own (pgid = pid), for killpg; spawned without a fork of
        // the daemon (see the supervisor's `OsProcesses::spawn`).
        cmd.process_group(0);
        let mut child = cmd.spawn()?;
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            forward(program, target, "stdout", out);
        }
        if let Some(err) = child.stderr.take() {
            forward(program, target, "stderr", err);
        }
        if let Some(mut input) = child.stdin.take() {
            // A few hundred bytes into a fresh pipe (64 KiB) do not block. An agent that got
            // only part of its input must not act on it: kill it, and its exit fails the run.
            if let Err(e) = input.write_all(stdin.as_bytes()) {
                warn!(agent = %program, victim = %target, pid, "cannot write the agent's stdin: {e}; killing it");
                self.kill_agent(pid);
            }
        }
        // The child is reaped by whoever waits for its pid, never through `child`; dropping it
        // (and its stdin) closes our end of the pipe.
        drop(child);
        Ok(pid)
    }

    fn kill_agent(&mut self, pgid: u32) {
        match killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => warn!(pgid, "cannot kill the fence agent's process group: {e}"),
        }
    }
}

/// Copies an agent's output stream into the log a line at a time, on a thread of its own, until
/// the pipe closes: stdout at INFO, stderr at WARN.
fn forward(agent: &str, target: &str, stream: &'static str, pipe: impl Read + Send + 'static) {
    let (name, target) = (agent, target);
    let agent = name.to_string();
    let victim = target.to_string();
    let spawned = std::thread::Builder::new()
        .name(format!("fence-{stream}"))
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        let line = line.trim_end_matches(['\n', '\r']);
                        if line.is_empty() {
                            continue;
                        }
                        if stream == "stderr" {
                            warn!(target: "mosha::fence::agent", %agent, %victim, stream, "{line}");
                        } else {
                            info!(target: "mosha::fence::agent", %agent, %victim, stream, "{line}");
                        }
                    }
                    Err(e) => {
                        warn!(%agent, %victim, "stopped reading the agent's {stream}: {e}");
                        break;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        warn!(agent = %name, victim = %target, "cannot start a thread to read a fence agent's {stream}: {e}");
    }
}
