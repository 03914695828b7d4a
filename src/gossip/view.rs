//! What a node knows of its cluster, in mosha's own types: one [`MemberView`] per node name,
//! chosen among the generations chitchat holds, plus the tracking of when each member's heartbeat
//! last advanced. Reading chitchat's state into [`Entry`] and [`Beat`] rows is [`super::node`]'s
//! job; the choices here are pure and take the current instant as an argument.
//!
//! **One identity per name.** chitchat keys its members by (name, generation, address), and
//! anything a peer mentions in a digest becomes a member. The generation shown for a name is
//! kept while the failure detector holds it alive: a higher generation, or the same name from
//! another address, never hides a member that still heartbeats. Only when the shown one is
//! dead does the view move on (to the oldest live one, else the newest). Other live generations
//! of a name are reported as [`Shadow`]s: a restart's for a moment, a second daemon with the
//! same name for as long as both run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What this node knows of the cluster at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    /// This node's name (a key of `members`).
    pub me: String,
    /// Every known member by name, this node included; one entry per name (see the module
    /// documentation for which generation). Members dead for half the dead-node grace are no
    /// longer listed.
    pub members: BTreeMap<String, MemberView>,
    /// Live generations of a name that the view does not show, this node's own name included.
    pub shadows: Vec<Shadow>,
}

/// A live generation of a member's name that the view does not show: another daemon that
/// claims the name, or a restart not yet seen to complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadow {
    /// The name.
    pub node: String,
    /// Its generation.
    pub generation: u64,
    /// The address it gossips from.
    pub addr: SocketAddr,
    /// The generation the view shows for the name.
    pub shown: u64,
    /// The address of the generation shown.
    pub shown_addr: SocketAddr,
    /// Whether the generation shown is alive and heard in the last second: then two daemons
    /// heartbeat under one name.
    pub shown_heard: bool,
    /// How long this shadow has been alive.
    pub since: Duration,
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
    /// The member's live (non-deleted) keys; for a dead member, the last known ones. Shared
    /// with the gossip layer's cache: read again only when `version` moves.
    pub keys: Arc<BTreeMap<String, String>>,
    /// The highest version among the member's keys (chitchat's `max_version`): the same
    /// generation at the same version has the same keys.
    pub version: u64,
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
    pub(super) keys: Arc<BTreeMap<String, String>>,
    pub(super) version: u64,
    pub(super) detection_timeout: Option<Duration>,
}

/// One member generation's heartbeat, as sampled under chitchat's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Beat {
    pub(super) node: String,
    pub(super) generation: u64,
    pub(super) addr: SocketAddr,
    pub(super) alive: bool,
    pub(super) heartbeat: u64,
}

/// Keeps, per member generation, the last heartbeat seen and when it was seen to advance.
///
/// It is fed every gossip interval by [`super::node`]'s sampler and at every view, so
/// `last_heard` is precise to about one gossip interval whatever the spacing of views.
#[derive(Debug, Default)]
pub(super) struct HeartbeatTracker {
    seen: BTreeMap<(String, u64, SocketAddr), Seen>,
    /// The generation (and address) shown for each name.
    shown: BTreeMap<String, (u64, SocketAddr)>,
    /// When each live shadow was first seen.
    shadows: BTreeMap<(String, u64, SocketAddr), Instant>,
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
            let key = (beat.node.clone(), beat.generation, beat.addr);
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

    /// Returns the time from the last advance of `node`'s heartbeat at `generation` and
    /// `addr` to `now`.
    fn last_heard(
        &self,
        node: &str,
        generation: u64,
        addr: SocketAddr,
        now: Instant,
    ) -> Option<Duration> {
        let since = self
            .seen
            .get(&(node.to_string(), generation, addr))?
            .since?;
        Some(now.saturating_duration_since(since))
    }
}

/// Builds the view named `me` from chitchat's node states, recording their heartbeats first.
///
/// Entries scheduled for deletion are dropped; of the remaining generations of one name, the
/// one shown is chosen as the module documentation says, except that this node's own name
/// always maps to this node's entry.
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
            addr: entry.addr,
            alive: entry.alive,
            heartbeat: entry.heartbeat,
        })
        .collect();
    tracker.record(&beats, now);
    let mut by_name: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for entry in entries {
        if !entry.scheduled_for_deletion {
            by_name.entry(entry.node.clone()).or_default().push(entry);
        }
    }
    let mut members = BTreeMap::new();
    let mut shadows = Vec::new();
    let mut live_shadows = BTreeMap::new();
    let mut shown_now = BTreeMap::new();
    for (name, mut gens) in by_name {
        let Some(pick) = choose(&name, me, &gens, tracker.shown.get(&name)) else {
            continue;
        };
        let shown = gens.swap_remove(pick);
        let heard = |e: &Entry| {
            e.is_self
                || (e.alive
                    && tracker
                        .last_heard(&e.node, e.generation, e.addr, now)
                        .is_some_and(|d| d < Duration::from_secs(1)))
        };
        let shown_heard = heard(&shown);
        for other in gens.iter().filter(|e| e.alive) {
            let key = (name.clone(), other.generation, other.addr);
            let first = tracker.shadows.get(&key).copied().unwrap_or(now);
            live_shadows.insert(key, first);
            shadows.push(Shadow {
                node: name.clone(),
                generation: other.generation,
                addr: other.addr,
                shown: shown.generation,
                shown_addr: shown.addr,
                shown_heard,
                since: now.saturating_duration_since(first),
            });
        }
        shown_now.insert(name.clone(), (shown.generation, shown.addr));
        let (last_heard, detection_timeout) = if shown.is_self {
            (Some(Duration::ZERO), None)
        } else {
            let heard = tracker.last_heard(&shown.node, shown.generation, shown.addr, now);
            (heard, shown.detection_timeout)
        };
        let member = MemberView {
            generation: shown.generation,
            addr: shown.addr,
            alive: shown.alive || shown.is_self,
            keys: shown.keys,
            version: shown.version,
            last_heard,
            detection_timeout,
        };
        members.insert(name, member);
    }
    tracker.shown = shown_now;
    tracker.shadows = live_shadows;
    ClusterView {
        me: me.to_string(),
        members,
        shadows,
    }
}

/// Returns the index in `gens` (the generations of `name`) of the one to show, given the one
/// shown before: this node's own entry for its own name; else the one shown before while it
/// is alive; else the oldest live one; else the newest.
fn choose(
    name: &str,
    me: &str,
    gens: &[Entry],
    before: Option<&(u64, SocketAddr)>,
) -> Option<usize> {
    if name == me {
        return gens.iter().position(|e| e.is_self);
    }
    let id = |e: &Entry| (e.generation, e.addr);
    if let Some(i) = gens.iter().position(|e| e.alive && Some(&id(e)) == before) {
        return Some(i);
    }
    let oldest_alive = gens
        .iter()
        .enumerate()
        .filter(|(_, e)| e.alive)
        .min_by_key(|(_, e)| id(e));
    oldest_alive
        .or_else(|| gens.iter().enumerate().max_by_key(|(_, e)| id(e)))
        .map(|(i, _)| i)
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
            keys: Arc::new(BTreeMap::from([("g".to_string(), generation.to_string())])),
            version: 1,
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
    fn a_live_member_is_never_hidden_by_a_higher_generation() {
        let mut tracker = HeartbeatTracker::default();
        let t0 = Instant::now();
        // b@10 heartbeats; then b@11 appears (say only in a digest), also "alive".
        let view = build("me", vec![me(5), entry("b", 10, true, 3)], &mut tracker, t0);
        assert_eq!(view.member("b").unwrap().generation, 10);
        let forged = || entry("b", 11, true, 1);
        let t1 = t0 + Duration::from_millis(100);
        let entries = vec![me(5), entry("b", 10, true, 4), forged()];
        let view = build("me", entries, &mut tracker, t1);
        let b = view.member("b").unwrap();
        assert_eq!((b.generation, b.alive), (10, true));
        assert_eq!(b.keys["g"], "10");
        assert_eq!(view.shadows.len(), 1);
        let shadow = &view.shadows[0];
        assert_eq!((shadow.generation, shadow.shown), (11, 10));
        assert!(shadow.shown_heard);
        // The same generation from another address does not hide it either.
        let mut moved = entry("b", 10, true, 9);
        moved.addr = "10.9.9.9:1".parse().unwrap();
        let t2 = t1 + Duration::from_millis(100);
        let entries = vec![me(5), entry("b", 10, true, 5), forged(), moved];
        let view = build("me", entries, &mut tracker, t2);
        assert_eq!(
            view.member("b").unwrap().addr,
            "127.0.0.1:1".parse().unwrap()
        );
        assert_eq!(view.shadows.len(), 2);
        assert!(view
            .shadows
            .iter()
            .any(|s| s.since == Duration::from_millis(100)));
    }

    #[test]
    fn a_restart_is_shown_once_the_old_generation_is_dead() {
        let mut tracker = HeartbeatTracker::default();
        let t0 = Instant::now();
        build("me", vec![me(5), entry("b", 10, true, 3)], &mut tracker, t0);
        // Killed: b@10 still alive for the failure detector, b@20 already heartbeats.
        let entries = vec![me(5), entry("b", 10, true, 3), entry("b", 20, true, 1)];
        let view = build(
            "me",
            entries,
            &mut tracker,
            t0 + Duration::from_millis(1500),
        );
        assert_eq!(view.member("b").unwrap().generation, 10);
        assert!(!view.shadows[0].shown_heard, "b@10 is silent: no conflict");
        let entries = vec![me(5), entry("b", 10, false, 3), entry("b", 20, true, 2)];
        let view = build("me", entries, &mut tracker, t0 + Duration::from_secs(2));
        assert_eq!(view.member("b").unwrap().generation, 20);
        assert!(view.shadows.is_empty());
        // Once shown, b@20 stays even if b@10 came back to life.
        let entries = vec![me(5), entry("b", 10, true, 4), entry("b", 20, true, 3)];
        let view = build("me", entries, &mut tracker, t0 + Duration::from_secs(3));
        assert_eq!(view.member("b").unwrap().generation, 20);
        // Nothing alive: the newest generation is shown.
        let entries = vec![me(5), entry("b", 10, false, 4), entry("b", 20, false, 3)];
        let view = build("me", entries, &mut tracker, t0 + Duration::from_secs(4));
        let b = view.member("b").unwrap();
        assert_eq!((b.generation, b.alive), (20, false));
        assert_eq!(view.alive().collect::<Vec<_>>(), vec!["me"]);
    }

    #[test]
    fn another_live_daemon_with_our_name_is_a_shadow() {
        let mut tracker = HeartbeatTracker::default();
        let view = build(
            "me",
            vec![entry("me", 3, true, 7), me(5)],
            &mut tracker,
            Instant::now(),
        );
        assert_eq!(view.member("me").unwrap().generation, 5);
        assert_eq!(view.shadows.len(), 1);
        assert_eq!((view.shadows[0].generation, view.shadows[0].shown), (3, 5));
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
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let beat = |generation, heartbeat| Beat {
            node: "b".to_string(),
            generation,
            addr,
            alive: true,
            heartbeat,
        };
        tracker.record(&[beat(1, 50), beat(2, 3)], t0);
        let t1 = t0 + Duration::from_millis(500);
        tracker.record(&[beat(1, 50), beat(2, 4)], t1);
        let t2 = t0 + Duration::from_millis(700);
        assert_eq!(
            tracker.last_heard("b", 1, addr, t2),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            tracker.last_heard("b", 2, addr, t2),
            Some(Duration::from_millis(200))
        );
        assert_eq!(tracker.last_heard("b", 3, addr, t2), None);
    }

    #[test]
    fn tracker_forgets_members_no_longer_listed() {
        let mut tracker = HeartbeatTracker::default();
        let now = Instant::now();
        build("me", vec![me(1), entry("b", 1, true, 7)], &mut tracker, now);
        let addr = "127.0.0.1:1".parse().unwrap();
        assert!(tracker.seen.contains_key(&("b".to_string(), 1, addr)));
        build("me", vec![me(1)], &mut tracker, now);
        assert!(tracker.seen.is_empty());
    }
}
