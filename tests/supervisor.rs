//! Integration tests of `mosha run`: each test starts a daemon on a fresh directory with a node
//! name of its own, drives it through cltab/hactl, and watches clstat.json, witness files the
//! children write, and /proc.

mod common;

use std::time::{Duration, Instant};

use common::{
    entry, entry_pid, entry_state, group_state, pid_alive, secs, sigkill, wait_running, Node,
};

/// A generous deadline for things that should happen within a poll or two.
const SOON: Duration = Duration::from_secs(10);

#[test]
fn wait_entries_block_later_entries_in_file_order() {
    let mut node = Node::start(
        "a:w1:start:wait:sleep 0.5; echo w1 >> {DIR}/W\n\
         a:w2:start:wait:echo w2 >> {DIR}/W\n\
         a:o:start:once:echo o >> {DIR}/W\n",
        "a start\n",
        &[],
    );
    node.wait_for("group a DONE with every entry done", SOON, |d| {
        group_state(d, "a") == "DONE"
            && ["w1", "w2", "o"]
                .iter()
                .all(|t| entry_state(d, "a", t) == "done")
    });
    node.wait_until("o to write its line", SOON, || node.witness("W").len() >= 3);
    assert_eq!(node.witness("W"), ["w1", "w2", "o"]);
    let status = node.sigterm_and_wait(secs(15.0));
    assert!(status.success(), "{status:?}");
}

#[test]
fn once_entry_that_exits_is_not_restarted() {
    let node = Node::start("a:o:start:once:echo o >> {DIR}/W\n", "a start\n", &[]);
    node.wait_for("a/o done", SOON, |d| entry_state(d, "a", "o") == "done");
    std::thread::sleep(secs(2.0));
    let doc = node.clstat().expect("clstat");
    assert_eq!(entry_state(&doc, "a", "o"), "done", "{doc:#}");
    assert_eq!(entry(&doc, "a", "o")["restarts"], 0, "{doc:#}");
    assert_eq!(
        entry(&doc, "a", "o")["pid"],
        serde_json::Value::Null,
        "{doc:#}"
    );
    assert_eq!(group_state(&doc, "a"), "DONE", "{doc:#}");
    assert_eq!(node.witness("W"), ["o"]);
}

#[test]
fn respawn_entry_is_restarted_after_sigkill() {
    let node = Node::start("a:r:start:respawn:sleep 1000\n", "a start\n", &[]);
    let p = wait_running(&node, "a", "r", SOON);
    assert!(node.alive(p));
    sigkill(p);
    let doc = node.wait_for("a/r running with a new pid", SOON, |d| {
        entry_state(d, "a", "r") == "running" && entry_pid(d, "a", "r").is_some_and(|q| q != p)
    });
    let e = entry(&doc, "a", "r");
    assert_eq!(e["restarts"], 1, "{doc:#}");
    let last = e["last_exit"].as_str().unwrap_or("");
    assert!(last.contains("signal 9"), "last_exit {last:?}");
    let q = entry_pid(&doc, "a", "r").unwrap();
    assert!(node.alive(q), "new pid {q} is not running");
    assert!(!node.alive(p), "old pid {p} still running");
}

#[test]
fn respawn_backs_off_when_crashing_and_recovers() {
    let t0 = Instant::now();
    // Exits 1 on its first 8 runs (counted in file C), then stays up.
    let node = Node::start(
        "a:r:start:respawn:n=$(cat {DIR}/C 2>/dev/null || echo 0); n=$((n+1)); \
         echo $n > {DIR}/C; if [ $n -gt 8 ]; then exec sleep 1000; fi; exit 1\n",
        "a start\n",
        &[],
    );
    // 5 fast exits restart at once; the 6th, 7th and 8th back off 1 s, 2 s and 4 s.
    let mut delays: Vec<f64> = Vec::new();
    let doc = node.wait_for("a/r running for good after 8 restarts", secs(30.0), |d| {
        let e = entry(d, "a", "r");
        if e["state"] == "backoff" {
            let b = e["backoff_s"].as_f64().unwrap_or(-1.0);
            if delays.last() != Some(&b) {
                delays.push(b);
            }
        }
        e["state"] == "running" && e["restarts"].as_u64().unwrap_or(0) >= 8
    });
    eprintln!(
        "back-off delays seen: {delays:?}; recovered after {:.2?}",
        t0.elapsed()
    );
    assert!(
        delays.first().is_some_and(|&b| b >= 1.0),
        "never saw state backoff with backoff_s >= 1: {delays:?}"
    );
    assert_eq!(delays, [1.0, 2.0, 4.0], "1 s, doubling");
    let e = entry(&doc, "a", "r");
    assert_eq!(e["restarts"], 8, "{doc:#}");
    assert!(e.get("backoff_s").is_none(), "{doc:#}");
    let pid = entry_pid(&doc, "a", "r").unwrap();
    std::thread::sleep(secs(0.5));
    let doc = node.clstat().unwrap();
    assert_eq!(entry_state(&doc, "a", "r"), "running", "{doc:#}");
    assert_eq!(entry_pid(&doc, "a", "r"), Some(pid), "{doc:#}");
    assert!(node.alive(pid));
    assert_eq!(node.read_file("C").unwrap().trim(), "9");
}

#[test]
fn tests_pass_or_fail_the_group_and_later_entries_still_start() {
    // `exit 0` alone has no shell syntax, so it would be executed as a program named "exit";
    // the tests run it through sh.
    let node = Node::start(
        "p:t1:check:test:sh -c 'exit 0'\n\
         p:t2:check:test:true\n\
         f:u1:bad:test:sh -c 'exit 3'\n\
         f:u2:bad:once:echo later >> {DIR}/W\n",
        "p check\nf bad\n",
        &[],
    );
    // p stays PASSED; f is FAILED only for a moment: the engine then stops it and puts this
    // node in cooldown for it, so f's failure is read from the log, not from a clstat poll.
    let doc = node.wait_for("p PASSED", SOON, |d| group_state(d, "p") == "PASSED");
    assert_eq!(doc["groups"]["p"]["level"], "check", "{doc:#}");
    assert_eq!(entry_state(&doc, "p", "t1"), "passed", "{doc:#}");
    assert_eq!(entry_state(&doc, "p", "t2"), "passed", "{doc:#}");
    node.wait_until("f to fail at level bad", SOON, || {
        let log = node.log();
        log.contains("test failed: exit status 3 group=f tag=u1")
            && log.contains("level reached group=f level=bad state=\"FAILED\"")
    });
    // The entry after the failed test was started anyway.
    node.wait_until("u2 to write its witness", SOON, || {
        node.witness("W") == ["later"]
    });
}

#[test]
fn level_switch_stops_old_entries_including_grandchildren() {
    let node = Node::start(
        "g:l1:one:once:sleep 1000 & echo $! > {DIR}/GRANDCHILD; wait\n\
         g:l2:two:respawn:sleep 1000\n",
        "g one\n",
        &[],
    );
    let leader = wait_running(&node, "g", "l1", SOON);
    let grandchild = node.wait_pid_file("GRANDCHILD", SOON);
    assert_ne!(leader, grandchild);
    assert!(node.alive(leader) && node.alive(grandchild));

    node.write_file("hactl", "g two\n");
    let doc = node.wait_for("g DONE at level two", SOON, |d| {
        d["groups"]["g"]["level"] == "two"
            && group_state(d, "g") == "DONE"
            && entry_state(d, "g", "l2") == "running"
    });
    assert_eq!(entry_state(&doc, "g", "l1"), "idle", "{doc:#}");
    // Level two starts only once level one's process group is gone.
    assert!(!node.alive(leader), "old leader {leader} still running");
    assert!(
        !node.alive(grandchild),
        "grandchild {grandchild} still running (state {:?})",
        common::proc_state(grandchild)
    );
    let l2 = entry_pid(&doc, "g", "l2").unwrap();
    assert!(node.alive(l2));
    assert_eq!(
        node.processes(),
        [l2],
        "only level two's process should be left"
    );
}

#[test]
fn child_ignoring_sigterm_is_killed_after_the_grace_period() {
    let node = Node::start(
        "g:t:one:respawn:trap '' TERM; echo $$ > {DIR}/P; while :; do sleep 0.1; done\n\
         g:b:two:once:echo two >> {DIR}/W\n",
        "g one\n",
        &["--grace", "1"],
    );
    let pid = wait_running(&node, "g", "t", SOON);
    assert_eq!(node.wait_pid_file("P", SOON), pid);

    node.write_file("hactl", "g two\n");
    let t0 = Instant::now();
    // During the grace period the group is STOPPING, still at level one, told two.
    let doc = node.wait_for("g STOPPING", SOON, |d| group_state(d, "g") == "STOPPING");
    assert_eq!(doc["groups"]["g"]["level"], "one", "{doc:#}");
    assert_eq!(doc["groups"]["g"]["target"], "two", "{doc:#}");
    assert_eq!(entry_state(&doc, "g", "t"), "stopping", "{doc:#}");
    node.wait_until("the TERM-ignoring shell to die", secs(8.0), || {
        !node.alive(pid)
    });
    let took = t0.elapsed();
    eprintln!("TERM-ignoring child gone {took:.2?} after the hactl edit (grace 1 s)");
    assert!(
        took >= secs(0.8),
        "gone after only {took:?}: it ignored SIGTERM"
    );
    assert!(took <= secs(6.0), "gone only after {took:?}");
    node.wait_for("g DONE at level two", SOON, |d| {
        d["groups"]["g"]["level"] == "two" && group_state(d, "g") == "DONE"
    });
    assert_eq!(node.witness("W"), ["two"]);
    node.wait_until("no process of the node left", SOON, || {
        node.processes().is_empty()
    });
    let log = node.log();
    assert!(
        log.lines().any(|l| l.contains("SIGKILL")),
        "the log does not mention SIGKILL"
    );
}

#[test]
fn hactl_edit_is_applied_within_a_second() {
    let node = Node::start(
        "g:x:a:respawn:sleep 1000\ng:y:b:once:echo b >> {DIR}/W\n",
        "g a\n",
        &[],
    );
    wait_running(&node, "g", "x", SOON);
    assert!(node.read_file("W").is_none());

    node.write_file("hactl", "g b\n");
    let t0 = Instant::now();
    node.wait_until("the level b witness", SOON, || node.path("W").exists());
    let took = t0.elapsed();
    eprintln!("hactl edit applied (witness written) {took:.3?} after the rename");
    assert!(took < secs(1.0), "hactl edit took {took:?} to apply");
}

#[test]
fn broken_cltab_edit_is_rejected_and_old_config_keeps_running() {
    let good = "a:r:start:respawn:sleep 1000\n";
    let node = Node::start(good, "a start\n", &[]);
    let p = wait_running(&node, "a", "r", SOON);
    let cltab = node.path_str("cltab");

    node.write_file(
        "cltab",
        "a:r:start:respawn:sleep 1000\n\
         a:x:start:bogus:echo x\n\
         a:r:start:once:echo dup\n",
    );
    let doc = node.wait_for("config.ok false", SOON, |d| d["config"]["ok"] == false);
    let errors: Vec<&str> = doc["config"]["errors"]
        .as_array()
        .expect("config.errors is an array")
        .iter()
        .map(|e| e.as_str().unwrap_or(""))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let mode_err = errors[0];
    assert!(
        mode_err.starts_with(&format!("{cltab}:2: ")) && mode_err.contains("'bogus'"),
        "{errors:#?}"
    );
    let dup_err = errors[1];
    assert!(
        dup_err.starts_with(&format!("{cltab}:3: ")) && dup_err.contains("duplicate tag 'r'"),
        "{errors:#?}"
    );
    let log = node.log();
    for e in &errors {
        assert!(log.contains(e), "the log lacks {e:?}");
    }
    // The old configuration keeps running untouched, over several polls.
    std::thread::sleep(secs(0.6));
    let doc = node.clstat().unwrap();
    assert_eq!(doc["config"]["ok"], false, "{doc:#}");
    assert_eq!(entry_pid(&doc, "a", "r"), Some(p), "{doc:#}");
    assert_eq!(entry(&doc, "a", "r")["restarts"], 0, "{doc:#}");
    assert!(entry(&doc, "a", "x").is_null(), "{doc:#}");
    assert!(node.alive(p), "pid {p} died");

    node.write_file(
        "cltab",
        &format!("{good}a:x:start:once:echo x >> {{DIR}}/W\n"),
    );
    let doc = node.wait_for("config.ok true again", SOON, |d| {
        d["config"]["ok"] == true && entry_state(d, "a", "x") == "done"
    });
    assert_eq!(doc["config"]["errors"], serde_json::json!([]), "{doc:#}");
    assert_eq!(entry_pid(&doc, "a", "r"), Some(p), "{doc:#}");
    assert!(node.alive(p), "pid {p} died");
    assert_eq!(node.witness("W"), ["x"]);
}

#[test]
fn sigterm_runs_stop_entries_and_leaves_no_process_behind() {
    // Entry g leaves a grandchild in its process group and one that escapes it (setsid).
    let mut node = Node::start(
        "a:r:start:respawn:sleep 1000\n\
         a:o:start:once:sleep 1000\n\
         a:g:start:once:sleep 1000 & echo $! > {DIR}/GC; \
         setsid sleep 1000 & echo $! > {DIR}/ESC; wait\n\
         a:s:stop:wait:echo stopped >> {DIR}/W\n",
        "a start\n",
        &[],
    );
    node.wait_for("a DONE with its three processes running", SOON, |d| {
        group_state(d, "a") == "DONE"
            && ["r", "o", "g"]
                .iter()
                .all(|t| entry_state(d, "a", t) == "running")
    });
    let grandchild = node.wait_pid_file("GC", SOON);
    let escaped = node.wait_pid_file("ESC", SOON);
    // A process caught in the middle of its exec can briefly show an empty environment, so
    // look for a while rather than once (seen once in CI on a loaded machine).
    let seen = Instant::now();
    while !(node.alive(grandchild) && node.alive(escaped)) {
        assert!(
            seen.elapsed() < SOON,
            "grandchild {grandchild} or escaped {escaped} not running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(node.read_file("W").is_none(), "stop entry ran too early");
    // The same for the count below, which finds the node's processes by their environment
    // (found by CI: 4 processes once).
    let before = loop {
        let before = node.processes();
        if before.len() >= 5 || seen.elapsed() >= SOON {
            break before;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        before.len() >= 5,
        "expected at least 5 processes: {before:?}"
    );

    let t0 = Instant::now();
    let status = node.sigterm_and_wait(secs(15.0));
    eprintln!(
        "mosha exited {:.2?} after SIGTERM: {status:?}",
        t0.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(
        node.witness("W"),
        ["stopped"],
        "the stop entry did not run once"
    );
    assert!(
        !node.path("clstat.json").exists(),
        "clstat.json left behind"
    );
    let left: Vec<(u32, Option<char>)> = node
        .processes()
        .into_iter()
        .map(|p| (p, common::proc_state(p)))
        .collect();
    assert!(
        left.is_empty(),
        "processes left behind: {left:?} (grandchild {grandchild}, escaped {escaped})"
    );
}

#[test]
fn never_started_group_does_not_run_its_stop_entries() {
    let mut node = Node::start("a:s:stop:wait:echo s >> {DIR}/W\n", "", &[]);
    node.wait_for("group a known", SOON, |d| !d["groups"]["a"].is_null());
    std::thread::sleep(secs(1.0));
    assert!(
        node.read_file("W").is_none(),
        "the stop entry of a group that never ran ran"
    );
    let doc = node.clstat().unwrap();
    assert_eq!(entry_state(&doc, "a", "s"), "idle", "{doc:#}");
    // Nor at shutdown.
    let status = node.sigterm_and_wait(secs(15.0));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        node.read_file("W").is_none(),
        "the stop entry ran at shutdown"
    );
}

#[test]
fn failed_exec_fails_its_group_and_harms_nothing_else() {
    let node = Node::start(
        "a:r:start:respawn:sleep 1000\nb:x:start:once:/nonexistent/program-xyz\n",
        "a start\n",
        &[],
    );
    let p = wait_running(&node, "a", "r", SOON);
    node.write_file("hactl", "a start\nb start\n");
    let doc = node.wait_for("b FAILED", SOON, |d| group_state(d, "b") == "FAILED");
    assert_eq!(entry_state(&doc, "b", "x"), "failed", "{doc:#}");
    let error = entry(&doc, "b", "x")["error"].as_str().unwrap_or("");
    assert!(
        error.contains("/nonexistent/program-xyz"),
        "error {error:?} does not name the program"
    );
    std::thread::sleep(secs(0.5));
    let doc = node.clstat().unwrap();
    assert_eq!(group_state(&doc, "a"), "DONE", "{doc:#}");
    assert_eq!(entry_pid(&doc, "a", "r"), Some(p), "{doc:#}");
    assert_eq!(entry(&doc, "a", "r")["restarts"], 0, "{doc:#}");
    assert!(node.alive(p), "pid {p} died");
}

#[test]
fn leftovers_of_a_killed_daemon_are_stopped_on_restart() {
    let mut node = Node::start("a:r:start:respawn:sleep 1000\n", "a start\n", &[]);
    let old = wait_running(&node, "a", "r", SOON);
    node.kill_daemon();
    std::thread::sleep(secs(0.3));
    assert!(node.alive(old), "the child died with the daemon");

    node.restart();
    let doc = node.wait_for("a/r running under the new daemon", SOON, |d| {
        entry_state(d, "a", "r") == "running" && entry_pid(d, "a", "r").is_some_and(|p| p != old)
    });
    let new = entry_pid(&doc, "a", "r").unwrap();
    assert!(!node.alive(old), "left-over pid {old} still running");
    assert!(node.alive(new));
    assert_eq!(node.processes(), [new]);
    assert!(
        node.log().contains("left behind by an earlier mosha"),
        "no log line about the left-over"
    );
}

#[test]
fn group_removed_from_cltab_is_stopped_gracefully() {
    let keep = "h:k:start:respawn:sleep 1000\n";
    let node = Node::start(
        &format!(
            "g:r:start:respawn:trap 'echo term >> {{DIR}}/W; exit 0' TERM; \
             while :; do sleep 0.1; done\n{keep}"
        ),
        "g start\nh start\n",
        &[],
    );
    let gp = wait_running(&node, "g", "r", SOON);
    let hp = wait_running(&node, "h", "k", SOON);

    node.write_file("cltab", keep);
    node.wait_for("group g gone from clstat", SOON, |d| {
        d["groups"]["g"].is_null() && d["config"]["ok"] == true
    });
    assert_eq!(node.witness("W"), ["term"], "g/r did not get SIGTERM");
    node.wait_until("g/r's process to be gone", SOON, || !pid_alive(gp));
    assert!(
        !node.log().contains("sending SIGKILL"),
        "g/r should have stopped on SIGTERM"
    );
    let doc = node.clstat().unwrap();
    assert_eq!(entry_pid(&doc, "h", "k"), Some(hp), "{doc:#}");
    assert!(node.alive(hp));
    assert_eq!(node.processes(), [hp]);
}

#[test]
fn broken_hactl_edit_is_rejected_and_old_level_keeps_running() {
    let node = Node::start(
        "a:r:one:respawn:sleep 1000\na:s:two:once:echo two >> {DIR}/W\n",
        "a one\n",
        &[],
    );
    let p = wait_running(&node, "a", "r", SOON);
    let hactl = node.path_str("hactl");
    node.write_file("hactl", "a two\nb\n");
    let doc = node.wait_for("config.ok false", SOON, |d| d["config"]["ok"] == false);
    let errors = doc["config"]["errors"].as_array().expect("errors").clone();
    assert_eq!(errors.len(), 1, "{doc:#}");
    let e = errors[0].as_str().unwrap_or("");
    assert!(e.starts_with(&format!("{hactl}:2: ")), "{e:?}");
    assert!(node.log().contains(e), "the log lacks {e:?}");
    std::thread::sleep(secs(0.6));
    let doc = node.clstat().unwrap();
    assert_eq!(doc["groups"]["a"]["target"], "one", "{doc:#}");
    assert_eq!(entry_pid(&doc, "a", "r"), Some(p), "{doc:#}");
    assert!(node.alive(p));
    assert!(node.read_file("W").is_none(), "level two started");

    node.write_file("hactl", "a two\n");
    node.wait_for("config ok and a DONE at two", SOON, |d| {
        d["config"]["ok"] == true
            && d["groups"]["a"]["level"] == "two"
            && group_state(d, "a") == "DONE"
    });
    assert!(!node.alive(p), "level one's entry still runs");
    node.wait_until("level two's witness", SOON, || node.witness("W") == ["two"]);
}

#[test]
fn group_told_stop_by_hactl_runs_its_stop_entries() {
    let node = Node::start(
        "a:r:start:respawn:sleep 1000\na:s:stop:wait:echo stopped >> {DIR}/W\n",
        "a start\n",
        &[],
    );
    let p = wait_running(&node, "a", "r", SOON);
    assert!(node.read_file("W").is_none(), "the stop entry ran at start");
    // A group absent from hactl is at stop.
    node.write_file("hactl", "");
    let doc = node.wait_for("a DONE at stop", SOON, |d| {
        d["groups"]["a"]["level"] == "stop" && group_state(d, "a") == "DONE"
    });
    assert_eq!(entry_state(&doc, "a", "s"), "done", "{doc:#}");
    assert_eq!(entry_state(&doc, "a", "r"), "idle", "{doc:#}");
    assert_eq!(node.witness("W"), ["stopped"]);
    assert!(!node.alive(p), "the start entry still runs");
}

#[test]
fn children_get_their_environment_and_own_process_group() {
    let node = Node::start(
        "grp:envtag:lvl:once:echo \"$MOSHA_NODE $MOSHA_GROUP $MOSHA_LEVEL $MOSHA_TAG\" >> {DIR}/W\n\
         grp:sl:lvl:respawn:sleep 1000\n\
         grp:dis:lvl:off:echo off >> {DIR}/OFF\n",
        "grp lvl\n",
        &[],
    );
    let pid = wait_running(&node, "grp", "sl", SOON);
    node.wait_until("the env witness", SOON, || !node.witness("W").is_empty());
    assert_eq!(node.witness("W"), [format!("{} grp lvl envtag", node.name)]);
    // Its own process group: field 5 (pgrp) of /proc/PID/stat. It stays in the daemon's
    // session (field 6), so that it is spawned without a fork of the daemon.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(fields[2], pid.to_string(), "pgrp: {stat}");
    let daemon = std::fs::read_to_string(format!("/proc/{}/stat", node.daemon_pid())).unwrap();
    let daemon: Vec<&str> = daemon[daemon.rfind(')').unwrap() + 2..]
        .split(' ')
        .collect();
    assert_eq!(fields[3], daemon[3], "session: {stat}");
    // The off entry never runs.
    let doc = node.wait_for("grp DONE", SOON, |d| group_state(d, "grp") == "DONE");
    assert_eq!(entry_state(&doc, "grp", "dis"), "off", "{doc:#}");
    std::thread::sleep(secs(0.3));
    assert!(node.read_file("OFF").is_none(), "the off entry ran");
}

#[test]
fn second_sigterm_kills_at_once() {
    // Default grace (10 s): the first SIGTERM alone would wait that long for this entry.
    let mut node = Node::start(
        "a:t:start:respawn:trap '' TERM; while :; do sleep 0.1; done\n",
        "a start\n",
        &[],
    );
    let pid = wait_running(&node, "a", "t", SOON);
    let daemon = nix::unistd::Pid::from_raw(node.daemon_pid() as i32);
    let t0 = Instant::now();
    nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGTERM).unwrap();
    let doc = node.wait_for("shutting down", SOON, |d| d["shutting_down"] == true);
    assert_eq!(group_state(&doc, "a"), "STOPPING", "{doc:#}");
    std::thread::sleep(secs(0.5));
    assert!(
        node.alive(pid),
        "the TERM-ignoring entry died before the grace period"
    );
    let status = node.sigterm_and_wait(secs(5.0));
    eprintln!("mosha exited {:.2?} after the first SIGTERM", t0.elapsed());
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        t0.elapsed() < secs(8.0),
        "the second SIGTERM did not hurry the stop"
    );
    assert!(
        !node.path("clstat.json").exists(),
        "clstat.json left behind"
    );
    assert_eq!(node.processes(), Vec::<u32>::new());
}

#[test]
fn level_switch_stops_what_a_finished_once_entry_left_in_its_group() {
    // The once entry's shell exits at once, leaving a background process in its group.
    let node = Node::start(
        "g:d:one:once:sleep 1000 & echo $! > {DIR}/BG\ng:x:two:once:echo two >> {DIR}/W\n",
        "g one\n",
        &[],
    );
    node.wait_for("g/d done", SOON, |d| entry_state(d, "g", "d") == "done");
    let bg = node.wait_pid_file("BG", SOON);
    assert!(node.alive(bg));
    node.write_file("hactl", "g two\n");
    node.wait_for("g DONE at level two", SOON, |d| {
        d["groups"]["g"]["level"] == "two" && group_state(d, "g") == "DONE"
    });
    assert!(
        !node.alive(bg),
        "background process {bg} of the once entry still runs"
    );
    node.wait_until("level two's witness", SOON, || node.witness("W") == ["two"]);
}

#[test]
fn respawn_burst_option_is_honoured() {
    // With --respawn-burst 1, the first exit restarts at once and the second backs off.
    let node = Node::start(
        "a:r:start:respawn:sleep 0.05; exit 1\n",
        "a start\n",
        &["--respawn-burst", "1"],
    );
    let doc = node.wait_for("a/r backing off", SOON, |d| {
        entry_state(d, "a", "r") == "backoff"
    });
    let e = entry(&doc, "a", "r");
    assert_eq!(e["restarts"], 1, "{doc:#}");
    assert_eq!(e["backoff_s"], 1.0, "{doc:#}");
    assert_eq!(e["last_exit"], "exit status 1", "{doc:#}");
    assert_eq!(e["pid"], serde_json::Value::Null, "{doc:#}");
}
