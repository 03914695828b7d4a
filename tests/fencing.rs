//! Fencing integration tests: real `mosha run` daemons, each node PID 1 of its own PID
//! namespace (see `tests/common/cluster.rs`), with real fence agents: Debian's
//! `/usr/sbin/fence_dummy` (status files in the shared directory) and a test agent that asks the
//! test process, acting as the power switch, to SIGKILL a whole node (`tests/common/power.rs`).
//!
//! The witness for "never two copies at once" is a lock that each service takes in the
//! cluster's shared directory (`flock -n`): a copy that gets the lock appends
//! `<unix time> <node> <group>` to `SHARED/starts`; a copy that finds it taken appends
//! `<group> <node>` to `SHARED/collisions`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::cluster::{index_of, mosha_argv, strings, wait_joined, Cluster, ClusterOpts, Timer};
use common::power::{unix, PowerSwitch, SWITCH_FENCETAB};
use serde_json::Value;

/// How long a cluster may take to form, or a change to settle (generous: the tests run in
/// parallel on small machines).
const SETTLE: Duration = Duration::from_secs(30);

/// Where Debian's fence-agents package installs the dummy agent.
const FENCE_DUMMY: &str = "/usr/sbin/fence_dummy";

/// Tells whether fence_dummy is installed; a test that needs it fails loudly without it (the
/// CI installs fence-agents).
fn require_fence_dummy() {
    assert!(
        Path::new(FENCE_DUMMY).exists(),
        "{FENCE_DUMMY} is missing (apt-get install fence-agents)"
    );
}

/// The server of `group` (tag `<group>-srv`, level `start`): holds `SHARED/<group>.lock` while
/// it runs and logs its start to `SHARED/starts`; a copy that finds the lock taken appends
/// `<group> <node>` to `SHARED/collisions` instead. No `exec` before `flock`: the shell stays
/// to run the `||` branch.
fn server(group: &str) -> String {
    "GROUP:GROUP-srv:start:respawn:flock -n {SHARED}/GROUP.lock -c \
     'echo \"$(date +%s.%N) $MOSHA_NODE GROUP\" >> {SHARED}/starts; exec sleep 100000' \
     || echo \"GROUP $MOSHA_NODE\" >> {SHARED}/collisions\n"
        .replace("GROUP", group)
}

fn cltab_of(groups: &[&str]) -> String {
    groups.iter().map(|g| server(g)).collect()
}

fn hactl_of(groups: &[&str]) -> String {
    groups.iter().map(|g| format!("{g} start\n")).collect()
}

fn opts(nodes: usize, groups: &[&str], fencetab: &str, netns: bool) -> ClusterOpts {
    ClusterOpts {
        nodes,
        cltab: cltab_of(groups),
        hactl: hactl_of(groups),
        fencetab: fencetab.to_string(),
        extra_args: Vec::new(),
        netns,
    }
}

/// One fence_dummy line per node `n1..=nN`, each with its own status file
/// `SHARED/n<i>.status`, action `off`.
fn dummy_fencetab(nodes: usize) -> String {
    (1..=nodes)
        .map(|i| {
            format!("n{i} fence_dummy status_file={{SHARED}}/n{i}.status action=off timeout=10\n")
        })
        .collect()
}

/// Writes `on` (no newline) into every node's fence_dummy status file.
fn power_on_all(c: &Cluster) {
    for i in c.indices() {
        std::fs::write(status_file(c, i), "on").expect("writing a status file");
    }
}

fn status_file(c: &Cluster, i: usize) -> PathBuf {
    c.shared().join(format!("n{i}.status"))
}

fn read_status(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(status_file(c, i)).unwrap_or_else(|_| "(missing)".into())
}

/// How many service bodies (`sleep 100000`) node `i` runs. (Fence agents may run short
/// `sleep`s of their own, which do not count.)
fn services(c: &Cluster, i: usize) -> usize {
    c.processes(i)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|b| b == b"sleep\x00100000\x00")
        })
        .count()
}

/// Tells whether node `i`'s clstat has `group` at stop or plan (level and target), or not at all.
fn stopped_here(c: &Cluster, i: usize, group: &str) -> bool {
    // `plan` runs none of the group's `test` or `start` entries: a lost node's group may be
    // planned while that node is fenced, and goes no further before it is.
    let quiet = |l: &Value| l == "stop" || l == "plan";
    c.clstat(i).is_none_or(|cl| {
        let st = &cl["groups"][group];
        st.is_null() || (quiet(&st["level"]) && quiet(&st["target"]))
    })
}

/// Every line of `SHARED/starts`: (unix time, node, group).
fn starts(c: &Cluster) -> Vec<(f64, String, String)> {
    std::fs::read_to_string(c.shared().join("starts"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let t = w.next()?.parse().ok()?;
            Some((t, w.next()?.to_string(), w.next().unwrap_or("").to_string()))
        })
        .collect()
}

fn starts_of(c: &Cluster, group: &str) -> Vec<(f64, String)> {
    starts(c)
        .into_iter()
        .filter(|(_, _, g)| g == group)
        .map(|(t, n, _)| (t, n))
        .collect()
}

/// `hastat.fencing[victim]` of node `i` (Null when absent).
fn fencing(c: &Cluster, i: usize, victim: &str) -> Value {
    c.hastat(i)
        .map(|h| h["fencing"][victim].clone())
        .unwrap_or(Value::Null)
}

fn fence_state(c: &Cluster, i: usize, victim: &str) -> String {
    fencing(c, i, victim)["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Node `i`'s log lines about membership, quorum, fencing and planning, prefixed `n<i>: `.
fn fence_events(c: &Cluster, i: usize) -> String {
    const WORDS: [&str; 10] = [
        "member lost",
        "member back",
        "operator",
        "quorum",
        "fencing lost node",
        "fenced",
        "acked",
        "fencing failed",
        "planning group",
        "yielding",
    ];
    c.log(i)
        .lines()
        .filter(|l| WORDS.iter().any(|w| l.contains(w)))
        .map(|l| format!("n{i}: {l}\n"))
        .collect()
}

/// How many times node `i` took a group past `plan` (to `test` or `start`): what the
/// recovery gate holds back. (Planning a lost node's group while it is fenced is allowed.)
fn past_plan(c: &Cluster, i: usize) -> usize {
    c.log(i)
        .lines()
        .filter(|l| {
            l.contains("changing level") && (l.contains("to=test") || l.contains("to=start"))
        })
        .count()
}

/// Runs `mosha fence ack <victim> --yes --dir <node i's dir>` and checks that it succeeded.
fn ack(c: &Cluster, i: usize, victim: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_mosha"))
        .args(["fence", "ack", victim, "--yes", "--dir"])
        .arg(c.dir(i))
        .output()
        .expect("running mosha fence ack");
    if !out.status.success() {
        c.fail(&format!(
            "mosha fence ack {victim} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!(
        "mosha fence ack {victim} --dir n{i}: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

/// The nodes whose log says they started fencing `victim`.
fn fencers(c: &Cluster, victim: &str) -> Vec<usize> {
    let field = format!("node={victim}");
    c.indices()
        .filter(|&i| {
            c.log(i).lines().any(|l| {
                l.contains("fencing lost node") && l.split_whitespace().any(|w| w == field)
            })
        })
        .collect()
}

/// Starts a cluster, waits until it formed and `groups` are placed, each service running
/// and having logged its start. Returns the owners.
fn formed(c: &Cluster, groups: &[&str]) -> BTreeMap<String, usize> {
    let all: Vec<usize> = c.indices().collect();
    wait_joined(c, &all);
    let owners = c.wait_placed(&all, groups, "start");
    c.wait_for("every service running and its start logged", SETTLE, |c| {
        let n: usize = all.iter().map(|&i| services(c, i)).sum();
        n == groups.len() && groups.iter().all(|g| starts_of(c, g).len() == 1)
    });
    owners
}

/// Test 1: The dead owner is fenced (fence_dummy powers it off) before its group is started
/// anywhere else.
#[test]
fn fence_dummy_fences_before_recovery() {
    let _t = Timer::start("fence_dummy_fences_before_recovery");
    require_fence_dummy();
    let mut c = Cluster::start(opts(3, &["web"], &dummy_fencetab(3), false));
    power_on_all(&c);
    let x = formed(&c, &["web"])["web"];
    let owner = c.node_name(x);
    let survivors: Vec<usize> = c.indices().filter(|&i| i != x).collect();

    let killed_at = SystemTime::now();
    c.kill_node(x);
    let t0 = Instant::now();
    c.wait_for("web to run again on a survivor", SETTLE, |c| {
        c.placement(&survivors, &["web"], "start").is_some() && starts_of(c, "web").len() >= 2
    });
    eprintln!(
        "web recovered {:.2} s after the kill of {owner}",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(read_status(&c, x), "off", "{owner} was not powered off");
    for i in c.indices().filter(|&i| i != x) {
        assert_eq!(read_status(&c, i), "on", "n{i} was powered off");
    }
    let fenced_at = std::fs::metadata(status_file(&c, x))
        .and_then(|m| m.modified())
        .expect("mtime of the status file");
    let s = starts_of(&c, "web");
    assert_eq!(s.len(), 2, "web started more than twice: {s:?}");
    assert_eq!(s[0].1, owner);
    let (started, ref new_owner) = s[1];
    assert_ne!(*new_owner, owner, "web started again on the dead node");
    eprintln!(
        "kill → fenced {:.2} s → started {:.2} s (kill → started {:.2} s)",
        unix(fenced_at) - unix(killed_at),
        started - unix(fenced_at),
        started - unix(killed_at)
    );
    assert!(
        unix(fenced_at) < started,
        "web started on {new_owner} at {started:.3}, before {owner} was fenced at {:.3}",
        unix(fenced_at)
    );
    c.wait_for("every survivor to see the owner fenced", SETTLE, |c| {
        survivors
            .iter()
            .all(|&i| fence_state(c, i, &owner) == "fenced")
    });
    for &i in &survivors {
        let f = fencing(&c, i, &owner);
        eprintln!("n{i} hastat fencing.{owner}: {f}");
        assert!(strings(&f["waiting_groups"]).is_empty(), "{f}");
    }
    assert_eq!(fencers(&c, &owner).len(), 1, "not exactly one fencer");
    c.assert_no_collisions();
}

/// Test 2: When every fence method fails, the dead owner's group stays down (no node runs it)
/// and hastat says why; an operator's acknowledgement releases it.
#[test]
fn failing_fence_keeps_the_group_down() {
    let _t = Timer::start("failing_fence_keeps_the_group_down");
    require_fence_dummy();
    let fencetab = "* fence_dummy type=fail status_file={SHARED}/fail.status power_timeout=1 \
                    timeout=5\n";
    let mut c = Cluster::start(opts(3, &["web"], fencetab, false));
    let x = formed(&c, &["web"])["web"];
    let owner = c.node_name(x);
    let survivors: Vec<usize> = c.indices().filter(|&i| i != x).collect();

    c.kill_node(x);
    let t0 = Instant::now();
    // ~15 s: web runs nowhere, and every survivor reports the failure (the fencer itself shows
    // `fencing` while one of its retries runs).
    let mut seen_failed: BTreeMap<usize, Value> = BTreeMap::new();
    let mut states: BTreeSet<String> = BTreeSet::new();
    while t0.elapsed() < Duration::from_secs(15) {
        for &i in &survivors {
            if !stopped_here(&c, i, "web") || services(&c, i) != 0 {
                c.fail(&format!(
                    "web runs on n{i} although {owner} could not be fenced"
                ));
            }
            let f = fencing(&c, i, &owner);
            if let Some(s) = f["state"].as_str() {
                states.insert(format!("n{i}:{s}"));
            }
            if f["state"] == "failed" {
                seen_failed.entry(i).or_insert(f);
            }
        }
        if starts_of(&c, "web").len() != 1 {
            c.fail("web started again although its owner could not be fenced");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("fencing states seen in 15 s: {states:?}");
    for &i in &survivors {
        let Some(f) = seen_failed.get(&i) else {
            c.fail(&format!("n{i}'s hastat never said fencing.{owner} failed"));
        };
        eprintln!("n{i} hastat fencing.{owner}: {f}");
        let detail = f["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains("failed") && detail.contains("fence_dummy"),
            "detail: {detail:?}"
        );
        assert_eq!(strings(&f["waiting_groups"]), ["web"], "{f}");
    }
    let fencer = fencers(&c, &owner);
    assert_eq!(fencer.len(), 1, "fencers: {fencer:?}");
    let attempts = c
        .log(fencer[0])
        .lines()
        .filter(|l| {
            l.contains("fencing lost node")
                && l.split_whitespace().any(|w| w == format!("node={owner}"))
        })
        .count();
    eprintln!("n{} ran {attempts} failing passes in 15 s", fencer[0]);
    assert!(
        attempts >= 2,
        "the fencer did not retry ({attempts} passes)"
    );

    // The acknowledgement goes to the fencer itself while one of its passes runs: the usual
    // case, since the fencer retries for as long as the node is lost (and against a dead fence
    // device each pass lasts until its timeout).
    let y = fencer[0];
    c.wait_for(&format!("n{y}'s next fencing pass"), SETTLE, |c| {
        fence_state(c, y, &owner) == "fencing"
    });
    ack(&c, y, &owner);
    let t1 = Instant::now();
    // From the ack on, a survivor that saw it must keep seeing it (an acknowledged node is off
    // for good), and web comes back once.
    let mut acked: BTreeSet<usize> = BTreeSet::new();
    let mut recovered = None;
    let back_from_acked = |c: &Cluster, acked: &mut BTreeSet<usize>| {
        for &i in &survivors {
            let s = fence_state(c, i, &owner);
            if s == "acked" {
                acked.insert(i);
            } else if acked.contains(&i) {
                let events: String = survivors.iter().map(|&j| fence_events(c, j)).collect();
                c.fail(&format!(
                    "n{i} says fencing.{owner} is {s} again {:.2} s after the ack (web placed: \
                     {:?}); fencing events:\n{events}",
                    t1.elapsed().as_secs_f64(),
                    c.placement(&survivors, &["web"], "start")
                ));
            }
        }
    };
    c.wait_for("web to run on a survivor after the ack", SETTLE, |c| {
        back_from_acked(c, &mut acked);
        if recovered.is_none() && c.placement(&survivors, &["web"], "start").is_some() {
            recovered = Some(t1.elapsed());
        }
        recovered.is_some() && starts_of(c, "web").len() == 2 && acked.len() == survivors.len()
    });
    eprintln!(
        "web recovered {:.2} s after the ack",
        recovered.unwrap_or_default().as_secs_f64()
    );
    // It stays acked, the fencer stops fencing, and web stays put.
    let placed = c.placement(&survivors, &["web"], "start");
    let passes = |c: &Cluster| fence_events(c, y).matches("fencing lost node").count();
    let passes_then = passes(&c);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        back_from_acked(&c, &mut acked);
        assert_eq!(c.placement(&survivors, &["web"], "start"), placed);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(passes(&c), passes_then, "n{y} kept fencing after the ack");
    c.assert_no_collisions();
}

/// Test 3: Without a fencetab, the dead owner's group waits for `mosha fence ack`.
#[test]
fn no_fencetab_waits_for_an_ack() {
    let _t = Timer::start("no_fencetab_waits_for_an_ack");
    let mut c = Cluster::start(opts(3, &["web"], "", false));
    let x = formed(&c, &["web"])["web"];
    let owner = c.node_name(x);
    let survivors: Vec<usize> = c.indices().filter(|&i| i != x).collect();

    c.kill_node(x);
    c.wait_for(
        "every survivor to report the owner unconfigured",
        SETTLE,
        |c| {
            survivors
                .iter()
                .all(|&i| fence_state(c, i, &owner) == "unconfigured")
        },
    );
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for &i in &survivors {
            if !stopped_here(&c, i, "web") || services(&c, i) != 0 {
                c.fail(&format!("web runs on n{i} without fencing or an ack"));
            }
            let f = fencing(&c, i, &owner);
            assert_eq!(f["state"], "unconfigured", "n{i}: {f}");
            let detail = f["detail"].as_str().unwrap_or("");
            assert!(detail.contains("mosha fence ack"), "n{i}: {f}");
            assert_eq!(strings(&f["waiting_groups"]), ["web"], "n{i}: {f}");
        }
        assert_eq!(starts_of(&c, "web").len(), 1);
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "n{} hastat fencing.{owner}: {}",
        survivors[0],
        fencing(&c, survivors[0], &owner)
    );
    assert!(fencers(&c, &owner).is_empty(), "someone ran a fence agent");

    let y = survivors[1];
    ack(&c, y, &owner);
    let t1 = Instant::now();
    c.wait_for("web to run on a survivor after the ack", SETTLE, |c| {
        c.placement(&survivors, &["web"], "start").is_some() && starts_of(c, "web").len() == 2
    });
    eprintln!(
        "web recovered {:.2} s after the ack",
        t1.elapsed().as_secs_f64()
    );
    c.wait_for("every survivor to see the ack", SETTLE, |c| {
        survivors
            .iter()
            .all(|&i| fence_state(c, i, &owner) == "acked")
    });
    c.assert_no_collisions();
}

/// Test 4: A hung owner (daemon stopped, service still running and holding its lock) is
/// fenced, its whole node killed, before its group is started elsewhere: no collision.
#[test]
fn hung_node_is_fenced_before_recovery() {
    let _t = Timer::start("hung_node_is_fenced_before_recovery");
    let mut c = Cluster::start(opts(3, &["web"], SWITCH_FENCETAB, false));
    let mut switch = PowerSwitch::install(&c);
    let x = formed(&c, &["web"])["web"];
    let owner = c.node_name(x);
    let survivors: Vec<usize> = c.indices().filter(|&i| i != x).collect();

    c.sigstop_daemon(x);
    let stopped_at = SystemTime::now();
    let t0 = Instant::now();
    // Until the power switch acts: web runs only on the hung node.
    switch.wait_for(
        &mut c,
        "a power-off request for the hung node",
        SETTLE,
        |c, sw| {
            if sw.killed.is_empty() {
                for &i in &survivors {
                    if !stopped_here(c, i, "web") || services(c, i) != 0 {
                        c.fail(&format!("web started on n{i} while {owner} still runs it"));
                    }
                }
                assert_eq!(services(c, x), 1, "the hung node's service is gone");
            }
            !sw.killed.is_empty()
        },
    );
    let requests = switch.requests();
    assert_eq!(
        requests.keys().collect::<Vec<_>>(),
        [&owner],
        "power-off requests: {requests:?}"
    );
    let requested = requests[&owner];
    let dead = switch.killed[&owner];
    switch.wait_for(&mut c, "web to run again on a survivor", SETTLE, |c, _| {
        c.placement(&survivors, &["web"], "start").is_some() && starts_of(c, "web").len() >= 2
    });
    let s = starts_of(&c, "web");
    assert_eq!(s.len(), 2, "starts: {s:?}");
    let (started, ref new_owner) = s[1];
    assert!(survivors.contains(&index_of(&c, new_owner).unwrap()));
    eprintln!(
        "SIGSTOP of {owner} → power-off request {:.2} s → namespace dead {:.2} s → web started \
         on {new_owner} {:.2} s (SIGSTOP → started {:.2} s; {:.2} s in all)",
        requested - unix(stopped_at),
        unix(dead) - requested,
        started - unix(dead),
        started - unix(stopped_at),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        started > unix(dead),
        "web started at {started:.3}, before {owner}'s namespace was dead at {:.3}",
        unix(dead)
    );
    c.wait_for("every survivor to see the owner fenced", SETTLE, |c| {
        survivors
            .iter()
            .all(|&i| fence_state(c, i, &owner) == "fenced")
    });
    eprintln!(
        "n{} hastat fencing.{owner}: {}",
        survivors[0],
        fencing(&c, survivors[0], &owner)
    );
    assert_eq!(switch.requests().len(), 1);
    c.assert_no_collisions();
}

/// Test 5: The same hang with fencing turned off: the survivors recover the group while the
/// hung node still runs it, and the witness catches the second copy. (This is what the
/// recovery gate of test 4 prevents.)
#[test]
fn hung_node_without_fencing_collides() {
    let _t = Timer::start("hung_node_without_fencing_collides");
    let mut c = Cluster::start(opts(3, &["web"], "* none\n", false));
    let x = formed(&c, &["web"])["web"];
    let owner = c.node_name(x);
    let survivors: Vec<usize> = c.indices().filter(|&i| i != x).collect();

    c.sigstop_daemon(x);
    let t0 = Instant::now();
    c.wait_for(
        "a collision: web started by a survivor while the hung node holds the lock",
        Duration::from_secs(20),
        |c| !c.collisions().trim().is_empty(),
    );
    let text = c.collisions();
    eprintln!(
        "first collision {:.2} s after the SIGSTOP:\n{}",
        t0.elapsed().as_secs_f64(),
        text.trim()
    );
    assert!(
        text.lines().all(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|n| index_of(&c, n))
                .is_some_and(|i| survivors.contains(&i))
        }),
        "collisions from other nodes than the survivors: {text}"
    );
    assert_eq!(services(&c, x), 1, "the hung node's service is gone");
    let warned = survivors.iter().any(|&i| {
        c.log(i)
            .lines()
            .any(|l| l.contains("NOT FENCED") && l.contains("group=web") && l.contains(&owner))
    });
    assert!(warned, "no survivor logged recovering web NOT FENCED");
    for &i in &survivors {
        eprintln!("n{i} hastat fencing.{owner}: {}", fencing(&c, i, &owner));
        assert_eq!(fence_state(&c, i, &owner), "not-fenced");
    }
    // Clean up: the hung node goes; the survivors' copy then gets the lock.
    c.kill_node(x);
    c.wait_for("web to get its lock on a survivor", SETTLE, |c| {
        starts_of(c, "web").len() == 2
            && survivors.iter().map(|&i| services(c, i)).sum::<usize>() == 1
    });
}

/// Test 6: A 3|2 partition with fence_dummy: only the quorate majority fences (the minority's
/// nodes), the minority stops everything, every group runs exactly once on the majority.
#[test]
fn partition_only_the_majority_fences() {
    let _t = Timer::start("partition_only_the_majority_fences");
    require_fence_dummy();
    let groups = ["web", "db", "mail"];
    let mut c = Cluster::start(opts(5, &groups, &dummy_fencetab(5), true));
    power_on_all(&c);
    let owners = formed(&c, &groups);
    let all: Vec<usize> = c.indices().collect();
    let majority = [1, 2, 3];
    let minority = [4, 5];
    eprintln!("before the partition: {owners:?}");

    let planned: Vec<usize> = minority.iter().map(|&i| past_plan(&c, i)).collect();
    c.partition(&[&majority, &minority]);
    let t0 = Instant::now();
    let mut during = None;
    // Throughout: the minority never fences anyone (the majority's status files stay on) and
    // never takes a group past `plan` (it may plan one in the moment before it sees that it
    // lost quorum: planning runs nothing of the group past its plan entries).
    let minority_quiet = |c: &Cluster| {
        let fenced: Vec<usize> = majority
            .iter()
            .copied()
            .filter(|&i| read_status(c, i) != "on")
            .collect();
        let planning: Vec<usize> = minority
            .iter()
            .zip(&planned)
            .filter(|(&i, &n)| past_plan(c, i) > n)
            .map(|(&i, _)| i)
            .collect();
        if !fenced.is_empty() || !planning.is_empty() {
            let events: String = c.indices().map(|i| fence_events(c, i)).collect();
            c.fail(&format!(
                "the minority {minority:?} fenced majority nodes {fenced:?} or took groups past \
                 plan (nodes {planning:?}) {:.2} s after the partition; fencing events:\n{events}",
                t0.elapsed().as_secs_f64()
            ));
        }
    };
    c.wait_for(
        "the minority stopped and fenced, every group once on the majority",
        SETTLE,
        |c| {
            minority_quiet(c);
            let minority_down = minority.iter().all(|&i| {
                c.status(i).is_some_and(|h| !h.quorate)
                    && c.clstat(i).is_some_and(|cl| {
                        groups.iter().all(|g| {
                            let st = &cl["groups"][g];
                            st["level"] == "stop" && st["target"] == "stop" && st["state"] == "DONE"
                        })
                    })
                    && services(c, i) == 0
            });
            let fenced = minority.iter().all(|&i| read_status(c, i) == "off");
            during = c.placement(&majority, &groups, "start");
            minority_down
                && fenced
                && during.is_some()
                && majority.iter().map(|&i| services(c, i)).sum::<usize>() == groups.len()
        },
    );
    let during = during.unwrap();
    eprintln!(
        "partition: minority stopped, fenced, groups {during:?} on the majority after {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    // A little longer: still nobody on the majority fenced.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        minority_quiet(&c);
        std::thread::sleep(Duration::from_millis(50));
    }
    for &i in &majority {
        assert!(c.status(i).unwrap().quorate, "n{i} is not quorate");
        for &j in &minority {
            let victim = c.node_name(j);
            c.wait_for(&format!("n{i} to see {victim} fenced"), SETTLE, |c| {
                fence_state(c, i, &victim) == "fenced"
            });
        }
    }
    for &j in &minority {
        let victim = c.node_name(j);
        let f = fencers(&c, &victim);
        assert_eq!(f.len(), 1, "fencers of {victim}: {f:?}");
        assert!(majority.contains(&f[0]), "{victim} fenced by n{}", f[0]);
    }
    for &i in &minority {
        assert!(
            !c.log(i).contains("fencing lost node"),
            "n{i} (minority) tried to fence"
        );
    }
    for g in groups {
        let s = starts_of(&c, g);
        assert!(s.len() <= 2, "{g} started {} times: {s:?}", s.len());
    }
    c.assert_no_collisions();

    c.heal();
    let t1 = Instant::now();
    wait_joined(&c, &all);
    let healed = c.wait_placed(&all, &groups, "start");
    eprintln!(
        "healed: all 5 joined and {healed:?} after {:.2} s",
        t1.elapsed().as_secs_f64()
    );
    assert_eq!(healed, during, "groups moved when the partition healed");
    c.wait_for("one service per group after healing", SETTLE, |c| {
        all.iter().map(|&i| services(c, i)).sum::<usize>() == groups.len()
    });
    c.assert_no_collisions();
}

/// Test 7: Two-node mode, split in two: exactly one side (the one that does not wait) fences
/// the other, which is killed before its own delay runs out; the survivor runs web.
#[test]
fn two_node_mode_fences_only_one_side() {
    let _t = Timer::start("two_node_mode_fences_only_one_side");
    let mut o = opts(2, &["web"], SWITCH_FENCETAB, true);
    o.extra_args = vec!["--two-node".into()];
    let mut c = Cluster::start(o);
    let mut switch = PowerSwitch::install(&c);
    let x = formed(&c, &["web"])["web"];
    let delayed = *mosha::engine::rank::order("fence-delay", ["n1", "n2"])
        .last()
        .unwrap();
    eprintln!("web on n{x}; the delayed side is {delayed}");

    c.partition(&[&[1], &[2]]);
    let t0 = Instant::now();
    switch.wait_for(&mut c, "one side's power-off request", SETTLE, |_, sw| {
        !sw.killed.is_empty()
    });
    let requests = switch.requests();
    assert_eq!(requests.len(), 1, "power-off requests: {requests:?}");
    let victim = requests.keys().next().unwrap().clone();
    let v = index_of(&c, &victim).unwrap();
    let s = 3 - v;
    eprintln!(
        "partition → {victim} killed by the power switch after {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(victim, delayed, "the side that should wait fenced first");
    switch.wait_for(&mut c, &format!("web to run on n{s}"), SETTLE, |c, _| {
        c.clstat(s).is_some_and(|cl| {
            let st = &cl["groups"]["web"];
            st["level"] == "start" && st["target"] == "start" && st["state"] == "DONE"
        }) && services(c, s) == 1
            && fence_state(c, s, &victim) == "fenced"
    });
    eprintln!(
        "web runs on n{s} {:.2} s after the partition (web was on n{x})",
        t0.elapsed().as_secs_f64()
    );
    // Longer than the delay: still one request, the one acted on.
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        switch.serve(&mut c);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        switch.requests().into_keys().collect::<Vec<_>>(),
        std::slice::from_ref(&victim)
    );
    assert_eq!(switch.killed.len(), 1);
    assert!(c.is_running(s), "the survivor n{s} died");
    assert_eq!(services(&c, s), 1);
    let h = c.status(s).expect("hastat");
    assert!(h.quorate, "the survivor is not quorate");
    assert!(!h.members.get(&victim).is_some_and(|m| m.alive));
    let w = starts_of(&c, "web");
    let expected = if x == s { 1 } else { 2 };
    assert_eq!(w.len(), expected, "starts: {w:?}");
    c.assert_no_collisions();
}

/// Test 8: The alert command hears the node loss, the fencing and the restart.
#[test]
fn alerts_are_run() {
    let _t = Timer::start("alerts_are_run");
    require_fence_dummy();
    let mut c = Cluster::start_with(opts(3, &["web"], &dummy_fencetab(3), false), |spec| {
        // One argument, as is: the daemon hands it to /bin/sh -c.
        let alert = format!(
            "echo \"$MOSHA_ALERT_KIND $MOSHA_ALERT_NODE $MOSHA_ALERT_GROUP @$MOSHA_NODE\" >> {}",
            spec.shared.join("alerts").display()
        );
        mosha_argv(spec, &["--alert".to_string(), alert])
    });
    power_on_all(&c);
    let x = formed(&c, &["web"])["web"];
    let owner = c.node_name(x);
    let survivors: Vec<usize> = c.indices().filter(|&i| i != x).collect();
    let alerts = c.shared().join("alerts");
    let read = move || std::fs::read_to_string(&alerts).unwrap_or_default();
    c.wait_for("the first group-started alert", SETTLE, |_| {
        read().contains(&format!("group-started  web @{owner}"))
    });

    c.kill_node(x);
    let mut y = None;
    c.wait_for("web to run again on a survivor", SETTLE, |c| {
        y = c.placement(&survivors, &["web"], "start").map(|p| p["web"]);
        y.is_some()
    });
    let new_owner = c.node_name(y.unwrap());
    let want = [
        format!("node-lost {owner} "),
        format!("fence-ok {owner} "),
        format!("group-started  web @{new_owner}"),
    ];
    c.wait_for("the alerts", SETTLE, |_| {
        let text = read();
        want.iter().all(|w| text.lines().any(|l| l.starts_with(w)))
    });
    let text = read();
    eprintln!("alerts:\n{}", text.trim());
    let lines: Vec<&str> = text.lines().collect();
    let at = |p: &str| lines.iter().position(|l| l.starts_with(p) || *l == p);
    for &i in &survivors {
        let me = format!("@n{i}");
        for kind in ["node-lost", "fence-ok"] {
            let l = format!("{kind} {owner}  {me}");
            assert!(lines.contains(&l.as_str()), "no {l:?} in\n{text}");
        }
    }
    // On the new owner: the loss, then the fencing, then the start.
    let lost = at(&format!("node-lost {owner}  @{new_owner}")).unwrap();
    let ok = at(&format!("fence-ok {owner}  @{new_owner}")).unwrap();
    let started = at(&format!("group-started  web @{new_owner}")).unwrap();
    assert!(lost < ok && ok < started, "out of order:\n{text}");
    assert!(
        !text.contains("fence-failed"),
        "a fence-failed alert:\n{text}"
    );
    c.assert_no_collisions();
}
