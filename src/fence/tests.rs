//! Scenario tests of the fence [`Runner`] against a fake [`AgentOs`]: each test starts a job,
//! hands in exits and instants, and checks the agents it spawned and killed and the result.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{AgentOs, FenceResult, Runner};
use crate::config::fencetab::Method;
use crate::supervisor::Exit;

/// One agent run the fake was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spawned {
    pid: u32,
    program: String,
    stdin: String,
    target: String,
}

/// A fake operating system: agents get pids 100, 101, ...; programs in `missing` cannot be
/// spawned; kills are recorded.
#[derive(Default)]
struct FakeOs {
    spawned: Vec<Spawned>,
    killed: Vec<u32>,
    missing: BTreeSet<String>,
}

impl AgentOs for FakeOs {
    fn spawn_agent(&mut self, program: &str, stdin: &str, target: &str) -> std::io::Result<u32> {
        if self.missing.contains(program) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{program} not found"),
            ));
        }
        let pid = 100 + self.spawned.len() as u32;
        self.spawned.push(Spawned {
            pid,
            program: program.to_string(),
            stdin: stdin.to_string(),
            target: target.to_string(),
        });
        Ok(pid)
    }

    fn kill_agent(&mut self, pgid: u32) {
        self.killed.push(pgid);
    }
}

impl FakeOs {
    fn programs(&self) -> Vec<&str> {
        self.spawned.iter().map(|s| s.program.as_str()).collect()
    }

    fn last_pid(&self) -> u32 {
        self.spawned.last().expect("an agent was spawned").pid
    }
}

fn method(agent: &str, action: &str, timeout_s: u64, line: usize) -> Method {
    let mut options = BTreeMap::new();
    options.insert("ip".to_string(), format!("10.0.0.{line}"));
    Method {
        agent: agent.to_string(),
        action: action.to_string(),
        timeout: Duration::from_secs(timeout_s),
        options,
        line,
    }
}

/// A runner, its fake OS and a clock that tests move by hand.
struct Harness {
    r: Runner,
    os: FakeOs,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        let t0 = Instant::now();
        Harness {
            r: Runner::new(),
            os: FakeOs::default(),
            t0,
            now: t0,
        }
    }

    fn start(&mut self, victim: &str, generation: u64, methods: &[Method]) {
        self.r
            .start(self.now, &mut self.os, victim, generation, methods);
    }

    fn at(&mut self, secs: f64) {
        self.now = self.t0 + Duration::from_secs_f64(secs);
        self.r.tick(self.now, &mut self.os);
    }

    fn exit(&mut self, pid: u32, exit: Exit) -> bool {
        self.r.child_exited(self.now, &mut self.os, pid, exit)
    }

    /// Makes the newest agent exit with `code`.
    fn last_exits(&mut self, code: i32) {
        let pid = self.os.last_pid();
        assert!(
            self.exit(pid, Exit::Code(code)),
            "pid {pid} is the runner's"
        );
    }

    fn one_result(&mut self) -> FenceResult {
        let mut v = self.r.take_results();
        assert_eq!(v.len(), 1, "{v:?}");
        v.pop().unwrap()
    }
}

#[test]
fn levels_are_tried_in_order_until_one_succeeds() {
    let mut h = Harness::new();
    let ms = [
        method("fence_a", "reboot", 10, 1),
        method("fence_b", "reboot", 10, 2),
        method("fence_c", "reboot", 10, 3),
    ];
    h.start("n2", 7, &ms);
    assert_eq!(h.os.programs(), ["fence_a"]);
    assert!(h.r.take_results().is_empty());
    h.last_exits(1);
    assert_eq!(h.os.programs(), ["fence_a", "fence_b"]);
    h.last_exits(0);
    assert_eq!(
        h.os.programs(),
        ["fence_a", "fence_b"],
        "level c never runs"
    );
    let res = h.one_result();
    assert!(res.ok, "{res:?}");
    assert_eq!((res.victim.as_str(), res.generation), ("n2", 7));
    assert!(
        res.detail
            .starts_with("fence_b (fencetab line 2): reboot done"),
        "{}",
        res.detail
    );
    assert!(
        res.detail
            .contains("fence_a (fencetab line 1): reboot failed (exit status 1)"),
        "{}",
        res.detail
    );
    assert!(!h.r.busy("n2"));
    assert_eq!(h.r.next_deadline(), None);
}

#[test]
fn all_levels_failing_reports_every_reason() {
    let mut h = Harness::new();
    let ms = [
        method("fence_a", "off", 10, 4),
        method("fence_b", "reboot", 10, 5),
    ];
    h.start("n2", 1, &ms);
    h.last_exits(1);
    let pid = h.os.last_pid();
    assert!(h.exit(pid, Exit::Signal(11)));
    let res = h.one_result();
    assert!(!res.ok);
    assert!(
        res.detail.starts_with("all 2 levels failed: "),
        "{}",
        res.detail
    );
    assert!(
        res.detail
            .contains("fence_a (fencetab line 4): off failed (exit status 1)"),
        "{}",
        res.detail
    );
    assert!(
        res.detail
            .contains("fence_b (fencetab line 5): reboot failed (killed by signal 11"),
        "{}",
        res.detail
    );
}

#[test]
fn off_is_confirmed_by_status_off() {
    let mut h = Harness::new();
    let m = method("fence_dummy", "off", 10, 3);
    h.start("n2", 1, std::slice::from_ref(&m));
    assert_eq!(h.os.spawned[0].stdin, m.stdin_for("n2", "off"));
    assert_eq!(h.os.spawned[0].target, "n2");
    h.last_exits(0);
    assert!(
        h.r.take_results().is_empty(),
        "not done before status answers"
    );
    assert!(h.r.busy("n2"));
    assert_eq!(h.os.programs(), ["fence_dummy", "fence_dummy"]);
    assert_eq!(h.os.spawned[1].stdin, m.stdin_for("n2", "status"));
    h.last_exits(2);
    let res = h.one_result();
    assert!(res.ok);
    assert_eq!(
        res.detail,
        "fence_dummy (fencetab line 3): off confirmed by status"
    );
}

#[test]
fn status_saying_on_fails_the_level() {
    let mut h = Harness::new();
    let ms = [
        method("fence_a", "off", 10, 1),
        method("fence_b", "off", 10, 2),
    ];
    h.start("n2", 1, &ms);
    h.last_exits(0); // off
    h.last_exits(0); // status: on
    assert_eq!(h.os.programs(), ["fence_a", "fence_a", "fence_b"]);
    h.last_exits(0); // b: off
    h.last_exits(2); // b: status off
    let res = h.one_result();
    assert!(res.ok);
    assert!(
        res.detail
            .contains("fence_b (fencetab line 2): off confirmed by status"),
        "{}",
        res.detail
    );
    assert!(
        res.detail
            .contains("fence_a (fencetab line 1): agent said off but status says on"),
        "{}",
        res.detail
    );
}

#[test]
fn status_saying_on_at_the_last_level_fails_the_job() {
    let mut h = Harness::new();
    h.start("n2", 1, &[method("fence_a", "off", 10, 1)]);
    h.last_exits(0);
    h.last_exits(0);
    let res = h.one_result();
    assert!(!res.ok);
    assert_eq!(
        res.detail,
        "the only level failed: fence_a (fencetab line 1): agent said off but status says on"
    );
}

#[test]
fn status_that_cannot_tell_accepts_the_off() {
    for exit in [Exit::Code(1), Exit::Code(3), Exit::Signal(6)] {
        let mut h = Harness::new();
        h.start("n2", 1, &[method("fence_a", "off", 10, 1)]);
        h.last_exits(0);
        let pid = h.os.last_pid();
        assert!(h.exit(pid, exit));
        let res = h.one_result();
        assert!(res.ok, "{exit:?}: {res:?}");
        assert!(
            res.detail
                .contains(&format!("status could not tell ({exit}), off accepted")),
            "{}",
            res.detail
        );
    }
}

#[test]
fn reboot_is_not_confirmed() {
    let mut h = Harness::new();
    let m = method("fence_a", "reboot", 10, 1);
    h.start("n2", 1, std::slice::from_ref(&m));
    assert_eq!(h.os.spawned[0].stdin, m.stdin_for("n2", "reboot"));
    h.last_exits(0);
    assert_eq!(h.os.programs(), ["fence_a"], "no status run");
    let res = h.one_result();
    assert!(res.ok);
    assert_eq!(res.detail, "fence_a (fencetab line 1): reboot done");
}

#[test]
fn timeout_kills_the_agent_and_moves_to_the_next_level() {
    let mut h = Harness::new();
    let ms = [
        method("fence_a", "off", 5, 1),
        method("fence_b", "reboot", 8, 2),
    ];
    h.start("n2", 1, &ms);
    assert_eq!(h.r.next_deadline(), Some(h.t0 + Duration::from_secs(5)));
    h.at(4.9);
    assert!(h.os.killed.is_empty());
    h.at(5.0);
    assert_eq!(h.os.killed, [100], "the first agent's process group");
    assert_eq!(h.os.programs(), ["fence_a", "fence_b"]);
    assert_eq!(h.r.next_deadline(), Some(h.t0 + Duration::from_secs(13)));
    assert_eq!(h.r.pids(), [100, 101]);
    // The killed agent's exit arrives late: consumed, and b is still awaited.
    assert!(h.exit(100, Exit::Signal(9)));
    assert!(h.r.busy("n2"));
    assert!(h.r.take_results().is_empty());
    assert_eq!(h.r.pids(), [101]);
    assert!(!h.exit(100, Exit::Signal(9)), "consumed once");
    h.last_exits(0);
    let res = h.one_result();
    assert!(res.ok);
    assert!(
        res.detail
            .contains("fence_a (fencetab line 1): off timed out after 5s, killed"),
        "{}",
        res.detail
    );
}

#[test]
fn status_timeout_fails_the_level() {
    let mut h = Harness::new();
    h.start("n2", 1, &[method("fence_a", "off", 5, 1)]);
    h.at(1.0);
    h.last_exits(0);
    assert_eq!(h.r.next_deadline(), Some(h.t0 + Duration::from_secs(6)));
    h.at(6.0);
    assert_eq!(h.os.killed, [101]);
    let res = h.one_result();
    assert!(!res.ok);
    assert!(
        res.detail.contains("status timed out after 5s"),
        "{}",
        res.detail
    );
}

#[test]
fn late_exit_after_the_job_ended_is_consumed_once() {
    let mut h = Harness::new();
    h.start("n2", 1, &[method("fence_a", "reboot", 2, 1)]);
    h.at(2.0);
    let res = h.one_result();
    assert!(!res.ok);
    assert!(res.detail.contains("timed out after 2s"), "{}", res.detail);
    assert!(!h.r.busy("n2"));
    assert_eq!(h.r.pids(), [100], "the killed agent is still to be reaped");
    assert_eq!(h.r.next_deadline(), None);
    assert!(h.exit(100, Exit::Signal(9)));
    assert!(h.r.pids().is_empty());
    assert!(!h.exit(100, Exit::Signal(9)));
    assert!(
        h.r.take_results().is_empty(),
        "the late exit made no result"
    );
}

#[test]
fn spawn_failure_fails_the_level_at_once() {
    let mut h = Harness::new();
    h.os.missing.insert("fence_gone".to_string());
    let ms = [
        method("fence_gone", "off", 5, 1),
        method("fence_b", "reboot", 5, 2),
    ];
    h.start("n2", 1, &ms);
    assert_eq!(h.os.programs(), ["fence_b"]);
    h.last_exits(0);
    let res = h.one_result();
    assert!(res.ok);
    assert!(
        res.detail
            .contains("fence_gone (fencetab line 1): cannot run the agent: fence_gone not found"),
        "{}",
        res.detail
    );
}

#[test]
fn job_whose_agents_all_fail_to_spawn_ends_in_start() {
    let mut h = Harness::new();
    h.os.missing.insert("fence_gone".to_string());
    h.start("n2", 4, &[method("fence_gone", "off", 5, 1)]);
    assert!(!h.r.busy("n2"));
    let res = h.one_result();
    assert!(!res.ok);
    assert_eq!(res.generation, 4);
    assert!(
        res.detail.contains("cannot run the agent"),
        "{}",
        res.detail
    );
}

#[test]
fn status_that_cannot_be_spawned_accepts_the_off() {
    let mut h = Harness::new();
    h.start("n2", 1, &[method("fence_a", "off", 5, 1)]);
    h.os.missing.insert("fence_a".to_string());
    h.last_exits(0);
    let res = h.one_result();
    assert!(res.ok);
    assert!(
        res.detail.contains("status could not be run"),
        "{}",
        res.detail
    );
}

#[test]
fn no_methods_fails_at_once() {
    let mut h = Harness::new();
    h.start("n2", 1, &[]);
    let res = h.one_result();
    assert!(!res.ok);
    assert_eq!(res.detail, "no fencing method is configured");
    assert!(h.os.spawned.is_empty());
}

#[test]
fn busy_victim_is_not_started_twice() {
    let mut h = Harness::new();
    let ms = [method("fence_a", "reboot", 5, 1)];
    assert!(!h.r.busy("n2"));
    h.start("n2", 1, &ms);
    assert!(h.r.busy("n2"));
    h.start("n2", 2, &ms);
    assert_eq!(h.os.spawned.len(), 1, "the running job is left alone");
    h.last_exits(0);
    let res = h.one_result();
    assert_eq!(res.generation, 1);
    assert!(!h.r.busy("n2"));
    h.start("n2", 2, &ms);
    assert_eq!(h.os.spawned.len(), 2, "a finished job can be started again");
}

#[test]
fn results_are_returned_once() {
    let mut h = Harness::new();
    h.start("n2", 1, &[method("fence_a", "reboot", 5, 1)]);
    h.last_exits(0);
    assert_eq!(h.r.take_results().len(), 1);
    assert!(h.r.take_results().is_empty());
}

#[test]
fn victims_run_independently() {
    let mut h = Harness::new();
    h.start("n2", 1, &[method("fence_a", "reboot", 5, 1)]);
    h.start("n3", 9, &[method("fence_a", "reboot", 7, 1)]);
    assert!(h.r.busy("n2") && h.r.busy("n3"));
    assert_eq!(h.os.spawned[1].target, "n3");
    assert_eq!(h.r.next_deadline(), Some(h.t0 + Duration::from_secs(5)));
    assert!(h.exit(101, Exit::Code(0)));
    let res = h.one_result();
    assert_eq!(
        (res.victim.as_str(), res.generation, res.ok),
        ("n3", 9, true)
    );
    assert!(h.r.busy("n2"));
    h.at(5.0);
    let res = h.one_result();
    assert_eq!((res.victim.as_str(), res.ok), ("n2", false));
}

#[test]
fn unknown_pids_are_not_consumed() {
    let mut h = Harness::new();
    assert!(!h.exit(4242, Exit::Code(0)));
    h.start("n2", 1, &[method("fence_a", "reboot", 5, 1)]);
    assert!(!h.exit(4242, Exit::Code(0)));
    assert!(h.r.busy("n2"));
}

#[test]
fn resolve_finds_bare_names_in_sbin_and_keeps_paths() {
    use super::agents::resolve;
    assert_eq!(
        resolve("./x/fence_y"),
        Some(std::path::PathBuf::from("./x/fence_y"))
    );
    assert_eq!(resolve("no_such_fence_agent_here"), None);
    assert_eq!(resolve("sh").map(|p| p.is_absolute()), Some(true));
}

#[test]
fn a_cancelled_job_kills_its_agent_and_reports_nothing() {
    let mut h = Harness::new();
    h.start(
        "n2",
        1,
        &[
            method("fence_a", "off", 5, 1),
            method("fence_b", "off", 5, 2),
        ],
    );
    let pid = h.os.last_pid();
    assert!(h.r.cancel(&mut h.os, "n2"));
    assert_eq!(h.os.killed, [pid]);
    assert!(!h.r.busy("n2"));
    assert!(
        h.exit(pid, Exit::Signal(9)),
        "the killed agent's exit is consumed"
    );
    assert_eq!(h.os.programs(), ["fence_a"], "no next level after a cancel");
    assert!(h.r.take_results().is_empty());
    assert!(!h.r.cancel(&mut h.os, "n2"));
}
