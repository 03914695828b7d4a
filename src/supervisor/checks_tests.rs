//! Scenario tests of resources and health checks against the fake [`Os`] of
//! `group_tests.rs`: each test is a script of (time, event) and the actions it must cause.

use std::time::Duration;

use super::*;
use crate::config::Cltab;
use crate::supervisor::group::tests::Harness;
use crate::supervisor::policy::RestartPolicy;

const STACK: &str = "\
g:vip:start:resource/10s/5s:ocf:heartbeat:Dummy state=/tmp/vip
g:fs:start:resource:ocf:heartbeat:Dummy state=/tmp/fs
g:srv:start:respawn:srv
g:check:start:monitor/2s/1s/fall=2:check
";

/// Returns the harness of `cltab`, its resources probed (none runs here yet).
fn probed(cltab: &str) -> Harness {
    let mut h = Harness::new(cltab);
    while let Some(tag) = (h.g.slots.iter())
        .find(|s| {
            matches!(
                s.run,
                Run::Acting {
                    act: Act::Probe,
                    ..
                }
            )
        })
        .map(|s| s.entry.tag.clone())
    {
        h.exit(0, &tag, Exit::Code(7));
    }
    assert_eq!((h.g.level.as_str(), h.g.state), ("stop", GroupState::Done));
    h.os.spawned.clear();
    h
}

#[test]
fn resources_start_in_order_and_stop_last_first_after_the_processes() {
    let mut h = probed(STACK);
    h.tell(0, "start");
    assert_eq!(
        h.os.tags(),
        ["vip"],
        "a resource's start blocks the next entry"
    );
    assert!(
        matches!(
            h.run("vip"),
            Run::Acting {
                act: Act::Start,
                ..
            }
        ),
        "{:?}",
        h.run("vip")
    );
    h.exit(10, "vip", Exit::Code(0));
    assert_eq!(h.os.tags(), ["vip", "fs"]);
    h.exit(20, "fs", Exit::Code(0));
    assert_eq!(
        h.os.tags(),
        ["vip", "fs", "srv"],
        "the monitor waits for its interval"
    );
    assert_eq!(h.g.state, GroupState::Done);
    assert!(matches!(h.run("vip"), Run::Up { next: Some(_) }));
    assert!(
        matches!(h.run("fs"), Run::Up { next: None }),
        "no interval, no monitor"
    );
    h.tell(100, "stop");
    let srv = h.os.pid_of("srv");
    assert_eq!(h.os.signals, [(srv, Signal::Term)], "the processes first");
    assert_eq!(h.os.tags().len(), 3);
    h.exit(110, "srv", Exit::Signal(15));
    assert_eq!(
        h.os.tags(),
        ["vip", "fs", "srv", "fs"],
        "then the last resource"
    );
    h.exit(120, "fs", Exit::Code(0));
    assert_eq!(
        h.os.tags(),
        ["vip", "fs", "srv", "fs", "vip"],
        "then the first"
    );
    h.exit(130, "vip", Exit::Code(7)); // stopping what is stopped is fine
    assert_eq!((h.g.state, h.g.level.as_str()), (GroupState::Done, "stop"));
}

#[test]
fn a_failed_stop_blocks_the_group_until_a_cleanup_retries_it() {
    let mut h = probed("g:vip:start:resource:ocf:heartbeat:Dummy state=/tmp/v\n");
    h.tell(0, "start");
    h.exit(10, "vip", Exit::Code(0));
    h.tell(100, "stop");
    h.exit(110, "vip", Exit::Code(1));
    assert_eq!(h.g.state, GroupState::StopFailed);
    assert!(matches!(h.run("vip"), Run::StopFailed(_)));
    let f = h.g.failure.clone().unwrap();
    assert!(f.why.starts_with("stop failed: "), "{f:?}");
    // Told again, it does nothing: this node may still hold it.
    h.tell(200, "stop");
    assert_eq!(h.os.tags().len(), 2);
    let now = h.at(300);
    h.g.clear_failures(&h.opts, now, &mut h.os);
    assert_eq!(
        h.os.tags(),
        ["vip", "vip", "vip"],
        "the stop is tried again"
    );
    h.exit(310, "vip", Exit::Code(0));
    assert_eq!((h.g.state, h.g.level.as_str()), (GroupState::Done, "stop"));
}

#[test]
fn a_monitor_that_fails_fall_times_restarts_the_group_then_fails_it_past_the_policy() {
    let mut h = Harness::new("g:srv:start:respawn:srv\ng:check:start:monitor/2s/1s/fall=2:check\n");
    h.g.policy = RestartPolicy {
        max: Some(1),
        window: Duration::from_secs(600),
    };
    h.tell(0, "start");
    assert_eq!(h.g.state, GroupState::Done);
    assert_eq!(
        h.g.next_deadline(),
        Some(h.at(2000)),
        "the first check is due"
    );
    h.tick(2000);
    assert!(matches!(
        h.run("check"),
        Run::Acting {
            act: Act::Check,
            ..
        }
    ));
    h.exit(2050, "check", Exit::Code(0));
    assert_eq!(h.g.slots[1].health, Health::Passing);
    h.tick(4050);
    h.exit(4100, "check", Exit::Code(1));
    assert_eq!(
        h.os.signals.len(),
        0,
        "one failure of fall=2 does nothing yet"
    );
    // The next one times out: killed at its deadline, it counts as a failure.
    h.tick(6100);
    let pid = h.os.pid_of("check");
    h.tick(7100);
    assert_eq!(h.os.signals, [(pid, Signal::Kill)]);
    h.exit(7110, "check", Exit::Signal(9));
    // Two in a row: the group restarts here (srv stopped, then started again).
    let srv = h.os.spawned.iter().find(|(_, t)| t == "srv").unwrap().0;
    assert_eq!(h.os.signals.last(), Some(&(srv, Signal::Term)));
    assert_eq!(h.g.state, GroupState::Stopping);
    h.exit(7200, "srv", Exit::Signal(15));
    assert_eq!(h.g.state, GroupState::Done);
    assert_eq!(h.os.tags().iter().filter(|t| **t == "srv").count(), 2);
    assert_eq!(h.g.restarts.count(), 1);
    // Two more failures: past max_restarts=1 the group fails here and goes elsewhere.
    h.tick(9200);
    h.exit(9210, "check", Exit::Code(2));
    h.tick(11210);
    h.exit(11220, "check", Exit::Code(2));
    assert_eq!(h.g.state, GroupState::Failed);
    let f = h.g.failure.clone().unwrap();
    assert_eq!((f.tag.as_str(), f.mode), ("check", "monitor"));
    assert!(f.why.contains("giving up here"), "{}", f.why);
}

#[test]
fn a_resource_monitor_that_reports_a_hard_failure_fails_the_group_at_once() {
    let mut h = probed("g:vip:start:resource/1s:ocf:heartbeat:Dummy state=/tmp/v\n");
    h.tell(0, "start");
    h.exit(10, "vip", Exit::Code(0));
    h.tick(1010);
    h.exit(1020, "vip", Exit::Code(190));
    assert_eq!(
        h.g.slots[0].health,
        Health::Degraded,
        "degraded runs, and shows"
    );
    assert_eq!(h.g.state, GroupState::Done);
    h.tick(2020);
    h.exit(2030, "vip", Exit::Code(5));
    assert_eq!(
        h.g.state,
        GroupState::Failed,
        "not installed (5): no restart here"
    );
    // Its stop still runs when the group leaves: its start ran.
    h.tell(2100, "stop");
    assert_eq!(h.os.tags().last(), Some(&"vip"));
    assert!(matches!(h.run("vip"), Run::Acting { act: Act::Stop, .. }));
}

#[test]
fn a_resource_found_running_by_its_probe_is_stopped_while_the_group_is_held() {
    let mut h = Harness::new("g:srv:start:respawn:srv\n");
    let c = Cltab::parse(
        "cltab",
        "g:srv:start:respawn:srv\ng:vip:start:resource:ocf:heartbeat:Dummy state=/tmp/v\n",
    )
    .unwrap();
    let entries: Vec<_> = c.entries_of("g").collect();
    h.g.set_entries(&h.opts, h.at(0), &mut h.os, &entries);
    assert_eq!(h.os.tags(), ["vip"], "probed before anything runs");
    assert_eq!(
        (h.g.level.as_str(), h.g.state),
        ("probe", GroupState::Stopping)
    );
    h.exit(10, "vip", Exit::Code(0)); // it runs here
    assert_eq!(h.os.tags(), ["vip", "vip"], "so it is stopped");
    assert!(matches!(h.run("vip"), Run::Acting { act: Act::Stop, .. }));
    h.exit(20, "vip", Exit::Code(0));
    assert_eq!((h.g.level.as_str(), h.g.state), ("stop", GroupState::Done));
    assert_eq!(
        h.os.tags().len(),
        2,
        "a group that never ran runs no stop entry"
    );
}

/// The daemon takes a group through `plan` and `test` before `start`: resources of `start`
/// left (never started) at those levels still start at `start`, and again after a stop.
#[test]
fn resources_start_when_the_group_comes_through_plan_and_test() {
    let mut h = probed(STACK);
    for round in 0..2 {
        let t = round * 1000;
        h.os.spawned.clear();
        h.tell(t, "plan");
        h.tell(t + 10, "test");
        assert!(h.os.tags().is_empty(), "round {round}: {:?}", h.os.tags());
        h.tell(t + 20, "start");
        assert_eq!(
            h.os.tags(),
            ["vip"],
            "round {round}: vip {:?}",
            h.run("vip")
        );
        h.exit(t + 30, "vip", Exit::Code(0));
        h.exit(t + 40, "fs", Exit::Code(0));
        assert_eq!(h.os.tags(), ["vip", "fs", "srv"], "round {round}");
        assert_eq!(h.g.state, GroupState::Done);
        h.tell(t + 100, "stop");
        h.exit(t + 110, "srv", Exit::Signal(15));
        h.exit(t + 120, "fs", Exit::Code(0));
        h.exit(t + 130, "vip", Exit::Code(0));
        assert_eq!((h.g.state, h.g.level.as_str()), (GroupState::Done, "stop"));
    }
}

/// Telling a group its level again (the daemon re-tells every group when a new cltab
/// version is adopted) while a resource's stop runs lets that stop finish: killing it would
/// read as a timed-out stop, and get the node fenced.
#[test]
fn telling_the_same_level_again_does_not_kill_a_resources_stop() {
    let mut h = probed(STACK);
    h.tell(0, "start");
    h.exit(10, "vip", Exit::Code(0));
    h.exit(20, "fs", Exit::Code(0));
    h.tell(100, "stop");
    h.exit(110, "srv", Exit::Signal(15));
    assert!(matches!(h.run("fs"), Run::Acting { act: Act::Stop, .. }));
    h.os.signals.clear();
    h.tell(115, "stop");
    assert!(h.os.signals.is_empty(), "{:?}", h.os.signals);
    h.exit(120, "fs", Exit::Code(0));
    assert!(matches!(h.run("vip"), Run::Acting { act: Act::Stop, .. }));
    h.exit(130, "vip", Exit::Code(0));
    assert_eq!((h.g.state, h.g.level.as_str()), (GroupState::Done, "stop"));
}

/// The same while a probe runs: the probe finishes, and a resource it finds not running is
/// not stopped.
#[test]
fn telling_the_same_level_again_does_not_kill_a_probe() {
    let mut h = Harness::new(STACK);
    assert!(
        matches!(
            h.run("vip"),
            Run::Acting {
                act: Act::Probe,
                ..
            }
        ),
        "{:?}",
        h.run("vip")
    );
    h.tell(5, "stop");
    assert!(h.os.signals.is_empty(), "{:?}", h.os.signals);
    h.exit(10, "vip", Exit::Code(7));
    let vip = h.g.slots.iter().find(|s| s.entry.tag == "vip").unwrap();
    assert!(!vip.active && !vip.stop_pending, "{:?}", vip.run);
    assert!(
        matches!(
            h.run("fs"),
            Run::Acting {
                act: Act::Probe,
                ..
            }
        ),
        "{:?}",
        h.run("fs")
    );
}
