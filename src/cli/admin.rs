//! The standing orders: `mosha standby NODE [--wait]`, `mosha unstandby NODE`, `mosha drain
//! NODE --to OTHER [--wait]`, `mosha freeze GROUP`, `mosha unfreeze GROUP`, `mosha
//! maintenance on|off`. Each hands the local daemon a command (see
//! [`crate::daemon::orders`]), which writes it into the replicated admin file; `--wait`
//! follows a standby in `DIR/hastat.json` until the node runs no group and every group it ran
//! runs elsewhere.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config;
use crate::hastat::Hastat;

/// How long `--wait` follows a standby.
const WAIT: Duration = Duration::from_secs(120);

/// The command-line form of an order.
#[derive(Debug, Clone)]
pub(super) enum Verb<'a> {
    Standby { node: &'a str, to: Option<&'a str> },
    Unstandby { node: &'a str },
    Freeze { group: &'a str },
    Unfreeze { group: &'a str },
    Maintenance { on: bool },
}

impl Verb<'_> {
    /// Returns the command's file name and text, or what is wrong with its arguments.
    fn command(&self) -> Result<(String, String), String> {
        Ok(match self {
            Verb::Standby { node, to } => {
                config::check_name("node name", node)?;
                if let Some(to) = to {
                    config::check_name("node name", to)?;
                }
                let text = to.map_or(String::new(), |t| format!("to={t}"));
                (format!("standby-{node}"), text)
            }
            Verb::Unstandby { node } => {
                config::check_name("node name", node)?;
                (format!("unstandby-{node}"), String::new())
            }
            Verb::Freeze { group } => {
                config::check_name("group", group)?;
                (format!("freeze-{group}"), String::new())
            }
            Verb::Unfreeze { group } => {
                config::check_name("group", group)?;
                (format!("unfreeze-{group}"), String::new())
            }
            Verb::Maintenance { on } => {
                let text = if *on { "on" } else { "off" };
                ("maintenance".to_string(), text.to_string())
            }
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Verb::Standby { to: None, .. } => "standby",
            Verb::Standby { to: Some(_), .. } => "drain",
            Verb::Unstandby { .. } => "unstandby",
            Verb::Freeze { .. } => "freeze",
            Verb::Unfreeze { .. } => "unfreeze",
            Verb::Maintenance { .. } => "maintenance",
        }
    }
}

/// Gives the order `verb` through the daemon on `dir`; with `wait` (standby and drain),
/// follows it until the node runs no group.
pub(super) fn order(dir: &Path, verb: &Verb, wait: bool) -> ExitCode {
    let started = Instant::now();
    let name = verb.name();
    let (file, text) = match verb.command() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mosha {name}: {e}");
            return ExitCode::from(2);
        }
    };
    match super::fence::drop_command(dir, &file, &text) {
        Ok(done) => println!("{done}"),
        Err(e) => {
            eprintln!("mosha {name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let Verb::Standby { node, to } = verb else {
        return ExitCode::SUCCESS;
    };
    if !wait {
        return ExitCode::SUCCESS;
    }
    let path = dir.join("hastat.json");
    let mut held: BTreeSet<String> = BTreeSet::new();
    while started.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(20));
        let Some(h) = read(&path) else {
            continue;
        };
        if !h.admin.standby.contains_key(*node) {
            continue; // not in force here yet
        }
        let on_node = |g: &crate::hastat::GroupStat| g.nodes.contains_key(*node);
        held.extend(
            (h.groups.iter())
                .filter(|(_, g)| on_node(g))
                .map(|(n, _)| n.clone()),
        );
        let left = h.groups.values().filter(|g| on_node(g)).count();
        // Every group it ran runs settled on exactly one other node (or stays stopped when
        // no node can take it, which the daemon logs).
        let elsewhere = (held.iter()).all(|g| {
            h.groups.get(g).is_some_and(|g| {
                let settled = g.running_on.len() == 1 && g.nodes.len() == 1;
                g.moving.is_none() && (settled || g.nodes.is_empty())
            })
        });
        if left == 0 && elsewhere {
            let to = to.map_or(String::new(), |t| format!(" to {t}"));
            println!(
                "{node} runs no group: {} group(s) moved{to} in {:.2} s",
                held.len(),
                started.elapsed().as_secs_f64()
            );
            let stopped: Vec<&String> = (held.iter())
                .filter(|g| h.groups.get(*g).is_some_and(|g| g.nodes.is_empty()))
                .collect();
            if !stopped.is_empty() {
                let list: Vec<&str> = stopped.iter().map(|s| s.as_str()).collect();
                eprintln!(
                    "mosha {name}: no other node could take {}: stopped",
                    list.join(", ")
                );
                return ExitCode::FAILURE;
            }
            return ExitCode::SUCCESS;
        }
    }
    eprintln!(
        "mosha {name}: {node} still runs groups after {} s (see `mosha status`)",
        WAIT.as_secs()
    );
    ExitCode::FAILURE
}

/// Reads the hastat document at `path` (`None`: unreadable for now).
pub(super) fn read(path: &Path) -> Option<Hastat> {
    let text = match crate::files::read_bounded(path, 64 << 20) {
        crate::files::Content::Text(t) => t,
        _ => return None,
    };
    serde_json::from_str::<Hastat>(&text).ok()
}
