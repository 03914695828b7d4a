//! `mosha cleanup GROUP [NODE] [--wait]`: clears a group's failures, like `pcs resource
//! cleanup`: the cooldowns that keep nodes where it failed from being candidates for it, and
//! its restart counts, on NODE or on every node. The group is then placed as usual.
//! `--wait` follows `DIR/hastat.json` until the group runs.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config;

/// How long `--wait` follows the group.
const WAIT: Duration = Duration::from_secs(60);

/// `mosha cleanup GROUP [NODE]`.
pub(super) fn cleanup(dir: &Path, group: &str, node: Option<&str>, wait: bool) -> ExitCode {
    let started = Instant::now();
    if let Err(e) = config::check_name("group", group) {
        eprintln!("mosha cleanup: {e}");
        return ExitCode::from(2);
    }
    if let Some(Err(e)) = node.map(|n| config::check_name("node name", n)) {
        eprintln!("mosha cleanup: {e}");
        return ExitCode::from(2);
    }
    let command = format!("cleanup-{group}");
    match super::fence::drop_command(dir, &command, node.unwrap_or("")) {
        Ok(done) => println!("{done}"),
        Err(e) => {
            eprintln!("mosha cleanup: {e}");
            return ExitCode::FAILURE;
        }
    }
    if !wait {
        return ExitCode::SUCCESS;
    }
    let path = dir.join("hastat.json");
    let mut why = String::new();
    while started.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(20));
        let Some(g) = super::admin::read(&path).and_then(|mut h| h.groups.remove(group)) else {
            continue;
        };
        if let [n] = g.running_on.as_slice() {
            if g.nodes.len() == 1 {
                println!(
                    "{group} runs on {n} ({:.2} s after the cleanup)",
                    started.elapsed().as_secs_f64()
                );
                return ExitCode::SUCCESS;
            }
        }
        why = g.why.unwrap_or_default();
    }
    eprintln!(
        "mosha cleanup: {group} is not running after {} s{}",
        WAIT.as_secs(),
        if why.is_empty() {
            String::new()
        } else {
            format!(": {why}")
        }
    );
    ExitCode::FAILURE
}
