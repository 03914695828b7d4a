//! `mosha move GROUP [NODE] [--wait]`: a planned relocation, like `clusvcadm -r`. The local
//! daemon checks it against the cluster and publishes the request; the node running the group
//! stops it and hands it to NODE (or to the best-ranked node that can take it), which starts
//! it. Nothing stays behind once it is done. `--wait` follows it in `DIR/hastat.json` until
//! the group runs on the target, or says where it runs instead.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config;
use crate::hastat::GroupStat;

/// How long `--wait` follows a move.
const WAIT: Duration = Duration::from_secs(60);

/// How long a move may show no trace in hastat (no request, no hand-off, not on the target)
/// before `--wait` takes it as abandoned: the daemon publishes the request at its next step.
const NO_TRACE: Duration = Duration::from_secs(3);

/// `mosha move GROUP [NODE]`.
pub(super) fn move_group(dir: &Path, group: &str, node: Option<&str>, wait: bool) -> ExitCode {
    let started = Instant::now();
    if let Err(e) = config::check_name("group", group) {
        eprintln!("mosha move: {e}");
        return ExitCode::from(2);
    }
    if let Some(Err(e)) = node.map(|n| config::check_name("node name", n)) {
        eprintln!("mosha move: {e}");
        return ExitCode::from(2);
    }
    let done = match super::fence::drop_command(dir, &format!("move-{group}"), node.unwrap_or("")) {
        Ok(done) => done,
        Err(e) => {
            eprintln!("mosha move: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{done}");
    if !wait {
        return ExitCode::SUCCESS;
    }
    // "moving GROUP from FROM to TO"
    let words: Vec<&str> = done.split(' ').collect();
    let (from, to) = match words.as_slice() {
        ["moving", _, "from", f, "to", t] => (f.to_string(), t.to_string()),
        _ => {
            eprintln!("mosha move: unexpected answer from the daemon: {done}");
            return ExitCode::FAILURE;
        }
    };
    let path = dir.join("hastat.json");
    let mut last_trace = Instant::now();
    let mut cooled = false;
    while started.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(10));
        let Some(g) = read_group(&path, group) else {
            continue;
        };
        if runs_on(&g, &to) {
            println!(
                "{group} moved from {from} to {to} in {:.2} s",
                started.elapsed().as_secs_f64()
            );
            return ExitCode::SUCCESS;
        }
        cooled |= g.cooldown_on.contains(&to);
        let settled_elsewhere = (g.running_on.len() == 1 && g.moving.is_none())
            .then(|| g.running_on[0].clone())
            .filter(|n| runs_on(&g, n));
        if g.moving.is_some() || !g.nodes.is_empty() && settled_elsewhere.is_none() {
            last_trace = Instant::now();
        }
        match settled_elsewhere {
            Some(n) if cooled => {
                eprintln!(
                    "mosha move: {group} did not start on {to}: its test failed there (cooldown); \
                     it runs on {n}"
                );
                return ExitCode::FAILURE;
            }
            Some(n) if n != from || last_trace.elapsed() >= NO_TRACE => {
                eprintln!(
                    "mosha move: {group} was not moved to {to}: it runs on {n} (the daemons' logs \
                     say why)"
                );
                return ExitCode::FAILURE;
            }
            _ => {}
        }
    }
    eprintln!(
        "mosha move: {group} is not running on {to} after {} s (see `mosha status`)",
        WAIT.as_secs()
    );
    ExitCode::FAILURE
}

/// Tells whether `g` runs on `node`, settled at its wanted level.
fn runs_on(g: &GroupStat, node: &str) -> bool {
    g.nodes.get(node).is_some_and(|c| {
        c.level == g.want && c.target == g.want && (c.state == "DONE" || c.state == "PASSED")
    }) && g.nodes.len() == 1
}

/// Reads `group`'s entry of the hastat document at `path` (`None`: unreadable for now).
fn read_group(path: &Path, group: &str) -> Option<GroupStat> {
    super::admin::read(path)?.groups.remove(group)
}
