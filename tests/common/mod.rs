//! A small harness for integration tests of `mosha run`: a daemon on a fresh temporary node
//! directory, with a node name unique to the test, helpers to read clstat and wait for it, and a
//! `Drop` that leaves no process behind (the daemon and every process carrying the node's
//! `MOSHA_NODE`).

#![allow(dead_code)]

pub mod cluster;
pub mod power;
pub mod verbs;
pub mod wire;
pub mod witness;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

/// How often `wait_for` and friends look again.
pub const POLL: Duration = Duration::from_millis(20);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Returns a node name unique to this test and process: `t-<testname>-<pid>-<counter>`.
fn unique_name() -> String {
    let thread = std::thread::current();
    let test: String = thread
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .next()
        .unwrap_or("test")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("t-{test}-{}-{n}", std::process::id())
}

/// Returns `N` random bytes from /dev/urandom.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use std::io::Read;
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes
}

/// Returns a new random cluster key: 64 hex digits from /dev/urandom.
pub fn random_key() -> String {
    random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The resident memory (VmRSS) of host process `pid`, in KiB; panics if it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Writes `text` to `path` atomically with mode 0600 (a key file as an operator makes it).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("test-tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .expect("creating a private file");
    f.write_all(text.as_bytes())
        .expect("writing a private file");
    f.sync_all().expect("syncing a private file");
    drop(f);
    std::fs::rename(&tmp, path).expect("renaming a private file");
}

/// A `mosha run` daemon on its own temporary directory.
pub struct Node {
    /// The node name (`--node`), unique to the test.
    pub name: String,
    /// The temporary directory: the node directory itself, or (see [`Node::start_in`]) the
    /// home of the log only.
    home: TempDir,
    /// The node directory (`--dir`).
    dir: PathBuf,
    /// Where the daemon's stderr goes.
    log_path: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
}

impl Node {
    /// Creates a fresh directory holding `cltab` and `hactl` and starts a daemon on it with
    /// `extra_args` after `--node` and `--dir`. Its stderr goes to `DIR/mosha.log`. `{DIR}` in
    /// the files' text stands for the directory's path (see [`Node::write_file`]).
    pub fn start(cltab: &str, hactl: &str, extra_args: &[&str]) -> Node {
        let home = tempfile::Builder::new()
            .prefix("mosha-it-")
            .tempdir()
            .expect("creating a temporary directory");
        let dir = home.path().to_path_buf();
        Node::start_on(home, dir, cltab, hactl, extra_args)
    }

    /// Like [`Node::start`], but on the existing node directory `dir` (a test's own mount,
    /// say), with the log in a temporary directory of its own, so that a full or read-only
    /// `dir` does not silence it. `dir` is not removed at the end.
    pub fn start_in(dir: &Path, cltab: &str, hactl: &str, extra_args: &[&str]) -> Node {
        let home = tempfile::Builder::new()
            .prefix("mosha-it-log-")
            .tempdir()
            .expect("creating a temporary directory");
        Node::start_on(home, dir.to_path_buf(), cltab, hactl, extra_args)
    }

    fn start_on(home: TempDir, dir: PathBuf, cltab: &str, hactl: &str, args: &[&str]) -> Node {
        let log_path = home.path().join("mosha.log");
        let mut node = Node {
            name: unique_name(),
            home,
            dir,
            log_path,
            child: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        write_private(&node.path("authkey"), &random_key());
        node.write_file("cltab", cltab);
        node.write_file("hactl", hactl);
        node.spawn();
        node
    }

    /// The daemon's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "a daemon is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("opening mosha.log");
        let out = log.try_clone().expect("cloning the log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_mosha"))
            .arg("run")
            .arg("--node")
            .arg(&self.name)
            .arg("--dir")
            .arg(&self.dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.args)
            .env_remove("RUST_LOG")
            .env_remove("MOSHA_NODE")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("starting mosha");
        self.child = Some(child);
    }

    /// Starts a new daemon on the same directory, with the same node name and arguments (the
    /// previous one must have been killed or have exited). Its log is appended to `mosha.log`.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// The node directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node directory as a string, to paste into cltab commands.
    pub fn dir_str(&self) -> String {
        self.dir.display().to_string()
    }

    /// `DIR/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `DIR/name` as a string, to paste into cltab commands.
    pub fn path_str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// The running daemon's pid.
    pub fn daemon_pid(&self) -> u32 {
        self.child.as_ref().expect("no daemon running").id()
    }

    /// Replaces `DIR/name` with `text` atomically (write to a temporary file, then rename).
    /// Every `{DIR}` in `text` is replaced with the directory's path, so that cltab commands can
    /// write witness files there.
    pub fn write_file(&self, name: &str, text: &str) {
        let text = text.replace("{DIR}", &self.dir_str());
        let tmp = self.path(&format!(".{name}.test-tmp"));
        let mut f = std::fs::File::create(&tmp).expect("creating a temporary file");
        f.write_all(text.as_bytes())
            .expect("writing a temporary file");
        f.sync_all().expect("syncing a temporary file");
        drop(f);
        std::fs::rename(&tmp, self.path(name)).expect("renaming a temporary file");
    }

    /// The content of `DIR/name`, if it exists.
    pub fn read_file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.path(name)).ok()
    }

    /// The lines of witness file `DIR/name` (empty when it does not exist).
    pub fn witness(&self, name: &str) -> Vec<String> {
        self.read_file(name)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The current clstat document, if `DIR/clstat.json` exists and parses.
    pub fn clstat(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.path("clstat.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Polls clstat every 20 ms until `pred` holds for it (only documents written by the
    /// running daemon count); returns that document. Panics on timeout with `desc`, the last
    /// clstat and the end of the log.
    pub fn wait_for(
        &self,
        desc: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let me = self.child.as_ref().map(Child::id);
        let mut last = None;
        loop {
            if let Some(doc) = self.clstat() {
                let ours = me.is_none() || doc["pid"].as_u64() == me.map(u64::from);
                if ours && pred(&doc) {
                    return doc;
                }
                last = Some(doc);
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {timeout:?} waiting for: {desc}\nlast clstat: {}",
                    last.map_or("(none)".to_string(), |d| serde_json::to_string_pretty(&d)
                        .unwrap_or_default())
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls `cond` every 20 ms until it holds; panics like [`Node::wait_for`] on timeout.
    pub fn wait_until(&self, desc: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {timeout:?} waiting for: {desc}\nlast clstat: {}",
                    self.clstat()
                        .map_or("(none)".to_string(), |d| serde_json::to_string_pretty(&d)
                            .unwrap_or_default())
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `DIR/name` exists and holds at least one full line; returns its first line.
    pub fn wait_file_line(&self, name: &str, timeout: Duration) -> String {
        let mut first = None;
        self.wait_until(&format!("{name} to be written"), timeout, || {
            first = self
                .read_file(name)
                .filter(|t| t.contains('\n'))
                .and_then(|t| t.lines().next().map(str::to_string));
            first.is_some()
        });
        first.unwrap_or_default()
    }

    /// Waits for `DIR/name` to hold a pid on its first line and returns it.
    pub fn wait_pid_file(&self, name: &str, timeout: Duration) -> u32 {
        let line = self.wait_file_line(name, timeout);
        line.trim()
            .parse()
            .unwrap_or_else(|_| self.fail(&format!("{name} holds no pid: {line:?}")))
    }

    /// Panics with `msg` and the end of the daemon's log.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n--- {} (last 60 lines) ---\n{}\n---",
            self.log_path.display(),
            self.log_tail(60)
        );
    }

    /// Sends SIGTERM to the daemon and waits up to `timeout` for it to exit.
    pub fn sigterm_and_wait(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.daemon_pid();
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("sending SIGTERM to mosha");
        let deadline = Instant::now() + timeout;
        loop {
            let status = self
                .child
                .as_mut()
                .expect("no daemon running")
                .try_wait()
                .expect("waiting for mosha");
            if let Some(status) = status {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("mosha did not exit within {timeout:?} of SIGTERM"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILLs the daemon only (its children live on in their own sessions) and reaps it.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Tells whether `pid` is a live (non-zombie) process of this node.
    pub fn alive(&self, pid: u32) -> bool {
        is_process_of_node(pid, &self.name)
    }

    /// Every live process carrying this node's `MOSHA_NODE`.
    pub fn processes(&self) -> Vec<u32> {
        processes_of_node(&self.name)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} of node {} (last 40 lines) ---\n{}\n---",
                self.log_path.display(),
                self.name,
                self.log_tail(40)
            );
        }
        self.kill_daemon();
        // Kill repeatedly: a shell may fork between the scan and the kill.
        for _ in 0..100 {
            let left = processes_of_node(&self.name);
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Returns the state letter of process `pid` (field 3 of `/proc/PID/stat`), if it exists.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// Tells whether `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Tells whether `/proc/PID/environ` holds exactly the entry `MOSHA_NODE=<node>`.
fn environ_has_node(pid: u32, node: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let want = format!("MOSHA_NODE={node}");
    env.split(|&b| b == 0).any(|kv| kv == want.as_bytes())
}

/// Tells whether `pid` is a live process carrying `MOSHA_NODE=<node>`.
pub fn is_process_of_node(pid: u32, node: &str) -> bool {
    pid_alive(pid) && environ_has_node(pid, node)
}

/// Every live (non-zombie) process whose environment holds exactly `MOSHA_NODE=<node>`.
pub fn processes_of_node(node: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| environ_has_node(pid, node) && pid_alive(pid))
        .collect();
    out.sort_unstable();
    out
}

/// SIGKILLs process `pid`.
pub fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("sending SIGKILL");
}

/// `clstat.groups[group].entries[tag]` (Null when absent).
pub fn entry<'a>(doc: &'a Value, group: &str, tag: &str) -> &'a Value {
    &doc["groups"][group]["entries"][tag]
}

/// `clstat.groups[group].state` ("" when absent).
pub fn group_state<'a>(doc: &'a Value, group: &str) -> &'a str {
    doc["groups"][group]["state"].as_str().unwrap_or("")
}

/// `clstat.groups[group].entries[tag].state` ("" when absent).
pub fn entry_state<'a>(doc: &'a Value, group: &str, tag: &str) -> &'a str {
    entry(doc, group, tag)["state"].as_str().unwrap_or("")
}

/// `clstat.groups[group].entries[tag].pid`, if any.
pub fn entry_pid(doc: &Value, group: &str, tag: &str) -> Option<u32> {
    entry(doc, group, tag)["pid"]
        .as_u64()
        .map(|p| u32::try_from(p).expect("pid fits in u32"))
}

/// Waits until `group`'s entry `tag` is running, and returns its pid.
pub fn wait_running(node: &Node, group: &str, tag: &str, timeout: Duration) -> u32 {
    let doc = node.wait_for(&format!("{group}/{tag} running"), timeout, |d| {
        entry_state(d, group, tag) == "running" && entry_pid(d, group, tag).is_some()
    });
    entry_pid(&doc, group, tag).unwrap_or_default()
}

/// Seconds, for readability.
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}
