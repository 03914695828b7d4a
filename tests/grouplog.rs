//! A group's logs (`DIR/log/GROUP.log`, `mosha log GROUP`) with real daemons and real
//! children: what the ring records (the children's lines with tag and stream, the
//! supervisor's events), whatever `--log` says; that it stays bounded, and so does the
//! daemon's memory, however much a child prints; what `mosha log` prints, follows and
//! refuses.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Node;

/// A generous deadline for what should take a few ticks (the tests run in parallel).
const SOON: Duration = Duration::from_secs(20);

/// The ring's bound for one file (a group holds at most two).
const FILE_LIMIT: u64 = mosha::grouplog::FILE_LIMIT;

/// Runs `mosha log ARGS --dir DIR`.
fn mosha_log(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mosha"))
        .arg("log")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("running mosha log")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `DIR/log/GROUP.log`'s text so far (empty when missing).
fn ring(node: &Node, group: &str) -> String {
    node.read_file(&format!("log/{group}.log"))
        .unwrap_or_default()
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn the_log_shows_the_childrens_lines_and_the_supervisors_events() {
    let node = Node::start(
        "web:out:start:once:echo hello out; echo hello err >&2\n\
         web:check:start:test:echo checking; exit 3\n",
        "web start\n",
        &[],
    );
    node.wait_until("the failed test in the ring", SOON, || {
        let r = ring(&node, "web");
        r.contains("[check] test failed") && r.contains("hello err")
    });
    let o = mosha_log(node.dir(), &["web"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        " INFO  [out stdout] hello out",
        " INFO  [out stderr] hello err",
        " INFO  [check stdout] checking",
        " INFO  [out] started pid=",
        " INFO  [check] started pid=",
        " WARN  [check] test failed: exit status 3",
        " INFO  level reached level=start state=FAILED",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // Every line starts with its time: RFC 3339, UTC, milliseconds.
    for line in text.lines() {
        let time = line.split(' ').next().unwrap();
        assert_eq!(time.len(), 24, "{line}");
        assert!(time.ends_with('Z') && time.as_bytes()[19] == b'.', "{line}");
    }
    // -n: the last lines, in the file's order (asked again if the ring grew meanwhile).
    for _ in 0..10 {
        let before = ring(&node, "web");
        let o = mosha_log(node.dir(), &["web", "-n", "2"]);
        if ring(&node, "web") != before {
            continue;
        }
        let last: Vec<&str> = before.lines().rev().take(2).collect();
        let two = stdout(&o);
        assert_eq!(two.lines().rev().collect::<Vec<_>>(), last, "{two}");
        return;
    }
    panic!("the ring kept growing");
}

#[test]
fn a_daemon_logging_warnings_only_still_keeps_info_events_in_the_ring() {
    let node = Node::start(
        "db:hi:start:once:echo hi there\n",
        "db start\n",
        &["--log", "warn"],
    );
    node.wait_until("the child's line in the ring", SOON, || {
        ring(&node, "db").contains("[hi stdout] hi there")
    });
    let r = ring(&node, "db");
    assert!(r.contains(" INFO  [hi] started pid="), "{r}");
    assert!(r.contains(" INFO  level reached"), "{r}");
    let stderr_log = node.log();
    assert!(!stderr_log.contains(" INFO "), "{stderr_log}");
    assert!(!stderr_log.contains("hi there"), "{stderr_log}");
}

#[test]
fn the_ring_stays_bounded_when_a_child_prints_megabytes() {
    // About 4 MB of lines.
    let node = Node::start(
        "web:flood:start:once:seq -f 'line %g padding padding padding padding padding \
         padding padding padding padding padding padding' 1 40000; echo END\n",
        "web start\n",
        &[],
    );
    node.wait_until("the child's last line in the ring", SOON, || {
        ring(&node, "web").contains("[flood stdout] END")
    });
    let log = node.path("log/web.log");
    let old = node.path("log/web.log.1");
    assert!(size(&log) <= FILE_LIMIT, "{}", size(&log));
    assert!(size(&old) <= FILE_LIMIT, "{}", size(&old));
    assert!(size(&old) > FILE_LIMIT / 2, "{}", size(&old));
    let mut names: Vec<String> = std::fs::read_dir(node.path("log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["web.log", "web.log.1"]);
    // Both files, oldest first, the child's lines in the order it printed them.
    let o = mosha_log(node.dir(), &["web", "-n", "100000"]);
    let text = stdout(&o);
    assert!(text.len() as u64 > FILE_LIMIT, "{}", text.len());
    let numbers: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split(" line ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert!(numbers.len() > 1000, "{}", numbers.len());
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "lines out of order"
    );
    assert_eq!(numbers.last(), Some(&40000));
}

#[test]
fn a_child_printing_without_newlines_costs_the_daemon_little_memory() {
    let node = Node::start(
        "web:blob:start:once:while [ ! -e {DIR}/go ]; do sleep 0.05; done; \
         head -c 32000000 /dev/zero | tr '\\000' x; echo; echo END\n",
        "web start\n",
        &[],
    );
    node.wait_until("the child started", SOON, || {
        ring(&node, "web").contains("[blob] started")
    });
    let pid = node.daemon_pid();
    let before = common::rss_kib(pid);
    node.write_file("go", "");
    node.wait_until("the child's last line in the ring", SOON, || {
        ring(&node, "web").contains("[blob stdout] END")
    });
    let after = common::rss_kib(pid);
    // Read whole, the 32 MB line would cost the daemon at least twice that (the buffer, and
    // the log line made of it).
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // It was logged in pieces, each cut marked.
    let log = node.log();
    let pieces = log.lines().filter(|l| l.contains(" …xxxx")).count();
    assert_eq!(
        pieces,
        32_000_000 / mosha::supervisor::process::MAX_PIECE,
        "continued pieces"
    );
    let r = node.read_file("log/web.log.1").unwrap_or_default() + &ring(&node, "web");
    let in_ring = r.lines().filter(|l| l.contains("[blob stdout] …x")).count();
    assert!(in_ring > 120, "{in_ring} pieces in the ring");
}

#[test]
fn mosha_log_on_a_group_that_never_ran_here_exits_1_and_says_where_to_look() {
    let dir = tempfile::tempdir().unwrap();
    let o = mosha_log(dir.path(), &["web"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("no entry of web ran on this node"), "{e}");
    assert!(e.contains("mosha status"), "{e}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn mosha_log_refuses_a_bad_group_name_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["../etc/passwd", ".hidden", "a b", "web/x"] {
        let o = mosha_log(dir.path(), &[bad]);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("group"), "{}", stderr(&o));
    }
}

/// A `mosha log --follow` whose output lines arrive on a channel.
struct Follower {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(dir: &Path, group: &str, n: &str) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mosha"))
            .args(["log", group, "-n", n, "--follow", "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("running mosha log --follow");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    /// The next line printed, within 10 s.
    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from mosha log --follow")
    }

    /// Asserts nothing more is printed for a second.
    fn quiet(&self) {
        if let Ok(l) = self.lines.recv_timeout(Duration::from_secs(1)) {
            panic!("unexpected line {l:?}");
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(path: &PathBuf, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn mosha_log_follow_prints_new_lines_across_rotations() {
    // The files as the ring writes them; no daemon needed to follow them.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("log")).unwrap();
    let log = dir.path().join("log/web.log");
    let old = dir.path().join("log/web.log.1");
    append(&old, "one\n");
    append(&log, "two\nthree\n");
    let f = Follower::start(dir.path(), "web", "2");
    assert_eq!(f.next(), "two");
    assert_eq!(f.next(), "three");
    append(&log, "four\n");
    assert_eq!(f.next(), "four");
    // A line written just before the rotation, then the new file.
    append(&log, "five\n");
    std::fs::rename(&log, &old).unwrap();
    append(&log, "six\n");
    assert_eq!(f.next(), "five");
    assert_eq!(f.next(), "six");
    // A line in two writes is printed once it is whole, cleaned of control characters.
    append(&log, "sev");
    std::thread::sleep(Duration::from_millis(500));
    append(&log, "en\u{1b}[2J\n");
    assert_eq!(f.next(), "seven\u{FFFD}[2J");
    f.quiet();
}

#[test]
fn a_log_that_cannot_be_written_is_said_once_and_harms_nothing() {
    let node = Node::start(
        "web:tick:start:respawn:while true; do echo tick; sleep 0.05; done\n",
        "web start\n",
        &[],
    );
    // Before any group ran: a file where DIR/log should be, so every write fails.
    std::fs::write(node.path("log"), "in the way\n").unwrap();
    let tick = common::wait_running(&node, "web", "tick", SOON);
    std::thread::sleep(Duration::from_secs(3));
    let said = |what: &str| {
        node.log()
            .lines()
            .filter(|l| l.contains("mosha::grouplog") && l.contains(what))
            .count()
    };
    assert_eq!(said("cannot write"), 1, "{}", node.log_tail(20));
    assert!(
        node.log().contains("tick"),
        "the daemon's stderr still has the lines"
    );
    assert!(node.alive(tick));
    // Room again: writing resumes within a retry, says so once, and notes the loss.
    std::fs::remove_file(node.path("log")).unwrap();
    node.wait_until("the ring written again", SOON, || {
        ring(&node, "web").contains("[tick stdout] tick")
    });
    assert_eq!(said("written again"), 1, "{}", node.log_tail(20));
    let r = ring(&node, "web");
    let first = r.lines().next().unwrap_or_default();
    assert!(
        first.contains(" WARN  ") && first.contains("record(s)"),
        "{r}"
    );
    assert_eq!(
        common::entry_pid(&node.clstat().unwrap(), "web", "tick"),
        Some(tick)
    );
}

/// Regression (found by the chaos run, seed 2026 iteration 298): a node's DIR filled up while
/// its daemon's stderr went to a file on it; the group log failed to write, said so with
/// `eprintln!`, which panics when stderr fails, and the daemon died (exit 101). Here stderr
/// is `/dev/full` (every write fails) and DIR/log is blocked: the daemon must go on running
/// its group.
#[test]
fn a_stderr_that_cannot_be_written_does_not_stop_the_daemon() {
    let dir = tempfile::Builder::new()
        .prefix("mosha-it-full-")
        .tempdir()
        .unwrap();
    common::write_private(&dir.path().join("authkey"), &common::random_key());
    std::fs::write(
        dir.path().join("cltab"),
        "web:tick:start:respawn:while true; do echo tick; sleep 0.05; done\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("hactl"), "web start\n").unwrap();
    std::fs::write(dir.path().join("log"), "in the way\n").unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full (this test needs it)");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mosha"))
        .args(["run", "--node", "full", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(full.try_clone().unwrap())
        .stderr(full)
        .spawn()
        .expect("starting mosha");
    let clstat = dir.path().join("clstat.json");
    let deadline = std::time::Instant::now() + SOON;
    let running = loop {
        let doc: Option<serde_json::Value> = std::fs::read_to_string(&clstat)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if doc.is_some_and(|d| common::entry_state(&d, "web", "tick") == "running") {
            break true;
        }
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(2));
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(exited.is_none(), "the daemon exited: {exited:?}");
    assert!(running, "web never ran");
}
