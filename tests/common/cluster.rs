//! A harness for multi-node integration tests: N `mosha run` daemons (or any other program,
//! see [`Cluster::start_with`]) on fresh node directories under one temporary root, each node
//! running as PID 1 of its own PID namespace (`unshare --pid --fork --mount-proc`), so that
//! killing a node is a real death of everything it ran. With `netns: true` every node also gets
//! its own network namespace, wired to a bridge in a "switch" namespace, with address
//! `198.18.0.<i>/24`, and the network can be partitioned with blackhole routes.
//!
//! Nodes are numbered from 1: node `i` is named `n<i>` and (with netns) has address
//! `198.18.0.<i>`. Every index argument below is that 1-based number.
//!
//! Processes inside a node see namespace-local pids (the daemon is pid 1): pids read from a
//! node's clstat/hastat must go through [`Cluster::host_pid`] before the test signals them.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::ops::RangeInclusive;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use mosha::hastat::Hastat;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

/// How often `wait_for` looks again.
pub const CLUSTER_POLL: Duration = Duration::from_millis(20);
/// The UDP port every node listens on when each node has its own network namespace.
pub const NETNS_PORT: u16 = 7946;
/// How long starting a node (until its PID-namespace init has exec'd) may take.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SIGKILLed node may take to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefix of every network namespace this harness creates: `mosha-<test pid>-<counter>-...`.
const NS_PREFIX: &str = "mosha-";
const NETNS_DIR: &str = "/run/netns";

static CLUSTER_COUNTER: AtomicUsize = AtomicUsize::new(0);
static SWEEP: Once = Once::new();

/// What [`Cluster::start`] builds.
#[derive(Clone, Debug, Default)]
pub struct ClusterOpts {
    /// Number of nodes (`n1`..`nN`).
    pub nodes: usize,
    /// Written to every node's `DIR/cltab`; `{SHARED}` and `{DIR}` are replaced.
    pub cltab: String,
    /// Written to every node's `DIR/hactl`; `{SHARED}` and `{DIR}` are replaced.
    pub hactl: String,
    /// Written to every node's `DIR/fencetab` unless empty; `{SHARED}` and `{DIR}` are
    /// replaced. Without a fencetab a lost node's groups wait for an acknowledgement: tests
    /// that are not about fencing use `* none`.
    pub fencetab: String,
    /// Appended to every node's `mosha run` arguments.
    pub extra_args: Vec<String>,
    /// true: each node in its own network namespace (needed for `partition`).
    pub netns: bool,
}

/// What a node's command line is built from (see [`Cluster::start_with`]).
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// 1-based node number.
    pub index: usize,
    /// `n<index>`.
    pub name: String,
    /// The node directory.
    pub dir: PathBuf,
    /// The directory shared by all nodes.
    pub shared: PathBuf,
    /// The address the node listens on.
    pub listen: SocketAddr,
    /// The other nodes' addresses.
    pub seeds: Vec<SocketAddr>,
}

/// The `mosha run` command line for `spec`: `mosha run --node N --dir D --listen A --seed S...`
/// followed by `extra`.
pub fn mosha_argv(spec: &NodeSpec, extra: &[String]) -> Vec<String> {
    let mut argv = vec![
        env!("CARGO_BIN_EXE_mosha").to_string(),
        "run".to_string(),
        "--node".to_string(),
        spec.name.clone(),
        "--dir".to_string(),
        spec.dir.display().to_string(),
        "--listen".to_string(),
        spec.listen.to_string(),
    ];
    for seed in &spec.seeds {
        argv.push("--seed".to_string());
        argv.push(seed.to_string());
    }
    // `{DIR}` in an argument is the node's directory (a per-node path in one command line
    // for all, like `--ha-rsctmp {DIR}/rsc`).
    let dir = spec.dir.display().to_string();
    argv.extend(extra.iter().map(|a| a.replace("{DIR}", &dir)));
    argv
}

struct NodeProc {
    /// The `unshare` process (reached through `ip netns exec`, which execs into it).
    child: Child,
    /// Host pid of the PID namespace's init: the node's program (the daemon).
    init: u32,
}

struct NodeSlot {
    spec: NodeSpec,
    argv: Vec<String>,
    /// The node's network namespace, if any.
    ns: Option<String>,
    proc: Option<NodeProc>,
}

/// N nodes on one temporary root; see the module documentation.
pub struct Cluster {
    nodes: Vec<NodeSlot>,
    /// Network namespaces created so far (switch first), deleted by `Drop`.
    namespaces: Vec<String>,
    /// The switch namespace, if netns.
    switch: Option<String>,
    /// Blackhole routes in place: (node whose namespace holds it, blackholed address).
    blackholes: Vec<(usize, Ipv4Addr)>,
    shared: PathBuf,
    /// The cluster key written to every node's `DIR/authkey` (64 hex digits).
    pub key: String,
    // Last field: removed after the processes are dead.
    root: TempDir,
}

impl Cluster {
    /// Starts `opts.nodes` `mosha run` daemons (see [`mosha_argv`]).
    pub fn start(opts: ClusterOpts) -> Cluster {
        let extra = opts.extra_args.clone();
        Cluster::start_with(opts, move |spec| mosha_argv(spec, &extra))
    }

    /// Like [`Cluster::start`], but node `i` runs `argv(spec_i)` (program first) instead of
    /// mosha; `opts.extra_args` is only passed to `argv` through the closure's own capture.
    pub fn start_with(
        opts: ClusterOpts,
        mut argv: impl FnMut(&NodeSpec) -> Vec<String>,
    ) -> Cluster {
        assert!(
            (1..=250).contains(&opts.nodes),
            "a cluster has 1 to 250 nodes, not {}",
            opts.nodes
        );
        if opts.netns {
            SWEEP.call_once(sweep_stale_namespaces);
        }
        let root = tempfile::Builder::new()
            .prefix("mosha-cl-")
            .tempdir()
            .expect("creating a temporary directory");
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).expect("creating the shared directory");
        let listen: Vec<SocketAddr> = if opts.netns {
            (1..=opts.nodes)
                .map(|i| SocketAddr::V4(SocketAddrV4::new(node_ip(i), NETNS_PORT)))
                .collect()
        } else {
            free_loopback_ports(opts.nodes)
                .into_iter()
                .map(|p| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)))
                .collect()
        };
        let prefix = format!(
            "{NS_PREFIX}{}-{}",
            std::process::id(),
            CLUSTER_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut cluster = Cluster {
            nodes: Vec::new(),
            namespaces: Vec::new(),
            switch: None,
            blackholes: Vec::new(),
            shared: shared.clone(),
            key: super::random_key(),
            root,
        };
        for i in 1..=opts.nodes {
            let dir = cluster.root.path().join(format!("n{i}"));
            std::fs::create_dir(&dir).expect("creating a node directory");
            let spec = NodeSpec {
                index: i,
                name: format!("n{i}"),
                dir,
                shared: shared.clone(),
                listen: listen[i - 1],
                seeds: (1..=opts.nodes)
                    .filter(|&j| j != i)
                    .map(|j| listen[j - 1])
                    .collect(),
            };
            let argv = argv(&spec);
            assert!(!argv.is_empty(), "empty command line for node {i}");
            cluster.nodes.push(NodeSlot {
                spec,
                argv,
                ns: opts.netns.then(|| format!("{prefix}-n{i}")),
                proc: None,
            });
            let key = cluster.key.clone();
            cluster.write_key(i, &key);
            cluster.write_file(i, "cltab", &opts.cltab);
            cluster.write_file(i, "hactl", &opts.hactl);
            if !opts.fencetab.is_empty() {
                cluster.write_file(i, "fencetab", &opts.fencetab);
            }
        }
        if opts.netns {
            // Any panic from here on drops `cluster`, which deletes what was created.
            cluster.setup_network(&format!("{prefix}-sw"));
        }
        for i in 1..=opts.nodes {
            cluster.spawn(i);
        }
        cluster
    }

    fn setup_network(&mut self, switch: &str) {
        ip(&["netns", "add", switch]);
        self.namespaces.push(switch.to_string());
        self.switch = Some(switch.to_string());
        ip(&["-n", switch, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            switch,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
        ]);
        ip(&["-n", switch, "link", "set", "br0", "up"]);
        for i in 1..=self.nodes.len() {
            let ns = self.nodes[i - 1].ns.clone().expect("node namespace name");
            ip(&["netns", "add", &ns]);
            self.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let port = format!("v{i}");
            ip(&[
                "-n", switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&["-n", switch, "link", "set", &port, "master", "br0", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", node_ip(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
    }

    fn slot(&self, i: usize) -> &NodeSlot {
        assert!(
            (1..=self.nodes.len()).contains(&i),
            "no node {i}: nodes are numbered 1..={}",
            self.nodes.len()
        );
        &self.nodes[i - 1]
    }

    fn slot_mut(&mut self, i: usize) -> &mut NodeSlot {
        self.slot(i);
        &mut self.nodes[i - 1]
    }

    /// Starts node `i`'s program as init of a fresh PID namespace and waits until it has
    /// exec'd. Panics (with the log) when it cannot be started or exits at once.
    fn spawn(&mut self, i: usize) {
        let slot = self.slot(i);
        assert!(slot.proc.is_none(), "node {i} is already running");
        let log_path = slot.spec.dir.join("mosha.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("opening mosha.log");
        let out = log.try_clone().expect("cloning the log handle");
        let mut cmd = match &slot.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "unshare"]);
                c
            }
            None => Command::new("unshare"),
        };
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
            .args(&slot.argv)
            .env_remove("RUST_LOG")
            .env_remove("MOSHA_NODE")
            // Keep panic backtraces (RUST_BACKTRACE) but not one per logged error: during a
            // partition every failed gossip send is logged.
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log);
        // If the test process dies (say SIGKILLed on a timeout), `unshare` is SIGKILLed and
        // `--kill-child` takes the node's init, and so the whole node, with it. (The death
        // signal follows the thread that spawned: keep a Cluster on its test's thread.)
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting node {i} ({:?}): {e}", slot.argv));
        let upid = child.id();
        let deadline = Instant::now() + START_TIMEOUT;
        let init = loop {
            if let Some(status) = child.try_wait().expect("waiting for unshare") {
                panic!(
                    "node {i} ({:?}) exited at once: {status}\n--- {} (last 30 lines) ---\n{}\n---",
                    slot.argv,
                    log_path.display(),
                    tail(&read_lossy(&log_path), 30)
                );
            }
            if let Some(init) = children_of(upid).into_iter().next() {
                // Until the init has exec'd, it is still a copy of unshare.
                let exe = |p: u32| std::fs::read_link(format!("/proc/{p}/exe")).ok();
                let (ue, ie) = (exe(upid), exe(init));
                if ue.is_some() && ie.is_some() && ue != ie {
                    break init;
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {i} ({:?}): no PID-namespace init within {START_TIMEOUT:?}\n--- log ---\n{}",
                    slot.argv,
                    tail(&read_lossy(&log_path), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        self.slot_mut(i).proc = Some(NodeProc { child, init });
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// `1..=N`, the node numbers.
    pub fn indices(&self) -> RangeInclusive<usize> {
        1..=self.nodes.len()
    }

    /// `n<i>`.
    pub fn node_name(&self, i: usize) -> String {
        self.slot(i).spec.name.clone()
    }

    /// Node `i`'s directory.
    pub fn dir(&self, i: usize) -> &Path {
        &self.slot(i).spec.dir
    }

    /// `DIR/name` of node `i`.
    pub fn path(&self, i: usize, name: &str) -> PathBuf {
        self.dir(i).join(name)
    }

    /// The directory shared by all nodes of this cluster.
    pub fn shared(&self) -> &Path {
        &self.shared
    }

    /// The address node `i` listens on.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.slot(i).spec.listen
    }

    /// Node `i`'s network namespace (None without netns).
    pub fn ns_name(&self, i: usize) -> Option<&str> {
        self.slot(i).ns.as_deref()
    }

    /// The switch namespace holding the bridge (None without netns).
    pub fn switch_ns(&self) -> Option<&str> {
        self.switch.as_deref()
    }

    /// Every network namespace of this cluster, switch first.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Replaces `{SHARED}` and `{DIR}` (node `i`'s directory) in `text`.
    pub fn expand(&self, i: usize, text: &str) -> String {
        text.replace("{SHARED}", &self.shared.display().to_string())
            .replace("{DIR}", &self.dir(i).display().to_string())
    }

    /// Replaces node `i`'s `DIR/name` with `text` (placeholders expanded) atomically.
    pub fn write_file(&self, i: usize, name: &str, text: &str) {
        let text = self.expand(i, text);
        let tmp = self.path(i, &format!(".{name}.test-tmp"));
        let mut f = File::create(&tmp).expect("creating a temporary file");
        f.write_all(text.as_bytes())
            .expect("writing a temporary file");
        f.sync_all().expect("syncing a temporary file");
        drop(f);
        std::fs::rename(&tmp, self.path(i, name)).expect("renaming a temporary file");
    }

    /// What the services' witness wrote to `SHARED/collisions`: one line each time a copy of
    /// a group found its lock taken, i.e. ran while another copy did (empty: never).
    pub fn collisions(&self) -> String {
        std::fs::read_to_string(self.shared().join("collisions")).unwrap_or_default()
    }

    /// Fails the test (with the cluster's report) if any service ever found its lock taken.
    pub fn assert_no_collisions(&self) {
        let text = self.collisions();
        if !text.trim().is_empty() {
            self.fail(&format!("lock collisions (two copies at once):\n{text}"));
        }
    }

    /// Replaces node `i`'s key file `DIR/authkey` with `keys` (one key per line), atomically
    /// and private (mode 0600), as an operator would.
    pub fn write_key(&self, i: usize, keys: &str) {
        super::write_private(&self.path(i, "authkey"), keys);
    }

    /// The content of node `i`'s `DIR/name`, if it exists.
    pub fn read_file(&self, i: usize, name: &str) -> Option<String> {
        std::fs::read_to_string(self.path(i, name)).ok()
    }

    fn json(&self, i: usize, name: &str) -> Option<Value> {
        serde_json::from_str(&self.read_file(i, name)?).ok()
    }

    /// Node `i`'s `DIR/hastat.json`, if it exists and parses (it may be stale: written by a
    /// daemon since killed).
    pub fn hastat(&self, i: usize) -> Option<Value> {
        self.json(i, "hastat.json")
    }

    /// Node `i`'s `DIR/clstat.json`, if it exists and parses.
    pub fn clstat(&self, i: usize) -> Option<Value> {
        self.json(i, "clstat.json")
    }

    /// Node `i`'s hastat, typed: `None` if it is missing or is not a document of this
    /// version's schema (a field renamed or gone fails here, not in a test's `["..."]`).
    pub fn status(&self, i: usize) -> Option<Hastat> {
        serde_json::from_str(&self.read_file(i, "hastat.json")?).ok()
    }

    /// Where each of `groups` runs, if every node of `live` sees it running on exactly one
    /// node of `live` (the same one everywhere), held by no other node, and that node's own
    /// clstat says the group is at `level` (level and target), `DONE`.
    pub fn placement(
        &self,
        live: &[usize],
        groups: &[&str],
        level: &str,
    ) -> Option<BTreeMap<String, usize>> {
        let views: Vec<Hastat> = live
            .iter()
            .map(|&i| self.status(i))
            .collect::<Option<_>>()?;
        let mut out = BTreeMap::new();
        for g in groups {
            let mut owner: Option<&str> = None;
            for h in &views {
                let st = h
                    .groups
                    .get(*g)
                    .filter(|st| h.quorate && st.want == level)?;
                let [on] = &st.running_on[..] else {
                    return None;
                };
                let held: Vec<&String> = st.nodes.keys().collect();
                if held != [on] || owner.is_some_and(|o| o != on) {
                    return None;
                }
                owner = Some(on);
            }
            let x = self
                .indices()
                .find(|&i| Some(self.node_name(i).as_str()) == owner)?;
            if !live.contains(&x) {
                return None;
            }
            let cl = self.clstat(x)?;
            let st = &cl["groups"][g];
            if st["level"] != level || st["target"] != level || st["state"] != "DONE" {
                return None;
            }
            out.insert(g.to_string(), x);
        }
        Some(out)
    }

    /// Waits (up to 30 s) until [`Cluster::placement`] holds; returns it.
    pub fn wait_placed(
        &self,
        live: &[usize],
        groups: &[&str],
        level: &str,
    ) -> BTreeMap<String, usize> {
        let mut got = None;
        self.wait_for(
            &format!("{groups:?} at {level} on exactly one node each, as nodes {live:?} see it"),
            Duration::from_secs(30),
            |c| {
                got = c.placement(live, groups, level);
                got.is_some()
            },
        );
        got.expect("placed")
    }

    /// Node `i`'s log (`DIR/mosha.log`, appended across restarts).
    pub fn log(&self, i: usize) -> String {
        read_lossy(&self.path(i, "mosha.log"))
    }

    /// The last `n` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, n: usize) -> String {
        tail(&self.log(i), n)
    }

    /// Every node's state (running or not, hastat) and the end of its log.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for i in self.indices() {
            let running = match &self.slot(i).proc {
                Some(p) => format!("running, init pid {}", p.init),
                None => "not running".to_string(),
            };
            let hastat = self.hastat(i).map_or("(none)".to_string(), |d| {
                serde_json::to_string_pretty(&d).unwrap_or_default()
            });
            out.push_str(&format!(
                "=== node {} ({running}) hastat: {hastat}\n--- {} (last 30 lines) ---\n{}\n",
                self.node_name(i),
                self.path(i, "mosha.log").display(),
                self.log_tail(i, 30)
            ));
        }
        out
    }

    /// Panics with `msg` and [`Cluster::report`].
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.report());
    }

    /// Polls `f` every 20 ms until it holds; on timeout panics with `desc`, every node's hastat
    /// and the end of every log.
    pub fn wait_for(&self, desc: &str, timeout: Duration, mut f: impl FnMut(&Cluster) -> bool) {
        let deadline = Instant::now() + timeout;
        while !f(self) {
            if Instant::now() >= deadline {
                self.fail(&format!("timed out after {timeout:?} waiting for: {desc}"));
            }
            std::thread::sleep(CLUSTER_POLL);
        }
    }

    /// Tells whether node `i` was started and its init has not exited yet (a node that died by
    /// itself is reaped here).
    pub fn is_running(&mut self, i: usize) -> bool {
        let slot = self.slot_mut(i);
        match &mut slot.proc {
            None => false,
            Some(p) => match p.child.try_wait().expect("waiting for unshare") {
                None => true,
                Some(_) => {
                    slot.proc = None;
                    false
                }
            },
        }
    }

    /// Host pid of node `i`'s daemon (its PID-namespace init). Panics if not running.
    pub fn pid_of_daemon(&self, i: usize) -> u32 {
        match &self.slot(i).proc {
            Some(p) => p.init,
            None => panic!("node {i} is not running"),
        }
    }

    /// Host pids of every live process of node `i`'s PID namespace, daemon included (empty
    /// when the node is not running).
    pub fn processes(&self, i: usize) -> Vec<u32> {
        let Some(p) = &self.slot(i).proc else {
            return Vec::new();
        };
        let Some(ns) = pid_ns(p.init) else {
            return Vec::new();
        };
        let mut out: Vec<u32> = all_pids()
            .into_iter()
            .filter(|&pid| pid_ns(pid).as_ref() == Some(&ns) && super::pid_alive(pid))
            .collect();
        out.sort_unstable();
        out
    }

    /// Host pid of the process that node `i` sees as `ns_pid` (pids in a node's clstat and
    /// hastat are namespace-local: the daemon is 1). None if there is none.
    pub fn host_pid(&self, i: usize, ns_pid: u32) -> Option<u32> {
        let p = self.slot(i).proc.as_ref()?;
        if ns_pid == 1 {
            return Some(p.init);
        }
        let ns = pid_ns(p.init)?;
        all_pids()
            .into_iter()
            .find(|&pid| pid_ns(pid).as_ref() == Some(&ns) && innermost_nspid(pid) == Some(ns_pid))
    }

    /// SIGKILLs node `i`'s PID-namespace init, so that the kernel kills everything the node
    /// ran, and waits until all of it is gone.
    pub fn kill_node(&mut self, i: usize) {
        let p = self
            .slot_mut(i)
            .proc
            .take()
            .unwrap_or_else(|| panic!("kill_node({i}): node {i} is not running"));
        if let Err(e) = kill_and_reap(p) {
            self.fail(&format!("kill_node({i}): {e}"));
        }
    }

    /// Stops node `i` the way an operator does: SIGTERM to its daemon, which stops its groups,
    /// says goodbye and exits; waits (up to `timeout`) until the node is gone, and fails the
    /// test if it is not.
    pub fn stop_node(&mut self, i: usize, timeout: Duration) {
        let pid = self.pid_of_daemon(i);
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM)
            .unwrap_or_else(|e| panic!("SIGTERM to node {i}'s daemon {pid}: {e}"));
        let deadline = Instant::now() + timeout;
        while self.is_running(i) {
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "node {i} did not exit within {timeout:?} of SIGTERM"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `i` again on the same directory, arguments and addresses (new process, new
    /// PID namespace). The node must have been killed or have exited.
    pub fn restart_node(&mut self, i: usize) {
        if self.is_running(i) {
            panic!("restart_node({i}): node {i} is still running; kill it first");
        }
        self.spawn(i);
    }

    /// SIGSTOPs node `i`'s daemon only (its children keep running).
    pub fn sigstop_daemon(&self, i: usize) {
        let pid = self.pid_of_daemon(i);
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP)
            .unwrap_or_else(|e| panic!("SIGSTOP to node {i}'s daemon {pid}: {e}"));
    }

    /// SIGCONTs node `i`'s daemon.
    pub fn sigcont_daemon(&self, i: usize) {
        let pid = self.pid_of_daemon(i);
        kill(Pid::from_raw(pid as i32), Signal::SIGCONT)
            .unwrap_or_else(|e| panic!("SIGCONT to node {i}'s daemon {pid}: {e}"));
    }

    /// Cuts the network so that nodes on different sides cannot exchange packets (both
    /// directions; sends fail at the sender with EINVAL, as a blackhole route does). Nodes on
    /// no side keep talking to everyone. Replaces any previous partition. Needs netns.
    pub fn partition(&mut self, sides: &[&[usize]]) {
        assert!(
            self.switch.is_some(),
            "partition needs ClusterOpts {{ netns: true, .. }}"
        );
        let mut seen = Vec::new();
        for &i in sides.iter().flat_map(|s| s.iter()) {
            self.slot(i);
            assert!(
                !seen.contains(&i),
                "node {i} is on two sides of the partition"
            );
            seen.push(i);
        }
        self.heal();
        for (s, side) in sides.iter().enumerate() {
            for (t, other) in sides.iter().enumerate() {
                if s == t {
                    continue;
                }
                for &a in side.iter() {
                    for &b in other.iter() {
                        let ns = self.ns_name(a).expect("node namespace").to_string();
                        ip(&[
                            "-n",
                            &ns,
                            "route",
                            "add",
                            "blackhole",
                            &format!("{}/32", node_ip(b)),
                        ]);
                        self.blackholes.push((a, node_ip(b)));
                    }
                }
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        while let Some((a, addr)) = self.blackholes.pop() {
            let ns = self.ns_name(a).expect("node namespace").to_string();
            ip(&[
                "-n",
                &ns,
                "route",
                "del",
                "blackhole",
                &format!("{addr}/32"),
            ]);
        }
    }

    /// Runs `argv` in node `i`'s network namespace (not its PID namespace); without netns,
    /// simply runs it. Does not panic on failure: look at the returned status.
    pub fn exec_in(&self, i: usize, argv: &[&str]) -> Output {
        assert!(!argv.is_empty(), "exec_in: empty argv");
        let mut cmd = match self.ns_name(i) {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).args(argv);
                c
            }
            None => {
                let mut c = Command::new(argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        cmd.stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {argv:?} for node {i}: {e}"))
    }

    /// A UDP socket bound to `bind` inside node `i`'s network namespace (in the test's own
    /// namespace without netns), to send or receive test datagrams as that node would.
    pub fn udp_socket_in(&self, i: usize, bind: SocketAddr) -> UdpSocket {
        let Some(ns) = self.ns_name(i) else {
            return UdpSocket::bind(bind).unwrap_or_else(|e| panic!("binding {bind}: {e}"));
        };
        let path = Path::new(NETNS_DIR).join(ns);
        // setns affects only the calling thread; a socket keeps its namespace for good.
        std::thread::scope(|s| {
            s.spawn(|| {
                let f =
                    File::open(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
                let rc = unsafe { nix::libc::setns(f.as_raw_fd(), nix::libc::CLONE_NEWNET) };
                if rc != 0 {
                    panic!(
                        "setns({}): {}",
                        path.display(),
                        std::io::Error::last_os_error()
                    );
                }
                UdpSocket::bind(bind)
                    .unwrap_or_else(|e| panic!("binding {bind} in {}: {e}", path.display()))
            })
            .join()
            .expect("the setns thread panicked")
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- cluster at {} ---\n{}",
                self.root.path().display(),
                self.report()
            );
        }
        for i in 1..=self.nodes.len() {
            if let Some(p) = self.nodes[i - 1].proc.take() {
                if let Err(e) = kill_and_reap(p) {
                    eprintln!("cluster drop: node {i}: {e}");
                }
            }
        }
        // Nodes first, switch last (the reverse of creation).
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = delete_namespace(&ns) {
                eprintln!("cluster drop: {e}");
            }
        }
    }
}

/// SIGKILLs the node's init (the kernel then kills the rest of its PID namespace) and reaps
/// `unshare`, which exits only after its child, the init, is gone (and the init only after
/// every other process of the namespace).
fn kill_and_reap(mut p: NodeProc) -> Result<(), String> {
    let upid = p.child.id();
    if p.child.try_wait().map_err(|e| e.to_string())?.is_none() {
        // Only while unshare lives is `init` surely still its child (not a reused pid).
        if children_of(upid).contains(&p.init) {
            let _ = kill(Pid::from_raw(p.init as i32), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + KILL_TIMEOUT;
    let mut killed_unshare = false;
    loop {
        match p.child.try_wait() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for unshare {upid}: {e}")),
        }
        if Instant::now() >= deadline {
            if killed_unshare {
                return Err(format!(
                    "unshare {upid} (init {}) still there {KILL_TIMEOUT:?} after SIGKILL \
                     (init state {:?})",
                    p.init,
                    super::proc_state(p.init)
                ));
            }
            // Last resort: --kill-child makes unshare's death kill the init too.
            let _ = p.child.kill();
            killed_unshare = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// 198.18.0.<i>.
pub fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        198,
        18,
        0,
        u8::try_from(i).expect("node number fits in a byte"),
    )
}

/// Runs `ip args`; panics with its stderr when it fails.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running ip {}: {e}", args.join(" ")));
    if !out.status.success() {
        panic!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SIGKILLs whatever still runs in network namespace `ns`, then deletes it.
fn delete_namespace(ns: &str) -> Result<(), String> {
    for _ in 0..50 {
        let pids = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = Command::new("ip")
        .args(["netns", "del", ns])
        .output()
        .map_err(|e| format!("running ip netns del {ns}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip netns del {ns} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes namespaces `mosha-<pid>-...` left behind by test processes that no longer exist
/// (e.g. SIGKILLed on a timeout, so that no `Drop` ran).
fn sweep_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(Ok(pid)) = rest.split('-').next().map(str::parse::<u32>) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = delete_namespace(&name);
        }
    }
}

/// Picks `n` distinct UDP ports on 127.0.0.1 that are free for both UDP and TCP right now,
/// below the kernel's ephemeral range when there is room: a port picked inside it could be
/// handed to any socket bound to port 0 before the daemon binds it (every daemon binds two
/// such loopback sockets for its gossip codec), and once was ("Address already in use").
pub fn free_loopback_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let below = (10_000u16..low).len() >= 2_000;
    let mut state = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
        .map_or(1, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ DRAWS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let udp = if below {
            // xorshift64: a port in 10000..low, not one drawn before.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let port = 10_000 + (state % u64::from(low - 10_000)) as u16;
            match UdpSocket::bind(("127.0.0.1", port)) {
                Ok(udp) if !ports.contains(&port) => udp,
                _ => continue,
            }
        } else {
            UdpSocket::bind("127.0.0.1:0").expect("binding 127.0.0.1:0")
        };
        let port = udp.local_addr().expect("local address").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            ports.push(port);
            held.push((udp, Some(tcp)));
        } else {
            held.push((udp, None));
        }
    }
    ports
}

/// Children of `pid`'s main thread.
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Identity (device, inode) of `pid`'s PID namespace.
fn pid_ns(pid: u32) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Identity (device, inode) of `pid`'s network namespace.
pub fn net_ns_of_pid(pid: u32) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Identity (device, inode) of named network namespace `ns`.
pub fn net_ns_named(ns: &str) -> Option<(u64, u64)> {
    let m = std::fs::metadata(Path::new(NETNS_DIR).join(ns)).ok()?;
    Some((m.dev(), m.ino()))
}

/// The pid `pid` has in its innermost PID namespace (last field of `NSpid:`).
pub fn innermost_nspid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How long [`wait_joined`] waits.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Returns the node number of `name` (`n<i>`).
pub fn index_of(c: &Cluster, name: &str) -> Option<usize> {
    c.indices().find(|&i| c.node_name(i) == name)
}

/// Returns the strings of a JSON array (empty if it is none).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Returns the keys of a JSON object (empty if it is none).
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// A generation as hastat writes it: a string of digits (19-digit numbers do not survive
/// doubles), or, from older documents, a number.
pub fn gen_of(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
}

/// Node `i`'s generation, as its own hastat says.
pub fn generation(c: &Cluster, i: usize) -> Option<u64> {
    Some(c.status(i)?.generation)
}

/// Tells whether every node of `live` is quorate and sees exactly the nodes of `live` alive,
/// each with the generation that node's own hastat gives.
pub fn joined(c: &Cluster, live: &[usize]) -> bool {
    let gens: BTreeMap<usize, Option<u64>> = live.iter().map(|&j| (j, generation(c, j))).collect();
    live.iter().all(|&i| {
        let Some(h) = c.status(i) else {
            return false;
        };
        h.quorate
            && h.live == live.len()
            && live.iter().all(|&j| {
                let m = h.members.get(&c.node_name(j));
                m.is_some_and(|m| m.alive && gens[&j] == Some(m.generation))
            })
    })
}

/// Waits until [`joined`] holds for `live`.
pub fn wait_joined(c: &Cluster, live: &[usize]) {
    c.wait_for(
        &format!("nodes {live:?} to see each other alive and be quorate"),
        JOIN_TIMEOUT,
        |c| joined(c, live),
    );
}

/// Prints how long the test took when it ends (passed or not).
pub struct Timer(&'static str, Instant);

impl Timer {
    /// Starts timing test `name`.
    pub fn start(name: &'static str) -> Timer {
        Timer(name, Instant::now())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        eprintln!(
            "[{}] took {:.1} s{}",
            self.0,
            self.1.elapsed().as_secs_f64(),
            if std::thread::panicking() {
                " (FAILED)"
            } else {
                ""
            }
        );
    }
}
