//! What the daemon says when the engine reports an event: a log line at the level an
//! operator expects, and the alert command for the events operators are alerted of
//! (node-lost, node-blocked, fence-ok, fence-failed, group-started, group-stopped).

use tracing::{debug, error, info, warn};

use crate::engine::{Event, FenceState};

/// The alert command (`--alert`), and the node it runs on.
#[derive(Debug, Clone)]
pub struct Alerts {
    /// The command, run by `/bin/sh -c`; `None`: no alerts.
    pub command: Option<String>,
    /// This node's name (`MOSHA_NODE`).
    pub me: String,
}

impl Alerts {
    /// Runs the alert command for an engine event, if it is one operators are alerted of.
    pub fn for_event(&self, e: &Event) {
        match e {
            Event::NodeLost { node, held } => self.run("node-lost", node, "", &held.join(",")),
            Event::NodeBlocked { node, groups } => {
                self.run("node-blocked", node, "", &groups.join(","))
            }
            Event::GroupStarted { group, claim } => self.run("group-started", "", group, claim),
            Event::GroupStopped { group, claim } => self.run("group-stopped", "", group, claim),
            Event::FenceState { node, state } => match state {
                FenceState::Done { .. } => self.run("fence-ok", node, "", &state.describe()),
                FenceState::Failed { .. } => self.run("fence-failed", node, "", &state.describe()),
                _ => {}
            },
            _ => {}
        }
    }

    /// Runs the alert command (if configured) with the event in its environment:
    /// `MOSHA_ALERT_KIND`, `MOSHA_ALERT_NODE`, `MOSHA_ALERT_GROUP`, `MOSHA_ALERT_DETAIL`,
    /// `MOSHA_NODE`. It runs in its own session; its exit is reaped and ignored.
    pub fn run(&self, kind: &str, node: &str, group: &str, detail: &str) {
        let Some(cmd) = &self.command else { return };
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new("/bin/sh");
        c.arg("-c")
            .arg(cmd)
            .env("MOSHA_ALERT_KIND", kind)
            .env("MOSHA_ALERT_NODE", node)
            .env("MOSHA_ALERT_GROUP", group)
            .env("MOSHA_ALERT_DETAIL", detail)
            .env("MOSHA_NODE", &self.me)
            .stdin(std::process::Stdio::null());
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        if let Err(e) = c.spawn() {
            warn!(kind, "cannot run the alert command: {e}");
        }
    }
}

/// Logs an engine event at the level an operator expects.
pub fn log(e: &Event) {
    match e {
        Event::QuorumLost { live, expected } => {
            error!(
                live,
                expected, "quorum lost: stopping every group on this node"
            )
        }
        Event::QuorumRegained { live, expected } => info!(live, expected, "quorum regained"),
        Event::QuorumWaiting { live, expected } => info!(
            live,
            expected, "waiting for quorum: more than half of the expected members must be heard"
        ),
        Event::QuorumReached { live, expected } => info!(live, expected, "quorum reached"),
        Event::Planning { group, rank } => info!(%group, rank, "planning group (it runs nowhere)"),
        Event::TakingOver { group } => info!(
            %group,
            "taking group over as its successor (its holder was lost): no plan window"
        ),
        Event::Yielding { group, to } => {
            warn!(%group, to = %to, "conflicting claim outranks ours: yielding")
        }
        Event::TestFailed {
            group,
            level,
            cooldown_ms,
            elsewhere,
        } => {
            let cooldown = crate::hastat::duration_words(cooldown_ms / 1000);
            if *elsewhere > 0 {
                warn!(%group, %level, "group failed here: cooldown of {cooldown} (no candidate here for it); {elsewhere} other node(s) may take it")
            } else {
                error!(%group, %level, "group failed here: cooldown of {cooldown} (no candidate here for it), and NO other node can take it now: it stays stopped until a cooldown ends or `mosha cleanup {group}`")
            }
        }
        Event::HandingOff { group, to, why } => {
            info!(%group, to = %to, "stopping the group here to hand it to {to} ({why})")
        }
        Event::NowhereToGo { group, why } => {
            warn!(%group, "stopping the group: {why}, and no other node can take it; it stays stopped until one can")
        }
        Event::MoveAbandoned { group, to, why } => {
            warn!(%group, to = %to, "planned move to {to} did not happen: {why}; the group is placed as usual")
        }
        Event::CleanedUp {
            group,
            by,
            cooldown,
        } => {
            let what = if *cooldown {
                "its cooldown and restarts"
            } else {
                "its restarts"
            };
            warn!(%group, by = %by, "operator cleanup (asked on {by}): cleared {what} here; the group is placed as usual")
        }
        Event::NodeLost { node, held } => {
            warn!(%node, held = %first_few(held), "member lost")
        }
        Event::NodeBlocked { node, groups } => error!(
            %node, ?groups,
            "a resource's stop FAILED on this member: it may still hold the group; it is \
             fenced before the group starts anywhere else (or `mosha cleanup GROUP {node}` \
             there, once it is stopped by hand)"
        ),
        Event::NodeUnblocked { node } => {
            warn!(%node, "member stopped its groups after a failed stop: no fencing needed")
        }
        Event::NodeLeft { node } => info!(%node, "member left (a clean shutdown)"),
        Event::NodeBack { node } => info!(%node, "member back"),
        Event::NeverHeard { node } => error!(
            %node,
            "expected member never heard since this daemon started, and no peer knows of it: \
             it may run anything; fencing it before recovering any group (if it is gone for \
             good, delete it from DIR/members)"
        ),
        Event::NoNews { node, ms } => error!(
            %node, ms,
            "its heartbeats arrive but none of its state: our gossip probably does not get out \
             (one-way link); it no longer counts for quorum"
        ),
        Event::NewsBack { node } => info!(%node, "news from member arrives again"),
        Event::FenceStarted { node, rank } => warn!(%node, rank, "fencing lost node"),
        Event::FenceState { node, state } => match state {
            FenceState::Failed { .. } | FenceState::Unconfigured | FenceState::Disabled => {
                error!(%node, "{}", state.describe())
            }
            _ => info!(%node, "{}", state.describe()),
        },
        Event::RecoveringUnfenced { group, from } => error!(
            %group, from = %from,
            "recovering a group from a lost node that was NOT FENCED: if that node still runs it, \
             both copies run (configure fencing)"
        ),
        Event::Frozen { ms } => warn!(
            frozen_ms = ms,
            "this daemon did not run for a while: its view is stale; holding every group \
             where it is until it has heard the cluster again"
        ),
        // The supervisor logs each level change already; these run the alert command only.
        Event::GroupStarted { group, claim } => debug!(%group, %claim, "group running here"),
        Event::GroupStopped { group, claim } => debug!(%group, %claim, "group stopped here"),
        Event::MembersNotSaved { error } => error!(
            "cannot save the expected membership to DIR/members ({error}): tried again at \
             every step; until it is saved, a restart of this daemon would count quorum \
             from the membership before"
        ),
        Event::FileChanged {
            file,
            version,
            from: None,
        } => info!(%file, %version, "local edit accepted; spreading it to the cluster"),
        Event::FileChanged {
            file,
            version,
            from: Some(from),
        } => info!(%file, %version, %from, "adopted a newer version from the cluster"),
        Event::VersionsNotSaved { error } => error!(
            "cannot save the file versions to DIR/.mosha-versions.json ({error}): tried again \
             at every step; until they are saved, a restart would take the files in force \
             for edits made here at their modification time"
        ),
    }
}

/// How many of a lost member's groups the log names (the alert command gets them all).
const NAMED: usize = 10;

/// `none`, or the groups' count and the first [`NAMED`] names: a node of 400 groups made a
/// line of 3 KB.
fn first_few(groups: &[String]) -> String {
    match groups.len() {
        0 => "none".to_string(),
        n if n <= NAMED => groups.join(", "),
        n => format!(
            "{n} groups: {}, and {} more",
            groups[..NAMED].join(", "),
            n - NAMED
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_members_groups_are_named_up_to_ten_then_counted() {
        let names = |n: usize| (1..=n).map(|i| format!("g{i}")).collect::<Vec<_>>();
        assert_eq!(first_few(&[]), "none");
        assert_eq!(first_few(&names(2)), "g1, g2");
        assert_eq!(first_few(&names(10)), names(10).join(", "));
        assert_eq!(
            first_few(&names(418)),
            format!("418 groups: {}, and 408 more", names(10).join(", "))
        );
    }
}
