//! `mosha demo`: a guided run of one node on `cltab-examples/basic` in a temporary directory.
//! It starts the daemon, shows the group come up, kills the service to show the respawn, takes
//! the group down through hactl, and stops the daemon; Ctrl-C at any point cleans up.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

const CLTAB: &str = include_str!("../cltab-examples/basic/cltab");
const HACTL: &str = include_str!("../cltab-examples/basic/hactl");

/// Runs the demo; returns once everything it started is gone and its directory removed.
///
/// # Errors
/// Fails when the daemon cannot be started or does not do what the demo expects in time.
pub fn run() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("mosha-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = rt.block_on(async {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["run", "--node", "demo", "--grace", "2", "--log", "info"])
            .arg("--dir")
            .arg(&dir)
            .stderr(Stdio::from(std::fs::File::create(dir.join("mosha.log"))?))
            .kill_on_drop(true)
            .spawn()
            .context("starting mosha run")?;
        let outcome = tokio::select! {
            r = script(&dir) => r,
            _ = tokio::signal::ctrl_c() => { println!("\ninterrupted: cleaning up"); Ok(()) }
        };
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
        match status {
            Ok(Ok(s)) => println!("mosha exited: {s}"),
            _ => {
                let _ = child.kill().await;
                println!("mosha did not exit in time; killed");
            }
        }
        outcome
    });
    if result.is_err() {
        if let Ok(log) = std::fs::read_to_string(dir.join("mosha.log")) {
            eprintln!("--- daemon log ---\n{log}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn script(dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("cltab"), CLTAB)?;
    std::fs::write(dir.join("hactl"), HACTL)?;
    println!(
        "mosha demo: one node supervising cltab-examples/basic in {}",
        dir.display()
    );
    println!("(daemon log: {}/mosha.log)\n", dir.display());

    let t = Instant::now();
    let doc = wait_for(dir, "web to reach start", |d| settled(d, "web", "start")).await?;
    println!("web reached level start in {:.0} ms:", ms(t.elapsed()));
    print!("{}", render(&doc));

    let pid = doc["groups"]["web"]["entries"]["server"]["pid"]
        .as_u64()
        .context("no server pid")?;
    println!("\nkilling the service (pid {pid}) with SIGKILL: respawn brings it back");
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let doc = wait_for(dir, "a new server pid", |d| {
        let p = &d["groups"]["web"]["entries"]["server"]["pid"];
        p.as_u64().is_some_and(|p| p != pid)
    })
    .await?;
    println!("respawned in {:.1} ms:", ms(t.elapsed()));
    print!("{}", render(&doc));

    println!(
        "\nwriting `web stop` to hactl: the service stops, then the stop level's clean-up runs"
    );
    let t = Instant::now();
    crate::files::write_atomic(&dir.join("hactl"), b"web stop\n")?;
    let doc = wait_for(dir, "web to reach stop", |d| settled(d, "web", "stop")).await?;
    println!("web reached level stop in {:.0} ms:", ms(t.elapsed()));
    print!("{}", render(&doc));
    println!("\nstopping mosha with SIGTERM");
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn settled(doc: &Value, group: &str, level: &str) -> bool {
    let g = &doc["groups"][group];
    g["level"] == level && matches!(g["state"].as_str(), Some("DONE" | "PASSED"))
}

async fn wait_for(dir: &Path, what: &str, ok: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let path: PathBuf = dir.join("clstat.json");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(doc) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            if ok(&doc) {
                return Ok(doc);
            }
        }
        if Instant::now() > end {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Renders a clstat document as a table: one line per group, one indented line per entry.
pub fn render(doc: &Value) -> String {
    let mut out = String::new();
    let empty = serde_json::Map::new();
    let groups = doc["groups"].as_object().unwrap_or(&empty);
    for (name, g) in groups {
        out.push_str(&format!(
            "  {name:<10} level {:<8} {}\n",
            g["level"].as_str().unwrap_or("?"),
            g["state"].as_str().unwrap_or("?")
        ));
        for (tag, e) in g["entries"].as_object().unwrap_or(&empty) {
            let pid = e["pid"]
                .as_u64()
                .map(|p| p.to_string())
                .unwrap_or("-".into());
            out.push_str(&format!(
                "    {tag:<10} {:<8} {:<8} pid {pid:<8} restarts {}\n",
                e["mode"].as_str().unwrap_or("?"),
                e["state"].as_str().unwrap_or("?"),
                e["restarts"]
            ));
        }
    }
    out
}
