//! Operator commands handed to the daemon through `DIR/commands/`: `ack-NODE` (written by
//! `mosha fence ack NODE`) and `fenced-NODE` (written by `mosha fence NODE` once it fenced the
//! node by hand), each a fencing record for the node's lost generation; and `move-GROUP`
//! (written by `mosha move GROUP [NODE]`, the target node in the file or nothing), checked
//! against the cluster as this node sees it and handed to the node core as a move request;
//! `cleanup-GROUP` (written by `mosha cleanup GROUP [NODE]`, the node or nothing), handed
//! to the node core as a cleanup request; and the standing orders of [`super::orders`]
//! (`standby-NODE`, `freeze-GROUP`, ...).
//! The daemon answers in `DIR/commands/.reply-NAME`, which the command waits for.
//!
//! An acknowledgement lets a node's groups start elsewhere, so it is refused for a node the
//! cluster does not show as lost (alive, or never lost since this daemon started) unless the
//! operator insists (`--force`): recorded against a live generation, it would also excuse
//! that node's next, real loss (it hung, nobody fenced it, its groups ran twice).

use std::path::Path;

use tracing::{error, warn};

use crate::config::admin::Order;
use crate::engine::node::{Input, Node};
use crate::engine::{rank, Engine, Outcome, State};
use crate::files;
use crate::gossip::ClusterView;

/// The first line of an `ack-NODE` file when the operator passed `--force`.
pub const FORCE: &str = "force";

/// Returns the path of the reply to command `name` in `commands`.
pub fn reply_path(commands: &Path, name: &str) -> std::path::PathBuf {
    commands.join(format!(".reply-{name}"))
}

/// Most commands carried out per step; more wait for the next step.
const MAX_PER_STEP: usize = 16;

/// Largest command file read, in bytes (a command is a line or two).
const MAX_COMMAND_BYTES: usize = 4096;

/// Carries out the commands waiting in `dir/commands/`, checked against what `engine` and
/// `view` know, answering each in `.reply-NAME`; returns the records for the node core, and
/// pushes the standing orders to `orders`. At most [`MAX_PER_STEP`] commands per call, each read up to
/// [`MAX_COMMAND_BYTES`]; anything else found there is answered as an unknown command.
pub fn carry_out(
    dir: &Path,
    core: &Node,
    view: &ClusterView,
    orders: &mut Vec<Order>,
) -> Vec<Input> {
    let dir = dir.join("commands");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let commands = entries.flatten().filter(|e| {
        // Replies, and the temporary files of commands being written, start with '.'.
        !e.file_name().to_string_lossy().starts_with('.')
            && e.file_type().is_ok_and(|t| t.is_file())
    });
    for e in commands.take(MAX_PER_STEP) {
        let name = e.file_name().to_string_lossy().into_owned();
        let text = match files::read_bounded(&e.path(), MAX_COMMAND_BYTES) {
            files::Content::Text(t) => Ok(t),
            files::Content::TooLarge(n) => Err(format!("{n} bytes is not a command")),
            _ => Ok(String::new()),
        };
        let _ = std::fs::remove_file(e.path());
        let verb = (name.strip_prefix("move-").map(|g| (g, true)))
            .or_else(|| name.strip_prefix("cleanup-").map(|g| (g, false)));
        let answer = text.and_then(|text| match verb {
            Some((group, is_move)) => {
                let checked = if is_move {
                    move_command(core, group, text.trim())
                } else {
                    cleanup_command(core, group, text.trim())
                };
                checked.map(|(done, i)| {
                    out.push(i);
                    done
                })
            }
            None => match super::orders::parse(core, &name, &text) {
                Some(order) => order.map(|(o, said)| {
                    orders.push(o);
                    said
                }),
                None => command(core.engine(), &name, &text, view, &mut out),
            },
        });
        let reply = match &answer {
            Ok(done) => format!("ok: {done}\n"),
            Err(why) => {
                error!(command = %name, "operator command refused: {why}");
                format!("refused: {why}\n")
            }
        };
        if let Err(e) = files::write_atomic(&reply_path(&dir, &name), reply.as_bytes()) {
            warn!(command = %name, "cannot answer the operator command: {e}");
        }
    }
    out
}

/// Checks a request to move `group` to `to` (empty: the best-ranked node that can take it)
/// against the core's view; returns what will be done and the input for the core, or why
/// not.
fn move_command(core: &Node, group: &str, to: &str) -> Result<(String, Input), String> {
    let view = core.view();
    let Some(want) = view.want.get(group) else {
        return Err(format!("no group {group:?} in cltab"));
    };
    if crate::engine::claim::is_stopped_level(want) {
        return Err(format!(
            "{group} is not wanted (hactl has it at stop): there is nothing to move"
        ));
    }
    if !core.engine().quorate() {
        return Err("this node has no quorum: nothing moves".to_string());
    }
    if view.admin.is_frozen(group) {
        return Err(format!(
            "{group} is frozen (mosha freeze, or maintenance): mosha moves nothing of it"
        ));
    }
    let live = view.members.iter().filter(|(_, m)| m.alive);
    let holders: Vec<(&String, &crate::engine::Claim)> = live
        .clone()
        .filter_map(|(n, m)| Some((n, m.claims.get(group).filter(|c| c.holds())?)))
        .collect();
    let from = match holders.as_slice() {
        [] => {
            return Err(format!(
                "{group} runs nowhere: nothing to move (it is placed as usual)"
            ))
        }
        [(n, c)]
            if c.level == *want
                && c.target == *want
                && matches!(c.state, State::Done | State::Passed) =>
        {
            n.as_str()
        }
        [(n, c)] => {
            return Err(format!(
                "{group} is not settled on {n} ({c}): try again once it runs"
            ))
        }
        _ => {
            let on: Vec<&str> = holders.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "{group} is held by {} at once: try again once one of them runs it",
                on.join(" and ")
            ));
        }
    };
    let can_take = |n: &str| -> Result<(), String> {
        match view.members.get(n) {
            None => Err(format!("no node {n:?} is known")),
            Some(_) if n == from => Err(format!("{group} already runs on {n}")),
            Some(m) if !m.alive || m.left => Err(format!("{n} is not alive")),
            Some(m) if m.blank => Err(format!(
                "{n} is alive but its state has not reached this node yet"
            )),
            Some(m) if m.cooldown.contains(group) => Err(format!(
                "{n} is in cooldown for {group} (its test failed there)"
            )),
            Some(_) if !crate::engine::moves::can_take(view, n, group) => Err(format!(
                "{n} may not run {group} (its hactl line says only=...)"
            )),
            Some(_) => Ok(()),
        }
    };
    let to = if to.is_empty() {
        let able = live
            .map(|(n, _)| n.as_str())
            .filter(|n| can_take(n).is_ok());
        match rank::order_placed(group, view.placement.get(group), able).first() {
            Some(n) => n.to_string(),
            None => return Err(format!("no other node can take {group}")),
        }
    } else {
        crate::config::check_name("node name", to)?;
        can_take(to)?;
        to.to_string()
    };
    warn!(%group, %from, %to, "operator: move requested");
    let input = Input::Move {
        group: group.to_string(),
        to: to.clone(),
        from: from.to_string(),
    };
    Ok((format!("moving {group} from {from} to {to}"), input))
}

/// Checks a request to clear the failures of `group` on `node` (empty: every node); returns
/// what will be done and the input for the core, or why not.
fn cleanup_command(core: &Node, group: &str, node: &str) -> Result<(String, Input), String> {
    let view = core.view();
    if !view.want.contains_key(group) {
        return Err(format!("no group {group:?} in cltab"));
    }
    let node = if node.is_empty() {
        None
    } else {
        crate::config::check_name("node name", node)?;
        if !view.members.contains_key(node) {
            return Err(format!("no node {node:?} is known"));
        }
        Some(node.to_string())
    };
    let cooling: Vec<&str> = (view.members.iter())
        .filter(|(n, m)| {
            m.alive && m.cooldown.contains(group) && node.as_ref().is_none_or(|x| x == *n)
        })
        .map(|(n, _)| n.as_str())
        .collect();
    let on = node
        .as_deref()
        .map_or("every node".to_string(), |n| n.to_string());
    let found = if cooling.is_empty() {
        "no cooldown in sight; restart counts cleared".to_string()
    } else {
        format!("ending the cooldown on {}", cooling.join(", "))
    };
    warn!(%group, on = %on, "operator: cleanup requested");
    let input = Input::Cleanup {
        group: group.to_string(),
        node,
    };
    Ok((
        format!("clearing the failures of {group} on {on}: {found}"),
        input,
    ))
}

/// Carries out one command; returns what was done, or why not.
fn command(
    engine: &Engine,
    name: &str,
    text: &str,
    view: &ClusterView,
    out: &mut Vec<Input>,
) -> Result<String, String> {
    let (outcome, node) = if let Some(n) = name.strip_prefix("ack-") {
        (Outcome::Acked, n)
    } else if let Some(n) = name.strip_prefix("fenced-") {
        (Outcome::Fenced, n)
    } else {
        return Err(format!("unknown command {name:?}"));
    };
    let mut lines = text.lines();
    let force = text.lines().next() == Some(FORCE);
    if force {
        lines.next();
    }
    let detail = lines.collect::<Vec<_>>().join(" ").trim().to_string();
    let lost = engine.lost().get(node).map(|l| l.generation);
    let live = view
        .members
        .get(node)
        .map(|m| (m.generation, m.alive, m.last_heard));
    let generation = match (lost, live, outcome) {
        (Some(g), _, _) => g,
        (None, Some((g, _, _)), Outcome::Fenced | Outcome::Failed) => g,
        (None, Some((g, _, _)), Outcome::Acked) if force => {
            warn!(%node, generation = g, "acknowledgement FORCED for a node the cluster does not show as lost");
            g
        }
        (None, Some((g, alive, heard)), Outcome::Acked) => {
            let state = if alive {
                format!(
                    "alive (generation {g}, heard {})",
                    heard.map_or("-".to_string(), |d| format!("{:.1} s ago", d.as_secs_f64()))
                )
            } else {
                format!("not alive but not lost either (generation {g}: it left cleanly, or this daemon never saw it run)")
            };
            return Err(format!(
                "{node} is {state}: acknowledging it would let its groups start elsewhere \
                     while it may still run them. If it is really off, run `mosha fence ack \
                     {node} --force`"
            ));
        }
        (None, None, _) => return Err(format!("no node {node:?} is known")),
    };
    warn!(%node, generation, "operator: {name} recorded ({detail})");
    out.push(Input::Operator {
        node: node.to_string(),
        generation,
        outcome,
        detail,
    });
    Ok(format!("recorded for {node} (generation {generation})"))
}
