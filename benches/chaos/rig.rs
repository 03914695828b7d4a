//! The chaos run's rig around the test harness (`tests/common/cluster.rs`): each node's init is
//! a small shell that runs the daemon as its child (so the daemon can die alone and be started
//! again in the same PID namespace, as systemd restarts a unit), its `DIR` on a tmpfs that can
//! be filled, a cgroup that can starve it of CPU, an nftables table that drops its packets
//! (both ways, or one way), and the power switch its fence agent asks (an agent inside one PID
//! namespace cannot see another's pids, so the switch is this process).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::cluster::{children_of, mosha_argv, node_ip, Cluster, NodeSpec};
use crate::common::power::{install_agent, unix, READ_STDIN};

/// The size of each node's `DIR` tmpfs.
pub const DIR_SIZE: &str = "64m";
/// The CPU share a starved node gets (cgroup v1 `cpu.cfs_quota_us` per 100 ms period).
pub const STARVED_QUOTA_US: u64 = 10_000;

/// The node's init: runs the daemon (`$@`), appends `<unix time> <exit status>` to
/// `SHARED/exits-<node>` when it exits, then waits for `SHARED/restart-<node>` before running
/// it again.
const INIT: &str = r#"shared=$1; node=$2; shift 2
while :; do
    "$@"
    rc=$?
    echo "$(date +%s.%N) $rc" >> "$shared/exits-$node"
    while [ ! -e "$shared/restart-$node" ]; do sleep 0.1; done
    rm -f "$shared/restart-$node"
done"#;

/// The node's command line: [`INIT`] around `mosha run`. Mounts a tmpfs on the (still empty)
/// node directory first, so that the files the harness writes next land on it.
pub fn node_argv(spec: &NodeSpec, extra: &[String]) -> Vec<String> {
    run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={DIR_SIZE}"),
            "mosha-chaos",
            &spec.dir.display().to_string(),
        ],
    );
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        INIT.to_string(),
        "sh".to_string(),
        spec.shared.display().to_string(),
        spec.name.clone(),
    ];
    argv.extend(mosha_argv(spec, extra));
    argv
}

/// Unmounts every node's tmpfs (lazily: the nodes may still be running).
pub fn unmount_dirs(c: &Cluster) {
    for i in c.indices() {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(c.dir(i))
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `prog args`; panics with its stderr when it fails.
pub fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {prog} {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{prog} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Host pid of node `i`'s daemon (the init's `mosha` child), if it runs.
pub fn daemon_pid(c: &mut Cluster, i: usize) -> Option<u32> {
    if !c.is_running(i) {
        return None;
    }
    let init = c.pid_of_daemon(i);
    children_of(init).into_iter().find(|&p| comm(p) == "mosha")
}

/// Tells whether node `i`'s init waits for `SHARED/restart-<node>` (its daemon exited).
pub fn init_waiting(c: &mut Cluster, i: usize) -> bool {
    if !c.is_running(i) {
        return false;
    }
    let kids: Vec<String> = children_of(c.pid_of_daemon(i))
        .into_iter()
        .map(comm)
        .collect();
    kids.iter().any(|k| k == "sleep") && !kids.iter().any(|k| k == "mosha")
}

/// Sends `sig` to node `i`'s daemon; false when it does not run.
pub fn signal_daemon(c: &mut Cluster, i: usize, sig: Signal) -> bool {
    match daemon_pid(c, i) {
        Some(pid) => kill(Pid::from_raw(pid as i32), sig).is_ok(),
        None => false,
    }
}

/// Asks node `i`'s init to start the daemon again (after it exited).
pub fn restart_daemon(c: &Cluster, i: usize) {
    std::fs::write(c.shared().join(format!("restart-{}", c.node_name(i))), "")
        .expect("writing SHARED/restart-<node>");
}

/// The daemon exits node `i`'s init recorded: (unix time, exit status).
pub fn exits(c: &Cluster, i: usize) -> Vec<(f64, i32)> {
    std::fs::read_to_string(c.shared().join(format!("exits-{}", c.node_name(i))))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (t, rc) = l.split_once(' ')?;
            Some((t.parse().ok()?, rc.trim().parse().ok()?))
        })
        .collect()
}

/// Fills node `i`'s `DIR` tmpfs with `DIR/.chaos-filler` until the device is full.
pub fn fill_dir(c: &Cluster, i: usize) {
    let Ok(mut f) = std::fs::File::create(c.path(i, ".chaos-filler")) else {
        return; // full already
    };
    let chunk = vec![0u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    // The last partial chunk: fill the remaining bytes too.
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
}

/// Frees what [`fill_dir`] took.
pub fn unfill_dir(c: &Cluster, i: usize) {
    let _ = std::fs::remove_file(c.path(i, ".chaos-filler"));
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup/cpu";

fn cgroup_dir(c: &Cluster, i: usize) -> PathBuf {
    PathBuf::from(CGROUP_ROOT).join(format!(
        "mosha-chaos-{}-{}",
        std::process::id(),
        c.node_name(i)
    ))
}

/// Moves every process of node `i` into a cgroup limited to [`STARVED_QUOTA_US`] per 100 ms
/// (children inherit it).
pub fn starve(c: &Cluster, i: usize) {
    let dir = cgroup_dir(c, i);
    let _ = std::fs::create_dir(&dir);
    std::fs::write(dir.join("cpu.cfs_period_us"), "100000").expect("cpu.cfs_period_us");
    std::fs::write(dir.join("cpu.cfs_quota_us"), STARVED_QUOTA_US.to_string())
        .expect("cpu.cfs_quota_us");
    // The daemon runs under SCHED_RR (daemon::sched), which the CFS quota does not limit:
    // the same share of the real-time budget (1 s period). Where the kernel groups
    // real-time tasks, a cgroup without that budget refuses them (the daemon would stay out).
    let rt = dir.join("cpu.rt_runtime_us");
    if rt.exists() {
        std::fs::write(&rt, (STARVED_QUOTA_US * 10).to_string()).expect("cpu.rt_runtime_us");
    }
    for pid in c.processes(i) {
        let _ = std::fs::write(dir.join("cgroup.procs"), pid.to_string());
    }
}

/// Moves node `i`'s processes back to the root cgroup and removes its cgroup.
pub fn unstarve(c: &Cluster, i: usize) {
    let dir = cgroup_dir(c, i);
    if !dir.exists() {
        return;
    }
    for _ in 0..50 {
        let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in pids.split_whitespace() {
            let _ = std::fs::write(Path::new(CGROUP_ROOT).join("cgroup.procs"), pid);
        }
        if std::fs::remove_dir(&dir).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("chaos: could not remove {}", dir.display());
}

/// Runs `nft` in node `i`'s network namespace.
fn nft(c: &Cluster, i: usize, script: &str) {
    let ns = c.ns_name(i).expect("netns").to_string();
    run("ip", &["netns", "exec", &ns, "nft", script]);
}

/// Drops packets in node `i`'s network namespace: those it sends to `to` (one way when the
/// peers do not drop theirs), and, with `loss_pct`, that share of every packet it sends to a
/// peer (a random draw per packet).
pub fn filter(c: &Cluster, i: usize, to: &[usize], loss_pct: u32) {
    nft(c, i, "add table inet chaos");
    nft(
        c,
        i,
        "add chain inet chaos out { type filter hook output priority 0; policy accept; }",
    );
    nft(
        c,
        i,
        "add chain inet chaos in { type filter hook input priority 0; policy accept; }",
    );
    for &j in to {
        nft(
            c,
            i,
            &format!("add rule inet chaos out ip daddr {} drop", node_ip(j)),
        );
    }
    if loss_pct > 0 {
        nft(
            c,
            i,
            &format!("add rule inet chaos out ip daddr 198.18.0.0/24 numgen random mod 100 < {loss_pct} drop"),
        );
    }
}

/// Removes node `i`'s chaos table, if any.
pub fn unfilter(c: &Cluster, i: usize) {
    let ns = c.ns_name(i).expect("netns").to_string();
    let _ = Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "delete table inet chaos"])
        .stderr(Stdio::null())
        .status();
}

/// A fence the switch carried out: who asked, for which node, when.
#[derive(Clone, Debug)]
pub struct Fence {
    pub node: usize,
    /// Unix time of the request (from the agent).
    pub asked: f64,
    /// Unix time the switch reported the node off.
    pub done: f64,
    /// The node was running when the switch cut it (a live node fenced, not one already
    /// dead).
    pub was_running: bool,
}

/// The chaos power switch: its agent `SHARED/fence_switch` writes `req-<node>-<id>` into
/// `SHARED/power` for `off`/`reboot` and waits up to 10 s for `done-<node>-<id>`; `status`
/// says off while `off-<node>` exists. `SHARED/power/fail` makes the agent fail at once,
/// `SHARED/power/hang` makes it hang (until the daemon's `timeout=` kills it).
pub struct Switch {
    dir: PathBuf,
    served: BTreeMap<String, ()>,
    pub fences: Vec<Fence>,
}

/// The fencetab line for the switch.
pub const FENCETAB: &str = "* {SHARED}/fence_switch action=off timeout=10\n";

impl Switch {
    /// Writes the agent into the shared directory.
    pub fn install(c: &Cluster) -> Switch {
        let dir = c.shared().join("power");
        std::fs::create_dir_all(&dir).expect("creating SHARED/power");
        let script = format!(
            r#"#!/bin/sh
# The chaos run's fence agent: the bench process is the power switch.
power='{power}'
{READ_STDIN}if [ -e "$power/hang" ]; then sleep 60; exit 1; fi
if [ -e "$power/fail" ]; then echo "the power switch does not answer" >&2; exit 1; fi
case $action in
    status|monitor)
        if [ -e "$power/off-$node" ]; then exit 2; fi
        exit 0 ;;
    off|reboot)
        id=$$-$(date +%s%N)
        date +%s.%N > "$power/.req-$node-$id" && mv "$power/.req-$node-$id" "$power/req-$node-$id"
        i=0
        while [ $i -lt 100 ]; do
            if [ -e "$power/done-$node-$id" ]; then echo "power of $node is off"; exit 0; fi
            sleep 0.1
            i=$((i + 1))
        done
        echo "the power switch did not cut $node within 10 s" >&2
        exit 1 ;;
esac
echo "unknown action $action" >&2
exit 1
"#,
            power = dir.display()
        );
        install_agent(c, &script);
        Switch {
            dir,
            served: BTreeMap::new(),
            fences: Vec::new(),
        }
    }

    /// Makes the agent fail (`Some(false)`), hang (`Some(true)`) or work (`None`).
    pub fn break_agent(&self, how: Option<bool>) {
        let (fail, hang) = (self.dir.join("fail"), self.dir.join("hang"));
        let _ = std::fs::remove_file(&fail);
        let _ = std::fs::remove_file(&hang);
        match how {
            Some(false) => std::fs::write(fail, "").expect("power/fail"),
            Some(true) => std::fs::write(hang, "").expect("power/hang"),
            None => {}
        }
    }

    /// Cuts node `i`'s power (SIGKILL of its PID namespace) and marks it off for `status`.
    pub fn power_off(&mut self, c: &mut Cluster, i: usize) -> bool {
        let was_running = c.is_running(i);
        if was_running {
            c.kill_node(i);
        }
        std::fs::write(self.dir.join(format!("off-{}", c.node_name(i))), "").expect("off-");
        was_running
    }

    /// Marks node `i` powered on again (before it is restarted).
    pub fn power_on(&self, c: &Cluster, i: usize) {
        let _ = std::fs::remove_file(self.dir.join(format!("off-{}", c.node_name(i))));
    }

    /// Carries out every new request; returns the fences done now.
    pub fn serve(&mut self, c: &mut Cluster) -> Vec<Fence> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut reqs: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix("req-")?.to_string();
                Some((rest, e.path()))
            })
            .filter(|(rest, _)| !self.served.contains_key(rest))
            .collect();
        reqs.sort();
        let mut done = Vec::new();
        for (rest, path) in reqs {
            self.served.insert(rest.clone(), ());
            let asked = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0.0);
            let Some(i) = c
                .indices()
                .find(|&i| rest.starts_with(&format!("{}-", c.node_name(i))))
            else {
                eprintln!("chaos: power-off asked for an unknown node ({rest})");
                continue;
            };
            let was_running = self.power_off(c, i);
            let now = unix(SystemTime::now());
            std::fs::write(self.dir.join(format!("done-{rest}")), "").expect("done-");
            let f = Fence {
                node: i,
                asked,
                done: now,
                was_running,
            };
            done.push(f.clone());
            self.fences.push(f);
        }
        done
    }
}

/// Throttles node `i`'s `eth0` to 300 kbit/s with a 3 KB bucket (tbf; packets wait up to
/// 200 ms in its queue): the datagrams of one gossip round queue behind each other, a delay
/// and jitter of tens of milliseconds (the kernel here has no `sch_netem`). Three times a
/// sealed 5-node cluster's gossip (about 93 kbit/s per node): the link is slow, not cut. (At
/// 100 kbit/s, the first version of this fault, the node's own gossip no longer fitted and
/// its peers rightly lost it: seed 2026, iteration 170.)
pub fn throttle(c: &Cluster, i: usize) {
    let ns = c.ns_name(i).expect("netns").to_string();
    run(
        "tc",
        &[
            "-n", &ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "300kbit", "burst",
            "3kb", "latency", "200ms",
        ],
    );
}

/// Removes what [`throttle`] did, if anything.
pub fn unthrottle(c: &Cluster, i: usize) {
    let ns = c.ns_name(i).expect("netns").to_string();
    let _ = Command::new("tc")
        .args(["-n", &ns, "qdisc", "del", "dev", "eth0", "root"])
        .stderr(Stdio::null())
        .status();
}
