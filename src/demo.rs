//! `mosha demo`: a three-node cluster on loopback in a temporary directory, running
//! `cltab-examples/cluster`. It shows where each group was placed, kills the node that runs
//! `web` (the daemon and everything it started, as a power cut would), shows the failover live
//! with its timing, brings the node back, and stops everything. Ctrl-C at any point cleans up.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::hastat::Hastat;

const CLTAB: &str = include_str!("../cltab-examples/cluster/cltab");
const HACTL: &str = include_str!("../cltab-examples/cluster/hactl");
/// How many nodes the demo runs (its `--help` says so in words).
pub const NODES: usize = 3;

/// One demo node: its directory, address and daemon process.
struct Node {
    name: String,
    dir: PathBuf,
    addr: String,
    child: Option<Child>,
}

/// Runs the demo; returns once everything it started is gone and its directory removed.
///
/// # Errors
/// Fails when a daemon cannot be started or the cluster does not do what the demo expects in
/// time (the daemons' logs are printed then).
pub fn run() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let top = std::env::temp_dir().join(format!("mosha-demo-{}", std::process::id()));
    std::fs::create_dir_all(top.join("shared"))?;
    let key = crate::daemon::keys::generate().map_err(anyhow::Error::msg)?;
    let mut nodes = Vec::new();
    for i in 1..=NODES {
        let dir = top.join(format!("n{i}"));
        std::fs::create_dir_all(&dir)?;
        crate::daemon::keys::install(&dir.join(crate::daemon::keys::KEY_FILE), &key)?;
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        nodes.push(Node {
            name: format!("n{i}"),
            dir,
            addr: format!("127.0.0.1:{port}"),
            child: None,
        });
    }
    let result = rt.block_on(async {
        let outcome = tokio::select! {
            r = script(&top, &mut nodes) => r,
            _ = tokio::signal::ctrl_c() => { println!("\ninterrupted: cleaning up"); Ok(()) }
        };
        for n in &mut nodes {
            stop(n).await;
        }
        outcome
    });
    if result.is_err() {
        for n in &nodes {
            if let Ok(log) = std::fs::read_to_string(n.dir.join("mosha.log")) {
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("--- {} log (last lines) ---", n.name);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&top);
    result
}

fn spawn(n: &mut Node, seeds: &[String]) -> anyhow::Result<()> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(n.dir.join("mosha.log"))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "run", "--node", &n.name, "--grace", "2", "--listen", &n.addr,
    ])
    .arg("--dir")
    .arg(&n.dir)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::from(log))
    .kill_on_drop(true);
    for s in seeds.iter().filter(|s| **s != n.addr) {
        cmd.args(["--seed", s]);
    }
    n.child = Some(cmd.spawn().context("starting mosha run")?);
    Ok(())
}

/// Kills node `n` the hard way: SIGKILL to its daemon, then to every process group it had
/// recorded, as if the machine lost power.
fn power_off(n: &mut Node) {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::Pid;
    if let Some(pid) = n.child.as_ref().and_then(Child::id) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let record = std::fs::read_to_string(n.dir.join("mosha.pgids")).unwrap_or_default();
    for pgid in record
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<i32>().ok())
    {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    n.child = None;
}

async fn stop(n: &mut Node) {
    let Some(mut child) = n.child.take() else {
        return;
    };
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

fn hastat(dir: &Path) -> Option<Hastat> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("hastat.json")).ok()?).ok()
}

async fn wait_for(
    dir: &Path,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&Hastat) -> bool,
) -> anyhow::Result<Hastat> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(h) = hastat(dir).filter(|h| ok(h)) {
            return Ok(h);
        }
        if Instant::now() > end {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn owner(h: &Hastat, group: &str) -> Option<String> {
    let g = h.groups.get(group)?;
    (g.running_on.len() == 1).then(|| g.running_on[0].clone())
}

async fn script(top: &Path, nodes: &mut [Node]) -> anyhow::Result<()> {
    std::fs::write(nodes[0].dir.join("cltab"), CLTAB)?;
    std::fs::write(nodes[0].dir.join("hactl"), HACTL)?;
    // Fencing: Debian's fence_dummy stands in for a power switch (a status file per node).
    let dummy = crate::fence::agents::resolve("fence_dummy").is_some();
    let fencetab = if dummy {
        let mut t = String::from(
            "# node  agent  options (fence_dummy: a status file stands in for the power switch)\n",
        );
        for n in nodes.iter() {
            let status = top.join("shared").join(format!("{}.power", n.name));
            std::fs::write(&status, "on")?;
            t.push_str(&format!(
                "{} fence_dummy status_file={} action=off timeout=10\n",
                n.name,
                status.display()
            ));
        }
        t
    } else {
        "* none\n".to_string()
    };
    std::fs::write(nodes[0].dir.join("fencetab"), fencetab)?;
    let seeds: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    println!(
        "mosha demo: three nodes on loopback, cltab-examples/cluster, in {}",
        top.display()
    );
    println!("cltab, hactl and fencetab are written on n1 only; gossip spreads them.");
    if dummy {
        println!("fencing: fence_dummy (a status file per node plays the power switch)\n");
    } else {
        println!("fencing: none (fence_dummy is not installed: apt-get install fence-agents)\n");
    }
    let t = Instant::now();
    for n in nodes.iter_mut() {
        spawn(n, &seeds)?;
    }
    let watch = nodes[1].dir.clone();
    let h = wait_for(
        &watch,
        "web and db to be placed",
        Duration::from_secs(30),
        |h| owner(h, "web").is_some() && owner(h, "db").is_some(),
    )
    .await?;
    println!(
        "cold start: both groups placed, each on one node, in {:.2} s\n",
        t.elapsed().as_secs_f64()
    );
    print!("{}", h.render());

    let victim = owner(&h, "web").context("no owner")?;
    let idx = nodes
        .iter()
        .position(|n| n.name == victim)
        .context("unknown owner")?;
    let watch = nodes[(idx + 1) % nodes.len()].dir.clone();
    println!("\npower-off of {victim}, which runs web: SIGKILL to its daemon and every process it started");
    let t = Instant::now();
    power_off(&mut nodes[idx]);
    let h = wait_for(
        &watch,
        "web to run elsewhere",
        Duration::from_secs(30),
        |h| owner(h, "web").is_some_and(|o| o != victim),
    )
    .await?;
    println!(
        "failover: web runs on {} {:.2} s after the power-off (detection, fencing, rank, plan window, test, start)\n",
        owner(&h, "web").unwrap_or_default(),
        t.elapsed().as_secs_f64()
    );
    print!("{}", h.render());

    if dummy {
        let power = std::fs::read_to_string(top.join("shared").join(format!("{victim}.power")))
            .unwrap_or_default();
        println!("{victim}'s power switch (fence_dummy status file) now reads: {power}");
        std::fs::write(top.join("shared").join(format!("{victim}.power")), "on")?;
    }
    println!("\n{victim} is powered on and comes back: it rejoins with a new generation and disturbs nothing");
    let web_before = owner(&h, "web");
    spawn(&mut nodes[idx], &seeds)?;
    let h = wait_for(&watch, "the node to rejoin", Duration::from_secs(30), |h| {
        h.members.get(&victim).is_some_and(|m| m.alive)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let h = hastat(&watch).unwrap_or(h);
    print!("{}", h.render());
    if owner(&h, "web") != web_before {
        bail!("web moved when {victim} came back");
    }
    let collisions = std::fs::read_to_string(top.join("shared/collisions")).unwrap_or_default();
    println!(
        "\nlock collisions (two copies of one service at once): {}",
        collisions.lines().count()
    );
    println!("stopping every node with SIGTERM");
    Ok(())
}
