//! Resources end to end: real `mosha run` daemons, each node PID 1 of its own PID namespace
//! with its own mount namespace and its own network namespace on a bridge (see
//! `tests/common/cluster.rs`), running real OCF agents in cltab's mode `resource` and fenced
//! through the test's power switch (`tests/common/power.rs`).
//!
//! What they prove:
//! - a group made of Debian's `IPaddr2` (a virtual IP on `eth0`), `Filesystem` (an ext4 image
//!   on a loop device, mounted in the node's own mount namespace), a service using the
//!   mount and a `monitor` health check runs on exactly one node, and after that node's power
//!   is cut, it runs again on exactly one other node: the address is on one `eth0` only (read
//!   with `ip -n NS addr`), the file system mounted in one mount namespace only (read from
//!   `/proc/<node's init>/mountinfo`), and the service never ran twice;
//! - a resource whose `stop` fails keeps its group from starting anywhere else for as long as
//!   its node lives: the peers fence that (live) node first, and only then recover the group.
//!
//! How "never twice" is witnessed: the services take `flock -n` locks (one in the shared
//! directory, one inside the mounted file system, whose inode every mount of the image
//! shares); a copy that finds a lock taken appends a line to `SHARED/collisions`, which must
//! stay empty. The test agent of the second test takes its own lock the same way.
//!
//! A missing prerequisite (root, `ip`, `losetup`, `mkfs.ext4`, resource-agents) fails the
//! test and says what to install; nothing passes silently. Namespaces go with the cluster's
//! `Drop`, and the loop device with its own guard, even when a test fails.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{mosha_argv, wait_joined, Cluster, ClusterOpts, Timer};
use common::power::{eth0_addresses, unix, PowerSwitch, SWITCH_FENCETAB};
use common::verbs::{mosha, text};
use common::witness::{lock_held, path_locked, service};

/// How long a cluster may take to form, or a change to settle (generous: the tests run in
/// parallel on a small machine, and the agents are shell scripts).
const SETTLE: Duration = Duration::from_secs(60);

/// Where Debian's resource-agents package installs its OCF agents.
const HEARTBEAT: &str = "/usr/lib/ocf/resource.d/heartbeat";

/// The group's virtual IP (on the nodes' 198.18.0.0/24).
const VIP: &str = "198.18.0.100/24";

/// Fails the calling test unless it runs as root with `ip`, `losetup`, `mkfs.ext4`,
/// `mountpoint`, `flock` and resource-agents' `IPaddr2` and `Filesystem` (which needs
/// `modprobe` and `fsck.ext4`): the CI installs them all.
fn require_tools() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create namespaces and loop devices: run them as root"
    );
    for (argv, package) in [
        (&["ip", "-V"][..], "iproute2"),
        (&["losetup", "--version"][..], "util-linux (losetup)"),
        (&["mountpoint", "--version"][..], "util-linux (mountpoint)"),
        (&["flock", "--version"][..], "util-linux (flock)"),
        (&["mkfs.ext4", "-V"][..], "e2fsprogs"),
        (&["fsck.ext4", "-V"][..], "e2fsprogs"),
        (&["modprobe", "--version"][..], "kmod"),
    ] {
        let ok = Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "`{}` cannot run: install {package} (apt-get install ...)",
            argv.join(" ")
        );
    }
    for agent in ["IPaddr2", "Filesystem"] {
        let path = Path::new(HEARTBEAT).join(agent);
        assert!(
            path.exists(),
            "{} is missing: install resource-agents (apt-get install resource-agents)",
            path.display()
        );
    }
}

/// Runs a command; panics with its output when it cannot run or fails.
fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A loop device attached to an image file, detached when dropped (while a mount still uses
/// it, the kernel detaches it once the last mount goes).
struct LoopDevice {
    /// `/dev/loopN`.
    dev: String,
}

impl LoopDevice {
    /// Makes a fresh ext4 image of 32 MiB at `image` and attaches it to a free loop device.
    fn ext4(image: &Path) -> LoopDevice {
        LoopDevice::ext4_labelled(image, None)
    }

    /// The same, the file system labelled `label` when given.
    fn ext4_labelled(image: &Path, label: Option<&str>) -> LoopDevice {
        let image = image.to_str().expect("a UTF-8 image path");
        run(&["truncate", "-s", "32M", image]);
        match label {
            Some(l) => run(&["mkfs.ext4", "-q", "-F", "-L", l, image]),
            None => run(&["mkfs.ext4", "-q", "-F", image]),
        };
        let dev = run(&["losetup", "-f", "--show", image]);
        assert!(
            dev.starts_with("/dev/loop"),
            "losetup -f --show {image} printed {dev:?}"
        );
        LoopDevice { dev }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        match Command::new("losetup").args(["-d", &self.dev]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "losetup -d {}: {}",
                self.dev,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("losetup -d {}: {e}", self.dev),
        }
    }
}

/// The nodes of `nodes` whose `eth0` holds the virtual IP (a node that is powered off
/// included: its network namespace outlives it).
fn vip_on(c: &Cluster, nodes: &[usize]) -> Vec<usize> {
    nodes
        .iter()
        .copied()
        .filter(|&i| {
            eth0_addresses(c, i)
                .iter()
                .any(|(family, addr)| family == "inet" && addr == VIP)
        })
        .collect()
}

/// Tells whether the mount table `mountinfo` (a `/proc/PID/mountinfo`) has something mounted
/// on `dir`.
fn has_mount(mountinfo: &str, dir: &Path) -> bool {
    let dir = dir.to_str().expect("a UTF-8 mount point");
    // "68 47 7:0 / /tmp/.../mnt rw,relatime - ext4 /dev/loop0 rw": the 5th field.
    mountinfo
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(dir))
}

/// The running nodes of `nodes` that have something mounted on `dir` in their own mount
/// namespace (that of their init, where the daemon and its agents run).
fn mounted_on(c: &mut Cluster, nodes: &[usize], dir: &Path) -> Vec<usize> {
    let mut out = Vec::new();
    for &i in nodes {
        if !c.is_running(i) {
            continue;
        }
        let init = c.pid_of_daemon(i);
        let info = std::fs::read_to_string(format!("/proc/{init}/mountinfo"))
            .unwrap_or_else(|e| panic!("reading n{i}'s /proc/{init}/mountinfo: {e}"));
        if has_mount(&info, dir) {
            out.push(i);
        }
    }
    out
}

/// How many processes of node `i` run `sleep ARG` (the services' bodies).
fn sleeps(c: &Cluster, i: usize, arg: &str) -> usize {
    let want = format!("sleep\0{arg}\0");
    c.processes(i)
        .into_iter()
        .filter(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|b| b == want.as_bytes()))
        .count()
}

/// Writes `cltab` and `hactl` to every node (as an operator who edits every copy).
fn configure(c: &Cluster, cltab: &str, hactl: &str) {
    for i in c.indices() {
        c.write_file(i, "cltab", cltab);
        c.write_file(i, "hactl", hactl);
    }
}

/// The nodes of `live` whose clstat shows `group` at level `start` (whatever its state).
fn at_start(c: &Cluster, live: &[usize], group: &str) -> Vec<usize> {
    live.iter()
        .copied()
        .filter(|&i| {
            c.clstat(i)
                .is_some_and(|cl| cl["groups"][group]["level"] == "start")
        })
        .collect()
}

/// `hastat.fencing[victim].state` on node `i` ("" when absent).
fn fence_state(c: &Cluster, i: usize, victim: &str) -> String {
    c.hastat(i)
        .and_then(|h| h["fencing"][victim]["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The cltab of group `data`: the virtual IP, the file system of `dev` on `mnt`, a service
/// that holds a lock inside the mount and one in the shared directory (a copy that finds
/// either taken, or runs without the mount, says so in `SHARED/collisions`), and a health
/// check of the mount.
fn data_cltab(dev: &str, mnt: &Path) -> String {
    let mnt = mnt.display();
    format!(
        "data:vip:start:resource/2s:ocf:heartbeat:IPaddr2 ip=198.18.0.100 cidr_netmask=24\n\
         data:fs:start:resource/2s:ocf:heartbeat:Filesystem device={dev} directory={mnt} \
         fstype=ext4\n\
         data:srv:start:respawn:if ! mountpoint -q {mnt}; then \
         echo \"data-unmounted $MOSHA_NODE\" >> {{SHARED}}/collisions; exit 1; fi; \
         flock -n {mnt}/data.lock -c 'flock -n {{SHARED}}/data.lock -c \"exec sleep 100000\"' \
         || echo \"data $MOSHA_NODE\" >> {{SHARED}}/collisions\n\
         data:check:start:monitor/1s/2s:test -e {mnt}/lost+found\n"
    )
}

/// Checks that `data` runs on node `y` alone among `live` (every node of `all` looked at for
/// the address): its virtual IP on `y`'s `eth0` only, its file system mounted in `y`'s mount
/// namespace only (and not in the test's), its service alone holding both locks, its health
/// check passing, and no collision. Waits (up to [`SETTLE`]) for the service and the check.
fn assert_data_on(c: &mut Cluster, all: &[usize], live: &[usize], y: usize, mnt: &Path) {
    let init = c.pid_of_daemon(y);
    // The lock file inside the mount, as node y's mount namespace sees it.
    let inner = PathBuf::from(format!("/proc/{init}/root{}/data.lock", mnt.display()));
    c.wait_for(
        &format!("data's service on n{y} holding both locks, its check passing"),
        SETTLE,
        |c| {
            lock_held(c, "data")
                && path_locked(&inner)
                && c.clstat(y).is_some_and(|cl| {
                    cl["groups"]["data"]["entries"]["check"]["health"] == "passing"
                })
        },
    );
    let vip = vip_on(c, all);
    assert_eq!(vip, [y], "the VIP {VIP} is on the eth0 of nodes {vip:?}");
    let mounts = mounted_on(c, live, mnt);
    assert_eq!(
        mounts,
        [y],
        "{} is mounted in the mount namespaces of nodes {mounts:?}",
        mnt.display()
    );
    let host = std::fs::read_to_string("/proc/self/mountinfo").expect("reading mountinfo");
    assert!(
        !has_mount(&host, mnt),
        "{} is mounted in the test's own mount namespace",
        mnt.display()
    );
    for &i in live {
        let want = usize::from(i == y);
        assert_eq!(sleeps(c, i, "100000"), want, "data's services on n{i}");
    }
    c.assert_no_collisions();
}

/// Starts three netns nodes fenced through the power switch, each with its own HA_RSCTMP,
/// with nothing to run yet.
fn three_fenced_nodes() -> (Cluster, PowerSwitch) {
    let c = Cluster::start(ClusterOpts {
        nodes: 3,
        cltab: String::new(),
        hactl: String::new(),
        fencetab: SWITCH_FENCETAB.to_string(),
        extra_args: vec!["--ha-rsctmp".into(), "{DIR}/rsc".into()],
        netns: true,
    });
    let switch = PowerSwitch::install(&c);
    (c, switch)
}

/// Cuts node `x`'s power and serves the switch until `data` runs on one of `survivors` with
/// the VIP up (only there among `all`); returns when the power was cut, and that node.
fn cut_and_recover(
    c: &mut Cluster,
    switch: &mut PowerSwitch,
    x: usize,
    survivors: &[usize],
    all: &[usize],
) -> (std::time::SystemTime, usize) {
    let off = switch.power_off(c, x);
    let mut y = 0;
    switch.wait_for(
        c,
        "data running on a survivor with its VIP up",
        SETTLE,
        |c, _| {
            y = c
                .placement(survivors, &["data"], "start")
                .map_or(0, |p| p["data"]);
            y != 0 && vip_on(c, all) == [y]
        },
    );
    (off, y)
}

/// A group of a virtual IP (IPaddr2), an ext4 file system on a loop device (Filesystem), a
/// service using both and a health check runs on exactly one node; once that node's power is
/// cut, it runs again on exactly one other node: the address is gone from the dead node's
/// `eth0` (its mount went with its mount namespace) and is on the new owner's only, the file
/// system is mounted there only, and its service never ran twice.
#[test]
fn vip_mount_and_service_fail_over_together() {
    let _t = Timer::start("vip_mount_and_service_fail_over_together");
    require_tools();
    // Declared before the cluster, so dropped after it: its mounts go with its namespaces.
    let mut disk: Option<LoopDevice> = None;
    let (mut c, mut switch) = three_fenced_nodes();
    let dev = disk
        .insert(LoopDevice::ext4(&c.shared().join("data.img")))
        .dev
        .clone();
    let mnt = c.shared().join("mnt");
    std::fs::create_dir(&mnt).expect("creating the mount point");
    let all: Vec<usize> = c.indices().collect();
    wait_joined(&c, &all);
    configure(&c, &data_cltab(&dev, &mnt), "data start\n");

    let x = c.wait_placed(&all, &["data"], "start")["data"];
    assert_data_on(&mut c, &all, &all, x, &mnt);
    eprintln!("data runs on n{x} ({dev} on {}, {VIP})", mnt.display());

    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != x).collect();
    let t0 = Instant::now();
    let (off, y) = cut_and_recover(&mut c, &mut switch, x, &survivors, &all);
    let recovered = t0.elapsed();
    eprintln!(
        "power-off of n{x} (unix {:.3}) → data running on n{y}, VIP up: {:.2} s",
        unix(off),
        recovered.as_secs_f64()
    );
    assert_data_on(&mut c, &all, &survivors, y, &mnt);
    let owner = c.node_name(x);
    c.wait_for(
        &format!("every survivor to see {owner} fenced"),
        SETTLE,
        |c| {
            survivors
                .iter()
                .all(|&i| fence_state(c, i, &owner) == "fenced")
        },
    );
}

/// The test OCF agent `mosha-test:Sticky` (a shell script sourcing nothing): `start` takes
/// `SHARED/sticky.lock` with a detached `sleep 99999` that keeps holding it (its pid in
/// `$HA_RSCTMP`), or, finding the lock taken, appends `sticky <node>` to `SHARED/collisions`
/// and fails; `monitor` is 0 while that holder runs, else 7; `stop` fails, leaving the holder
/// alone, while `SHARED/stuck-<node>` exists, else kills it.
const STICKY: &str = r#"#!/bin/sh
# Test OCF agent mosha-test:Sticky: holds @SHARED@/sticky.lock while it runs; its stop fails
# while @SHARED@/stuck-<node> exists.
shared='@SHARED@'
node=${OCF_RESKEY_CRM_meta_on_node:-unknown}
pidfile="${HA_RSCTMP:-/run/resource-agents}/Sticky-${OCF_RESOURCE_INSTANCE:-default}.pid"

running() {
    [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

case $1 in
start)
    running && exit 0
    exec 9>>"$shared/sticky.lock"
    if ! flock -n 9; then
        echo "sticky $node" >> "$shared/collisions"
        echo "sticky.lock is taken: another node holds this resource" >&2
        exit 1
    fi
    # The holder keeps fd 9, and so the lock, after the agent exits.
    setsid sleep 99999 </dev/null >/dev/null 2>&1 &
    echo $! > "$pidfile"
    exit 0 ;;
stop)
    if [ -e "$shared/stuck-$node" ]; then
        echo "stuck-$node exists: this stop fails" >&2
        exit 1
    fi
    if running; then
        pid=$(cat "$pidfile")
        kill "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$pidfile"
    exit 0 ;;
monitor)
    running && exit 0
    exit 7 ;;
meta-data)
    cat <<'XML'
<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Sticky" version="1.0">
<version>1.0</version>
<longdesc lang="en">Holds a lock while it runs; its stop fails on demand.</longdesc>
<shortdesc lang="en">mosha test agent</shortdesc>
<parameters/>
<actions>
<action name="start" timeout="10s"/>
<action name="stop" timeout="10s"/>
<action name="monitor" timeout="5s" interval="2s"/>
<action name="meta-data" timeout="5s"/>
<action name="validate-all" timeout="5s"/>
</actions>
</resource-agent>
XML
    exit 0 ;;
validate-all)
    exit 0 ;;
esac
exit 3
"#;

/// Installs [`STICKY`] as `SHARED/ocf/resource.d/mosha-test/Sticky` (the nodes run with
/// `--ocf-root SHARED/ocf`).
fn install_sticky(c: &Cluster) {
    let dir = c.shared().join("ocf/resource.d/mosha-test");
    std::fs::create_dir_all(&dir).expect("creating the OCF provider directory");
    let script = STICKY.replace("@SHARED@", &c.shared().display().to_string());
    let tmp = dir.join(".Sticky.tmp");
    std::fs::write(&tmp, script).expect("writing the Sticky agent");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .expect("chmod of the Sticky agent");
    std::fs::rename(&tmp, dir.join("Sticky")).expect("installing the Sticky agent");
}

/// A resource whose stop fails blocks its group on that node: while the node lives, no other
/// node starts the group (the peers show the node in `fencing`, pending or fencing); they fence
/// the live node, and only then does the group run on exactly one other node, its lock never
/// taken twice.
#[test]
fn failed_stop_blocks_recovery_until_fenced() {
    let _t = Timer::start("failed_stop_blocks_recovery_until_fenced");
    require_tools();
    let opts = ClusterOpts {
        nodes: 3,
        cltab: String::new(),
        hactl: String::new(),
        fencetab: SWITCH_FENCETAB.to_string(),
        extra_args: Vec::new(),
        netns: true,
    };
    let mut c = Cluster::start_with(opts, |spec| {
        let ocf = spec.shared.join("ocf").display().to_string();
        let args = ["--ocf-root", &ocf, "--ha-rsctmp", "{DIR}/rsc"];
        mosha_argv(spec, &args.map(str::to_string))
    });
    let mut switch = PowerSwitch::install(&c);
    install_sticky(&c);
    let all: Vec<usize> = c.indices().collect();
    wait_joined(&c, &all);
    let cltab = format!(
        "sticky:rsc:start:resource/2s:ocf:mosha-test:Sticky\n{}",
        service("sticky", "sticky-srv", "start", "sticky-srv")
    );
    configure(&c, &cltab, "sticky start\n");
    let x = c.wait_placed(&all, &["sticky"], "start")["sticky"];
    c.wait_for("sticky's locks held", SETTLE, |c| {
        lock_held(c, "sticky") && lock_held(c, "sticky-srv")
    });
    let owner = c.node_name(x);
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != x).collect();
    eprintln!("sticky runs on {owner}");

    std::fs::write(c.shared().join(format!("stuck-{owner}")), "").expect("writing stuck-");
    let out = mosha(c.dir(survivors[0]), &["move", "sticky"]);
    assert!(out.status.success(), "mosha move sticky: {}", text(&out));
    eprintln!(
        "mosha move sticky: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    // While the owner lives, nobody else starts the group (checked at every look).
    let nobody_else = |c: &Cluster| {
        for &i in &survivors {
            let here = at_start(c, &[i], "sticky");
            let running = sleeps(c, i, "99999") + sleeps(c, i, "100000");
            if !here.is_empty() || running != 0 {
                c.fail(&format!(
                    "sticky started on n{i} while {owner}, whose stop failed, is alive"
                ));
            }
        }
    };
    let t0 = Instant::now();
    c.wait_for(
        &format!("{owner}'s stop to fail and the peers to see it blocked"),
        SETTLE,
        |c| {
            nobody_else(c);
            c.clstat(x)
                .is_some_and(|cl| cl["groups"]["sticky"]["state"] == "STOP-FAILED")
                && survivors
                    .iter()
                    .all(|&i| matches!(fence_state(c, i, &owner).as_str(), "pending" | "fencing"))
        },
    );
    let blocked = t0.elapsed();
    // A few seconds more, the power switch not answering: still nobody else.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        nobody_else(&c);
        assert!(c.is_running(x), "{owner} died before it was fenced");
        assert!(lock_held(&c, "sticky"), "{owner}'s holder let go");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        c.log(x).contains("stop failed"),
        "{owner}'s log does not say its stop failed"
    );
    for &i in &survivors {
        assert!(
            c.log(i).contains("stop FAILED"),
            "n{i}'s log does not say {owner}'s stop FAILED"
        );
        let state = fence_state(&c, i, &owner);
        assert!(
            matches!(state.as_str(), "pending" | "fencing"),
            "n{i}: fencing.{owner} is {state:?}"
        );
    }
    let status = mosha(c.dir(survivors[0]), &["status"]);
    let shown = String::from_utf8_lossy(&status.stdout).into_owned();
    eprintln!("mosha status on n{}:\n{}", survivors[0], shown.trim_end());
    assert!(
        shown.contains(&format!("Fencing {owner} ")),
        "mosha status does not show {owner} being fenced: {}",
        text(&status)
    );
    let requests = switch.requests();
    assert_eq!(
        requests.keys().collect::<Vec<_>>(),
        [&owner],
        "power-off requests: {requests:?}"
    );

    let t1 = Instant::now();
    let mut y = 0;
    switch.wait_for(
        &mut c,
        "sticky running on a survivor once its owner is fenced",
        SETTLE,
        |c, _| {
            y = c
                .placement(&survivors, &["sticky"], "start")
                .map_or(0, |p| p["sticky"]);
            y != 0 && lock_held(c, "sticky") && lock_held(c, "sticky-srv")
        },
    );
    let dead = switch.killed[&owner];
    eprintln!(
        "move → {owner} blocked {:.2} s; power-off request → {owner} dead {:.2} s (the \
         switch held back on purpose) → sticky running on n{y} {:.2} s later",
        blocked.as_secs_f64(),
        unix(dead) - requests[&owner],
        t1.elapsed().as_secs_f64()
    );
    for &i in &survivors {
        let want = usize::from(i == y);
        assert_eq!(sleeps(&c, i, "99999"), want, "Sticky holders on n{i}");
        assert_eq!(sleeps(&c, i, "100000"), want, "sticky's services on n{i}");
        c.wait_for(&format!("n{i} to see {owner} fenced"), SETTLE, |c| {
            fence_state(c, i, &owner) == "fenced"
        });
    }
    assert_eq!(switch.killed.len(), 1, "powered off: {:?}", switch.killed);
    c.assert_no_collisions();
}

/// `cltab-examples/ha-service`, as written (a virtual IP, the disk labelled `mosha-data`
/// mounted on /srv/mosha-data, a service and a health check): `mosha check` accepts it on a
/// node (its agents' validate-all pass there), it runs on exactly one node, the disk shows
/// that node's service, and once that node's power is cut it runs on exactly one other.
#[test]
fn the_ha_service_example_runs_and_fails_over() {
    let _t = Timer::start("the_ha_service_example_runs_and_fails_over");
    require_tools();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("cltab-examples/ha-service");
    let cltab = std::fs::read_to_string(example.join("cltab")).unwrap();
    let hactl = std::fs::read_to_string(example.join("hactl")).unwrap();
    // Declared before the cluster, so dropped after it.
    let _disk: Option<LoopDevice>;
    let (mut c, mut switch) = three_fenced_nodes();
    _disk = Some(LoopDevice::ext4_labelled(
        &c.shared().join("ha-service.img"),
        Some("mosha-data"),
    ));
    let all: Vec<usize> = c.indices().collect();
    wait_joined(&c, &all);
    // mosha check, inside a node's network namespace (IPaddr2's validate-all looks for an
    // interface in the address's subnet).
    let ns = c.ns_name(1).expect("netns").to_string();
    let check_dir = c.shared().join("check");
    std::fs::create_dir_all(&check_dir).unwrap();
    std::fs::write(check_dir.join("cltab"), &cltab).unwrap();
    std::fs::write(check_dir.join("hactl"), &hactl).unwrap();
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            env!("CARGO_BIN_EXE_mosha"),
            "check",
            "--dir",
        ])
        .arg(&check_dir)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        said.contains("ocf:heartbeat:IPaddr2 validate-all ok"),
        "{said}"
    );
    configure(&c, &cltab, &hactl);
    let x = c.wait_placed(&all, &["data"], "start")["data"];
    let mnt = Path::new("/srv/mosha-data");
    let owner_of = |c: &mut Cluster, i: usize| {
        let init = c.pid_of_daemon(i);
        std::fs::read_to_string(format!("/proc/{init}/root/srv/mosha-data/owner"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    c.wait_for("the service writes its node on the disk", SETTLE, |c| {
        c.clstat(x)
            .is_some_and(|cl| cl["groups"]["data"]["entries"]["alive"]["health"] == "passing")
    });
    assert_eq!(owner_of(&mut c, x), c.node_name(x));
    assert_eq!(vip_on(&c, &all), [x]);
    assert_eq!(mounted_on(&mut c, &all, mnt), [x]);
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != x).collect();
    let t0 = Instant::now();
    let (_, y) = cut_and_recover(&mut c, &mut switch, x, &survivors, &all);
    eprintln!(
        "ha-service: power-off of n{x} -> running on n{y}, VIP up: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    c.wait_for("the survivor's service owns the disk", SETTLE, |c| {
        c.clstat(y)
            .is_some_and(|cl| cl["groups"]["data"]["entries"]["alive"]["health"] == "passing")
    });
    assert_eq!(owner_of(&mut c, y), c.node_name(y));
    assert_eq!(mounted_on(&mut c, &survivors, mnt), [y]);
    c.assert_no_collisions();
}
