//! What a node knows of its cluster, in mosha's own types: one [`MemberView`] per node name,
//! chosen among the generations chitchat holds, plus the tracking of when each member's heartbeat
//! last advanced. Reading chitchat's state into [`Entry`] and [`Beat`] rows is [`super::node`]'s
//! job; the choices here are pure and take the current instant as an argument.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What this node knows of the cluster at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    /// This node's name (a key of `members`).
    pub me: String,
    /// Every known member by name, this node included; one entry per name (its newest
    /// generation). Members dead for half the dead-node grace are no longer listed.
    pub members: BTreeMap<String, MemberView>,
}

impl ClusterView {
    /// Returns the member named `name`, if known.
    pub fn member(&self, name: &str) -> Option<&MemberView> {
        self.members.get(name)
    }

    /// Returns the names of the members alive in this view, this node included, in name order.
    pub fn alive(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(|(_, member)| member.alive)
            .map(|(name, _)| name.as_str())
    }
}

/// What this node knows of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// The member's generation: a new one on every start, in nanoseconds since the epoch.
    pub generation: u64,
    /// The gossip address the member advertises.
    pub addr: SocketAddr,
    /// Whether the failure detector considers the member alive; this node is always alive in its
    /// own view.
    pub alive: bool,
    /// The member's live (non-deleted) keys; for a dead member, the last known ones.
    pub keys: BTreeMap<String, String>,
    /// Time since this node last saw the member's heartbeat advance, sampled every gossip
    /// interval (so precise to about one interval); `None` until it has seen an advance or the
    /// member alive. Zero for this node.
    pub last_heard: Option<Duration>,
    /// Silence after which the failure detector declares the member dead (its current adaptive
    /// timeout), if it has enough samples; `None` for this node.
    pub detection_timeout: Option<Duration>,
}

/// One node state as chitchat holds it, read under its lock.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) node: String,
    pub(super) generation: u64,
    pub(super) addr: SocketAddr,
    pub(super) is_self: bool,
    pub(super) alive: bool,
    pub(super) scheduled_for_deletion: bool,
    pub(super) heartbeat: u64,
    pub(super) keys: BTreeMap<String, String>,
    pub(super) detection_timeout: Option<Duration>,
}

/// One member generation's heartbeat, as sampled under chitchat's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Beat {
    pub(super) node: String,
    pub(super) generation: u64,
    pub(super) alive: bool,
    pub(super) heartbeat: u64,
}

/// Keeps, per member generation, the last heartbeat seen and when it was seen to advance.
///
/// It is fed every gossip interval by [`super::node`]'s sampler and at every view, so
/// `last_heard` is precise to about one gossip interval whatever the spacing of views.
#[derive(Debug, Default)]
pub(super) struct HeartbeatTracker {
    seen: BTreeMap<(String, u64), Seen>,
}

/// The last heartbeat of one member generation and the instant it was first seen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    heartbeat: u64,
    since: Option<Instant>,
}

impl HeartbeatTracker {
    /// Records the heartbeats of `beats` at `now`, and forgets member generations not among
    /// them (chitchat no longer holds them).
    ///
    /// A member generation first met counts as just heard if it is alive, and as not yet heard
    /// if it is dead.
    pub(super) fn record(&mut self, beats: &[Beat], now: Instant) {
        let mut fresh = BTreeMap::new();
        for beat in beats {
            let key = (beat.node.clone(), beat.generation);
            let since = match self.seen.get(&key) {
                Some(seen) if seen.heartbeat == beat.heartbeat => seen.since,
                Some(_) => Some(now),
                None => beat.alive.then_some(now),
            };
            let heartbeat = beat.heartbeat;
            fresh.insert(key, Seen { heartbeat, since });
        }
        self.seen = fresh;
    }

    /// Returns the time from the last advance of `node`'s heartbeat at `generation` to `now`.
    fn last_heard(&self, node: &str, generation: u64, now: Instant) -> Option<Duration> {
        let since = self.seen.get(&(node.to_string(), generation))?.since?;
        Some(now.saturating_duration_since(since))
    }
}

/// Builds the view named `me` from chitchat's node states, recording their heartbeats first.
///
/// Entries scheduled for deletion are dropped; of the remaining generations of one name, the
/// highest wins whatever its liveness (a restart), except that this node's own name always maps
/// to this node's entry.
pub(super) fn build(
    me: &str,
    entries: Vec<Entry>,
    tracker: &mut HeartbeatTracker,
    now: Instant,
) -> ClusterView {
    let beats: Vec<Beat> = entries
        .iter()
        .filter(|entry| !entry.is_self)
        .map(|entry| Beat {
            node: entry.node.clone(),
            generation: entry.generation,
            alive: entry.alive,
            heartbeat: entry.heartbeat,
        })
        .collect();
    tracker.record(&beats, now);
    let mut newest: BTreeMap<String, Entry> = BTreeMap::new();
    for entry in entries {
        if entry.scheduled_for_deletion || (entry.node == me && !entry.is_self) {
            continue;
        }
        match newest.get(&entry.node) {
            Some(kept) if kept.is_self || kept.generation >= entry.generation => {}
            _ => {
                newest.insert(entry.node.clone(), entry);
            }
        }
    }
    let members = newest
        .into_values()
        .map(|entry| {
            let (last_heard, detection_timeout) = if entry.is_self {
                (Some(Duration::ZERO), None)
            } else {
                let heard = tracker.last_heard(&entry.node, entry.generation, now);
                (heard, entry.detection_timeout)
            };
            let member = MemberView {
                generation: entry.generation,
                addr: entry.addr,
                alive: entry.alive || entry.is_self,
                keys: entry.keys,
                last_heard,
                detection_timeout,
            };
            (entry.node, member)
        })
        .collect();
    ClusterView {
        me: me.to_string(),
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(node: &str, generation: u64, alive: bool, heartbeat: u64) -> Entry {
        Entry {
            node: node.to_string(),
            generation,
            addr: "127.0.0.1:1".parse().unwrap(),
            is_self: false,
            alive,
            scheduled_for_deletion: false,
            heartbeat,
            keys: BTreeMap::from([("g".to_string(), generation.to_string())]),
            detection_timeout: Some(Duration::from_millis(800)),
        }
    }

    fn me(generation: u64) -> Entry {
        Entry {
            is_self: true,
            alive: true,
            ..entry("me", generation, true, 1)
        }
    }

    #[test]
    fn highest_generation_wins_whatever_its_liveness() {
        let mut tracker = HeartbeatTracker::default();
        let entries = vec![me(5), entry("b", 10, true, 3), entry("b", 20, false, 1)];
        let view = build("me", entries, &mut tracker, Instant::now());
        assert_eq!(view.members.len(), 2);
        let b = view.member("b").unwrap();
        assert_eq!((b.generation, b.alive), (20, false));
        assert_eq!(b.keys["g"], "20");
        assert_eq!(view.alive().collect::<Vec<_>>(), vec!["me"]);
    }

    #[test]
    fn scheduled_for_deletion_entries_are_dropped() {
        let mut tracker = HeartbeatTracker::default();
        let doomed = Entry {
            scheduled_for_deletion: true,
            ..entry("b", 20, false, 1)
        };
        let gone = Entry {
            scheduled_for_deletion: true,
            ..entry("c", 1, false, 1)
        };
        let entries = vec![me(5), entry("b", 10, true, 3), doomed, gone];
        let view = build("me", entries, &mut tracker, Instant::now());
        assert_eq!(view.member("b").unwrap().generation, 10);
        assert!(view.member("c").is_none());
    }

    #[test]
    fn own_name_maps_to_own_entry() {
        let mut tracker = HeartbeatTracker::default();
        // A previous run of this node with a higher generation (the clock stepped back).
        let entries = vec![entry("me", 9, false, 4), me(5)];
        let view = build("me", entries, &mut tracker, Instant::now());
        let mine = view.member("me").unwrap();
        assert_eq!(mine.generation, 5);
        assert!(mine.alive);
        assert_eq!(mine.last_heard, Some(Duration::ZERO));
        assert_eq!(mine.detection_timeout, None);
    }

    #[test]
    fn last_heard_counts_from_the_last_heartbeat_advance() {
        let mut tracker = HeartbeatTracker::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let heard = |view: &ClusterView| view.member("b").unwrap().last_heard;

        let view = build(
            "me",
            vec![me(1), entry("b", 1, true, 7)],
            &mut tracker,
            at(0),
        );
        assert_eq!(heard(&view), Some(Duration::ZERO));
        let view = build(
            "me",
            vec![me(1), entry("b", 1, true, 7)],
            &mut tracker,
            at(300),
        );
        assert_eq!(heard(&view), Some(Duration::from_millis(300)));
        let view = build(
            "me",
            vec![me(1), entry("b", 1, true, 8)],
            &mut tracker,
            at(400),
        );
        assert_eq!(heard(&view), Some(Duration::ZERO));
        let view = build(
            "me",
            vec![me(1), entry("b", 1, false, 8)],
            &mut tracker,
            at(1400),
        );
        assert_eq!(heard(&view), Some(Duration::from_secs(1)));
        // A new generation met dead has not been heard yet.
        let view = build(
            "me",
            vec![me(1), entry("b", 2, false, 1)],
            &mut tracker,
            at(1500),
        );
        assert_eq!(heard(&view), None);
        let view = build(
            "me",
            vec![me(1), entry("b", 2, true, 2)],
            &mut tracker,
            at(1600),
        );
        assert_eq!(heard(&view), Some(Duration::ZERO));
    }

    #[test]
    fn tracker_keeps_generations_apart() {
        let mut tracker = HeartbeatTracker::default();
        let t0 = Instant::now();
        let beat = |generation, heartbeat| Beat {
            node: "b".to_string(),
            generation,
            alive: true,
            heartbeat,
        };
        tracker.record(&[beat(1, 50), beat(2, 3)], t0);
        let t1 = t0 + Duration::from_millis(500);
        tracker.record(&[beat(1, 50), beat(2, 4)], t1);
        let t2 = t0 + Duration::from_millis(700);
        assert_eq!(
            tracker.last_heard("b", 1, t2),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            tracker.last_heard("b", 2, t2),
            Some(Duration::from_millis(200))
        );
        assert_eq!(tracker.last_heard("b", 3, t2), None);
    }

    #[test]
    fn tracker_forgets_members_no_longer_listed() {
        let mut tracker = HeartbeatTracker::default();
        let now = Instant::now();
        build("me", vec![me(1), entry("b", 1, true, 7)], &mut tracker, now);
        assert!(tracker.seen.contains_key(&("b".to_string(), 1)));
        build("me", vec![me(1)], &mut tracker, now);
        assert!(tracker.seen.is_empty());
    }
}
