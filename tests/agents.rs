//! Integration tests of resource agents with real agents and real processes (no mocks): each
//! action's [`Invocation`] is run with `std::process::Command` as the supervisor runs it (own
//! process group, cwd `/`, stdin from `/dev/null`, killed at its timeout) and its exit is read
//! through [`Agent::outcome`]. Debian's `Dummy`; `IPaddr2` in a fresh network namespace with
//! a veth pair; an LSB script written to a temporary directory; `mosha check` running
//! `validate-all`. A test whose prerequisite is missing (resource-agents, iproute2, root)
//! fails and says what to install; only the systemd test may skip, since systemd does not run
//! in the containers the tests run in.
//!
//! The tests run one at a time (see [`serial`]): a script written by one test could otherwise
//! be held open by a child another test's thread is forking, and fail to run with "Text file
//! busy".

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mosha::agent::{self, Action, Agent, Context, Invocation, Outcome};
use mosha::supervisor::Exit;
use tempfile::TempDir;

/// Where Debian's resource-agents package installs its OCF agents.
const HEARTBEAT: &str = "/usr/lib/ocf/resource.d/heartbeat";

static SERIAL: Mutex<()> = Mutex::new(());

/// Makes the calling test the only one of this file running until the guard drops.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fails the calling test when resource-agents is not installed: a test whose prerequisite is
/// missing fails, it never passes silently (the CI installs resource-agents).
fn require_resource_agents() {
    for agent in ["Dummy", "IPaddr2"] {
        let path = Path::new(HEARTBEAT).join(agent);
        assert!(
            path.exists(),
            "{} is missing: install resource-agents (apt-get install resource-agents)",
            path.display()
        );
    }
}

/// Fails the calling test unless `ip` (iproute2) is installed and this test runs as root
/// (network namespaces need it).
fn require_ip_as_root() {
    let ip = Command::new("ip").arg("-V").output();
    assert!(
        ip.is_ok_and(|o| o.status.success()),
        "`ip` cannot run: install iproute2 (apt-get install iproute2)"
    );
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test creates a network namespace: run it as root"
    );
}

fn parse(command: &str) -> Agent {
    match Agent::parse(command) {
        Some(Ok(a)) => a,
        other => panic!("{command:?} should parse, got {other:?}"),
    }
}

/// What one action did.
#[derive(Debug)]
struct Ran {
    /// What its exit means.
    outcome: Outcome,
    /// Its stdout and stderr, for failure messages.
    output: String,
}

/// Runs `action` of `agent` in `ctx` as the supervisor would, keeping its output in files in
/// `scratch` (an agent may leave a process holding a pipe open: IPaddr2's send_arp), and
/// returns what its exit means.
fn act(agent: &Agent, action: Action, ctx: &Context<'_>, scratch: &Path) -> Ran {
    let inv: Invocation = agent.invocation(action, ctx);
    let out_path = scratch.join("action.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = Command::new(&inv.program)
        .args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", inv.program.display()));
    let deadline = Instant::now() + ctx.timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let exit = match status.code() {
        Some(code) => Exit::Code(code),
        None => Exit::Signal(status.signal().unwrap_or(0)),
    };
    Ran {
        outcome: agent.outcome(action, exit),
        output: std::fs::read_to_string(&out_path).unwrap_or_default(),
    }
}

/// Runs `steps` in order, checking each outcome, and calls `after` with each step's index.
fn script_of(
    agent: &Agent,
    ctx: &Context<'_>,
    scratch: &Path,
    steps: &[(Action, Outcome)],
    mut after: impl FnMut(usize, Action),
) {
    for (i, (action, expected)) in steps.iter().enumerate() {
        let ran = act(agent, *action, ctx, scratch);
        assert_eq!(
            &ran.outcome,
            expected,
            "step {i}: {} {action:?}; its output:\n{}",
            agent.name(),
            ran.output
        );
        after(i, *action);
    }
}

fn ctx<'a>(ocf_root: &'a Path, lsb_dir: &'a Path, rsc_tmp: &'a Path) -> Context<'a> {
    Context {
        ocf_root,
        lsb_dir,
        rsc_tmp,
        instance: "r1",
        node: "n1",
        timeout: Duration::from_secs(20),
        interval: Duration::from_secs(10),
    }
}

/// The life of a resource: probe, start, monitor, stop, monitor.
const LIFE: [(Action, Outcome); 5] = [
    (Action::Probe, Outcome::NotRunning),
    (Action::Start, Outcome::Ok),
    (Action::Monitor, Outcome::Ok),
    (Action::Stop, Outcome::Ok),
    (Action::Monitor, Outcome::NotRunning),
];

#[test]
fn debians_dummy_starts_monitors_and_stops() {
    let _serial = serial();
    require_resource_agents();
    let tmp = TempDir::new().unwrap();
    let state = tmp.path().join("dummy.state");
    let dummy = parse(&format!("ocf:heartbeat:Dummy state={}", state.display()));
    let c = ctx(
        Path::new(agent::DEFAULT_OCF_ROOT),
        Path::new("/nonexistent"),
        tmp.path(),
    );
    assert!(dummy.installed(&c));
    script_of(&dummy, &c, tmp.path(), &LIFE, |i, _| {
        // The state file exists exactly while it runs (after start, before stop).
        assert_eq!(state.exists(), i == 1 || i == 2, "after step {i}");
    });
    // Stop is idempotent; validate-all and meta-data succeed, and meta-data's timeouts read.
    let again = [
        (Action::Stop, Outcome::Ok),
        (Action::ValidateAll, Outcome::Ok),
        (Action::MetaData, Outcome::Ok),
    ];
    script_of(&dummy, &c, tmp.path(), &again, |_, _| {});
    let meta = act(&dummy, Action::MetaData, &c, tmp.path()).output;
    let timeouts = agent::meta_timeouts(&meta);
    assert_eq!(
        timeouts.get("start"),
        Some(&Duration::from_secs(20)),
        "{meta}"
    );
    assert!(timeouts.contains_key("validate-all"), "{timeouts:?}");
}

/// A network namespace with a veth pair `va0`/`vb0` in it, deleted on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new() -> NetNs {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mosha-ag{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = NetNs { name };
        ns.ip(&["link", "add", "va0", "type", "veth", "peer", "name", "vb0"]);
        for link in ["lo", "va0", "vb0"] {
            ns.ip(&["link", "set", link, "up"]);
        }
        ns
    }

    /// Runs `ip -n NS args` and returns its stdout.
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Returns the IPv4 addresses of `dev` as `ip` prints them (`10.213.7.5/24`).
    fn addrs(&self, dev: &str) -> Vec<String> {
        self.ip(&["-4", "-o", "addr", "show", "dev", dev])
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet")?;
                words.next().map(str::to_string)
            })
            .collect()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `ip args`, failing the test when it fails; returns its stdout.
fn ip(args: &[&str]) -> String {
    let out: Output = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ipaddr2_adds_and_removes_the_address_in_a_network_namespace() {
    let _serial = serial();
    require_resource_agents();
    require_ip_as_root();
    let ns = NetNs::new();
    let tmp = TempDir::new().unwrap();
    // The agent's own network_namespace= runs it inside the namespace (ip netns exec).
    let vip = parse(&format!(
        "ocf:heartbeat:IPaddr2 ip=10.213.7.5 cidr_netmask=24 nic=va0 network_namespace={}",
        ns.name
    ));
    let c = ctx(
        Path::new(agent::DEFAULT_OCF_ROOT),
        Path::new("/nonexistent"),
        tmp.path(),
    );
    assert!(ns.addrs("va0").is_empty());
    script_of(&vip, &c, tmp.path(), &LIFE, |i, action| {
        let addrs = ns.addrs("va0");
        let expected: &[&str] = if i == 1 || i == 2 {
            &["10.213.7.5/24"]
        } else {
            &[]
        };
        assert_eq!(addrs, expected, "after step {i} ({action:?})");
    });
}

/// An LSB init script with a pid file, as Debian's init scripts are written: `status` exits
/// 0 running, 1 dead with a pid file, 3 not running.
fn lsb_script(dir: &Path, pidfile: &Path) -> PathBuf {
    let path = dir.join("mosha-lsb-test");
    let body = format!(
        r#"#!/bin/sh
PIDFILE={pidfile}
running() {{ [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
case "$1" in
start)
    running && exit 0
    sleep 1000 </dev/null >/dev/null 2>&1 &
    echo $! > "$PIDFILE"
    exit 0 ;;
stop)
    if running; then kill "$(cat "$PIDFILE")"; fi
    rm -f "$PIDFILE"
    exit 0 ;;
status)
    running && exit 0
    [ -f "$PIDFILE" ] && exit 1
    exit 3 ;;
*)
    echo "Usage: $0 {{start|stop|status}}" >&2
    exit 3 ;;
esac
"#,
        pidfile = pidfile.display()
    );
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Kills the process whose pid is in a pid file, on drop (a failed test leaves no sleep).
struct PidFileGuard(PathBuf);

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn an_lsb_script_starts_reports_status_and_stops() {
    let _serial = serial();
    let tmp = TempDir::new().unwrap();
    let init_d = tmp.path().join("init.d");
    std::fs::create_dir(&init_d).unwrap();
    let pidfile = tmp.path().join("test.pid");
    let _guard = PidFileGuard(pidfile.clone());
    let lsb = parse("lsb:mosha-lsb-test");
    let c = ctx(Path::new("/nonexistent"), &init_d, tmp.path());
    assert!(!lsb.installed(&c));
    lsb_script(&init_d, &pidfile);
    assert!(lsb.installed(&c));
    script_of(&lsb, &c, tmp.path(), &LIFE, |i, _| {
        assert_eq!(pidfile.exists(), i == 1 || i == 2, "after step {i}");
    });
    // A pid file left by a process that died: status 1, not running.
    std::fs::write(&pidfile, "999999999\n").unwrap();
    assert_eq!(
        act(&lsb, Action::Monitor, &c, tmp.path()).outcome,
        Outcome::NotRunning
    );
    // Init scripts have no validation nor meta-data: /bin/true.
    assert_eq!(
        act(&lsb, Action::ValidateAll, &c, tmp.path()).outcome,
        Outcome::Ok
    );
}

/// Runs `systemctl is-active` through the systemd agent's invocation: `init.scope` (PID 1's
/// scope, always active) runs, a unit that does not exist does not.
///
/// This test SKIPS (prints `SKIP: ...` and passes) when systemd is not running, which is the
/// case in the containers the tests usually run in: systemd's invocations and outcomes are
/// covered by the unit tests in `src/agent/tests.rs`. It is the only test here allowed to skip.
#[test]
fn systemd_is_active_through_systemctl() {
    let _serial = serial();
    if !Path::new("/run/systemd/system").is_dir() {
        println!("SKIP: systemd is not running here (no /run/systemd/system)");
        return;
    }
    let tmp = TempDir::new().unwrap();
    let c = ctx(
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        tmp.path(),
    );
    let init = parse("systemd:init.scope");
    assert!(init.installed(&c), "systemd runs but systemctl is missing");
    assert_eq!(
        act(&init, Action::Probe, &c, tmp.path()).outcome,
        Outcome::Ok
    );
    let missing = parse(&format!(
        "systemd:mosha-no-such-unit-{}",
        std::process::id()
    ));
    assert_eq!(
        act(&missing, Action::Monitor, &c, tmp.path()).outcome,
        Outcome::NotRunning
    );
}

/// Runs `mosha check --dir DIR` with `extra` options; returns (exit code, stdout, stderr).
fn check(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mosha"))
        .arg("check")
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .expect("running mosha check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The exit reason IPaddr2's validate-all gives for `ip=not-an-ip`, run directly.
fn ipaddr2_reason(tmp: &Path) -> String {
    let vip = parse("ocf:heartbeat:IPaddr2 ip=not-an-ip");
    let c = ctx(
        Path::new(agent::DEFAULT_OCF_ROOT),
        Path::new("/nonexistent"),
        tmp,
    );
    let ran = act(&vip, Action::ValidateAll, &c, tmp);
    assert!(
        !matches!(ran.outcome, Outcome::Ok),
        "IPaddr2 accepted ip=not-an-ip: {}",
        ran.output
    );
    agent::last_exit_reason(&ran.output)
        .unwrap_or_else(|| panic!("IPaddr2 gave no exit reason:\n{}", ran.output))
}

#[test]
fn check_runs_validate_all_and_reports_agents_by_line() {
    let _serial = serial();
    require_resource_agents();
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("d.state");
    std::fs::write(
        dir.path().join("cltab"),
        format!(
            "web:vip:start:resource:ocf:heartbeat:IPaddr2 ip=not-an-ip\n\
             web:foo:start:resource:ocf:heartbeat:NoSuchAgent\n\
             web:dummy:start:resource:ocf:heartbeat:Dummy state={}\n\
             web:plain:start:wait:sleep 1\n",
            state.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("hactl"), "web start\n").unwrap();
    let reason = ipaddr2_reason(dir.path());
    let (code, stdout, stderr) = check(dir.path(), &[]);
    let c = dir.path().join("cltab").display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{c}:1: ocf:heartbeat:IPaddr2 validate-all failed: {reason}"),
            format!("{c}:2: ocf:heartbeat:NoSuchAgent is not installed on this node (warning)"),
        ],
        "stdout:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("{c}:3: ocf:heartbeat:Dummy validate-all ok")),
        "stdout:\n{stdout}"
    );
    assert!(!stdout.contains(&format!("{c}: ok")), "stdout:\n{stdout}");
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!state.exists(), "validate-all must not start Dummy");
}

#[test]
fn check_warns_only_for_a_missing_agent_and_checks_lsb_in_lsb_dir() {
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let init_d = dir.path().join("init.d");
    std::fs::create_dir(&init_d).unwrap();
    lsb_script(&init_d, &dir.path().join("unused.pid"));
    std::fs::write(
        dir.path().join("cltab"),
        "web:a:start:resource:ocf:acme:Missing\n\
         web:b:start:resource:lsb:mosha-lsb-test\n\
         web:c:start:resource:lsb:nothere\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("hactl"), "web start\n").unwrap();
    let ocf_root = dir.path().join("ocf");
    let (code, stdout, stderr) = check(
        dir.path(),
        &[
            "--ocf-root",
            ocf_root.to_str().unwrap(),
            "--lsb-dir",
            init_d.to_str().unwrap(),
        ],
    );
    let c = dir.path().join("cltab").display().to_string();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("{c}:1: ocf:acme:Missing is not installed on this node (warning)"),
            format!("{c}:3: lsb:nothere is not installed on this node (warning)"),
        ]
    );
    assert!(
        stdout.contains(&format!("{c}:2: lsb:mosha-lsb-test: installed")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{c}: ok (1 groups, 3 entries)")),
        "{stdout}"
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
}

/// A fake OCF agent under `ocf_root/resource.d/acme/Fake`: its meta-data declares
/// `validate-all` with a 1 s timeout; its validate-all does what `OCF_RESKEY_mode` says:
/// `hang` (starts a child that writes its pid to `OCF_RESKEY_pids`, then sleeps), `bare`
/// (exit 2 without a reason), `none` (exit 3, unimplemented), `where` (writes its cwd and
/// stdin to `OCF_RESKEY_pids`, exit 0).
fn fake_agent(ocf_root: &Path) {
    let dir = ocf_root.join("resource.d/acme");
    std::fs::create_dir_all(&dir).unwrap();
    let body = r#"#!/bin/sh
case "$1" in
meta-data)
    cat <<'XML'
<?xml version="1.0"?>
<resource-agent name="Fake"><actions>
<action name="validate-all" timeout="1s"/>
</actions></resource-agent>
XML
    exit 0 ;;
validate-all)
    case "$OCF_RESKEY_mode" in
    hang) sleep 1000 & echo $! > "$OCF_RESKEY_pids"; sleep 1000; exit 0 ;;
    bare) exit 2 ;;
    none) exit 3 ;;
    where) { pwd; readlink /proc/self/fd/0; } > "$OCF_RESKEY_pids"; exit 0 ;;
    esac
    exit 1 ;;
esac
exit 3
"#;
    let path = dir.join("Fake");
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn check_kills_validate_all_at_the_meta_data_timeout_and_names_bare_exits() {
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let ocf_root = dir.path().join("ocf");
    fake_agent(&ocf_root);
    let pids = dir.path().join("pids");
    let place = dir.path().join("place");
    std::fs::write(
        dir.path().join("cltab"),
        format!(
            "web:a:start:resource:ocf:acme:Fake mode=hang pids={}\n\
             web:b:start:resource:ocf:acme:Fake mode=bare\n\
             web:c:start:resource:ocf:acme:Fake mode=none\n\
             web:d:start:resource:ocf:acme:Fake mode=where pids={}\n",
            pids.display(),
            place.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let (code, stdout, stderr) = check(dir.path(), &["--ocf-root", ocf_root.to_str().unwrap()]);
    let took = started.elapsed();
    let c = dir.path().join("cltab").display().to_string();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("{c}:1: ocf:acme:Fake validate-all failed: timed out after 1 s and was killed"),
            format!("{c}:2: ocf:acme:Fake validate-all failed: invalid arguments (2)"),
            format!("{c}:3: ocf:acme:Fake does not implement validate-all (warning)"),
        ],
        "stdout:\n{stdout}"
    );
    assert!(stdout.contains(&format!("{c}:4: ocf:acme:Fake validate-all ok")));
    assert_eq!(code, Some(1));
    assert!(took < Duration::from_secs(10), "check took {took:?}");
    // The whole process group was killed, the agent's child too.
    let child: i32 = std::fs::read_to_string(&pids)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
    });
    assert!(gone, "the agent's child {child} survived the timeout");
    // The action ran in / with stdin from /dev/null.
    assert_eq!(std::fs::read_to_string(&place).unwrap(), "/\n/dev/null\n");
}
