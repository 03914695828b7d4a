//! What the daemon tells operators about the cluster: the hastat document, and how status
//! documents are written. (Engine events in the log and the alert command are
//! [`super::events`].)

use std::collections::BTreeMap;

use super::cluster::Cluster;
use super::diagnose::why_not_running;
use super::health::{Health, STATUS_PREFIX};
use super::notices::Notices;
use crate::engine::{self, FenceState, Outcome};
use crate::gossip::{ClusterView, GossipStats};
use crate::hastat::{
    AdminStat, FailureStat, FenceStat, FileStat, GossipStat, GroupStat, Hastat, MemberStat,
    MoveStat, NodeGroupStat, RejectingStat, SecurityStat, ShadowStat,
};

/// Paces the rebuilding of a status document so that it takes at most a share of the loop's
/// time, and its writing at most [`WRITE_RATE`]: after a build that took `d` and wrote `b`
/// bytes, the next is not due for `(1/share − 1) × d`, nor for `b / WRITE_RATE`. A small
/// cluster's documents (a millisecond, a few KB) are rebuilt at every tick; with 2,000 groups
/// (tens of ms, half a MB each) a few times a second, where building them at every 50 ms
/// tick took most of the loop and writing them kept the disk busy with 20 MB/s.
#[derive(Debug)]
pub struct Pace {
    next: Option<std::time::Instant>,
    /// `1/share − 1`.
    factor: u32,
}

/// The most bytes a second one status document is written at (see [`Pace`]).
pub const WRITE_RATE: u64 = 2 << 20;

impl Pace {
    /// Returns the pace of a document that may take one `share`th of the loop's time
    /// (`share` ≥ 2).
    pub fn new(share: u32) -> Pace {
        Pace {
            next: None,
            factor: share.max(2) - 1,
        }
    }

    /// Tells whether a build is due at `now`.
    pub fn due(&self, now: std::time::Instant) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    /// Records a build that began at `began`, ended at `now` and wrote `bytes`.
    pub fn done(&mut self, began: std::time::Instant, now: std::time::Instant, bytes: usize) {
        let built = now.saturating_duration_since(began) * self.factor;
        let written = std::time::Duration::from_micros(bytes as u64 * 1_000_000 / WRITE_RATE);
        self.next = Some(now + built.max(written));
    }
}

/// Keeps the longest event-loop turns for hastat ([`crate::hastat::LoopStat`]).
#[derive(Debug, Default)]
pub struct LoopWatch {
    longest: std::time::Duration,
    /// The longest of the current minute, and of the one before.
    minute: (std::time::Duration, std::time::Duration),
    minute_start: Option<std::time::Instant>,
    logged: Option<std::time::Instant>,
}

/// A turn at least this long is logged (see [`LoopWatch::turn`]).
const SLOW_TURN: std::time::Duration = std::time::Duration::from_millis(250);

impl LoopWatch {
    /// Records a turn that began at `began` and ended at `now`, `marks` being the ends of its
    /// parts (supervisor, gossip view, core step, publish and records, clstat; hastat is the
    /// rest; `orders`, the time spent carrying out orders to the supervisor, is within them).
    /// A turn longer than [`SLOW_TURN`] is logged with its parts when it is the longest yet,
    /// and otherwise at most once a minute.
    pub fn turn(
        &mut self,
        began: std::time::Instant,
        marks: &[std::time::Instant; 5],
        orders: std::time::Duration,
        now: std::time::Instant,
    ) {
        let took = now.saturating_duration_since(began);
        let minute = std::time::Duration::from_secs(60);
        if took >= SLOW_TURN
            && (took > self.longest
                || self
                    .logged
                    .is_none_or(|t| now.saturating_duration_since(t) >= minute))
        {
            self.logged = Some(now);
            let mut last = began;
            let mut parts = Vec::new();
            for (what, &at) in [
                "supervisor",
                "gossip view",
                "core step",
                "publish",
                "clstat",
            ]
            .iter()
            .zip(marks.iter())
            .chain(std::iter::once((&"hastat", &now)))
            {
                let ms = at.saturating_duration_since(last).as_millis();
                last = last.max(at);
                parts.push(format!("{what} {ms} ms"));
            }
            tracing::warn!(
                ms = took.as_millis() as u64,
                "the event loop took {} ms to go round ({}; orders to the supervisor {} ms of \
                 them): respawns and gossip updates wait meanwhile",
                took.as_millis(),
                parts.join(", "),
                orders.as_millis()
            );
        }
        let start = *self.minute_start.get_or_insert(began);
        if now.saturating_duration_since(start) >= std::time::Duration::from_secs(60) {
            self.minute = (std::time::Duration::ZERO, self.minute.0);
            self.minute_start = Some(now);
        }
        self.longest = self.longest.max(took);
        self.minute.0 = self.minute.0.max(took);
    }

    /// Returns the figures for hastat.
    pub fn stat(&self) -> crate::hastat::LoopStat {
        crate::hastat::LoopStat {
            longest_ms: self.longest.as_millis() as u64,
            longest_recent_ms: self.minute.0.max(self.minute.1).as_millis() as u64,
        }
    }
}

impl Cluster {
    /// Builds the hastat document.
    pub fn hastat(&self, generation: u64, stats: &GossipStats, security: &SecurityStat) -> Hastat {
        let mut h = Hastat {
            schema: crate::hastat::SCHEMA,
            problems: self.notices.problems(),
            node: self.me.clone(),
            generation,
            quorate: self.core.engine().quorate(),
            expected: self.core.engine().expected().iter().cloned().collect(),
            ..Hastat::default()
        };
        let empty = ClusterView {
            me: self.me.clone(),
            members: BTreeMap::new(),
            shadows: Vec::new(),
        };
        let view = self.last_view.as_ref().unwrap_or(&empty);
        let ev = self.core.view();
        for (name, m) in &view.members {
            // The announced version only: reassembling and hashing every member's copy of
            // a large cltab at every turn cost more than the rest of the turn.
            let version = |f: &str| {
                (m.keys.get(&crate::replica::version_key(f)))
                    .and_then(|line| crate::replica::announced_version(line))
                    .map(|v| v.to_string())
            };
            h.members.insert(
                name.clone(),
                MemberStat {
                    alive: m.alive || *name == self.me,
                    generation: m.generation,
                    addr: m.addr.to_string(),
                    last_heard_ms: if *name == self.me {
                        Some(0)
                    } else {
                        m.last_heard.map(|d| d.as_millis() as u64)
                    },
                    cltab: version("cltab"),
                    hactl: version("hactl"),
                    key: stats.peer_keys.get(&m.addr).map(ToString::to_string),
                },
            );
        }
        h.live = h.members.values().filter(|m| m.alive).count();
        // Groups and each member's claims are maps sorted by group, walked side by side, and
        // the few status keys (`s/<group>`) are gathered once: with thousands of groups, a
        // lookup of each group in each member's maps made most of the document's cost.
        let live: Vec<(&String, &engine::Member)> =
            ev.members.iter().filter(|(_, m)| m.alive).collect();
        let mut claims: Vec<_> = live
            .iter()
            .map(|(_, m)| m.claims.iter().peekable())
            .collect();
        let mut health: BTreeMap<&str, Vec<(&String, Health)>> = BTreeMap::new();
        for (node, _) in &live {
            let Some(m) = view.members.get(*node) else {
                continue;
            };
            let prefixed = m.keys.range::<str, _>((
                std::ops::Bound::Included(STATUS_PREFIX),
                std::ops::Bound::Unbounded,
            ));
            for (key, value) in
                prefixed.map_while(|(k, v)| Some((k.strip_prefix(STATUS_PREFIX)?, v)))
            {
                if let Some(h) = Health::decode(value) {
                    health.entry(key).or_default().push((node, h));
                }
            }
        }
        for (group, want) in &ev.want {
            let mut g = GroupStat {
                want: want.clone(),
                ..GroupStat::default()
            };
            for (node, h) in health.remove(group.as_str()).into_iter().flatten() {
                g.failures.insert(
                    node.clone(),
                    FailureStat {
                        restarts: h.restarts,
                        cooldown_until_ms: (h.until_ms > 0).then_some(h.until_ms),
                        cause: h.cause,
                        checks: h.checks,
                    },
                );
            }
            for ((node, m), claims) in live.iter().zip(claims.iter_mut()) {
                if m.cooldown.contains(group) {
                    g.cooldown_on.push((*node).clone());
                }
                if let Some(to) = m.handoffs.get(group) {
                    g.moving = Some(MoveStat {
                        from: (*node).clone(),
                        to: to.clone(),
                        stage: "handed-off".to_string(),
                    });
                } else if let Some(r) = m.moves.get(group).filter(|_| g.moving.is_none()) {
                    g.moving = Some(MoveStat {
                        from: r.from.clone(),
                        to: r.to.clone(),
                        stage: "requested".to_string(),
                    });
                }
                while claims.next_if(|(g, _)| *g < group).is_some() {}
                let claim = claims.next_if(|(g, _)| *g == group).map(|(_, c)| c);
                if let Some(c) = claim.filter(|c| c.holds()) {
                    if c.level == c.target
                        && c.state.settled()
                        && ![engine::PLAN, engine::TEST].contains(&c.level.as_str())
                    {
                        g.running_on.push((*node).clone());
                    }
                    g.nodes.insert(
                        (*node).clone(),
                        NodeGroupStat {
                            level: c.level.clone(),
                            state: c.state.as_str().to_string(),
                            target: c.target.clone(),
                        },
                    );
                }
            }
            h.groups.insert(group.clone(), g);
        }
        for (name, f) in [
            ("cltab", &self.cltab_file),
            ("hactl", &self.hactl_file),
            ("fencetab", &self.fencetab_file),
            ("admin", &self.admin_file),
        ] {
            h.files.insert(
                name.to_string(),
                FileStat {
                    version: self.version(name).to_string(),
                    ok: f.errors.is_empty(),
                    errors: f.errors.clone(),
                },
            );
        }
        for (node, lost) in self.core.engine().lost() {
            h.fencing.insert(
                node.clone(),
                FenceStat {
                    generation: lost.generation,
                    state: match &lost.fence {
                        FenceState::Done {
                            outcome: Outcome::Acked,
                            ..
                        } => "acked",
                        FenceState::Done { .. } => "fenced",
                        FenceState::Fencing => "fencing",
                        FenceState::Pending => "pending",
                        FenceState::Failed { .. } => "failed",
                        FenceState::Disabled => "not-fenced",
                        FenceState::Unconfigured => "unconfigured",
                    }
                    .to_string(),
                    detail: lost.fence.describe(),
                    waiting_groups: if lost.fence.gate_open() {
                        Vec::new()
                    } else {
                        let mut g: Vec<String> = lost.held.iter().cloned().collect();
                        if lost.unknown {
                            g.push("(any group that runs nowhere)".to_string());
                        }
                        g
                    },
                },
            );
            // Until the node is back, say that whatever it ran may still run there.
            if lost.fence == FenceState::Disabled {
                h.not_fenced
                    .insert(node.clone(), lost.held.iter().cloned().collect());
            }
        }
        h.admin = AdminStat {
            standby: self.admin.standby.clone(),
            frozen: self.admin.frozen.iter().cloned().collect(),
            maintenance: self.admin.maintenance,
        };
        let wall = super::wall_ms();
        for (name, g) in &mut h.groups {
            g.frozen = self.admin.is_frozen(name);
            let engine = self.core.engine();
            g.why = why_not_running(name, &g.want.clone(), g, ev, engine, wall);
        }
        h.fencing_off = self
            .fencetab
            .disabled()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let secs = stats.elapsed.as_secs_f64().max(0.001);
        h.gossip = GossipStat {
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            sent_per_s: (stats.bytes_sent as f64 / secs).round(),
            rejected: stats.rejected.values().sum(),
            send_failures: stats.send_failures,
            decoder_refusals: stats.decoder_refusals,
            rejected_by: stats.rejected.clone(),
            rejecting: stats
                .rejecting
                .iter()
                .map(|r| RejectingStat {
                    addr: r.addr.map_or("*".to_string(), |a| a.to_string()),
                    reason: r.reason.as_str().to_string(),
                    count: r.count,
                    last_s_ago: (r.last.as_secs_f64() * 10.0).round() / 10.0,
                })
                .collect(),
        };
        h.security = security.clone();
        h.shadows = view
            .shadows
            .iter()
            .map(|s| ShadowStat {
                node: s.node.clone(),
                generation: s.generation,
                addr: s.addr.to_string(),
                alive_s: s.since.as_secs_f64().round(),
            })
            .collect();
        h
    }
}

/// Passes the outcome of `writer`'s last write, if one came back, to `notices` as `what`;
/// tells whether it failed.
pub(super) fn failed<T: Send + 'static>(
    writer: &crate::files::Latest<T>,
    notices: &mut Notices,
    what: &str,
) -> bool {
    let Some(outcome) = writer.take_outcome() else {
        return false;
    };
    notices.outcome(what, &outcome);
    outcome.is_err()
}

/// Starts the thread `name` that writes status documents to `path`, the newest one handed
/// each time: a disk that stalls (a journal commit under thousands of starting services took
/// 0.2–0.8 s) then holds up that thread, not the loop. A document that cannot replace the
/// file atomically (a full disk) overwrites it in place.
///
/// # Errors
/// Fails when the system cannot start a thread.
pub(super) fn status_writer(
    path: std::path::PathBuf,
    name: &str,
) -> std::io::Result<crate::files::Latest<String>> {
    crate::files::Latest::start(
        name,
        move |text: String| match crate::files::write_volatile(&path, text.as_bytes()) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = crate::files::overwrite_in_place(&path, text.as_bytes());
                Err(e.to_string())
            }
        },
    )
}
