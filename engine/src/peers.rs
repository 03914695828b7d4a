//! The engine's memory of the other live members between two steps: who is alive, what each
//! one's claims hold, who holds each group, and the ranks that depend only on who is alive.
//! The view comes whole at every step; rebuilding all that from it (every member's held
//! groups, a map of every group's holders, a ranking of every member for every unplaced
//! group and every lost node) cost milliseconds per step at a thousand members. Here one walk
//! over the view finds what changed; the rest is only corrected for it. Pure, like the rest
//! of the engine.
//!
//! At that size a step is bound by memory, not by computation: the walk reads each member
//! of the view once, and what it compares with is laid out to be read in order (names end
//! to end, groups by number), since every separate allocation read at every step is a cache
//! miss.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::rank::{self, Placement, Weigher};
use super::{Claim, Member, View};

/// A member (not this node) that was alive at the last step, as it was then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Peer {
    /// Its generation.
    pub generation: u64,
    /// The groups its claims held: what it leaves behind if it dies.
    pub held: BTreeSet<String>,
    /// Its test-failure cooldowns: they keep it out of those groups' ranks.
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

/// One live member, as the walk compares it with the view.
#[derive(Debug, Clone)]
struct Entry {
    /// Where its name ends in [`Peers::names`].
    end: usize,
    /// Its generation.
    generation: u64,
    /// The groups its claims hold, as numbers in [`Peers::groups`], in group name order.
    held: Vec<usize>,
    /// Its test-failure cooldowns.
    cooldown: BTreeSet<String>,
}

/// How many live members rank before this node for one key (a group, under its placement
/// options, or the fencing of a lost node), kept up to date as members come and go.
#[derive(Debug, Clone, Copy)]
struct Count {
    /// The key's weigher.
    weigher: Weigher,
    /// This node's own weight for the key.
    mine: u64,
    /// This node's place in the key's preference list ([`Placement::preference`]; 0 without
    /// options).
    preference: usize,
    /// The members counted.
    before: usize,
}

impl Count {
    /// Returns the count of `key` (placed by `placement`) for node `me`, with nobody counted
    /// yet.
    fn new(key: &str, me: &str, placement: Option<&Placement>) -> Count {
        let weigher = Weigher::new(key);
        Count {
            weigher,
            mine: weigher.weight(me),
            preference: placement.map_or(0, |p| p.preference(me)),
            before: 0,
        }
    }

    /// Tells whether `node` ranks before `me` for the key placed by `placement` (the key's
    /// [`Count::new`] placement; rank::order_placed's order): a node it leaves out never does.
    fn outranks(&self, node: &str, me: &str, placement: Option<&Placement>) -> bool {
        let preference = match placement {
            None => 0,
            Some(p) if !p.allows(node) => return false,
            Some(p) => p.preference(node),
        };
        let w = self.weigher.weight(node);
        rank::key(preference, w, node) < rank::key(self.preference, self.mine, me)
    }

    /// Counts `node` in (`up`) or out.
    fn count(&mut self, node: &str, me: &str, placement: Option<&Placement>, up: bool) {
        if self.outranks(node, me, placement) {
            if up {
                self.before += 1;
            } else {
                self.before -= 1;
            }
        }
    }
}

/// The other live members, who holds what, and the ranks of this node among them.
#[derive(Debug, Clone, Default)]
pub(super) struct Peers {
    /// The names of the members (not this node) alive at the last step, end to end in name
    /// order: every step compares them all with the view's.
    names: String,
    /// Those members in the same order.
    alive: Vec<Entry>,
    /// Every group a member was seen holding, numbered in the order first seen.
    groups: Vec<String>,
    /// The numbers of `groups`, by name.
    numbers: BTreeMap<String, usize>,
    /// Per group number: the members holding it, as indices in `alive` (so in name order).
    holders: Vec<Vec<usize>>,
    /// Per group asked about: the live members not in cooldown for it that rank before us.
    ranks: BTreeMap<String, Count>,
    /// The placement options the kept `ranks` were counted with (the last step's view's).
    placement: BTreeMap<String, Placement>,
    /// Per lost node asked about: the live members that rank before us as its fencer.
    fence_ranks: BTreeMap<String, Count>,
}

impl Peers {
    /// Returns how many members (not this node) were alive at the last step.
    pub fn len(&self) -> usize {
        self.alive.len()
    }

    /// Returns the names of the members alive at the last step, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.alive.iter().map(move |e| {
            let name = &self.names[start..e.end];
            start = e.end;
            name
        })
    }

    /// Returns the name of the `i`th member alive at the last step.
    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.alive[i - 1].end };
        &self.names[start..self.alive[i].end]
    }

    /// Returns the members alive at the last step, in name order.
    fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.names().zip(&self.alive)
    }

    /// Tells whether a live member (not this node) holds `group`.
    pub fn held(&self, group: &str) -> bool {
        (self.numbers.get(group)).is_some_and(|&g| !self.holders[g].is_empty())
    }

    /// Tells, for each of `groups` (sorted), whether a live member holds it: one walk over
    /// both sorted lists rather than a lookup per group.
    pub fn held_each<'a>(&self, groups: impl Iterator<Item = &'a String>) -> Vec<bool> {
        let mut known = self.numbers.iter().peekable();
        groups
            .map(|group| {
                while known.next_if(|(g, _)| *g < group).is_some() {}
                (known.next_if(|(g, _)| *g == group))
                    .is_some_and(|(_, &g)| !self.holders[g].is_empty())
            })
            .collect()
    }

    /// Returns the live members holding `group`, in name order, with their claims in `view`.
    pub fn holders<'v>(&self, view: &'v View, group: &str) -> Vec<(&'v str, &'v Claim)> {
        let Some(&g) = self.numbers.get(group) else {
            return Vec::new();
        };
        self.holders[g]
            .iter()
            .filter_map(|&i| view.members.get_key_value(self.name(i)))
            .filter_map(|(n, m)| Some((n.as_str(), m.claims.get(group)?)))
            .collect()
    }

    /// Brings the live members up to date with `view` (as seen by `me`) and returns what
    /// changed.
    pub fn update(&mut self, me: &str, view: &View) -> Changes {
        // In passes, each a short loop over what the one before gathered: the view's pieces
        // lie all over memory, and a short loop lets the processor fetch many at once.
        let now: Vec<(&String, &Member)> = others(view, me).filter(|(_, m)| m.alive).collect();
        if self.placement != view.placement {
            // New options for a group reorder its rank: count it again when next asked for.
            let old = &self.placement;
            let new = &view.placement;
            let changed = (old.iter().filter(|(g, p)| new.get(*g) != Some(p)))
                .chain(new.iter().filter(|(g, p)| old.get(*g) != Some(p)));
            for (g, _) in changed {
                self.ranks.remove(g);
            }
            self.placement.clone_from(&view.placement);
        }
        // How many come in the same order on both sides: all of them, unless someone came
        // or went.
        let common = (now.iter().zip(self.names()))
            .take_while(|((n, _), name)| n.as_str() == *name)
            .count();
        let same = common == now.len() && common == self.alive.len();
        let mut changes = Changes::default();
        let mut reheld = !same;
        if !same {
            let (arrived, gone) = self.diff(&now, common);
            changes = self.rebuild(me, arrived, gone);
        }
        // The members alive now, in the same order on both sides.
        for (e, (_, m)) in self.alive.iter_mut().zip(&now) {
            e.generation = m.generation;
            if !same_groups(&self.groups, &e.held, m) {
                e.held = (holding(m))
                    .map(|g| number(&mut self.groups, &mut self.numbers, g))
                    .collect();
                reheld = true;
            }
            if e.cooldown != m.cooldown {
                // A cooldown moves the member in or out of one group's rank: count that
                // group again when it is next asked for.
                for g in e.cooldown.symmetric_difference(&m.cooldown) {
                    self.ranks.remove(g);
                }
                e.cooldown.clone_from(&m.cooldown);
            }
        }
        if reheld {
            self.index();
        }
        if cfg!(any(debug_assertions, feature = "self-check")) {
            self.check(me, view);
        }
        changes
    }

    /// Checks (in debug builds) that what is kept is what the view says, as rebuilt from
    /// scratch.
    fn check(&self, me: &str, view: &View) {
        let now: Vec<(&String, &Member)> = others(view, me).filter(|(_, m)| m.alive).collect();
        assert_eq!(self.placement, view.placement, "the placement options");
        assert!(self.names().eq(now.iter().map(|(n, _)| n.as_str())));
        for ((_, e), (n, m)) in self.iter().zip(&now) {
            let held: Vec<&String> = e.held.iter().map(|&g| &self.groups[g]).collect();
            assert!(held.into_iter().eq(holding(m)), "the groups {n} holds");
            assert_eq!((e.generation, &e.cooldown), (m.generation, &m.cooldown));
        }
        for (g, group) in self.groups.iter().enumerate() {
            let holders: Vec<&str> = self.holders[g].iter().map(|&i| self.name(i)).collect();
            let from_view: Vec<&str> = (now.iter())
                .filter(|(_, m)| m.claims.get(group).is_some_and(Claim::holds))
                .map(|(n, _)| n.as_str())
                .collect();
            assert_eq!(holders, from_view, "the holders of {group}");
        }
    }

    /// Returns the members of `now` (sorted) not alive at the last step, and the indices of
    /// those alive then and not now: one merge walk over both sorted lists, after the
    /// `common` first ones, the same on both sides.
    fn diff<'v>(
        &self,
        now: &[(&'v String, &'v Member)],
        common: usize,
    ) -> (Vec<(&'v String, &'v Member)>, Vec<usize>) {
        let mut arrived = Vec::new();
        let mut gone = Vec::new();
        // The first `common` are the same on both sides.
        let mut now = now[common..].iter().copied().peekable();
        for (i, name) in self.names().enumerate().skip(common) {
            let mut found = false;
            while let Some(&(n, m)) = now.peek() {
                match n.as_str().cmp(name) {
                    Ordering::Less => arrived.push((n, m)),
                    Ordering::Equal => found = true,
                    Ordering::Greater => break,
                }
                now.next();
                if found {
                    break;
                }
            }
            if !found {
                gone.push(i);
            }
        }
        arrived.extend(now);
        (arrived, gone)
    }

    /// Rebuilds the members in order with the `arrived` ones (sorted) in and the `gone` ones
    /// (indices, sorted) out, and counts them in or out of the ranks kept.
    fn rebuild(&mut self, me: &str, arrived: Vec<(&String, &Member)>, gone: Vec<usize>) -> Changes {
        let mut changes = Changes::default();
        let names = std::mem::take(&mut self.names);
        let old = std::mem::take(&mut self.alive);
        self.names.reserve(names.len());
        self.alive.reserve(old.len() + arrived.len());
        let mut arrived = arrived.into_iter().peekable();
        let mut gone = gone.into_iter().peekable();
        let mut start = 0;
        for (i, e) in old.into_iter().enumerate() {
            let name = &names[start..e.end];
            start = e.end;
            while let Some((n, m)) = arrived.next_if(|(n, _)| n.as_str() < name) {
                self.arrive(me, n, m);
                changes.arrived.push(n.clone());
            }
            if gone.next_if_eq(&i).is_some() {
                self.count(me, name, &e.cooldown, false);
                let held = e.held.iter().map(|&g| self.groups[g].clone()).collect();
                let peer = Peer {
                    generation: e.generation,
                    held,
                    cooldown: e.cooldown,
                };
                changes.departed.push((name.to_string(), peer));
            } else {
                self.push(name, e);
            }
        }
        for (n, m) in arrived {
            self.arrive(me, n, m);
            changes.arrived.push(n.clone());
        }
        changes
    }

    /// Appends member `name`, which came alive as `m`, and counts it in the ranks kept.
    fn arrive(&mut self, me: &str, name: &str, m: &Member) {
        let e = Entry {
            end: 0,
            generation: m.generation,
            held: (holding(m))
                .map(|g| number(&mut self.groups, &mut self.numbers, g))
                .collect(),
            cooldown: m.cooldown.clone(),
        };
        self.count(me, name, &e.cooldown, true);
        self.push(name, e);
    }

    /// Appends member `name` (the last in name order so far).
    fn push(&mut self, name: &str, e: Entry) {
        self.names.push_str(name);
        let end = self.names.len();
        self.alive.push(Entry { end, ..e });
    }

    /// Finds again who holds each group.
    fn index(&mut self) {
        self.holders.iter_mut().for_each(Vec::clear);
        self.holders.resize(self.groups.len(), Vec::new());
        for (i, e) in self.alive.iter().enumerate() {
            for &g in &e.held {
                self.holders[g].push(i);
            }
        }
    }

    /// Counts member `name` (with `cooldown`) in (`up`) or out of every rank kept.
    fn count(&mut self, me: &str, name: &str, cooldown: &BTreeSet<String>, up: bool) {
        for (g, c) in &mut self.ranks {
            if !cooldown.contains(g) {
                c.count(name, me, self.placement.get(g), up);
            }
        }
        for c in self.fence_ranks.values_mut() {
            c.count(name, me, None, up);
        }
    }

    /// Returns how many live members not in cooldown for `group`, and that its placement
    /// options allow, rank before `me` for it.
    pub fn rank(&mut self, me: &str, group: &str) -> usize {
        let c = match self.ranks.get(group) {
            Some(c) => *c,
            None => {
                let mut c = Count::new(group, me, self.placement.get(group));
                c.before = self.recount(me, group, &c);
                self.ranks.insert(group.to_string(), c);
                c
            }
        };
        debug_assert_eq!(
            c.before,
            self.recount(me, group, &c),
            "the kept rank of {me} for {group} matches a recount"
        );
        c.before
    }

    /// Tells whether `other` ranks before `me` for `group` (the order [`Peers::rank`] counts
    /// in, under the placement options of the last step).
    pub fn outranks(&self, group: &str, other: &str, me: &str) -> bool {
        let placement = self.placement.get(group);
        Count::new(group, me, placement).outranks(other, me, placement)
    }

    /// Counts from scratch the live members that `c` (the count of `group`) counts.
    fn recount(&self, me: &str, group: &str, c: &Count) -> usize {
        let placement = self.placement.get(group);
        (self.iter())
            .filter(|(n, e)| !e.cooldown.contains(group) && c.outranks(n, me, placement))
            .count()
    }

    /// Returns how many live members rank before `me` as the fencer of `node`.
    pub fn fence_rank(&mut self, me: &str, node: &str) -> usize {
        let c = match self.fence_ranks.get(node) {
            Some(c) => *c,
            None => {
                let mut c = Count::new(&format!("fence/{node}"), me, None);
                c.before = self.names().filter(|n| c.outranks(n, me, None)).count();
                self.fence_ranks.insert(node.to_string(), c);
                c
            }
        };
        debug_assert_eq!(
            c.before,
            self.names().filter(|n| c.outranks(n, me, None)).count(),
            "the kept fencing rank of {me} for {node} matches a recount"
        );
        c.before
    }

    /// Tells whether `other` ranks before `me` among the fencers of `node`.
    pub fn fence_outranks(&self, node: &str, other: &str, me: &str) -> bool {
        Count::new(&format!("fence/{node}"), me, None).outranks(other, me, None)
    }

    /// Stops keeping the fencing rank of `node` (it is back).
    pub fn forget_fence(&mut self, node: &str) {
        self.fence_ranks.remove(node);
    }
}

/// Returns every member of `view` but `me`, in name order (two range walks around `me`,
/// rather than a comparison with `me`'s name for every member).
pub(super) fn others<'a>(
    view: &'a View,
    me: &str,
) -> impl Iterator<Item = (&'a String, &'a Member)> {
    let before = (view.members).range::<str, _>((Bound::Unbounded, Bound::Excluded(me)));
    let after = (view.members).range::<str, _>((Bound::Excluded(me), Bound::Unbounded));
    before.chain(after)
}

/// Returns the groups that `m`'s claims hold, in order (what [`Member::held`] collects).
fn holding(m: &Member) -> impl Iterator<Item = &String> {
    m.claims
        .iter()
        .filter(|(_, c)| c.holds())
        .map(|(g, _): (&String, &Claim)| g)
}

/// Tells whether the groups numbered `held` (in `groups`) are exactly those `m` holds.
fn same_groups(groups: &[String], held: &[usize], m: &Member) -> bool {
    let mut now = holding(m);
    held.iter().all(|&g| now.next() == Some(&groups[g])) && now.next().is_none()
}

/// Returns the number of `group` in `groups`, numbering it if it was never seen.
fn number(groups: &mut Vec<String>, numbers: &mut BTreeMap<String, usize>, group: &str) -> usize {
    if let Some(&n) = numbers.get(group) {
        return n;
    }
    groups.push(group.to_string());
    numbers.insert(group.to_string(), groups.len() - 1);
    groups.len() - 1
}
