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
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tracing::{info, warn};

use std::collections::BTreeMap;

use super::{AgentMeta, Exit, Os, Signal, SpawnSpec};

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

/// Most bytes of a stderr line kept for [`Os::stderr_head`].
const HEAD_BYTES: usize = 200;

/// Most runs whose first stderr line is kept; past it, the oldest runs' lines are forgotten
/// (status needs the line of a run that just failed).
const MAX_HEADS: usize = 4096;

/// The first stderr line of recent runs, by pid (oldest first in the queue), filled by the
/// tasks that read children's output.
type Heads = std::sync::Arc<
    std::sync::Mutex<(
        std::collections::BTreeMap<u32, String>,
        std::collections::VecDeque<u32>,
    )>,
>;

/// The operating system's processes. Must be used inside a tokio runtime (child output is
/// read by tasks).
#[derive(Debug, Default)]
pub struct OsProcesses {
    /// The node directory, passed to children as `MOSHA_DIR` so that they can keep state there.
    pub dir: std::path::PathBuf,
    /// The first stderr line of each entry's last run.
    heads: Heads,
    /// Agents' timeouts from their meta-data, by program.
    metas: std::sync::Arc<std::sync::Mutex<BTreeMap<std::path::PathBuf, AgentMeta>>>,
}

impl OsProcesses {
    /// Returns the processes of a node whose directory is `dir`.
    pub fn new(dir: std::path::PathBuf) -> OsProcesses {
        OsProcesses {
            dir,
            heads: Heads::default(),
            metas: Default::default(),
        }
    }
}

impl Os for OsProcesses {
    fn spawn(&mut self, spec: &SpawnSpec<'_>) -> io::Result<u32> {
        let mut cmd = if let Some(exec) = spec.exec {
            let mut c = Command::new(&exec.program);
            c.args(&exec.args)
                .envs(exec.env.iter().map(|(k, v)| (k, v)));
            c.current_dir("/");
            c
        } else if needs_shell(spec.command) {
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
        // A process group of its own (pgid = pid), for killpg. Not `pre_exec(setsid)`: any
        // pre-exec closure makes std fork the daemon (copying its page tables, ~15 ms on a
        // busy machine with thousands of children), where a process group alone lets it use
        // posix_spawn (vfork-like, no copy).
        cmd.process_group(0);
        let mut child = cmd.spawn()?;
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            forward(spec, "stdout", out.into(), None);
        }
        if let Some(err) = child.stderr.take() {
            forward(spec, "stderr", err.into(), Some((self.heads.clone(), pid)));
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

    fn stderr_head(&self, pid: u32) -> Option<String> {
        let heads = self.heads.lock().ok()?;
        heads.0.get(&pid).cloned()
    }

    fn agent_meta(
        &mut self,
        agent: &crate::agent::Agent,
        ctx: &crate::agent::Context<'_>,
    ) -> AgentMeta {
        if !matches!(agent.class, crate::agent::Class::Ocf { .. }) {
            return AgentMeta::Known(BTreeMap::new());
        }
        let inv = agent.invocation(crate::agent::Action::MetaData, ctx);
        let Ok(mut metas) = self.metas.lock() else {
            return AgentMeta::Known(BTreeMap::new());
        };
        if let Some(m) = metas.get(&inv.program) {
            return m.clone();
        }
        metas.insert(inv.program.clone(), AgentMeta::Pending);
        let store = self.metas.clone();
        std::thread::spawn(move || {
            let found = read_meta(&inv);
            if let Ok(mut metas) = store.lock() {
                metas.insert(inv.program.clone(), AgentMeta::Known(found));
            }
        });
        AgentMeta::Pending
    }
}

/// Runs an agent's `meta-data` and returns the timeouts it declares (none when it cannot
/// be run). The output is read to its end, bounded; the exit status is not needed (and the
/// daemon's reaper may take it first).
fn read_meta(inv: &crate::agent::Invocation) -> BTreeMap<String, std::time::Duration> {
    use std::io::Read;
    let child = Command::new(&inv.program)
        .args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return BTreeMap::new();
    };
    let mut text = String::new();
    if let Some(out) = child.stdout.take() {
        let limit = crate::agent::MAX_META_BYTES as u64;
        let _ = out.take(limit).read_to_string(&mut text);
    }
    let _ = child.try_wait();
    crate::agent::meta_timeouts(&text)
}

/// Keeps `line` as the first stderr line of the run `pid` unless one is kept already (an
/// OCF agent's `ocf-exit-reason:` line replaces it: it says more): cut to [`HEAD_BYTES`],
/// control characters replaced.
fn keep_head(heads: &Heads, pid: u32, line: &str) {
    let Ok(mut guard) = heads.lock() else { return };
    let (heads, order) = &mut *guard;
    let reason = crate::agent::exit_reason(line).is_some();
    if line.trim().is_empty() || (heads.contains_key(&pid) && !reason) {
        return;
    }
    let mut head: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if head.len() > HEAD_BYTES {
        let mut cut = HEAD_BYTES;
        while !head.is_char_boundary(cut) {
            cut -= 1;
        }
        head.truncate(cut);
        head.push('…');
    }
    if heads.insert(pid, head.trim().to_string()).is_none() {
        order.push_back(pid);
    }
    while order.len() > MAX_HEADS {
        if let Some(old) = order.pop_front() {
            heads.remove(&old);
        }
    }
}

/// The longest piece of a child's output logged as one event, in bytes. A longer line is
/// logged in pieces of this size (each cut marked with `…`), so that a child printing without
/// newlines costs the daemon this much memory, not the whole output. Pieces rather than
/// dropping the rest: the daemon's log keeps everything the child printed (a progress bar
/// redrawn with `\r` is one long line).
pub const MAX_PIECE: usize = 4096;

/// Copies a child's output into the log, a line (or a [`MAX_PIECE`]) at a time, until the
/// pipe closes; keeps the first non-blank line in `heads` when given.
fn forward(spec: &SpawnSpec<'_>, stream: &'static str, fd: OwnedFd, heads: Option<(Heads, u32)>) {
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
        let mut pieces = Pieces::new(tokio::io::BufReader::new(rx));
        loop {
            match pieces.next().await {
                Ok(Some(line)) => {
                    if let Some((h, pid)) = &heads {
                        keep_head(h, *pid, &line);
                    }
                    info!(target: "mosha::child", %group, %tag, stream, "{line}");
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(%group, %tag, "stopped reading the child's {stream}: {e}");
                    break;
                }
            }
        }
    });
}

/// A child's output split into lines of at most [`MAX_PIECE`] bytes: a longer line comes out
/// in pieces, each ending with `…` where it was cut and the next starting with `…`.
struct Pieces<R> {
    reader: R,
    /// The bytes of the line read so far (at most [`MAX_PIECE`]).
    buf: Vec<u8>,
    /// The last piece was cut: the next one continues its line.
    continued: bool,
}

impl<R: AsyncBufRead + Unpin> Pieces<R> {
    fn new(reader: R) -> Pieces<R> {
        Pieces {
            reader,
            buf: Vec::with_capacity(MAX_PIECE),
            continued: false,
        }
    }

    /// Returns the next line or piece (lossily decoded, without its line end), or `None` at
    /// the end of the output.
    async fn next(&mut self) -> io::Result<Option<String>> {
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.take(self.buf.len(), true)));
            }
            let look = &chunk[..chunk.len().min(MAX_PIECE - self.buf.len())];
            if let Some(i) = look.iter().position(|&b| b == b'\n') {
                self.buf.extend_from_slice(&look[..i]);
                self.reader.consume(i + 1);
                return Ok(Some(self.take(self.buf.len(), true)));
            }
            let n = look.len();
            self.buf.extend_from_slice(look);
            self.reader.consume(n);
            if self.buf.len() >= MAX_PIECE {
                let cut = char_cut(&self.buf);
                return Ok(Some(self.take(cut, false)));
            }
        }
    }

    /// Takes the first `n` bytes of the buffer as a piece; `ends` tells whether they end a line.
    fn take(&mut self, n: usize, ends: bool) -> String {
        let text = String::from_utf8_lossy(&self.buf[..n]);
        let text = if ends {
            text.trim_end_matches('\r')
        } else {
            &text
        };
        let piece = format!(
            "{}{text}{}",
            if self.continued { "…" } else { "" },
            if ends { "" } else { "…" }
        );
        self.buf.drain(..n);
        self.continued = !ends;
        piece
    }
}

/// Returns where to cut `bytes` so that a UTF-8 character is not split: its length, or the
/// start of a character that its last bytes begin but do not complete.
fn char_cut(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(4) {
        let i = bytes.len() - back;
        let b = bytes[i];
        if b & 0xC0 != 0x80 {
            let len = match b {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            return if len > back && i > 0 { i } else { bytes.len() };
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::{char_cut, needs_shell, Pieces, MAX_PIECE};

    fn pieces(input: &[u8]) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut p = Pieces::new(input);
            let mut out = Vec::new();
            while let Some(piece) = p.next().await.unwrap() {
                assert!(p.buf.capacity() <= MAX_PIECE, "{}", p.buf.capacity());
                out.push(piece);
            }
            out
        })
    }

    #[test]
    fn output_is_split_into_lines_without_their_ends() {
        assert_eq!(pieces(b"a\nb\r\n\nlast"), ["a", "b", "", "last"]);
        assert!(pieces(b"").is_empty());
    }

    #[test]
    fn a_line_longer_than_a_piece_comes_out_in_marked_pieces() {
        let mut input = vec![b'x'; MAX_PIECE * 2 + 10];
        input.extend_from_slice(b"\nnext\n");
        let out = pieces(&input);
        assert_eq!(
            out.len(),
            4,
            "{:?}",
            out.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(out[0], "x".repeat(MAX_PIECE) + "…");
        assert_eq!(out[1], "…".to_string() + &"x".repeat(MAX_PIECE) + "…");
        assert_eq!(out[2], "…".to_string() + &"x".repeat(10));
        assert_eq!(out[3], "next");
    }

    #[test]
    fn pieces_are_not_cut_inside_a_character() {
        let input = "a".to_string() + &"é".repeat(MAX_PIECE);
        let out = pieces(input.as_bytes());
        assert!(out.iter().all(|p| !p.contains('\u{FFFD}')), "{out:?}");
        let joined: String = out.iter().map(|p| p.trim_matches('…')).collect();
        assert_eq!(joined, input);
        assert_eq!(char_cut("aé".as_bytes()), 3);
        assert_eq!(char_cut(&"aé".as_bytes()[..2]), 1);
        assert_eq!(char_cut(&"a😀".as_bytes()[..4]), 1);
        assert_eq!(char_cut(&[0x80, 0x80]), 2);
    }

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
