//! Every example under `cltab-examples/` is valid (`mosha check`) and really runs: each group
//! its hactl names reaches its level, settled, and SIGTERM stops it all cleanly.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mosha() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mosha"))
}

fn run_example(name: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("cltab-examples")
        .join(name);
    let out = mosha()
        .arg("check")
        .arg("--dir")
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The node directory is nested so that examples using `$MOSHA_DIR/../shared` stay inside
    // the temporary directory.
    let top = tempfile::tempdir().unwrap();
    let node = top.path().join("node");
    std::fs::create_dir(&node).unwrap();
    struct Dir(std::path::PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    let dir = Dir(node);
    for f in ["cltab", "hactl"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let key = mosha().arg("keygen").output().unwrap();
    assert!(key.status.success(), "{key:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.path().join("authkey");
        std::fs::write(&p, &key.stdout).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let hactl = std::fs::read_to_string(src.join("hactl")).unwrap();
    let wanted: Vec<(String, String)> = hactl
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap().to_string(), w.next().unwrap().to_string())
        })
        .collect();
    let log = std::fs::File::create(dir.path().join("mosha.log")).unwrap();
    let mut child = mosha()
        .args([
            "run",
            "--node",
            &format!("example-{name}-{}", std::process::id()),
        ])
        .arg("--dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let clstat = dir.path().join("clstat.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    loop {
        if let Ok(text) = std::fs::read_to_string(&clstat) {
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            let settled = wanted.iter().all(|(g, level)| {
                let grp = &doc["groups"][g];
                grp["level"] == level.as_str()
                    && (grp["state"] == "DONE" || grp["state"] == "PASSED")
            });
            if settled {
                break;
            }
            last = text;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.path().join("mosha.log")).unwrap_or_default();
            panic!("{name}: groups did not settle at {wanted:?}\nclstat: {last}\nlog:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{name}: mosha exited with {status}");
    assert!(!clstat.exists(), "{name}: clstat.json is removed at exit");
}

#[test]
fn basic_example_runs() {
    run_example("basic");
}

#[test]
fn lifecycle_example_runs() {
    run_example("lifecycle");
}

#[test]
fn cluster_example_runs() {
    run_example("cluster");
}

/// Every directory under `cltab-examples/` is run by a test: the ones above here, and
/// `ha-service` (a virtual IP in 198.18.0.0/24 and a disk labelled mosha-data, which only a
/// cluster in network and mount namespaces has) by `tests/resources_netns.rs`. A new example
/// fails this test until it is run somewhere.
#[test]
fn every_example_is_run_by_a_test() {
    let here = ["basic", "lifecycle", "cluster"];
    let elsewhere = [("ha-service", "tests/resources_netns.rs")];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(root.join("cltab-examples"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in &names {
        let runs = here.contains(&n.as_str())
            || elsewhere.iter().any(|(e, file)| {
                *e == n
                    && std::fs::read_to_string(root.join(file))
                        .is_ok_and(|t| t.contains(&format!("cltab-examples/{n}")))
            });
        assert!(runs, "cltab-examples/{n} is run by no test");
    }
}
