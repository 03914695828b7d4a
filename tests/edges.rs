//! Trust at the edges (issue 9): what the daemon does with bad input from outside, with real
//! daemons and real processes. Control characters and oversized files are refused with
//! `file:line`; out-of-range options never start a daemon; edits are taken only once
//! settled; a second daemon, a read-only or a full directory are refused or said once; a
//! left-over record never kills a stranger; fencetab stays 0600; status says when it is stale.
//!
//! Some tests mount file systems (tmpfs, read-only bind mounts): they need root, and FAIL
//! without it (a missing prerequisite is a failure, never a silent pass).

mod common;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{wait_joined, Cluster, ClusterOpts, Timer};
use common::{entry_pid, pid_alive, wait_running, Node};
use serde_json::Value;

/// A generous deadline for what should take a tick or a settle time.
const SOON: Duration = Duration::from_secs(15);

/// What a finished `mosha` command said.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `mosha args...` and waits up to `timeout` for it to exit; a command still running
/// then is killed and the test fails (a daemon that should have refused to start).
fn mosha(args: &[&str], timeout: Duration) -> Ran {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mosha"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mosha");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("waiting for mosha").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reaping mosha");
            panic!(
                "mosha {args:?} still running after {timeout:?}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("reading mosha's output");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `mosha run --node NODE --dir DIR --listen 127.0.0.1:0 extra...`, which must exit
/// within [`SOON`] (see [`mosha`]).
fn mosha_run(dir: &str, node: &str, extra: &[&str]) -> Ran {
    let base = [
        "run",
        "--node",
        node,
        "--dir",
        dir,
        "--listen",
        "127.0.0.1:0",
    ];
    mosha(&[&base[..], extra].concat(), SOON)
}

/// A mount made by a test, unmounted when dropped (lazily if still busy), even on failure.
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs of `size` (`256k`) on `at`. Needs root.
    fn tmpfs(at: &Path, size: &str) -> Mount {
        sh_ok(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            &at.display().to_string(),
        ]);
        Mount(at.to_path_buf())
    }

    /// Mounts `from` on `at` read-only (a bind mount, then remounted ro). Needs root.
    fn read_only(from: &Path, at: &Path) -> Mount {
        let at_s = at.display().to_string();
        sh_ok(&["mount", "--bind", &from.display().to_string(), &at_s]);
        let m = Mount(at.to_path_buf());
        sh_ok(&["mount", "-o", "remount,bind,ro", &at_s]);
        m
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let p = self.0.display().to_string();
        let ok = Command::new("umount")
            .arg(&p)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").args(["-l", &p]).status();
        }
    }
}

/// Runs a system command that the test needs; panics (the test fails) if it fails.
fn sh_ok(argv: &[&str]) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e} (this test needs it)"));
    assert!(
        out.status.success(),
        "{argv:?} failed: {} (this test needs root)",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Processes a test started, killed and reaped when dropped.
struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Field 22 of `/proc/PID/stat`: the process's start time.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading stat");
    let rest = &stat[stat.rfind(')').expect("stat has a command name") + 1..];
    rest.split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .expect("a start time")
}

/// The clstat config errors of `doc`, as strings.
fn config_errors(doc: &Value) -> Vec<String> {
    common::cluster::strings(&doc["config"]["errors"])
}

/// Counts the lines of `log` that contain `needle`.
fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Starts `n` nodes with `cltab` and `hactl`, fencing off (`* none`), and waits until they
/// see each other.
fn cluster(n: usize, cltab: &str, hactl: &str) -> Cluster {
    let c = Cluster::start(ClusterOpts {
        nodes: n,
        cltab: cltab.to_string(),
        hactl: hactl.to_string(),
        fencetab: "* none\n".to_string(),
        extra_args: Vec::new(),
        netns: false,
    });
    let all: Vec<usize> = c.indices().collect();
    wait_joined(&c, &all);
    c
}

/// `hastat.files[file].version` of node `i` ("" when absent).
fn version(c: &Cluster, i: usize, file: &str) -> String {
    c.hastat(i)
        .and_then(|h| h["files"][file]["version"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Waits until every node runs the same `file` version, and returns it.
fn same_version(c: &Cluster, file: &str) -> String {
    let mut v = String::new();
    c.wait_for(&format!("every node on one {file} version"), SOON, |c| {
        v = version(c, 1, file);
        !v.is_empty() && c.indices().all(|i| version(c, i, file) == v)
    });
    v
}

#[test]
fn a_nul_byte_in_cltab_is_refused_with_its_line_and_the_old_cltab_stays() {
    let node = Node::start("web:srv:start:respawn:sleep 1000\n", "web start\n", &[]);
    let pid = wait_running(&node, "web", "srv", SOON);
    node.write_file(
        "cltab",
        "web:srv:start:respawn:sleep 1000\nweb:bad:start:once:/bin/echo a\u{0}b\n",
    );
    let doc = node.wait_for("the cltab with a NUL byte rejected", SOON, |d| {
        d["config"]["ok"] == false
    });
    let errors = config_errors(&doc);
    let want = format!(
        "{}:2: control character U+0000 in column 31: only TAB is allowed",
        node.path_str("cltab")
    );
    assert_eq!(errors, vec![want], "{doc:#}");
    // The old cltab stays in force: the service untouched, the new entry nowhere.
    assert_eq!(entry_pid(&doc, "web", "srv"), Some(pid), "{doc:#}");
    assert!(node.alive(pid));
    assert_eq!(
        doc["groups"]["web"]["entries"]["bad"],
        Value::Null,
        "{doc:#}"
    );
    assert_eq!(count(&node.log(), "control character U+0000"), 1);
}

#[test]
fn a_huge_fencetab_timeout_is_refused_with_its_line() {
    let node = Node::start("web:srv:start:respawn:sleep 1000\n", "web start\n", &[]);
    wait_running(&node, "web", "srv", SOON);
    node.write_file(
        "fencetab",
        "* none\nn9 fence_dummy timeout=9999999999999999999\n",
    );
    let doc = node.wait_for("the fencetab rejected", SOON, |d| {
        d["config"]["ok"] == false
    });
    let want = format!(
        "{}:2: timeout '9999999999999999999' is out of range: from 0.001 to 3600 seconds",
        node.path_str("fencetab")
    );
    assert_eq!(config_errors(&doc), vec![want], "{doc:#}");
}

#[test]
fn out_of_range_options_exit_2_with_a_reason_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // What clap and the range checks say.
    let (secs, gossip) = (
        "not a number of seconds from 0 to 3600",
        "--gossip-interval",
    );
    let cases: &[(&[&str], &str)] = &[
        (&["--slot", "100"], "slot 100 ms is too short"),
        (&["--slot", "150"], "use a slot of at least 151 ms"),
        (&["--slot", "0"], "slot 0 ms is too short"),
        (&["--slot", "18446744073709551615"], "out of range"),
        (&["--slot", "99999999999999999999"], "--slot"),
        (
            &["--gossip-interval", "500"],
            "than a gossip round (500 ms)",
        ),
        (&["--gossip-interval", "0"], gossip),
        (&["--gossip-interval", "18446744073709551615"], gossip),
        (&["--grace", "1e30"], secs),
        (&["--grace", "NaN"], secs),
        (&["--grace=-1"], secs),
        (&["--respawn-window", "inf"], secs),
        (
            &["--respawn-burst", "99999999999999999999"],
            "--respawn-burst",
        ),
        (&["--respawn-burst", "10001"], "--respawn-burst"),
        (&["--two-node-fence-delay", "3600.5"], secs),
    ];
    for (extra, says) in cases {
        let r = mosha_run(&d, "x", extra);
        assert_eq!(r.code, Some(2), "{extra:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{extra:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{extra:?}: {}", r.stderr);
    }
    // The rule behind --slot 100, spelled out.
    let r = mosha_run(&d, "x", &["--slot", "100"]);
    assert!(r.stderr.contains("plan window"), "{}", r.stderr);
}

#[test]
fn a_damaged_members_file_is_refused_whole() {
    // At start: exit 2 with every error.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("members"), "n1\nn\u{0}2\nn 3\n").unwrap();
    let d = dir.path().display().to_string();
    let r = mosha_run(&d, "n1", &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r
        .stderr
        .contains(&format!("{d}/members:2: control character U+0000")));
    assert!(r
        .stderr
        .contains(&format!("{d}/members:3: invalid character")));
    // Edited under a running daemon: said once, shown in clstat, the membership kept.
    let node = Node::start("web:srv:start:respawn:sleep 1000\n", "web start\n", &[]);
    wait_running(&node, "web", "srv", SOON);
    node.write_file("members", "someone\nbad name\n");
    let doc = node.wait_for("the members edit rejected", SOON, |d| {
        d["config"]["ok"] == false
    });
    let want = format!("{}:2: ", node.path_str("members"));
    assert!(config_errors(&doc)[0].starts_with(&want), "{doc:#}");
    let h: Value = serde_json::from_str(&node.read_file("hastat.json").unwrap()).unwrap();
    assert_eq!(
        common::cluster::strings(&h["expected"]),
        vec![node.name.clone()]
    );
    assert_eq!(count(&node.log(), "members file rejected"), 1);
}

#[test]
fn an_oversized_cltab_is_rejected_once_and_spreads_nowhere() {
    let _t = Timer::start("an_oversized_cltab_is_rejected_once_and_spreads_nowhere");
    let old = "web:srv:start:respawn:sleep 100000\n";
    let c = cluster(3, old, "web start\n");
    let v0 = same_version(&c, "cltab");
    let marks: Vec<usize> = c.indices().map(|i| c.log(i).len()).collect();
    // 2 MiB: a valid entry, then comments.
    let mut big = String::from("web:srv:start:respawn:sleep 100000\nweb:more:start:once:true\n");
    while big.len() < 2 * 1024 * 1024 {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    big.truncate(2 * 1024 * 1024 - 1);
    big.push('\n');
    c.write_file(1, "cltab", &big);
    c.wait_for("n1 to reject the 2 MiB cltab", SOON, |c| {
        c.clstat(1).is_some_and(|d| d["config"]["ok"] == false)
    });
    let errors = config_errors(&c.clstat(1).unwrap());
    let want = format!(
        "{}:1: file is 2097152 bytes; replicated files are limited to 1048576",
        c.path(1, "cltab").display()
    );
    assert_eq!(errors, vec![want]);
    // Many ticks later: said once, in force nowhere, spread nowhere.
    std::thread::sleep(Duration::from_secs(3));
    let log1 = &c.log(1)[marks[0]..];
    assert_eq!(count(log1, "replicated files are limited to"), 1, "{log1}");
    assert_eq!(count(log1, "cannot publish"), 0, "{log1}");
    assert_eq!(count(log1, "local edit accepted"), 0, "{log1}");
    for i in c.indices() {
        assert_eq!(version(&c, i, "cltab"), v0, "n{i}");
        if i != 1 {
            assert_eq!(c.read_file(i, "cltab").as_deref(), Some(old), "n{i}");
            let log = &c.log(i)[marks[i - 1]..];
            assert_eq!(count(log, "adopted a newer version"), 0, "n{i}: {log}");
        }
    }
    let hastat = c.hastat(1).unwrap();
    assert_eq!(hastat["files"]["cltab"]["ok"], false, "{hastat:#}");
}

#[test]
fn left_overs_are_stopped_only_when_everything_matches() {
    let dir = tempfile::tempdir().unwrap();
    let leader = || {
        Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .expect("starting sleep")
    };
    // Strangers: a group leader recorded with start time 0, one with a wrong start time, and a
    // process with the right start time that leads no group.
    let (a, b) = (leader(), leader());
    let c = Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("starting sleep");
    // A real left-over: everything matches.
    let d = leader();
    let ids: Vec<u32> = [&a, &b, &c, &d].iter().map(|p| p.id()).collect();
    let kids = Kids(vec![a, b, c, d]);
    let record = format!(
        "{} 0\n{} {}\n{} {}\n{} {}\n",
        ids[0],
        ids[1],
        start_time(ids[1]) + 1,
        ids[2],
        start_time(ids[2]),
        ids[3],
        start_time(ids[3]),
    );
    std::fs::write(dir.path().join("mosha.pgids"), record).unwrap();
    let node = Node::start_in(
        dir.path(),
        "web:srv:start:respawn:sleep 1000\n",
        "web start\n",
        &["--grace", "1"],
    );
    wait_running(&node, "web", "srv", SOON);
    node.wait_until("the real left-over stopped", SOON, || !pid_alive(ids[3]));
    std::thread::sleep(Duration::from_secs(1));
    for (i, pid) in ids[..3].iter().enumerate() {
        assert!(pid_alive(*pid), "stranger {i} (pid {pid}) was killed");
    }
    let log = node.log();
    let left = |pid: u32| {
        log.lines()
            .any(|l| l.contains("left alone") && l.contains(&format!("pgid={pid}")))
    };
    assert!(left(ids[0]) && left(ids[1]), "{log}");
    assert!(log.contains("recorded without a start time"), "{log}");
    assert!(
        log.contains("the pid now belongs to another process"),
        "{log}"
    );
    drop(kids);
}

#[test]
fn a_full_directory_is_said_once_and_shown_in_status() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    let _mount = Mount::tmpfs(&dir, "512k");
    // A service that exits every 0.2 s: clstat and mosha.pgids change all the time.
    let node = Node::start_in(
        &dir,
        "web:blink:start:respawn:sleep 0.2\n",
        "web start\n",
        &[],
    );
    wait_running(&node, "web", "blink", SOON);
    node.wait_until("hastat written", SOON, || node.path("hastat.json").exists());
    // Fill the file system, and keep it full for 5 s: every page freed (a file replaced by a
    // shorter one) is taken again at once, as a busy disk would.
    let mark = node.log().len();
    let mut fill = std::fs::File::create(dir.join("fill")).unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        while fill.write_all(&[0u8; 512]).is_ok() {}
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(fill);
    let log = node.log()[mark..].to_string();
    let said = count(&log, "No space left on device");
    assert!(said >= 1, "nothing said about the full directory:\n{log}");
    // At most a first failure and a recovery for each file written every tick.
    assert!(said <= 8, "{said} lines about it in 5 s:\n{log}");
    let d = node.dir_str();
    let r = mosha(&["status", "--dir", &d], SOON);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Problems on"), "{}", r.stdout);
    assert!(r.stdout.contains("No space left on device"), "{}", r.stdout);
    let hastat: Value = serde_json::from_str(&node.read_file("hastat.json").unwrap()).unwrap();
    let problems = hastat["problems"].as_array().cloned().unwrap_or_default();
    assert!(
        problems
            .iter()
            .any(|p| p["count"].as_u64() > Some(1) && p["what"] == "write clstat.json"),
        "{hastat:#}"
    );
    // Room again: the failures end, and say so.
    std::fs::remove_file(dir.join("fill")).unwrap();
    node.wait_until("recovered", SOON, || node.log().contains("recovered after"));
}

#[test]
fn a_second_daemon_on_the_same_dir_exits_2_and_touches_nothing() {
    let node = Node::start("web:srv:start:respawn:sleep 1000\n", "web start\n", &[]);
    let pid = wait_running(&node, "web", "srv", SOON);
    let d = node.dir_str();
    let r = mosha_run(&d, "intruder", &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let want = format!(
        "mosha: {d} is in use by another mosha (pid {})",
        node.daemon_pid()
    );
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    std::thread::sleep(Duration::from_secs(1));
    let doc = node.clstat().expect("clstat");
    assert_eq!(entry_pid(&doc, "web", "srv"), Some(pid), "{doc:#}");
    assert!(node.alive(pid));
    assert!(!node.log().contains("left behind"), "{}", node.log());
}

#[test]
fn a_read_only_dir_is_refused_at_start() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("cltab"),
        "web:srv:start:respawn:sleep 1000\n",
    )
    .unwrap();
    std::fs::write(src.path().join("hactl"), "web start\n").unwrap();
    let at = tempfile::tempdir().unwrap();
    let _ro = Mount::read_only(src.path(), at.path());
    let d = at.path().display().to_string();
    let r = mosha_run(&d, "ro", &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("mosha: {d} is on a read-only file system")),
        "{}",
        r.stderr
    );
    assert!(!src.path().join(".mosha.lock").exists());
}

#[test]
fn a_cltab_written_in_two_halves_spreads_only_whole() {
    let _t = Timer::start("a_cltab_written_in_two_halves_spreads_only_whole");
    let old = "web:srv:start:respawn:sleep 100000\n";
    let c = cluster(3, old, "web start\n");
    let v0 = same_version(&c, "cltab");
    let marks: Vec<usize> = c.indices().map(|i| c.log(i).len()).collect();
    // The first half alone is a valid cltab, different from the old one and from the whole.
    let half = "web:srv:start:respawn:sleep 100000\nweb:b:start:once:true\n";
    let whole = format!("{half}web:c:start:once:true\n");
    let seen_half = std::sync::atomic::AtomicBool::new(false);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for i in [2, 3] {
                    if c.read_file(i, "cltab").as_deref() == Some(half) {
                        seen_half.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(c.path(1, "cltab"))
            .unwrap();
        f.write_all(half.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        f.write_all(&whole.as_bytes()[half.len()..]).unwrap();
        drop(f);
        c.wait_for("the whole cltab on every node", SOON, |c| {
            c.indices()
                .all(|i| c.read_file(i, "cltab").as_deref() == Some(whole.as_str()))
        });
        std::thread::sleep(Duration::from_secs(1));
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    assert!(
        !seen_half.load(std::sync::atomic::Ordering::SeqCst),
        "a peer adopted the first half"
    );
    let v1 = same_version(&c, "cltab");
    assert_ne!(v1, v0);
    let log1 = &c.log(1)[marks[0]..];
    assert_eq!(count(log1, "local edit accepted"), 1, "{log1}");
    for i in [2, 3] {
        let log = &c.log(i)[marks[i - 1]..];
        let adopted: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("adopted a newer version") && l.contains("cltab"))
            .collect();
        assert_eq!(adopted.len(), 1, "n{i}: {log}");
        assert!(adopted[0].contains(&v1), "n{i}: {log}");
    }
}

#[test]
fn an_adopted_fencetab_is_mode_0600_everywhere() {
    let _t = Timer::start("an_adopted_fencetab_is_mode_0600_everywhere");
    let c = cluster(3, "web:srv:start:respawn:sleep 100000\n", "web start\n");
    same_version(&c, "fencetab");
    let text = "# edited on n1, readable by root only\n* none\n";
    let tmp = c.path(1, ".fencetab.edit");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::rename(&tmp, c.path(1, "fencetab")).unwrap();
    c.wait_for("the new fencetab everywhere", SOON, |c| {
        c.indices()
            .all(|i| c.read_file(i, "fencetab").as_deref() == Some(text))
    });
    for i in c.indices() {
        let mode = std::fs::metadata(c.path(i, "fencetab"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "n{i}: {mode:o}");
    }
}

#[test]
fn status_says_how_old_hastat_is_and_when_it_is_stale() {
    let mut gone = Node::start("web:srv:start:respawn:sleep 1000\n", "web start\n", &[]);
    let hung = Node::start("web:srv:start:respawn:sleep 1000\n", "web start\n", &[]);
    for n in [&gone, &hung] {
        wait_running(n, "web", "srv", SOON);
        n.wait_until("hastat written", SOON, || n.path("hastat.json").exists());
        let r = mosha(&["status", "--dir", &n.dir_str()], SOON);
        assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("s ago"), "{}", r.stdout);
        assert!(!r.stdout.contains("stale:"), "{}", r.stdout);
    }
    gone.kill_daemon();
    let hung_pid = hung.daemon_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hung_pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let stale = |n: &Node| {
        let deadline = Instant::now() + SOON;
        loop {
            let r = mosha(&["status", "--dir", &n.dir_str()], SOON);
            if r.code != Some(0) || Instant::now() >= deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let r = stale(&gone);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let want = format!("s ago, no daemon runs on {}", gone.dir_str());
    assert!(r.stdout.contains("stale: written "), "{}", r.stdout);
    assert!(r.stdout.contains(&want), "{}", r.stdout);
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    let r = stale(&hung);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let want = format!(
        "but a daemon holds {} (pid {hung_pid}): it may be hung",
        hung.dir_str()
    );
    assert!(r.stdout.contains(&want), "{}", r.stdout);
    // --json prints the document and still says it is stale.
    let r = mosha(&["status", "--json", "--dir", &hung.dir_str()], SOON);
    assert_eq!(r.code, Some(1));
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["schema"], 1);
    assert!(doc["generation"].is_string(), "{doc:#}");
    assert!(doc["written_at_ms"].as_u64() > Some(0), "{doc:#}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hung_pid as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
}
