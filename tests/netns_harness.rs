//! Self-test of the multi-node harness (`tests/common/cluster.rs`): the namespace launcher,
//! killing and restarting nodes, SIGSTOP, the network namespaces, partitions and cleanup, with
//! small real programs (`sh`, `sleep`) in place of mosha.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{
    innermost_nspid, mosha_argv, net_ns_named, net_ns_of_pid, node_ip, Cluster, ClusterOpts,
    NodeSpec, NETNS_PORT,
};
use common::{pid_alive, proc_state};

const T: Duration = Duration::from_secs(10);

/// Each node: a shell (the PID-namespace init) that logs a line, lists its /proc and waits on
/// a `sleep` child.
fn sleeper(spec: &NodeSpec) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        "echo started >&2; sleep 1000 & ls /proc > \"$0/proc.txt\"; wait".into(),
        spec.dir.display().to_string(),
    ]
}

/// Every process of every node once there are `n` (each node runs its shell and its sleep;
/// a restarted node's `ls /proc` may not have finished yet: found by CI, 7 processes once).
/// Fails when they are not `n` within 10 s.
fn settled_processes(c: &Cluster, n: usize) -> Vec<u32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all: Vec<u32> = c.indices().flat_map(|i| c.processes(i)).collect();
        if all.len() == n {
            return all;
        }
        if std::time::Instant::now() >= deadline {
            c.fail(&format!(
                "{} processes in the cluster, not {n}: {all:?}",
                all.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn opts(nodes: usize, netns: bool) -> ClusterOpts {
    ClusterOpts {
        nodes,
        cltab: "shared={SHARED} dir={DIR}\n".into(),
        hactl: "# {SHARED}\n".into(),
        fencetab: "* none\n".to_string(),
        extra_args: Vec::new(),
        netns,
    }
}

/// The node's `sleep`: the one process of its namespace other than the init.
fn sleep_pid(c: &Cluster, i: usize) -> u32 {
    let init = c.pid_of_daemon(i);
    let mut found = None;
    c.wait_for(&format!("node {i}'s sleep"), T, |c| {
        found = c.processes(i).into_iter().find(|&p| {
            p != init
                && std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default()
                    == "sleep\n"
        });
        found.is_some()
    });
    found.unwrap()
}

/// Sends datagrams from node `from` to node `to` (inside their network namespaces) and tells
/// whether one arrived.
fn reaches(c: &Cluster, from: usize, to: usize) -> bool {
    let rx = c.udp_socket_in(to, SocketAddr::new(node_ip(to).into(), 0));
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let dst = rx.local_addr().unwrap();
    let tx = c.udp_socket_in(from, SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
    let mut buf = [0u8; 16];
    for _ in 0..5 {
        if tx.send_to(b"ping", dst).is_err() {
            // A blackhole route makes the send fail at once (EINVAL).
            return false;
        }
        if let Ok((n, src)) = rx.recv_from(&mut buf) {
            assert_eq!(&buf[..n], b"ping");
            assert_eq!(src.ip(), std::net::IpAddr::V4(node_ip(from)));
            return true;
        }
    }
    false
}

fn check_reach(c: &Cluster, ok: &[(usize, usize)]) {
    for a in c.indices() {
        for b in c.indices() {
            if a != b {
                let want = ok.contains(&(a, b));
                assert_eq!(reaches(c, a, b), want, "{a} -> {b} should reach: {want}");
            }
        }
    }
}

fn all_pairs(n: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for a in 1..=n {
        for b in 1..=n {
            if a != b {
                v.push((a, b));
            }
        }
    }
    v
}

/// Checks that node `i` runs its program as init of its own PID namespace with its own /proc.
fn check_node_namespace(c: &Cluster, i: usize) {
    let init = c.pid_of_daemon(i);
    assert_eq!(
        innermost_nspid(init),
        Some(1),
        "node {i}'s init is pid 1 inside"
    );
    let mine = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let theirs = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    assert_ne!(mine, theirs, "node {i} has its own PID namespace");
    let sleep = sleep_pid(c, i);
    let ns_pid = innermost_nspid(sleep).unwrap();
    assert_eq!(c.host_pid(i, ns_pid), Some(sleep));
    assert_eq!(c.host_pid(i, 1), Some(init));
    // --mount-proc: the node's /proc shows only its own namespace.
    let mut text = String::new();
    c.wait_for("proc.txt", T, |c| {
        text = c.read_file(i, "proc.txt").unwrap_or_default();
        text.ends_with('\n')
    });
    let pids: Vec<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(pids.contains(&1), "node {i}'s /proc: {pids:?}");
    assert!(
        pids.len() <= 4,
        "node {i}'s /proc shows other processes: {pids:?}"
    );
}

#[test]
fn mosha_command_line() {
    let spec = NodeSpec {
        index: 2,
        name: "n2".into(),
        dir: PathBuf::from("/x/n2"),
        shared: PathBuf::from("/x/shared"),
        listen: "198.18.0.2:7946".parse().unwrap(),
        seeds: vec![
            "198.18.0.1:7946".parse().unwrap(),
            "198.18.0.3:7946".parse().unwrap(),
        ],
    };
    let argv = mosha_argv(&spec, &["--foo".to_string()]);
    assert!(argv[0].ends_with("mosha"));
    assert_eq!(
        argv[1..],
        [
            "run",
            "--node",
            "n2",
            "--dir",
            "/x/n2",
            "--listen",
            "198.18.0.2:7946",
            "--seed",
            "198.18.0.1:7946",
            "--seed",
            "198.18.0.3:7946",
            "--foo"
        ]
    );
}

#[test]
fn loopback_cluster() {
    let mut c = Cluster::start_with(opts(3, false), sleeper);
    let root = c.shared().parent().unwrap().to_path_buf();
    let mut ports = Vec::new();
    for i in c.indices() {
        assert_eq!(c.node_name(i), format!("n{i}"));
        assert_eq!(c.dir(i), root.join(format!("n{i}")));
        assert!(c.ns_name(i).is_none());
        let a = c.addr(i);
        assert_eq!(a.ip(), std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(!ports.contains(&a.port()));
        ports.push(a.port());
        assert_eq!(
            c.read_file(i, "cltab").unwrap(),
            format!(
                "shared={} dir={}\n",
                c.shared().display(),
                c.dir(i).display()
            )
        );
        check_node_namespace(&c, i);
    }
    c.write_file(2, "x", "{SHARED}|{DIR}");
    assert_eq!(
        c.read_file(2, "x").unwrap(),
        format!("{}|{}", c.shared().display(), c.dir(2).display())
    );

    // kill_node: the init and its child die; the other nodes live on.
    let (init2, sleep2) = (c.pid_of_daemon(2), sleep_pid(&c, 2));
    let others: Vec<u32> = [1, 3].iter().flat_map(|&i| c.processes(i)).collect();
    c.kill_node(2);
    assert!(!pid_alive(init2) && !pid_alive(sleep2));
    assert!(!c.is_running(2));
    assert!(c.processes(2).is_empty());
    assert!(others.iter().all(|&p| pid_alive(p)));
    let r = catch_unwind(AssertUnwindSafe(|| c.pid_of_daemon(2)));
    assert!(r.is_err(), "pid_of_daemon of a dead node panics");

    // restart_node: a new namespace on the same directory; the log is appended.
    c.restart_node(2);
    assert_ne!(c.pid_of_daemon(2), init2);
    check_node_namespace(&c, 2);
    c.wait_for("two starts in n2's log", T, |c| {
        c.log(2).matches("started").count() == 2
    });
    let r = catch_unwind(AssertUnwindSafe(|| c.restart_node(2)));
    assert!(r.is_err(), "restarting a running node panics");

    // sigstop_daemon stops the init only.
    let (init3, sleep3) = (c.pid_of_daemon(3), sleep_pid(&c, 3));
    c.sigstop_daemon(3);
    c.wait_for("n3's daemon stopped", T, |_| proc_state(init3) == Some('T'));
    assert_eq!(proc_state(sleep3), Some('S'));
    c.sigcont_daemon(3);
    c.wait_for(
        "n3's daemon continued",
        T,
        |_| matches!(proc_state(init3), Some(s) if s != 'T'),
    );

    let r = catch_unwind(AssertUnwindSafe(|| c.partition(&[&[1], &[2, 3]])));
    assert!(r.is_err(), "partition needs netns");

    // A stopped daemon is killed too.
    c.sigstop_daemon(1);
    let all = settled_processes(&c, 6);
    drop(c);
    for p in all {
        assert!(!pid_alive(p), "{p} survived the cluster");
    }
    assert!(!root.exists(), "{} left behind", root.display());
}

#[test]
fn netns_cluster() {
    let mut c = Cluster::start_with(opts(3, true), sleeper);
    let namespaces = c.namespaces().to_vec();
    assert_eq!(namespaces.len(), 4);
    for ns in &namespaces {
        assert!(ns.len() < 40, "{ns}");
        assert!(Path::new("/run/netns").join(ns).exists(), "{ns}");
    }
    for i in c.indices() {
        assert_eq!(c.addr(i), SocketAddr::new(node_ip(i).into(), NETNS_PORT));
        let ns = c.ns_name(i).unwrap();
        assert_eq!(
            net_ns_of_pid(c.pid_of_daemon(i)),
            net_ns_named(ns),
            "node {i} runs in its network namespace"
        );
        assert!(c.switch_ns().is_some_and(|s| s != ns));
        let out = c.exec_in(i, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("{}/24", node_ip(i))),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        check_node_namespace(&c, i);
    }

    check_reach(&c, &all_pairs(3));
    c.partition(&[&[1], &[2, 3]]);
    check_reach(&c, &[(2, 3), (3, 2)]);
    // A new partition replaces the previous one; nodes on no side reach everyone.
    c.partition(&[&[1], &[2]]);
    check_reach(&c, &[(1, 3), (3, 1), (2, 3), (3, 2)]);
    c.heal();
    check_reach(&c, &all_pairs(3));

    // Killing and restarting a node in its network namespace.
    let (init1, sleep1) = (c.pid_of_daemon(1), sleep_pid(&c, 1));
    c.kill_node(1);
    assert!(!pid_alive(init1) && !pid_alive(sleep1));
    c.partition(&[&[1], &[2, 3]]);
    c.restart_node(1);
    assert_eq!(
        net_ns_of_pid(c.pid_of_daemon(1)),
        net_ns_named(c.ns_name(1).unwrap())
    );
    check_node_namespace(&c, 1);

    let all = settled_processes(&c, 6);
    drop(c);
    for p in all {
        assert!(!pid_alive(p), "{p} survived the cluster");
    }
    for ns in &namespaces {
        assert!(
            !Path::new("/run/netns").join(ns).exists(),
            "{ns} left behind"
        );
    }
}

#[test]
fn drop_cleans_up_on_panic() {
    /// The namespaces, sleeps and root of the cluster that panicked.
    type Seen = (Vec<String>, Vec<u32>, PathBuf);
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let r = catch_unwind(AssertUnwindSafe(move || {
        let c = Cluster::start_with(opts(2, true), sleeper);
        let procs: Vec<u32> = c.indices().map(|i| sleep_pid(&c, i)).collect();
        *s.lock().unwrap() = (
            c.namespaces().to_vec(),
            procs,
            c.shared().parent().unwrap().to_path_buf(),
        );
        c.wait_for(
            "something that never happens",
            Duration::from_millis(50),
            |_| false,
        );
    }));
    let msg = r.expect_err("wait_for times out");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("something that never happens"), "{msg}");
    assert!(msg.contains("=== node n2"), "{msg}");
    assert!(
        msg.contains("started"),
        "the report has the log tails: {msg}"
    );
    let (namespaces, procs, root) = &*seen.lock().unwrap();
    assert_eq!(namespaces.len(), 3);
    for ns in namespaces {
        assert!(
            !Path::new("/run/netns").join(ns).exists(),
            "{ns} left behind"
        );
    }
    for &p in procs {
        assert!(!pid_alive(p), "{p} survived the cluster");
    }
    assert!(!root.exists());
}
