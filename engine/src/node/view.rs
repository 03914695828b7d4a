//! The node core's picture of the cluster, kept up to date from gossip key-values as they
//! change: each member's keys as published (only those the core reads, see
//! [`crate::keys`]), decoded once into the engine's [`View`], the best fencing record about
//! each node from every member's `x/` keys, the version of each replicated file that each
//! member announces, and the news (beat changes) of each member.
//! Work is proportional to what changed, not to the cluster's size.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;

use crate::claim::Claim;
use crate::fencing::{Policy, Record};
use crate::keys::{
    BEAT, BYE, CLAIM_PREFIX, CLEANUP_PREFIX, COOLDOWN_PREFIX, HANDOFF_PREFIX, MOVE_PREFIX,
    RECORD_PREFIX, SUCCESSOR_PREFIX,
};
use crate::{replica, Member, Millis, MoveRequest, View};

use super::files::Announced;
use super::keymap::KeyMap;

/// Tells whether the node core reads gossip key `key` (claims, cooldowns, records, beat,
/// bye, the version keys of replicated files); the chunks of replicated files are read by
/// the driver, from gossip, only when the core offers to adopt a version.
pub fn is_core_key(key: &str) -> bool {
    key == BEAT
        || key == BYE
        || key.starts_with(CLAIM_PREFIX)
        || key.starts_with(COOLDOWN_PREFIX)
        || key.starts_with(RECORD_PREFIX)
        || key.starts_with(MOVE_PREFIX)
        || key.starts_with(HANDOFF_PREFIX)
        || key.starts_with(SUCCESSOR_PREFIX)
        || key.starts_with(CLEANUP_PREFIX)
        || replica::file_of_version_key(key).is_some()
}

/// How each node is fenced: per node, with a default for the others (the fencetab's `*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fencing {
    /// The policy of nodes without one of their own (absent: unconfigured).
    pub default: Option<Policy>,
    /// The policy of each node named.
    pub nodes: BTreeMap<String, Policy>,
}

impl Fencing {
    /// Returns the policy of node `n` (`None`: unconfigured).
    pub fn of(&self, n: &str) -> Option<Policy> {
        self.nodes.get(n).or(self.default.as_ref()).copied()
    }
}

/// When news (a new beat) from a member last arrived.
#[derive(Debug, Clone, Default)]
struct News {
    /// `None`: it arrived since the last step, which stamps it.
    at: Option<Millis>,
}

/// What the core keeps of one member besides its entry in the view: its keys and its news,
/// in one map entry (every step walks them for every member, next to the view's members).
#[derive(Debug, Clone)]
struct Peer {
    /// Its name's first bytes: the walk of every step compares names without reading them.
    prefix: Prefix,
    /// Its keys that the core reads, as published.
    keys: KeyMap,
    /// Its news (`None`: none yet).
    news: Option<News>,
    /// Its news arrived since the last step.
    fresh: bool,
}

impl Peer {
    /// Returns the entry of member `name`, with nothing known yet.
    fn new(name: &str) -> Peer {
        Peer {
            prefix: Prefix::of(name),
            keys: KeyMap::default(),
            news: None,
            fresh: false,
        }
    }
}

/// The first 16 bytes of a name, zero-padded, big-endian in one integer: names whose
/// prefixes differ compare as these do (see [`cmp_names`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix(u128);

impl Prefix {
    fn of(name: &str) -> Prefix {
        let mut b = [0u8; 16];
        let n = name.len().min(16);
        b[..n].copy_from_slice(&name.as_bytes()[..n]);
        Prefix(u128::from_be_bytes(b))
    }
}

/// Compares `key` (of prefix `kp`) with `name` (of prefix `np`) as strings compare, reading
/// their bytes only when the prefixes and lengths cannot tell: at a thousand members each
/// key is a cache miss of its own.
fn cmp_names(key: &str, kp: Prefix, name: &str, np: Prefix) -> Ordering {
    match kp.0.cmp(&np.0) {
        // Equal in 16 bytes and no longer: the shorter one is a prefix of the other.
        Ordering::Equal if key.len() <= 16 && name.len() <= 16 => key.len().cmp(&name.len()),
        Ordering::Equal => key.cmp(name),
        o => o,
    }
}

/// What the core knows of the cluster (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    me: String,
    /// The engine's view; this node's own entry is kept by the core.
    pub view: View,
    /// Each member's keys and news: exactly the view's members (one walk pairs them).
    peers: BTreeMap<String, Peer>,
    /// Whether some member's news arrived since the last step (see [`Peer::fresh`]).
    fresh: bool,
    /// Every record about each node, by the member that published it, sorted by that member
    /// (most nodes are recorded by one member: a vector, not a B-tree node of eleven).
    records: BTreeMap<String, Vec<(String, Record)>>,
    fencing: Fencing,
    /// The version of each replicated file that each member announces.
    pub(super) announced: Announced,
    /// The instant of the last step.
    pub(super) now: Millis,
    /// The engine's news timeout (a member quiet that long no longer counts).
    pub(super) news_timeout: Millis,
}

impl Observed {
    /// Returns the picture of node `me` at `generation`, which knows only itself.
    pub fn new(me: &str, generation: u64, news_timeout: Millis) -> Observed {
        let mut o = Observed {
            me: me.to_string(),
            news_timeout,
            ..Observed::default()
        };
        let m = Member {
            alive: true,
            generation,
            ..Member::default()
        };
        o.view.members.insert(me.to_string(), m);
        o.peers.insert(me.to_string(), Peer::new(me));
        o
    }

    /// Rebuilds the maps kept per member (the view's members and the peers) from their
    /// sorted walks, which fills every B-tree leaf: maps filled one member at a time keep
    /// their leaves about two-thirds full (7.2 members of 11 per leaf, measured at a thousand
    /// members). What they hold, and its order, stay the same.
    pub fn compact(&mut self) {
        self.view.members = std::mem::take(&mut self.view.members).into_iter().collect();
        self.peers = std::mem::take(&mut self.peers).into_iter().collect();
        self.announced.compact();
    }

    /// Returns the keys member `name` published as this node knows them, with its generation.
    pub fn keys_of(&self, name: &str) -> Option<(u64, &KeyMap)> {
        let m = self.view.members.get(name)?;
        Some((m.generation, &self.peers.get(name)?.keys))
    }

    /// Notes that member `name` is (or is not) alive at `generation`; a generation other than
    /// the one known drops everything the old one published. Returns whether anything that
    /// matters to decisions changed.
    pub fn liveness(&mut self, name: &str, generation: u64, alive: bool) -> bool {
        if name == self.me {
            return false;
        }
        let policy = self.fencing.of(name);
        let known = self.view.members.get(name).map(|m| m.generation);
        if known != Some(generation) {
            let keys: Vec<String> = self
                .peers
                .get(name)
                .map(|p| p.keys.keys().map(str::to_string).collect())
                .unwrap_or_default();
            for k in keys {
                self.set_key(name, &k, None);
            }
            let m = Member {
                alive,
                generation,
                blank: true,
                ..Member::default()
            };
            self.view.members.insert(name.to_string(), m);
            let peer = (self.peers.entry(name.to_string())).or_insert_with(|| Peer::new(name));
            // A new generation is news (as it is to the daemon's view): its silence counts
            // from now.
            peer.news = Some(News::default());
            peer.fresh = true;
            self.fresh = true;
            match policy {
                Some(p) => self.view.policy.insert(name.to_string(), p),
                None => self.view.policy.remove(name),
            };
            return true;
        }
        let m = self.view.members.get_mut(name).expect("known member");
        let changed = m.alive != alive;
        m.alive = alive;
        changed
    }

    /// Applies changes of member `name`'s keys (at `generation`: changes for another one are
    /// ignored). Returns whether anything that matters to decisions changed.
    pub fn changes<'a>(
        &mut self,
        name: &str,
        generation: u64,
        changes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> bool {
        if self.view.members.get(name).map(|m| m.generation) != Some(generation) {
            return false;
        }
        let mut matters = false;
        for (k, v) in changes {
            if is_core_key(k) {
                matters |= self.set_key(name, k, v);
            }
        }
        matters
    }

    /// Applies the beats of many members, given in name order as (name, generation, beat):
    /// the same as [`Observed::changes`] with each one's beat alone, but in one walk over the
    /// sorted maps rather than several searches per member (a large cluster's every member
    /// beats between two steps of a node). Returns whether anything that matters to
    /// decisions changed.
    pub fn beats<'a>(&mut self, beats: impl IntoIterator<Item = (&'a str, u64, &'a str)>) -> bool {
        let (now, timeout) = (self.now, self.news_timeout);
        // The view's members and the peers have the same names: one walk over both, one
        // comparison of names per member.
        let mut both = paired(&mut self.view.members, &mut self.peers).peekable();
        let mut matters = false;
        let mut fresh = false;
        let mut last: Option<&str> = None;
        for (name, generation, beat) in beats {
            debug_assert!(last.is_none_or(|l| l < name), "beats in name order");
            last = Some(name);
            let Some((m, peer)) = next_named(&mut both, name) else {
                continue;
            };
            if m.generation != generation {
                continue;
            }
            if peer.keys.is(BEAT, Some(beat)) {
                continue;
            }
            peer.keys.set(BEAT, beat);
            // As `set_key` does with a beat.
            m.blank = false;
            match &mut peer.news {
                Some(news) => {
                    matters |= news.at.is_some_and(|t| now >= t + timeout);
                    news.at = None;
                }
                None => peer.news = Some(News::default()),
            }
            peer.fresh = true;
            fresh = true;
        }
        self.fresh |= fresh;
        matters
    }

    /// Replaces member `name`'s keys with `all` (the whole state gossip shows of it).
    pub fn replace(&mut self, name: &str, generation: u64, all: &BTreeMap<String, String>) -> bool {
        let Some(old) = self.peers.get(name).map(|p| &p.keys) else {
            return false;
        };
        let gone = (old.keys())
            .filter(|k| !all.contains_key(*k))
            .map(|k| (k.to_string(), None));
        let set = (all.iter())
            .filter(|(k, v)| is_core_key(k) && !old.is(k, Some(v)))
            .map(|(k, v)| (k.clone(), Some(v.clone())));
        let changes: Vec<(String, Option<String>)> = gone.chain(set).collect();
        self.changes(
            name,
            generation,
            changes.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
        )
    }

    /// Forgets member `name` (gossip forgot it).
    pub fn forget(&mut self, name: &str) -> bool {
        if name == self.me || !self.view.members.contains_key(name) {
            return false;
        }
        let keys: Vec<String> = self.peers[name].keys.keys().map(str::to_string).collect();
        for k in keys {
            self.set_key(name, &k, None);
        }
        self.view.members.remove(name);
        self.view.policy.remove(name);
        self.peers.remove(name);
        true
    }

    /// Sets (or deletes) one key of member `name`; returns whether it matters to decisions.
    pub(super) fn set_key(&mut self, name: &str, key: &str, value: Option<&str>) -> bool {
        let Some(keys) = self.peers.get_mut(name).map(|p| &mut p.keys) else {
            return false;
        };
        if keys.is(key, value) {
            return false;
        }
        match value {
            Some(v) => keys.set(key, v),
            None => drop(keys.remove(key)),
        }
        let now = self.now;
        let timeout = self.news_timeout;
        let Some(m) = self.view.members.get_mut(name) else {
            return false;
        };
        if key == BEAT {
            // Known from heartbeats only until its beat arrives.
            m.blank = value.is_none();
            let peer = self.peers.get_mut(name).expect("a member has a peer entry");
            let news = peer.news.get_or_insert_with(News::default);
            // News after a silence long enough to have dropped the member from quorum is a
            // change that matters; a beat that keeps coming is not.
            let was_quiet = news.at.is_some_and(|t| now >= t + timeout);
            news.at = None;
            peer.fresh = true;
            self.fresh = true;
            return was_quiet;
        }
        if key == BYE {
            m.left = value.is_some();
            return true;
        }
        if let Some(g) = key.strip_prefix(CLAIM_PREFIX) {
            let new = value.and_then(Claim::decode);
            // Another node's claim matters only through whether it holds, leaves, and its
            // phase: a state change alone (STARTING to DONE) decides nothing.
            let sig = |c: Option<&Claim>| c.map(|c| (c.holds(), c.leaving(), c.phase()));
            let same = sig(m.claims.get(g)) == sig(new.as_ref());
            match new {
                Some(c) => m.claims.insert(g.to_string(), c),
                None => m.claims.remove(g),
            };
            return !same;
        }
        if let Some(g) = key.strip_prefix(COOLDOWN_PREFIX) {
            let fatal = value == Some(crate::keys::FATAL);
            let changed = if fatal {
                m.fatal.insert(g.to_string())
            } else {
                m.fatal.remove(g)
            };
            return changed
                | if value.is_some() {
                    m.cooldown.insert(g.to_string())
                } else {
                    m.cooldown.remove(g)
                };
        }
        if let Some(g) = key.strip_prefix(CLEANUP_PREFIX) {
            let new = value.and_then(crate::CleanupRequest::decode);
            let old = match new.clone() {
                Some(r) => m.cleanups.insert(g.to_string(), r),
                None => m.cleanups.remove(g),
            };
            return old != new;
        }
        if let Some(g) = key.strip_prefix(MOVE_PREFIX) {
            let new = value.and_then(MoveRequest::decode);
            let old = match new.clone() {
                Some(r) => m.moves.insert(g.to_string(), r),
                None => m.moves.remove(g),
            };
            return old != new;
        }
        if let Some(g) = key.strip_prefix(HANDOFF_PREFIX) {
            // One node name.
            let new = value.filter(|v| !v.is_empty() && !v.contains(' '));
            let old = match new {
                Some(to) => m.handoffs.insert(g.to_string(), to.to_string()),
                None => m.handoffs.remove(g),
            };
            return old.as_deref() != new;
        }
        if let Some(g) = key.strip_prefix(SUCCESSOR_PREFIX) {
            return if value.is_some() {
                m.successor.insert(g.to_string())
            } else {
                m.successor.remove(g)
            };
        }
        if let Some(file) = replica::file_of_version_key(key) {
            return (self.announced).set(file, name, value.and_then(replica::announced_version));
        }
        if let Some(victim) = key.strip_prefix(RECORD_PREFIX) {
            let by = self.records.entry(victim.to_string()).or_default();
            let at = by.binary_search_by(|(b, _)| b.as_str().cmp(name));
            match (value.and_then(Record::decode), at) {
                (Some(r), Ok(i)) => by[i].1 = r,
                (Some(r), Err(i)) => by.insert(i, (name.to_string(), r)),
                (None, Ok(i)) => drop(by.remove(i)),
                (None, Err(_)) => {}
            }
            let best = best_record(by.iter().map(|(_, r)| r)).cloned();
            let changed = self.view.records.get(victim) != best.as_ref();
            match best {
                Some(r) => self.view.records.insert(victim.to_string(), r),
                None => {
                    self.records.remove(victim);
                    self.view.records.remove(victim)
                }
            };
            return changed;
        }
        false
    }

    /// Replaces how nodes are fenced; returns whether that changed anything.
    pub fn set_fencing(&mut self, fencing: Fencing) -> bool {
        if fencing == self.fencing {
            return false;
        }
        self.fencing = fencing;
        let policy: BTreeMap<String, Policy> = (self.view.members.keys())
            .filter_map(|n| Some((n.clone(), self.fencing.of(n)?)))
            .collect();
        self.view.policy = policy;
        true
    }

    /// Stamps the news that arrived since the last step with `now`, and tells the engine's
    /// members when news from each last arrived: one walk over the view's members and the
    /// peers together (at a thousand members, nearly all are fresh at every step).
    pub(super) fn stamp_news(&mut self, now: Millis) {
        self.now = now;
        if !std::mem::take(&mut self.fresh) {
            return;
        }
        for (_, (m, peer)) in paired(&mut self.view.members, &mut self.peers) {
            if std::mem::take(&mut peer.fresh) {
                if let Some(news) = &mut peer.news {
                    news.at = Some(now);
                }
                m.quiet_since = Some(now);
            }
        }
    }

    /// After a freeze: the silence of every member during it is not held against them.
    pub(super) fn forgive_silence(&mut self, now: Millis) {
        for (_, (m, peer)) in paired(&mut self.view.members, &mut self.peers) {
            if let Some(news) = &mut peer.news {
                news.at = Some(now);
                m.quiet_since = Some(now);
            }
        }
    }

    /// Returns when news from member `name` last arrived (`None`: unknown, or since the
    /// last step).
    pub fn news_at(&self, name: &str) -> Option<Millis> {
        (self.peers.get(name)?.news.as_ref()).and_then(|n| n.at)
    }
}

/// Returns the record that [`crate::fencing::reduce`] keeps of `records` (about one victim,
/// in this order), without copying the others: the first of the newest generation and the
/// safest outcome ([`Record::better`] keeps the one it has unless the other is above it). At
/// a thousand nodes a partition's victims are each recorded by many members.
fn best_record<'r>(records: impl Iterator<Item = &'r Record>) -> Option<&'r Record> {
    records.fold(None, |best, r| match best {
        Some(b) if (r.generation, r.outcome) <= (b.generation, b.outcome) => Some(b),
        _ => Some(r),
    })
}

impl super::Node {
    /// Returns how many entries the core's maps and its engine's hold, by name: a
    /// diagnostic for the simulator's memory reports; decides nothing.
    pub fn sizes(&self) -> Vec<(&'static str, usize)> {
        let o = &self.observed;
        let claims = o.view.members.values().map(|m| m.claims.len()).sum();
        let keys = o.peers.values().map(|p| p.keys.len()).sum();
        let records = o.records.values().map(Vec::len).sum();
        let record_keys = (o.peers.values())
            .map(|p| {
                p.keys
                    .keys()
                    .filter(|k| k.starts_with(RECORD_PREFIX))
                    .count()
            })
            .sum();
        let mut sizes = vec![
            ("members", o.view.members.len()),
            ("claims", claims),
            ("keys", keys),
            ("keys.records", record_keys),
            ("records", records),
            ("view.records", o.view.records.len()),
        ];
        sizes.extend(self.engine.sizes());
        sizes
    }

    /// Packs the core's maps of members tighter (see [`Observed::compact`]); decides nothing.
    /// A daemon's one core has no need of it; the simulator holds a thousand.
    pub fn compact(&mut self) {
        self.observed.compact();
        self.engine.compact();
    }
}

/// Returns every member of the view with its peer entry, in name order: the two maps hold
/// the same names (`Observed::new`, `liveness` and `forget` add and remove both).
fn paired<'m>(
    members: &'m mut BTreeMap<String, Member>,
    peers: &'m mut BTreeMap<String, Peer>,
) -> impl Iterator<Item = (&'m String, (&'m mut Member, &'m mut Peer))> {
    debug_assert!(members.keys().eq(peers.keys()), "members and peers differ");
    (members.iter_mut())
        .zip(peers.iter_mut())
        .map(|((name, m), (_, p))| (name, (m, p)))
}

/// Advances `it`, a walk over the members and peers sorted by name, past the names before
/// `name`, and returns the entry of `name` if there is one (the walk stays before the next
/// name otherwise).
fn next_named<'m>(
    it: &mut Peekable<impl Iterator<Item = (&'m String, (&'m mut Member, &'m mut Peer))>>,
    name: &str,
) -> Option<(&'m mut Member, &'m mut Peer)> {
    // One comparison per entry passed, of prefixes mostly: names are compared as they are read.
    let np = Prefix::of(name);
    while let Some((n, (_, p))) = it.peek() {
        match cmp_names(n, p.prefix, name, np) {
            Ordering::Less => it.next(),
            Ordering::Equal => return it.next().map(|(_, mp)| mp),
            Ordering::Greater => return None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picture of `me` with members a..f in assorted states: alive or not, one never beating,
    /// one quiet for longer than the news timeout, one already fresh.
    fn picture() -> Observed {
        let mut o = Observed::new("c", 1, 700);
        o.stamp_news(1_000);
        for (i, n) in ["a", "b", "d", "e", "f", "g"].iter().enumerate() {
            o.liveness(n, 10 + i as u64, true);
        }
        o.stamp_news(1_100);
        o.changes("a", 10, [(BEAT, Some("4"))]);
        o.changes("b", 11, [(BEAT, Some("4")), ("g/g1", Some("start DONE"))]);
        o.changes("e", 13, [(BEAT, Some("4"))]);
        o.stamp_news(1_200);
        o.changes("f", 14, [(BEAT, Some("5"))]);
        o.now = 3_000;
        o
    }

    /// Names compare by their prefixes as strings do: short and long, equal to 16 bytes,
    /// with zero bytes.
    #[test]
    fn names_compare_by_prefix_as_strings_do() {
        let names = [
            "",
            "a",
            "a\0",
            "a\0\0",
            "ab",
            "b",
            "n1",
            "n10",
            "n100",
            "n2",
            "n999",
            "node-0123456789a",
            "node-0123456789ab",
            "node-0123456789b",
            "node-0123456789",
            "node-0123456789abc",
            "node-0123456789ab\0",
            "\u{e9}t\u{e9}",
            "zzzzzzzzzzzzzzzzzzzz",
        ];
        for a in names {
            for b in names {
                let (pa, pb) = (Prefix::of(a), Prefix::of(b));
                assert_eq!(cmp_names(a, pa, b, pb), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    /// The best record is the one `fencing::reduce` keeps, ties included.
    #[test]
    fn the_best_record_is_the_reduced_one() {
        use crate::fencing::Outcome;
        let r = |generation, outcome, by: &str| Record {
            generation,
            outcome,
            by: by.to_string(),
            detail: String::new(),
        };
        let all = [
            r(3, Outcome::Failed, "a"),
            r(3, Outcome::Fenced, "b"),
            r(3, Outcome::Fenced, "c"),
            r(2, Outcome::Acked, "d"),
            r(3, Outcome::Acked, "e"),
            r(3, Outcome::Acked, "f"),
            r(4, Outcome::Failed, "g"),
        ];
        for n in 0..=all.len() {
            for skip in 0..all.len() {
                let some: Vec<&Record> = (all[..n].iter().enumerate())
                    .filter(|(i, _)| *i != skip)
                    .map(|(_, r)| r)
                    .collect();
                let reduced = crate::fencing::reduce(some.iter().map(|r| ("v", (*r).clone())));
                let best = best_record(some.iter().copied());
                assert_eq!(best, reduced.get("v"), "{n} {skip}");
            }
        }
    }

    /// Many beats at once change the picture exactly as one change per member does.
    #[test]
    fn beats_at_once_are_beats_one_by_one() {
        let beats = [
            ("a", 10, "9"),
            ("b", 11, "4"),
            ("c", 1, "9"),
            ("d", 12, "9"),
            ("e", 99, "9"),
            ("f", 14, "9"),
            ("h", 1, "9"),
        ];
        let mut one = picture();
        let mut matters = false;
        for (n, g, b) in beats {
            matters |= one.changes(n, g, [(BEAT, Some(b))]);
        }
        let mut all = picture();
        assert_eq!(all.beats(beats), matters);
        assert!(
            matters,
            "a member quiet past the news timeout is news that matters"
        );
        assert_eq!(format!("{all:?}"), format!("{one:?}"));
        assert!(all.peers.values().filter(|p| p.fresh).count() > 2);
        one.stamp_news(3_050);
        all.stamp_news(3_050);
        assert_eq!(format!("{all:?}"), format!("{one:?}"));
        // With nothing fresh before them.
        let mut fresh = picture();
        fresh.stamp_news(3_000);
        let mut walked = fresh.clone();
        for (n, g, b) in beats {
            fresh.changes(n, g, [(BEAT, Some(b))]);
        }
        walked.beats(beats);
        assert_eq!(format!("{walked:?}"), format!("{fresh:?}"));
    }
}
