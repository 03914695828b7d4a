//! The engine's memory of the other live members between two steps, and the ranks that
//! depend only on who is alive. The view comes whole at every step; rebuilding from it every
//! member's held groups, and ranking every member for every unplaced group and every lost
//! node, cost milliseconds per step at a thousand members. Here one walk over the view finds
//! what changed, and the ranks asked for before are only corrected for the members that came
//! or went. Pure, like the rest of the engine.

use std::collections::{BTreeMap, BTreeSet};

use super::rank::Weigher;
use super::{Claim, Member, View};

/// What the engine remembers of one live member (not itself) from the last step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Peer {
    /// Its generation when last seen alive.
    pub generation: u64,
    /// The groups its claims held when last seen alive: what it leaves behind if it dies.
    pub held: BTreeSet<String>,
    /// Its test-failure cooldowns as last seen: they keep it out of those groups' ranks.
    pub cooldown: BTreeSet<String>,
}

/// How the live membership changed since the last step, both lists sorted by name.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Members alive now that were not at the last step.
    pub arrived: Vec<String>,
    /// Members alive at the last step that are not now, as they were last seen.
    pub departed: Vec<(String, Peer)>,
}

impl Changes {
    /// Tells whether `name` was alive at the last step and is not now.
    pub fn departed(&self, name: &str) -> bool {
        self.departed
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .is_ok()
    }
}

/// How many live members rank before this node for one key (a group, or the fencing of a
/// lost node), kept up to date as members come and go.
#[derive(Debug, Clone, Copy)]
struct Count {
    /// The key's weigher.
    weigher: Weigher,
    /// This node's own weight for the key.
    mine: u64,
    /// The members counted.
    before: usize,
}

impl Count {
    /// Returns the count of `key` for node `me`, with nobody counted yet.
    fn new(key: &str, me: &str) -> Count {
        let weigher = Weigher::new(key);
        Count {
            weigher,
            mine: weigher.weight(me),
            before: 0,
        }
    }

    /// Tells whether `node` ranks before `me` for the key (rank::order's order).
    fn outranks(&self, node: &str, me: &str) -> bool {
        let w = self.weigher.weight(node);
        w > self.mine || (w == self.mine && node < me)
    }

    /// Counts `node` in (`up`) or out.
    fn count(&mut self, node: &str, me: &str, up: bool) {
        if self.outranks(node, me) {
            if up {
                self.before += 1;
            } else {
                self.before -= 1;
            }
        }
    }
}

/// The other live members and the ranks of this node among them.
#[derive(Debug, Clone, Default)]
pub(super) struct Peers {
    /// Members (not this node) seen alive at the last step.
    pub alive: BTreeMap<String, Peer>,
    /// Per group asked about: the live members not in cooldown for it that rank before us.
    ranks: BTreeMap<String, Count>,
    /// Per lost node asked about: the live members that rank before us as its fencer.
    fence_ranks: BTreeMap<String, Count>,
}

impl Peers {
    /// Brings the live members up to date with `view` (as seen by `me`) and returns what
    /// changed.
    pub fn update(&mut self, me: &str, view: &View) -> Changes {
        let mut changes = Changes::default();
        let mut arrived: Vec<(&String, &Member)> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        let mut now = view
            .members
            .iter()
            .filter(|(n, m)| m.alive && n.as_str() != me)
            .peekable();
        // Both sides are sorted by name: one merge walk, no lookup.
        for (name, peer) in self.alive.iter_mut() {
            while let Some(a) = now.next_if(|(n, _)| n.as_str() < name.as_str()) {
                arrived.push(a);
            }
            let Some((_, m)) = now.next_if(|(n, _)| *n == name) else {
                gone.push(name.clone());
                continue;
            };
            peer.generation = m.generation;
            if !peer.held.iter().eq(holding(m)) {
                peer.held = holding(m).cloned().collect();
            }
            if peer.cooldown != m.cooldown {
                // A cooldown moves the member in or out of one group's rank: count that
                // group again when it is next asked for.
                for g in peer.cooldown.symmetric_difference(&m.cooldown) {
                    self.ranks.remove(g);
                }
                peer.cooldown.clone_from(&m.cooldown);
            }
        }
        arrived.extend(now);
        for name in gone {
            if let Some(peer) = self.alive.remove(&name) {
                self.count(me, &name, &peer, false);
                changes.departed.push((name, peer));
            }
        }
        for (name, m) in arrived {
            let peer = Peer {
                generation: m.generation,
                held: holding(m).cloned().collect(),
                cooldown: m.cooldown.clone(),
            };
            self.count(me, name, &peer, true);
            self.alive.insert(name.clone(), peer);
            changes.arrived.push(name.clone());
        }
        changes
    }

    /// Counts member `name` in (`up`) or out of every rank kept.
    fn count(&mut self, me: &str, name: &str, peer: &Peer, up: bool) {
        for (g, c) in &mut self.ranks {
            if !peer.cooldown.contains(g) {
                c.count(name, me, up);
            }
        }
        for c in self.fence_ranks.values_mut() {
            c.count(name, me, up);
        }
    }

    /// Returns how many live members not in cooldown for `group` rank before `me` for it.
    pub fn rank(&mut self, me: &str, group: &str) -> usize {
        let c = match self.ranks.get(group) {
            Some(c) => *c,
            None => {
                let mut c = Count::new(group, me);
                c.before = self
                    .alive
                    .iter()
                    .filter(|(n, p)| !p.cooldown.contains(group) && c.outranks(n, me))
                    .count();
                self.ranks.insert(group.to_string(), c);
                c
            }
        };
        debug_assert_eq!(
            c.before,
            self.alive
                .iter()
                .filter(|(n, p)| !p.cooldown.contains(group) && c.outranks(n, me))
                .count(),
            "the kept rank of {me} for {group} matches a recount"
        );
        c.before
    }

    /// Returns how many live members rank before `me` as the fencer of `node`.
    pub fn fence_rank(&mut self, me: &str, node: &str) -> usize {
        let c = match self.fence_ranks.get(node) {
            Some(c) => *c,
            None => {
                let mut c = Count::new(&format!("fence/{node}"), me);
                c.before = self.alive.keys().filter(|n| c.outranks(n, me)).count();
                self.fence_ranks.insert(node.to_string(), c);
                c
            }
        };
        debug_assert_eq!(
            c.before,
            self.alive.keys().filter(|n| c.outranks(n, me)).count(),
            "the kept fencing rank of {me} for {node} matches a recount"
        );
        c.before
    }

    /// Stops keeping the fencing rank of `node` (it is back).
    pub fn forget_fence(&mut self, node: &str) {
        self.fence_ranks.remove(node);
    }
}

/// Returns the groups that `m`'s claims hold, in order (what [`Member::held`] collects).
fn holding(m: &Member) -> impl Iterator<Item = &String> {
    m.claims
        .iter()
        .filter(|(_, c)| c.holds())
        .map(|(g, _): (&String, &Claim)| g)
}
