//! Integration tests of the fence runner with real agents, through `fence_blocking`: Debian's
//! `/usr/sbin/fence_dummy` (failing when fence-agents is not installed) and
//! small shell-script agents written to a temporary directory.
//!
//! The tests run one at a time (see [`serial`]): a script written by one test could otherwise be
//! held open by a child another test's thread is forking, and fail to run with "Text file busy".

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mosha::config::fencetab::Method;
use mosha::fence::{fence_blocking, FenceResult};
use tempfile::TempDir;

/// Where Debian's fence-agents package installs the dummy agent.
const FENCE_DUMMY: &str = "/usr/sbin/fence_dummy";

static SERIAL: Mutex<()> = Mutex::new(());

/// Makes the calling test the only one of this file running until the guard drops.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fails the calling test when fence_dummy is not installed: a test whose prerequisite is
/// missing fails, it never passes silently (the CI installs fence-agents).
fn require_fence_dummy() {
    assert!(
        Path::new(FENCE_DUMMY).exists(),
        "{FENCE_DUMMY} is missing (apt-get install fence-agents)"
    );
}

fn method(agent: &str, action: &str, timeout: Duration, options: &[(&str, &str)]) -> Method {
    Method {
        agent: agent.to_string(),
        action: action.to_string(),
        timeout,
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        line: 3,
    }
}

/// Writes an executable shell script `name` holding `body` (after `#!/bin/sh`) into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Returns the state letter of process `pid` (`R`, `S`, `Z`...) and its process group.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Returns the live (not zombie) processes of process group `pgid`.
fn live_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| matches!(proc_stat(pid), Some((s, g)) if g == pgid && s != 'Z' && s != 'X'))
        .collect()
}

fn assert_detail(res: &FenceResult, want: &str) {
    assert!(res.detail.contains(want), "want {want:?} in {res:?}");
}

#[test]
fn dummy_off_is_confirmed_by_status() {
    require_fence_dummy();
    let _guard = serial();
    let dir = TempDir::new().unwrap();
    let status = dir.path().join("n2.status");
    std::fs::write(&status, "on").unwrap();
    let m = method(
        "fence_dummy",
        "off",
        Duration::from_secs(30),
        &[("type", "file"), ("status_file", status.to_str().unwrap())],
    );
    let res = fence_blocking("n2", &[m]);
    assert!(res.ok, "{res:?}");
    assert_eq!(res.victim, "n2");
    assert_eq!(
        res.detail,
        "fence_dummy (fencetab line 3): off confirmed by status"
    );
    assert_eq!(std::fs::read_to_string(&status).unwrap(), "off");
}

#[test]
fn dummy_reboot_succeeds_without_confirmation() {
    require_fence_dummy();
    let _guard = serial();
    let dir = TempDir::new().unwrap();
    let status = dir.path().join("n2.status");
    std::fs::write(&status, "on").unwrap();
    let m = method(
        FENCE_DUMMY,
        "reboot",
        Duration::from_secs(30),
        &[("status_file", status.to_str().unwrap())],
    );
    let res = fence_blocking("n2", &[m]);
    assert!(res.ok, "{res:?}");
    assert_eq!(
        res.detail,
        "/usr/sbin/fence_dummy (fencetab line 3): reboot done"
    );
    assert_eq!(
        std::fs::read_to_string(&status).unwrap(),
        "on",
        "off, then on"
    );
}

#[test]
fn dummy_of_type_fail_fails_with_a_reason() {
    require_fence_dummy();
    let _guard = serial();
    let m = method(
        "fence_dummy",
        "off",
        Duration::from_secs(30),
        &[("type", "fail"), ("power_timeout", "1")],
    );
    let res = fence_blocking("n2", &[m]);
    assert!(!res.ok, "{res:?}");
    assert_detail(
        &res,
        "fence_dummy (fencetab line 3): off failed (exit status 1)",
    );
}

#[test]
fn failing_level_falls_back_to_the_next_one() {
    require_fence_dummy();
    let _guard = serial();
    let dir = TempDir::new().unwrap();
    let status = dir.path().join("n2.status");
    std::fs::write(&status, "on").unwrap();
    let mut fail = method(
        "fence_dummy",
        "off",
        Duration::from_secs(30),
        &[("type", "fail"), ("power_timeout", "1")],
    );
    fail.line = 1;
    let good = method(
        "fence_dummy",
        "off",
        Duration::from_secs(30),
        &[("status_file", status.to_str().unwrap())],
    );
    let res = fence_blocking("n2", &[fail, good]);
    assert!(res.ok, "{res:?}");
    assert_detail(
        &res,
        "fence_dummy (fencetab line 3): off confirmed by status",
    );
    assert_detail(
        &res,
        "fence_dummy (fencetab line 1): off failed (exit status 1)",
    );
    assert_eq!(std::fs::read_to_string(&status).unwrap(), "off");
}

#[test]
fn agent_past_its_timeout_is_killed_with_its_process_group() {
    let _guard = serial();
    let dir = TempDir::new().unwrap();
    let pidfile = dir.path().join("pid");
    let agent = script(
        dir.path(),
        "fence_sleepy",
        &format!("echo $$ > {}\nsleep 30\n", pidfile.display()),
    );
    let m = method(agent.to_str().unwrap(), "off", Duration::from_secs(1), &[]);
    let t0 = Instant::now();
    let res = fence_blocking("n2", &[m]);
    let took = t0.elapsed();
    assert!(!res.ok, "{res:?}");
    assert_detail(&res, "off timed out after 1s, killed");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        proc_stat(pid),
        None,
        "the agent {pid} was killed and reaped"
    );
    // Its `sleep` child was in the same process group; init reaps it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_members(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(live_members(pid), Vec::<u32>::new(), "process group {pid}");
}

#[test]
fn agent_reads_action_target_and_options_on_stdin() {
    let _guard = serial();
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("stdin");
    let last = dir.path().join("last");
    // Keeps the stdin of the `off` run; answers `status` with 2 (off).
    let body = format!(
        "cat > {last}\nif grep -qx action=status {last}; then exit 2; fi\nmv {last} {out}\n",
        last = last.display(),
        out = out.display()
    );
    let agent = script(dir.path(), "fence_echo", &body);
    let m = method(
        agent.to_str().unwrap(),
        "off",
        Duration::from_secs(10),
        &[
            ("ipaddr", "10.0.0.9"),
            ("login", "admin"),
            ("passwd", "s3cret pass"),
        ],
    );
    let res = fence_blocking("n7", &[m]);
    assert!(res.ok, "{res:?}");
    assert_detail(&res, "off confirmed by status");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "action=off\nnodename=n7\nplug=n7\nipaddr=10.0.0.9\nlogin=admin\npasswd=s3cret pass\n"
    );
}

#[test]
fn missing_agent_fails_with_a_reason() {
    let _guard = serial();
    let m = method(
        "fence_no_such_agent_anywhere",
        "reboot",
        Duration::from_secs(5),
        &[],
    );
    let res = fence_blocking("n2", &[m]);
    assert!(!res.ok, "{res:?}");
    assert_detail(
        &res,
        "cannot run the agent: fence_no_such_agent_anywhere not found in PATH, /usr/sbin or /sbin",
    );
}
