//! `mosha check`'s look at the resource agents cltab names (`ocf:`, `lsb:`, `systemd:`):
//! a command that names an agent and does not parse is an error; an agent that is not
//! installed on this node is a warning (other nodes may have it); an installed OCF agent runs
//! its `validate-all` with the entry's parameters, and a failure is an error with the
//! agent's exit reason.
//!
//! Each action runs as Pacemaker runs it: its own process group, cwd `/`, stdin from
//! `/dev/null`, the whole group killed at the timeout (the agent's meta-data `validate-all`
//! timeout, else 20 s). This module owns those runs; what commands and exits mean is
//! [`crate::agent`]'s.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::agent::{self, Action, Agent, Class, Context, Invocation};
use crate::config::Cltab;
use crate::exit::Exit;

/// Most bytes of an action's output that are kept (meta-data is read up to this much).
const MAX_OUTPUT: usize = agent::MAX_META_BYTES;

/// How often a run is polled for its exit.
const POLL: Duration = Duration::from_millis(10);

/// How long the output of an action that exited is waited for: a process it left behind may
/// hold the pipe open, and is not waited for longer.
const DRAIN: Duration = Duration::from_secs(1);

/// OCF exit code of an action the agent does not implement.
const UNIMPLEMENTED: i32 = 3;

/// Where the agents are.
#[derive(Debug, Clone)]
pub(super) struct Dirs {
    /// `OCF_ROOT`.
    pub ocf_root: PathBuf,
    /// The directory of LSB init scripts.
    pub lsb_dir: PathBuf,
}

/// Which output stream of an action is kept (the other goes to `/dev/null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// meta-data's XML.
    Stdout,
    /// The exit reason of validate-all.
    Stderr,
}

/// How one action run ended.
#[derive(Debug)]
struct Run {
    /// Its exit.
    exit: Exit,
    /// It was killed at its timeout.
    timed_out: bool,
    /// The stream kept, at most [`MAX_OUTPUT`] bytes of it (lossy UTF-8).
    output: String,
}

/// Checks every cltab entry (`file` names cltab in messages) whose command names an agent:
/// prints errors and warnings to stderr as `FILE:LINE: ...` and successes to stdout.
/// Returns whether there was an error.
pub(super) fn check(file: &str, cltab: &Cltab, dirs: &Dirs, node: &str) -> bool {
    let mut bad = false;
    let mut timeouts: BTreeMap<PathBuf, BTreeMap<String, Duration>> = BTreeMap::new();
    for entry in &cltab.entries {
        let at = format!("{file}:{}", entry.line);
        let agent = match Agent::parse(&entry.command) {
            None => continue,
            Some(Err(e)) => {
                eprintln!("{at}: {e}");
                bad = true;
                continue;
            }
            Some(Ok(agent)) => agent,
        };
        let name = agent.name();
        let ctx = Context {
            ocf_root: &dirs.ocf_root,
            lsb_dir: &dirs.lsb_dir,
            rsc_tmp: Path::new(agent::DEFAULT_RSC_TMP),
            instance: &entry.tag,
            node,
            timeout: agent::DEFAULT_TIMEOUT,
            interval: Duration::ZERO,
        };
        if !agent.installed(&ctx) {
            match agent.class {
                Class::Systemd { .. } => eprintln!(
                    "{at}: {name} cannot run here: systemd is not running on this node (warning)"
                ),
                _ => eprintln!("{at}: {name} is not installed on this node (warning)"),
            }
            continue;
        }
        if !matches!(agent.class, Class::Ocf { .. }) {
            println!("{at}: {name}: installed");
            continue;
        }
        let program = agent.invocation(Action::MetaData, &ctx).program;
        let declared = timeouts
            .entry(program)
            .or_insert_with(|| meta_data(&agent, &ctx, &at));
        let timeout = declared
            .get(Action::ValidateAll.ocf_name())
            .copied()
            .unwrap_or(agent::DEFAULT_TIMEOUT);
        let ctx = Context { timeout, ..ctx };
        let invocation = agent.invocation(Action::ValidateAll, &ctx);
        match run(&invocation, timeout, Keep::Stderr) {
            Err(e) => {
                eprintln!("{at}: {name} validate-all cannot run: {e}");
                bad = true;
            }
            Ok(r) if r.exit.success() => println!("{at}: {name} validate-all ok"),
            Ok(r) if r.exit == Exit::Code(UNIMPLEMENTED) => {
                eprintln!("{at}: {name} does not implement validate-all (warning)");
            }
            Ok(r) => {
                eprintln!(
                    "{at}: {name} validate-all failed: {}",
                    failure(&agent, &r, timeout)
                );
                bad = true;
            }
        }
    }
    bad
}

/// Returns why a validate-all run failed: the agent's exit reason, else what its exit means.
fn failure(agent: &Agent, r: &Run, timeout: Duration) -> String {
    if r.timed_out {
        return format!("timed out after {} s and was killed", timeout.as_secs_f64());
    }
    if let Some(reason) = agent::last_exit_reason(&r.output) {
        return reason;
    }
    match agent.outcome(Action::ValidateAll, r.exit) {
        agent::Outcome::Soft(s) | agent::Outcome::Hard(s) | agent::Outcome::Fatal(s) => s,
        _ => r.exit.to_string(),
    }
}

/// Runs the agent's meta-data and returns the timeouts it declares; when it cannot, says so
/// as a warning at `at` and returns none (the defaults then apply).
fn meta_data(agent: &Agent, ctx: &Context<'_>, at: &str) -> BTreeMap<String, Duration> {
    let invocation = agent.invocation(Action::MetaData, ctx);
    let why = match run(&invocation, agent::DEFAULT_TIMEOUT, Keep::Stdout) {
        Ok(r) if r.exit.success() => return agent::meta_timeouts(&r.output),
        Ok(r) => r.exit.to_string(),
        Err(e) => e.to_string(),
    };
    eprintln!(
        "{at}: {} meta-data failed ({why}): its timeouts are not known, 20 s is used (warning)",
        agent.name()
    );
    BTreeMap::new()
}

/// Runs `inv` in its own process group, cwd `/`, stdin from `/dev/null`, keeping one output
/// stream; kills the group at `timeout`.
fn run(inv: &Invocation, timeout: Duration, keep: Keep) -> io::Result<Run> {
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .process_group(0);
    match keep {
        Keep::Stdout => cmd.stdout(Stdio::piped()).stderr(Stdio::null()),
        Keep::Stderr => cmd.stdout(Stdio::null()).stderr(Stdio::piped()),
    };
    let mut child = cmd.spawn()?;
    let pipe: Box<dyn Read + Send> = match keep {
        Keep::Stdout => Box::new(child.stdout.take().expect("stdout is piped")),
        Keep::Stderr => Box::new(child.stderr.take().expect("stderr is piped")),
    };
    let (kept, done) = collect(pipe);
    let deadline = crate::deadline::after(Instant::now(), timeout);
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait()? {
            break (status, false);
        }
        if Instant::now() >= deadline {
            // Not reaped yet, so the pid still names this group.
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            break (child.wait()?, true);
        }
        std::thread::sleep(POLL);
    };
    let _ = done.recv_timeout(DRAIN);
    let output =
        String::from_utf8_lossy(&kept.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let exit = match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    };
    Ok(Run {
        exit,
        timed_out,
        output,
    })
}

/// Reads `pipe` to its end on a thread of its own, keeping its first [`MAX_OUTPUT`] bytes in
/// the returned buffer; the receiver gets a message once the pipe is closed.
fn collect(mut pipe: Box<dyn Read + Send>) -> (Arc<Mutex<Vec<u8>>>, mpsc::Receiver<()>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let buffer = Arc::clone(&kept);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    let mut b = buffer.lock().unwrap_or_else(|e| e.into_inner());
                    let room = MAX_OUTPUT.saturating_sub(b.len()).min(n);
                    b.extend_from_slice(&chunk[..room]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    (kept, rx)
}
