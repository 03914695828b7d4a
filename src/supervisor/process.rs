//! The real [`Os`]: starts children in their own session and process group, signals whole
//! process groups, reaps every child (the daemon is a child subreaper), and forwards the
//! children's output to the daemon's log, one line per event, with group and tag fields.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{self, killpg};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::io::AsyncBufReadExt;
use tracing::{info, warn};

use super::{Exit, Os, Signal, SpawnSpec};

/// The characters that make a command need `/bin/sh -c` (Perl's `exec` uses the same test).
const SHELL_CHARS: &[char] = &[
    '$', '&', '*', '(', ')', '{', '}', '[', ']', '\'', '"', ';', '\\', '|', '?', '<', '>', '~',
    '`', '\n', '=', '#',
];

/// Shell builtins and keywords that have no program of their own: a command starting with one
/// runs through the shell even without shell characters (`exit 0`, `cd /srv && ...`).
const SHELL_WORDS: &[&str] = &[
    "!", ".", ":", "alias", "case", "cd", "command", "eval", "exec", "exit", "export", "for", "if",
    "read", "readonly", "return", "set", "shift", "source", "trap", "type", "ulimit", "umask",
    "unset", "until", "wait", "while", "{",
];

/// Tells whether `command` uses shell syntax and so runs through `/bin/sh -c`; a plain
/// `program arg...` is executed directly, so that a missing program is reported as a failed
/// exec instead of a shell's exit status 127.
pub fn needs_shell(command: &str) -> bool {
    command.contains(SHELL_CHARS)
        || command
            .split_whitespace()
            .next()
            .is_some_and(|w| SHELL_WORDS.contains(&w))
}

/// Makes this process a child subreaper: orphaned descendants are re-parented to it, so that
/// it can reap them and find them at shutdown.
///
/// # Errors
/// Fails when the kernel refuses `prctl(PR_SET_CHILD_SUBREAPER)`.
pub fn become_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Reaps every child that has exited, without blocking.
pub fn reap() -> Vec<(u32, Exit)> {
    let mut out = Vec::new();
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid.as_raw() as u32, Exit::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                out.push((pid.as_raw() as u32, Exit::Signal(sig as i32)))
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                warn!("waitpid failed: {e}");
                break;
            }
        }
    }
    out
}

/// The operating system's processes. Must be used inside a tokio runtime (child output is
/// read by tasks).
#[derive(Debug, Default)]
pub struct OsProcesses {
    /// The node directory, passed to children as `MOSHA_DIR` so that they can keep state there.
    pub dir: std::path::PathBuf,
}

impl Os for OsProcesses {
    fn spawn(&mut self, spec: &SpawnSpec<'_>) -> io::Result<u32> {
        let mut cmd = if needs_shell(spec.command) {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(spec.command);
            c
        } else {
            let mut words = spec.command.split_whitespace();
            let program = words
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
            let mut c = Command::new(program);
            c.args(words);
            c
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("MOSHA_NODE", spec.node)
            .env("MOSHA_GROUP", spec.group)
            .env("MOSHA_LEVEL", spec.level)
            .env("MOSHA_TAG", spec.tag)
            .env("MOSHA_DIR", &self.dir);
        // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            forward(spec, "stdout", out.into());
        }
        if let Some(err) = child.stderr.take() {
            forward(spec, "stderr", err.into());
        }
        // The child is reaped by `reap`, never through `child`.
        drop(child);
        Ok(pid)
    }

    fn signal_group(&mut self, pgid: u32, signal: Signal) {
        let sig = match signal {
            Signal::Term => signal::Signal::SIGTERM,
            Signal::Kill => signal::Signal::SIGKILL,
        };
        match killpg(Pid::from_raw(pgid as i32), sig) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => warn!(pgid, "cannot send {sig} to process group: {e}"),
        }
    }

    fn group_alive(&mut self, pgid: u32) -> bool {
        // Zombies still count as members; reap first so that they do not.
        !matches!(killpg(Pid::from_raw(pgid as i32), None), Err(Errno::ESRCH))
    }
}

/// Copies a child's output into the log, a line at a time, until the pipe closes.
fn forward(spec: &SpawnSpec<'_>, stream: &'static str, fd: OwnedFd) {
    let group = spec.group.to_string();
    let tag = spec.tag.to_string();
    let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(rx) => rx,
        Err(e) => {
            warn!(%group, %tag, "cannot read the child's {stream}: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(rx);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    info!(target: "mosha::child", %group, %tag, stream, "{line}");
                }
                Err(e) => {
                    warn!(%group, %tag, "stopped reading the child's {stream}: {e}");
                    break;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::needs_shell;

    #[test]
    fn plain_commands_are_executed_directly() {
        assert!(!needs_shell("/bin/sleep 100"));
        assert!(!needs_shell("my-daemon --foreground -v"));
    }

    #[test]
    fn shell_syntax_goes_through_sh() {
        for c in [
            "echo $HOME",
            "a && b",
            "a | b",
            "a > /tmp/x",
            "trap '' TERM; sleep 9",
            "FOO=1 prog",
            "sleep 1 # comment",
            "exit 0",
            "cd /srv",
            "exec sleep 9",
        ] {
            assert!(needs_shell(c), "{c}");
        }
    }
}
