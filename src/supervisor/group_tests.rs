//! Scenario tests of the group state machine against a fake [`Os`]: each test is a script of
//! (time, event) and the spawns and signals it must cause.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;
use crate::config::Cltab;
use crate::supervisor::SpawnSpec;

/// A fake operating system: spawns get pids 100, 101, ...; signals are recorded; a process
/// group is alive until the test says otherwise.
#[derive(Default)]
pub(crate) struct FakeOs {
    next_pid: u32,
    pub spawned: Vec<(u32, String)>,
    pub signals: Vec<(u32, Signal)>,
    alive_groups: BTreeSet<u32>,
    fail_commands: BTreeSet<String>,
}

impl Os for FakeOs {
    fn spawn(&mut self, spec: &SpawnSpec<'_>) -> std::io::Result<u32> {
        if self.fail_commands.contains(spec.command) {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        let pid = 100 + self.next_pid;
        self.next_pid += 1;
        self.spawned.push((pid, spec.tag.to_string()));
        Ok(pid)
    }
    fn signal_group(&mut self, pgid: u32, signal: Signal) {
        self.signals.push((pgid, signal));
    }
    fn group_alive(&mut self, pgid: u32) -> bool {
        self.alive_groups.contains(&pgid)
    }
}

impl FakeOs {
    pub fn tags(&self) -> Vec<&str> {
        self.spawned.iter().map(|(_, t)| t.as_str()).collect()
    }
    pub fn pid_of(&self, tag: &str) -> u32 {
        self.spawned.iter().rev().find(|(_, t)| t == tag).unwrap().0
    }
}

pub(crate) struct Harness {
    pub g: Group,
    pub os: FakeOs,
    pub opts: Options,
    pub t0: Instant,
}

impl Harness {
    pub fn new(cltab: &str) -> Harness {
        let c = Cltab::parse("cltab", cltab).unwrap();
        let mut h = Harness {
            g: Group::new("g"),
            os: FakeOs::default(),
            opts: Options::new("n1"),
            t0: Instant::now(),
        };
        h.opts.grace = Duration::from_secs(2);
        let entries: Vec<_> = c.entries_of("g").collect();
        h.g.set_entries(&h.opts, h.t0, &mut h.os, &entries);
        h
    }
    pub fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    pub fn tell(&mut self, ms: u64, level: &str) {
        let now = self.at(ms);
        self.g.tell(&self.opts, now, &mut self.os, level);
    }
    pub fn exit(&mut self, ms: u64, tag: &str, exit: Exit) {
        let now = self.at(ms);
        let pid = self.os.pid_of(tag);
        assert!(self
            .g
            .child_exited(&self.opts, now, &mut self.os, pid, exit));
    }
    pub fn tick(&mut self, ms: u64) {
        let now = self.at(ms);
        self.g.tick(&self.opts, now, &mut self.os);
    }
    pub fn run(&self, tag: &str) -> &Run {
        &self
            .g
            .slots
            .iter()
            .find(|s| s.entry.tag == tag)
            .unwrap()
            .run
    }
}

const LIFECYCLE: &str = "\
g:w1:start:wait:w1
g:w2:start:wait:w2
g:srv:start,test:respawn:srv
g:bg:start:once:bg
g:t1:test:test:t1
g:t2:test:test:t2
g:after:test:once:after
g:clean:stop:wait:clean
g:never:start:off:never
";

#[test]
fn wait_entries_block_the_next_in_file_order() {
    let mut h = Harness::new(LIFECYCLE);
    h.tell(0, "start");
    assert_eq!(h.os.tags(), ["w1"]);
    assert_eq!(h.g.state, GroupState::Starting);
    h.exit(10, "w1", Exit::Code(0));
    assert_eq!(h.os.tags(), ["w1", "w2"]);
    h.exit(20, "w2", Exit::Code(1)); // a wait entry's status is ignored
    assert_eq!(h.os.tags(), ["w1", "w2", "srv", "bg"]);
    assert_eq!(h.g.state, GroupState::Done);
    assert_eq!(h.g.level, "start");
    assert_eq!(*h.run("never"), Run::Idle, "off entries never run");
}

#[test]
fn tests_pass_or_fail_the_group_and_later_entries_still_start() {
    let mut h = Harness::new(LIFECYCLE);
    h.tell(0, "test");
    assert_eq!(h.os.tags(), ["srv", "t1"]);
    h.exit(5, "t1", Exit::Code(0));
    h.exit(6, "t2", Exit::Code(3));
    assert_eq!(h.os.tags(), ["srv", "t1", "t2", "after"]);
    assert_eq!(h.g.state, GroupState::Failed);
    assert_eq!(*h.run("t2"), Run::Failed("exit status 3".into()));

    let mut h = Harness::new(LIFECYCLE);
    h.tell(0, "test");
    h.exit(5, "t1", Exit::Code(0));
    h.exit(6, "t2", Exit::Code(0));
    assert_eq!(h.g.state, GroupState::Passed);
}

#[test]
fn a_level_switch_keeps_shared_entries_and_stops_the_rest() {
    let mut h = Harness::new(LIFECYCLE);
    h.tell(0, "test");
    h.exit(5, "t1", Exit::Code(0));
    h.exit(6, "t2", Exit::Code(0));
    let srv = h.os.pid_of("srv");
    let after = h.os.pid_of("after");
    h.tell(100, "start");
    // srv is in both levels: untouched. The once entry of `test` is stopped.
    assert_eq!(h.os.signals, [(after, Signal::Term)]);
    assert_eq!(h.g.state, GroupState::Stopping);
    assert_eq!(
        h.g.level, "test",
        "the old level shows until its entries are stopped"
    );
    assert_eq!(
        h.g.next_deadline(),
        Some(h.at(2100)),
        "SIGKILL due after the grace"
    );
    h.exit(150, "after", Exit::Signal(15));
    assert_eq!(h.g.state, GroupState::Starting);
    assert_eq!(h.g.level, "start");
    assert_eq!(h.os.pid_of("srv"), srv);
    assert_eq!(
        *h.run("t1"),
        Run::Idle,
        "results of the old level are forgotten"
    );
}

#[test]
fn a_process_that_ignores_sigterm_gets_sigkill_after_the_grace() {
    let mut h = Harness::new("g:a:one:respawn:a\ng:b:two:once:b\n");
    h.tell(0, "one");
    let a = h.os.pid_of("a");
    h.tell(1000, "two");
    h.tick(2999);
    assert_eq!(h.os.signals, [(a, Signal::Term)]);
    h.tick(3000);
    assert_eq!(h.os.signals, [(a, Signal::Term), (a, Signal::Kill)]);
    assert_eq!(
        h.g.next_deadline(),
        None,
        "nothing to do until the exit is reaped"
    );
    h.exit(3001, "a", Exit::Signal(9));
    assert_eq!(h.os.tags(), ["a", "b"]);
}

#[test]
fn a_stop_waits_for_every_process_of_the_group_not_just_the_leader() {
    let mut h = Harness::new("g:a:one:once:a\ng:b:two:once:b\n");
    h.tell(0, "one");
    let a = h.os.pid_of("a");
    h.os.alive_groups.insert(a); // a grandchild lives on in a's process group
    h.tell(10, "two");
    h.exit(20, "a", Exit::Signal(15));
    assert_eq!(h.g.state, GroupState::Stopping);
    h.tick(100);
    assert_eq!(h.g.state, GroupState::Stopping);
    h.tick(2010);
    assert_eq!(h.os.signals, [(a, Signal::Term), (a, Signal::Kill)]);
    h.os.alive_groups.clear();
    h.tick(2100);
    assert_eq!(h.os.tags(), ["a", "b"]);
    assert_eq!(h.g.state, GroupState::Done);
}

#[test]
fn leftovers_of_a_finished_entry_are_stopped_too() {
    let mut h = Harness::new("g:w:one:wait:w\ng:b:two:once:b\n");
    h.tell(0, "one");
    let w = h.os.pid_of("w");
    h.exit(10, "w", Exit::Code(0));
    h.os.alive_groups.insert(w); // `w` left a background process behind
    h.tell(20, "two");
    assert_eq!(h.os.signals, [(w, Signal::Term)]);
    h.os.alive_groups.clear();
    h.tick(100);
    assert_eq!(h.os.tags(), ["w", "b"]);
}

#[test]
fn respawn_restarts_at_once_then_backs_off_then_recovers() {
    let mut h = Harness::new("g:r:on:respawn:r\n");
    h.tell(0, "on");
    for i in 1..=5 {
        h.exit(i * 10, "r", Exit::Code(1));
        assert!(matches!(h.run("r"), Run::Running { .. }), "restart {i}");
    }
    h.exit(60, "r", Exit::Code(1));
    assert_eq!(
        *h.run("r"),
        Run::Backoff {
            until: h.at(1060),
            delay: Duration::from_secs(1)
        }
    );
    assert_eq!(h.g.next_deadline(), Some(h.at(1060)));
    h.tick(1059);
    assert_eq!(h.os.spawned.len(), 6);
    h.tick(1060);
    assert_eq!(h.os.spawned.len(), 7);
    h.exit(1070, "r", Exit::Code(1));
    assert!(matches!(h.run("r"), Run::Backoff { delay, .. } if *delay == Duration::from_secs(2)));
    h.tick(3070);
    // This run lasts 10 s: the next exit restarts at once.
    h.exit(13070, "r", Exit::Code(1));
    assert!(matches!(h.run("r"), Run::Running { .. }));
    assert_eq!(h.g.slots[0].restarts, 8);
    assert_eq!(
        h.g.state,
        GroupState::Done,
        "respawns do not change the group state"
    );
}

#[test]
fn a_failed_exec_fails_only_its_entry() {
    let mut h = Harness::new("g:a:on:once:a\ng:missing:on:wait:missing\ng:c:on:once:c\n");
    h.os.fail_commands.insert("missing".into());
    h.tell(0, "on");
    assert_eq!(h.os.tags(), ["a", "c"]);
    assert!(matches!(h.run("missing"), Run::Failed(why) if why.contains("cannot execute")));
    assert_eq!(h.g.state, GroupState::Failed);
    assert!(h.os.signals.is_empty());
}

#[test]
fn a_respawn_entry_that_cannot_exec_backs_off_instead_of_spinning() {
    let mut h = Harness::new("g:r:on:respawn:missing\n");
    h.os.fail_commands.insert("missing".into());
    h.tell(0, "on");
    assert!(matches!(h.run("r"), Run::Backoff { .. }));
    assert_eq!(h.g.slots[0].restarts, 5);
    assert!(h.g.slots[0].last_error.is_some());
}

#[test]
fn a_group_that_never_ran_does_not_run_its_stop_entries() {
    let mut h = Harness::new(LIFECYCLE);
    h.tell(0, "stop");
    assert!(h.os.spawned.is_empty());
    h.tell(10, "start");
    h.exit(20, "w1", Exit::Code(0));
    h.exit(30, "w2", Exit::Code(0));
    h.tell(40, "stop");
    let stopped: BTreeSet<u32> = h.os.signals.iter().map(|s| s.0).collect();
    assert_eq!(stopped.len(), 2, "srv and bg get SIGTERM");
    h.exit(50, "srv", Exit::Signal(15));
    h.exit(51, "bg", Exit::Signal(15));
    assert_eq!(
        h.os.tags().last(),
        Some(&"clean"),
        "coming down runs the stop entries"
    );
    h.exit(60, "clean", Exit::Code(0));
    assert_eq!((h.g.level.as_str(), h.g.state), ("stop", GroupState::Done));
    assert!(!h.g.has_processes());
}

#[test]
fn a_changed_command_is_stopped_then_restarted_and_a_removed_entry_stopped() {
    let mut h = Harness::new("g:a:on:respawn:v1\ng:b:on:respawn:b\ng:c:on:respawn:c\n");
    h.tell(0, "on");
    let (a, b, c) = (h.os.pid_of("a"), h.os.pid_of("b"), h.os.pid_of("c"));
    let new = Cltab::parse("cltab", "g:a:on:respawn:v2\ng:c:on,other:respawn:c\n").unwrap();
    let entries: Vec<_> = new.entries_of("g").collect();
    h.g.set_entries(&h.opts, h.at(10), &mut h.os, &entries);
    h.tell(10, "on");
    assert_eq!(h.os.signals, [(a, Signal::Term), (b, Signal::Term)]);
    assert_eq!(h.g.retiring.len(), 2);
    assert_eq!(h.g.state, GroupState::Stopping);
    assert!(h
        .g
        .child_exited(&h.opts, h.at(20), &mut h.os, a, Exit::Signal(15)));
    assert!(h
        .g
        .child_exited(&h.opts, h.at(21), &mut h.os, b, Exit::Signal(15)));
    assert!(h.g.retiring.is_empty());
    assert_eq!(
        h.os.tags(),
        ["a", "b", "c", "a"],
        "a restarts with its new command"
    );
    assert_eq!(h.os.pid_of("c"), c, "c only changed levels: untouched");
}

#[test]
fn an_entry_switched_to_off_is_stopped() {
    let mut h = Harness::new("g:a:on:respawn:a\n");
    h.tell(0, "on");
    let a = h.os.pid_of("a");
    let new = Cltab::parse("cltab", "g:a:on:off:a\n").unwrap();
    let entries: Vec<_> = new.entries_of("g").collect();
    h.g.set_entries(&h.opts, h.at(10), &mut h.os, &entries);
    h.tell(10, "on");
    assert_eq!(h.os.signals, [(a, Signal::Term)]);
    h.exit(20, "a", Exit::Signal(15));
    assert_eq!(h.os.spawned.len(), 1, "an off entry is never started again");
    assert_eq!(h.g.state, GroupState::Done);
}

#[test]
fn levels_compare_literally_and_zero_is_a_level() {
    let mut h = Harness::new("g:dot:a.c:once:dot\ng:zero:0:once:zero\n");
    h.tell(0, "abc");
    assert!(h.os.spawned.is_empty(), "'a.c' is not a pattern");
    h.tell(10, "0");
    assert_eq!(h.os.tags(), ["zero"]);
}

#[test]
fn restarts_past_the_policy_fail_the_group_here_and_a_stop_forgets_them() {
    let mut h = Harness::new("g:srv:start:respawn:srv\ng:web:start:respawn:web\n");
    h.g.policy = RestartPolicy {
        max: Some(2),
        window: Duration::from_secs(60),
    };
    h.tell(0, "start");
    assert_eq!(h.g.state, GroupState::Done);
    h.exit(1000, "srv", Exit::Code(1));
    h.exit(2000, "web", Exit::Signal(9)); // any entry's exit counts for the group
    assert_eq!(h.g.state, GroupState::Done);
    assert_eq!(h.g.restarts.count(), 2);
    assert_eq!(h.os.tags(), ["srv", "web", "srv", "web"]);
    h.exit(3000, "srv", Exit::Code(1));
    assert_eq!(
        h.g.state,
        GroupState::Failed,
        "the third exit within the window"
    );
    assert_eq!(h.os.tags().len(), 4, "not restarted");
    assert!(matches!(h.run("srv"), Run::Failed(_)));
    let f = h.g.failure.clone().unwrap();
    assert_eq!((f.tag.as_str(), f.mode), ("srv", "respawn"));
    assert!(
        f.why
            .starts_with("exit status 1; restarted 2 time(s) within 60 s"),
        "{}",
        f.why
    );
    // The engine stops the group here: the count goes, why it failed stays for status.
    h.tell(3100, "stop");
    assert_eq!(h.g.restarts.count(), 0);
    assert!(h.g.failure.is_some());
    // Placed here again later: a fresh count, and the old failure is forgotten.
    h.tell(90_000, "start");
    assert!(h.g.failure.is_none());
}

#[test]
fn a_failed_test_is_kept_as_the_groups_failure() {
    let mut h = Harness::new("g:t:test:test:t\n");
    h.tell(0, "test");
    h.exit(10, "t", Exit::Code(3));
    assert_eq!(h.g.state, GroupState::Failed);
    let f = h.g.failure.clone().unwrap();
    assert_eq!(
        (f.tag.as_str(), f.mode, f.why.as_str()),
        ("t", "test", "exit status 3")
    );
}
