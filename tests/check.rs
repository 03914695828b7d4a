//! Integration tests of `mosha check --dir DIR`: problems on stderr as `PATH:LINE: message`,
//! a summary on stdout, exit 0 when valid and 1 when not.

use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

/// A temporary node directory holding the given files (None: the file is absent).
fn dir_with(cltab: Option<&str>, hactl: Option<&str>) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("mosha-check-")
        .tempdir()
        .expect("creating a temporary directory");
    if let Some(text) = cltab {
        std::fs::write(dir.path().join("cltab"), text).unwrap();
    }
    if let Some(text) = hactl {
        std::fs::write(dir.path().join("hactl"), text).unwrap();
    }
    dir
}

fn check(dir: &Path) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mosha"))
        .arg("check")
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("running mosha check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn valid_dir_exits_0_and_says_ok() {
    let dir = dir_with(
        Some("# web\nweb:apache:1,start:respawn:/usr/sbin/apache2 -DFOREGROUND\nweb:chk:12:test:/bin/true\n"),
        Some("web start\n"),
    );
    let (out, stdout, stderr) = check(dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("ok"), "stdout:\n{stdout}");
    let cltab = dir.path().join("cltab");
    assert!(
        stdout.contains(&format!("{}: ok", cltab.display())),
        "stdout:\n{stdout}"
    );
    assert!(stderr.is_empty(), "stderr:\n{stderr}");
}

#[test]
fn errors_in_both_files_exit_1_with_path_line_message() {
    let dir = dir_with(
        Some(
            "web:a:start:respawn:sleep 1000\n\
             web:b:start:bogus:echo b\n\
             \n\
             web:a:start:once:echo dup\n",
        ),
        Some("web start\ndb\n"),
    );
    let (out, stdout, stderr) = check(dir.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let c = dir.path().join("cltab").display().to_string();
    let h = dir.path().join("hactl").display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{c}:2: unknown mode 'bogus' (expected wait, once, respawn, test, off, monitor/INTERVAL or resource)"),
            format!("{c}:4: duplicate tag 'a' (first defined at line 1)"),
            format!("{h}:2: missing level for group 'db'"),
        ],
        "stderr:\n{stderr}"
    );
    // Every problem line is PATH:LINE: message.
    for l in &lines {
        let rest = l
            .strip_prefix(c.as_str())
            .or_else(|| l.strip_prefix(h.as_str()))
            .unwrap_or_else(|| panic!("{l}: does not start with a file's path"));
        let rest = rest.strip_prefix(':').expect("':' after the path");
        let (line, msg) = rest.split_once(": ").expect("': ' after the line");
        assert!(line.parse::<usize>().is_ok(), "{l}");
        assert!(!msg.is_empty(), "{l}");
    }
}

#[test]
fn missing_hactl_is_valid() {
    let dir = dir_with(Some("web:a:start:respawn:sleep 1000\n"), None);
    let (out, stdout, stderr) = check(dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("ok"), "stdout:\n{stdout}");
    assert!(stdout.contains("not found"), "stdout:\n{stdout}");
}

#[test]
fn missing_cltab_exits_1() {
    let dir = dir_with(None, Some("web start\n"));
    let (out, stdout, stderr) = check(dir.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let c = dir.path().join("cltab").display().to_string();
    assert!(
        stderr.lines().any(|l| l.starts_with(&c)),
        "stderr does not name {c}:\n{stderr}"
    );
}

#[test]
fn warnings_alone_do_not_fail() {
    let dir = dir_with(
        Some(":::socket:/var/run/clinit\nweb:a:start:once:echo hi\n"),
        Some("web start\nmail stop\n"),
    );
    let (out, stdout, stderr) = check(dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let c = dir.path().join("cltab").display().to_string();
    let h = dir.path().join("hactl").display().to_string();
    assert!(
        stderr.contains(&format!("{c}:1: ")) && stderr.contains("warning"),
        "stderr:\n{stderr}"
    );
    assert!(stderr.contains(&format!("{h}:2: ")), "stderr:\n{stderr}");
}

#[test]
fn the_key_file_is_checked_and_its_fingerprints_shown() {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir_with(Some("web:a:start:once:true\n"), Some("web start\n"));
    let (out, stdout, _) = check(dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("authkey: not found"), "stdout:\n{stdout}");
    let key = dir.path().join("authkey");
    let make = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{0} keygen > {1} && {0} keygen >> {1}",
            env!("CARGO_BIN_EXE_mosha"),
            key.display()
        ))
        .status()
        .unwrap();
    assert!(make.success());
    let (out, stdout, stderr) = check(dir.path());
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("authkey: ok (2 keys: ") && stdout.contains("also open"),
        "stdout:\n{stdout}"
    );
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.lines().all(|k| !stdout.contains(k)), "a key is shown");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (out, _, stderr) = check(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("mode 0640"), "stderr:\n{stderr}");
}
