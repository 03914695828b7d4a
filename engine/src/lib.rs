//! The decision engine: where each group runs, decided by every node alone from what gossip
//! told it, with no leader. Pure: no clock, no I/O, no tokio; time and observations come in as
//! arguments, decisions go out as [`Action`]s, randomness comes from the RNG handed in. The
//! [`node`] module wraps it in the node core that the daemon and the simulator both drive:
//! gossip key-values and local observations in, one `Ready` out; [`replica`] encodes the
//! replicated files (`cltab`, `hactl`, `fencetab`) and their versions as gossip keys.
//!
//! Per group, the OpenMosix::HA lifecycle `plan → test → start` (the hactl level), with:
//! - **rank instead of dice**: the candidates (live nodes of a quorate view that are not in a
//!   test-failure cooldown for the group, and that its `only=` option allows) are ordered by
//!   its `prefer=` list, then by rendezvous hashing ([`Placement`]); the node ranked `r`
//!   waits `r × slot` (plus jitter inside its slot) after it sees the group unplaced, and plans
//!   only if nobody claimed it meanwhile;
//! - **plan window**: a node moves from `plan` to `test`, and from `test` to the wanted level,
//!   only while no other live node holds the group, and leaves `plan` no sooner than
//!   `plan_window` after reaching it; on seeing another claim, the claim of lower priority
//!   (earlier phase, then lower weight) yields: it stops and backs off. Priorities are a total
//!   order computed alike everywhere, so exactly one side yields;
//! - **test cooldown**: a failed test is published; no node in cooldown for a group is a
//!   candidate for it;
//! - **quorum**: quorate when live members > half the expected membership (every member ever
//!   seen); without quorum a node stops its groups and plans nothing. A member counts only
//!   while news from it arrives (see [`Member::quiet_since`]): a node whose outgoing packets
//!   are lost still hears everyone's heartbeats, but gets no new state, and must not count
//!   them (found by the simulator);
//! - **lost owners**: a node that dies while holding groups (or of which nothing is known) is
//!   remembered, and its groups are not recovered before it is fenced (see [`fencing`]).
//!
//! This file holds the types and [`Engine::step`], the loop over groups; `membership.rs`
//! tracks members, losses and quorum; `placement.rs` decides per group (holder, candidate,
//! cooldowns); `peers.rs` keeps live members, holders and ranks between steps.

pub mod admin;
pub mod claim;
pub mod cleanup;
mod config;
mod event;
pub mod fencing;
pub mod keys;
mod membership;
pub mod moves;
pub mod node;
mod peers;
mod placement;
pub mod rank;
pub mod replica;
pub mod successor;
pub mod vecmap;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fencing;
#[cfg(test)]
mod tests_news;
#[cfg(test)]
mod tests_placement;
#[cfg(test)]
mod tests_successor;

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;

pub use admin::Admin;
pub use claim::{Claim, State, PLAN, STOP, TEST};
pub use cleanup::CleanupRequest;
pub use config::{Config, BEAT, FAST_BEAT, MAX_SLOT, PLAN_MARGIN, PLAN_SHORTFALL, TICK};
pub use event::Event;
pub use fencing::{FenceState, Outcome, Policy, Record};
pub use moves::MoveRequest;
pub use rank::Placement;
pub use vecmap::VecMap;

/// Time in the engine: milliseconds on the caller's monotonic clock.
pub type Millis = u64;

pub use keys::{CLAIM_PREFIX, COOLDOWN_PREFIX};

/// What this node knows of one member (itself included).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    /// Whether the failure detector considers it alive (always true for this node).
    pub alive: bool,
    /// Its generation: a new one at every start of its daemon.
    pub generation: u64,
    /// Its claims, by group. For this node: the local supervisor's status.
    pub claims: VecMap<Claim>,
    /// Groups that recently failed on it (a test, restarts used up, an agent's failure).
    pub cooldown: BTreeSet<String>,
    /// Groups an agent of which failed fatally on it (OCF 6): no node starts them until an
    /// operator's cleanup.
    pub fatal: BTreeSet<String>,
    /// True when it announced a clean shutdown (it holds nothing and needs no fencing).
    pub left: bool,
    /// When new state from it last arrived, on this node's clock (`None`: it arrives as it
    /// should). Gossip can keep a member alive from its heartbeats alone, which peers relay
    /// even when none of *our* packets get out: then no new state reaches us either, because
    /// gossip sends state only in answer to our messages. A member without news for
    /// `news_timeout` does not count for quorum.
    pub quiet_since: Option<Millis>,
    /// None of its state ever reached us (not even its beat): it is known from heartbeats
    /// only. If it dies, what it held is unknown.
    pub blank: bool,
    /// Its operators' requests to move groups, by group (see [`moves`]).
    pub moves: BTreeMap<String, MoveRequest>,
    /// The groups it stopped to hand to another node, with that node (see [`moves`]).
    pub handoffs: BTreeMap<String, String>,
    /// Its operators' requests to clear groups' failures, by group (see [`cleanup`]).
    pub cleanups: BTreeMap<String, CleanupRequest>,
    /// The groups it stands ready to take at once if their holder dies (see [`successor`]).
    pub successor: BTreeSet<String>,
}

impl Member {
    /// Returns the groups its claims hold.
    pub fn held(&self) -> BTreeSet<String> {
        self.claims
            .iter()
            .filter(|(_, c)| c.holds())
            .map(|(g, _)| g.clone())
            .collect()
    }
}

/// Everything the engine is told at a step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// Every member known, by name, this node included.
    pub members: BTreeMap<String, Member>,
    /// Every group of cltab, with the level hactl wants (`stop` when hactl does not name it).
    pub want: BTreeMap<String, String>,
    /// How each node is fenced, per the fencing table (absent: unconfigured).
    pub policy: BTreeMap<String, Policy>,
    /// The best fencing record about each node, from every member's `x/` keys.
    pub records: BTreeMap<String, Record>,
    /// The placement options of the groups that have some (hactl's `prefer=`, `only=`).
    pub placement: BTreeMap<String, Placement>,
    /// The operators' standing orders: standby nodes, frozen groups, maintenance (see
    /// [`admin`]). The standby nodes are also folded into `placement`.
    pub admin: Admin,
}

/// A decision for the daemon to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Tells the local supervisor to take `group` to `level`.
    Tell { group: String, level: String },
    /// Sets (`Some`) or deletes (`None`) one of this node's gossip keys.
    Publish { key: String, value: Option<String> },
    /// The expected membership changed; persist it.
    Members(BTreeSet<String>),
    /// Runs the fence levels for `node` (lost at `generation`); report with
    /// [`Engine::fence_result`].
    Fence { node: String, generation: u64 },
    /// Stops the fencing of `node` that this node runs (quorum was lost, or the node was
    /// acknowledged or fenced by someone else meanwhile); no result is expected.
    CancelFence { node: String },
    /// Forget the restarts of `group` here, and why it last failed (an operator's cleanup,
    /// see [`cleanup`]).
    Cleared { group: String },
    /// Reports an event.
    Event(Event),
}

/// What the engine remembers about one group between steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GroupMemory {
    /// When this node first saw the group wanted and held nowhere.
    need_since: Option<Millis>,
    /// Jitter inside this node's slot, drawn when `need_since` was set.
    jitter: Millis,
    /// When this node's claim settled at `plan`.
    planned_at: Option<Millis>,
    /// Until when this node does not plan the group (after yielding).
    hold_off_until: Millis,
    /// This node planned the group because its holder handed it here (see [`moves`]): no
    /// plan window.
    handed: bool,
}

/// Where a group this node does not hold stands, for [`Engine::step_candidate`].
#[derive(Debug, Clone, Copy)]
struct Candidate<'v> {
    /// Our start-up wait (or the quiet after a member came alive) is over.
    ready: bool,
    /// A lost node held it and is not fenced yet (the recovery gate).
    gated: bool,
    /// Another live node holds it.
    held: bool,
    /// Whether a hand-off names this node, or another, for it.
    handed: moves::Handed,
    /// Its `only=` option leaves this node out.
    barred: bool,
    /// The one other live node that runs it at its wanted level, if so.
    holder: Option<&'v str>,
    /// The other live nodes that stand as its successor (see [`successor`]).
    rivals: &'v [&'v str],
}

/// A member that stopped being alive without a clean shutdown, or that this daemon never
/// heard at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// The generation that was lost (0: unknown).
    pub generation: u64,
    /// The groups it held when last seen alive and that run nowhere else yet.
    pub held: BTreeSet<String>,
    /// What it held is not known: this daemon has had no word from it, nor of it, since it
    /// started; or it was lost with a stale or blank view; or this node regained quorum
    /// since it was lost (the majority may have given it groups meanwhile). It may run any
    /// group, so no group that runs nowhere in sight is recovered before it is fenced
    /// (Pacemaker's startup-fencing).
    pub unknown: bool,
    /// When it was found lost.
    pub since: Millis,
    /// Where its fencing stands.
    pub fence: FenceState,
    /// This node's own fencing passes on it.
    pub attempts: fencing::Attempts,
    /// It is alive, but a resource's stop failed there (see [`State::StopFailed`]): it may
    /// still hold the group, and is fenced like a lost node; the loss ends when its stop
    /// succeeds after all (an operator's cleanup) or when it dies (fenced).
    pub blocked: bool,
}

impl Lost {
    /// Returns a loss found at `since`, with nothing fenced or tried yet.
    fn new(generation: u64, held: BTreeSet<String>, since: Millis) -> Lost {
        Lost {
            generation,
            held,
            unknown: false,
            since,
            fence: FenceState::Pending,
            attempts: fencing::Attempts::default(),
            blocked: false,
        }
    }

    /// Tells whether recovering `group` must wait for this node's fencing.
    pub fn gates(&self, group: &str) -> bool {
        (self.unknown || self.held.contains(group)) && !self.fence.gate_open()
    }
}

/// The engine of one node.
#[derive(Debug, Clone)]
pub struct Engine {
    me: String,
    cfg: Config,
    started: Option<Millis>,
    expected: BTreeSet<String>,
    quorate: Option<bool>,
    /// Whether this node has waited for quorum since it started, without having had it.
    waiting: bool,
    /// What it remembers per group, sorted by group (walked along with the wanted groups,
    /// never searched).
    groups: Vec<(String, GroupMemory)>,
    /// This node's test-failure cooldowns: group → until.
    cooldown: BTreeMap<String, Millis>,
    /// Members seen alive at the last step, with the groups they held, and the ranks that
    /// depend on them.
    peers: peers::Peers,
    /// The expected membership was replaced since the last step: every live member must be
    /// added again, not only those that just came alive.
    expected_replaced: bool,
    /// Members lost without a clean shutdown, until they are back.
    lost: BTreeMap<String, Lost>,
    /// Fencing records this node published.
    own_records: BTreeMap<String, Record>,
    /// The best record known about each node at the last step.
    best_records: BTreeMap<String, Record>,
    /// Records that were in force when their node came back alive: they speak of an earlier
    /// loss and never open the gate again.
    obsolete: BTreeMap<String, Vec<Record>>,
    /// The earliest instant at which the last step was waiting for something.
    wake: Option<Millis>,
    /// No planning before this: a member just came alive (joined, restarted, or back from a
    /// partition) and its claims may still be on their way, as at start-up.
    quiet_until: Millis,
    /// When each member last came alive: until `startup_wait` later its claims may be stale
    /// (what it held before a partition, not yet withdrawn), so they never outrank ours.
    came_alive: BTreeMap<String, Millis>,
    /// Dead members we never saw alive, already taken as lost once.
    seen_dead: BTreeSet<String>,
    /// The instant of the step in progress.
    last_now: Millis,
    /// Live members without news for `news_timeout` at the last step.
    no_news: BTreeSet<String>,
    /// No group moves forward before this: the node was frozen and its view is stale.
    frozen_until: Millis,
    /// This node's move requests (made by an operator here), by group.
    requests: BTreeMap<String, moves::Pending<MoveRequest>>,
    /// A request was made since the last step.
    requests_unpublished: bool,
    /// The groups this node handed off, with the node they are handed to.
    handoffs: BTreeMap<String, moves::Pending<String>>,
    /// Cleanup requests made here, and those applied here.
    cleanups: cleanup::Cleanups,
    /// (group with `failback=`, preferred node) → the generation of that node when the
    /// group failed there: no failback to it (see [`admin`]).
    failed_on: BTreeMap<(String, String), u64>,
    /// The (group, preferred node) pairs in cooldown at the last step, to see new failures.
    cooling: BTreeSet<(String, String)>,
    /// The groups this node stands as successor for (see [`successor`]).
    successors: successor::Successors,
}

impl Engine {
    /// Creates the engine of node `me`, which expects at least the members in `expected`
    /// (persisted from earlier runs; `me` is added).
    pub fn new(me: &str, cfg: Config, expected: BTreeSet<String>) -> Engine {
        let mut expected = expected;
        expected.insert(me.to_string());
        Engine {
            me: me.to_string(),
            cfg,
            started: None,
            expected,
            quorate: None,
            waiting: false,
            groups: Vec::new(),
            cooldown: BTreeMap::new(),
            peers: peers::Peers::default(),
            expected_replaced: false,
            lost: BTreeMap::new(),
            own_records: BTreeMap::new(),
            best_records: BTreeMap::new(),
            obsolete: BTreeMap::new(),
            wake: None,
            quiet_until: 0,
            came_alive: BTreeMap::new(),
            seen_dead: BTreeSet::new(),
            last_now: 0,
            no_news: BTreeSet::new(),
            frozen_until: 0,
            requests: BTreeMap::new(),
            requests_unpublished: false,
            handoffs: BTreeMap::new(),
            cleanups: cleanup::Cleanups::default(),
            failed_on: BTreeMap::new(),
            cooling: BTreeSet::new(),
            successors: successor::Successors::default(),
        }
    }

    /// Returns this node's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Returns how many entries each of its maps holds, by name: a diagnostic for the
    /// simulator's memory reports; decides nothing.
    pub fn sizes(&self) -> Vec<(&'static str, usize)> {
        let lost_held = self.lost.values().map(|l| l.held.len()).sum();
        let obsolete = self.obsolete.values().map(Vec::len).sum();
        vec![
            ("expected", self.expected.len()),
            ("lost", self.lost.len()),
            ("lost.held", lost_held),
            ("own_records", self.own_records.len()),
            ("best_records", self.best_records.len()),
            ("obsolete", obsolete),
            ("came_alive", self.came_alive.len()),
            ("seen_dead", self.seen_dead.len()),
            ("no_news", self.no_news.len()),
            ("peers", self.peers.len()),
        ]
    }

    /// Rebuilds its maps with an entry per member from their sorted walks, which fills
    /// every B-tree leaf: filled one member at a time they stay about half full. What they
    /// hold stays the same; decides nothing (the simulator's memory, see `Node::compact`).
    pub fn compact(&mut self) {
        self.expected = std::mem::take(&mut self.expected).into_iter().collect();
        self.came_alive = std::mem::take(&mut self.came_alive).into_iter().collect();
    }

    /// Returns the tunables in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Replaces the expected membership (an operator forgot a node); `me` always stays.
    pub fn set_expected(&mut self, expected: BTreeSet<String>) {
        self.expected = expected;
        self.expected.insert(self.me.clone());
        self.expected_replaced = true;
    }

    /// Returns the expected membership: every member ever seen, unless forgotten.
    pub fn expected(&self) -> &BTreeSet<String> {
        &self.expected
    }

    /// Returns whether the last step found this node quorate.
    pub fn quorate(&self) -> bool {
        self.quorate.unwrap_or(false)
    }

    /// Returns the members lost without a clean shutdown, not yet back.
    pub fn lost(&self) -> &BTreeMap<String, Lost> {
        &self.lost
    }

    /// Returns the groups this node is in test-failure cooldown for, with the end instants.
    pub fn cooldowns(&self) -> &BTreeMap<String, Millis> {
        &self.cooldown
    }

    /// Returns the earliest instant at which a step may decide something new even if the
    /// view does not change (a rank's turn, the end of a plan window, a cooldown, a fencing
    /// takeover...). A driver may skip steps until then or until the view changes.
    pub fn next_wakeup(&self) -> Option<Millis> {
        self.wake
    }

    /// Tells the engine that this node was frozen (SIGSTOP, a paused VM, starvation) from its
    /// previous step until `now`. What it knows is stale, and peers may have taken it for dead
    /// and recovered its groups meanwhile. For `startup_wait` it moves no group forward, plans
    /// nothing and fences nobody while fresh state arrives, and a plan it held restarts its
    /// plan window (found by the simulator: a hung node resumed and took a group it had
    /// planned just before the hang to `start`, next to the copy the others had started).
    pub fn resumed(&mut self, now: Millis) {
        let until = now + self.cfg.startup_wait;
        self.frozen_until = self.frozen_until.max(until);
        self.quiet_until = self.quiet_until.max(until);
        for (_, mem) in self.groups.iter_mut() {
            mem.planned_at = None;
            mem.need_since = None;
        }
        self.successors.restart(now);
        // What it knew the lost held is as old as the freeze: they may hold anything.
        for lost in self.lost.values_mut() {
            lost.since = now;
            lost.unknown = true;
        }
    }

    /// Notes that the step waits for instant `t`.
    fn wake_at(&mut self, t: Millis) {
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }

    /// Decides, at `now`, what this node does about every group, given `view`.
    pub fn step(&mut self, now: Millis, view: &View, rng: &mut dyn Rng) -> Vec<Action> {
        let mut out = Vec::new();
        self.wake = None;
        self.last_now = now;
        let started = *self.started.get_or_insert(now);
        let settled_in = now >= started + self.cfg.startup_wait;
        let arrived = self.track_members(now, view, settled_in, &mut out);
        let quorate = self.update_quorum(now, view, &arrived, &mut out);
        self.expire_cooldowns(now, &mut out);
        self.tend_cleanups(now, view, &mut out);
        self.note_failures(view);
        self.step_fencing(now, view, quorate, &mut out);
        self.tend_moves(now, view, &mut out);
        let sight = self.moves_in_sight(view);

        let empty = Member::default();
        let mine = view.members.get(&self.me).unwrap_or(&empty);
        // The groups that lost nodes held and that wait for their fencing (the recovery
        // gate), gathered once rather than for each group.
        let gated: BTreeSet<String> = self
            .lost
            .values()
            .filter(|l| !l.fence.gate_open())
            .flat_map(|l| l.held.iter().cloned())
            .collect();
        // A lost node nobody knows anything of may hold any group (see [`Lost::unknown`]).
        let gate_all = self
            .lost
            .values()
            .any(|l| l.unknown && !l.fence.gate_open());
        let held = self.peers.held_each(view.want.keys());
        let standing = successor::in_sight(view, &self.me);
        // Groups an agent failed fatally somewhere (OCF 6): no node starts them.
        let fatal: BTreeSet<&str> = (view.members.values())
            .filter(|m| m.alive)
            .flat_map(|m| m.fatal.iter().map(String::as_str))
            .collect();
        // What we remember of each group comes along with the wanted groups (both sorted);
        // a group no longer wanted, or stopped, is forgotten.
        let mut memories = std::mem::take(&mut self.groups).into_iter().peekable();
        let mut kept = Vec::with_capacity(view.want.len());
        // Groups wanted by hactl, and groups held here that cltab no longer has (the
        // supervisor stops those on its own).
        for ((group, want), held) in view.want.iter().zip(held) {
            while memories.next_if(|(g, _)| g < group).is_some() {}
            let (key, mut mem) = (memories.next_if(|(g, _)| g == group))
                .unwrap_or_else(|| (group.clone(), GroupMemory::default()));
            let claim = mine.claims.get(group);
            let holds = claim.is_some_and(Claim::holds);
            // A test that failed here is remembered whatever stops the group next: the
            // holder's own step, a lost quorum, a stopped level, a standby or an `only=` that
            // leaves this node out (found by the simulator: a node put in standby while its
            // test failed stopped the group and forgot the failure).
            let failed = |s: State| matches!(s, State::Failed | State::Fatal);
            if let Some(c) =
                claim.filter(|c| failed(c.state) && c.level == c.target && !c.leaving())
            {
                if !self.cooldown.contains_key(group) {
                    self.record_failure(now, view, group, &c.level, &mut out);
                }
            }
            if view.admin.is_frozen(group) {
                // An operator took the group over: no decision at all (see [`admin`]).
                continue;
            }
            if !quorate || claim::is_stopped_level(want) {
                if holds && !claim.is_some_and(Claim::leaving) {
                    out.push(tell(group, STOP));
                }
                continue;
            }
            if let Some(claim) = claim.filter(|c| c.holds()) {
                self.successors.holding(group, claim);
                let others = if held {
                    self.peers.holders(view, group)
                } else {
                    Vec::new()
                };
                let gated = gate_all || gated.contains(group.as_str());
                let alone = others.is_empty();
                if !self.hand_off(now, view, group, claim, alone, &sight, &mut out) {
                    self.step_holder(now, group, want, claim, &others, gated, &mut mem, &mut out);
                }
            } else {
                let quiet = (started + self.cfg.startup_wait).max(self.quiet_until);
                let ready = now >= quiet;
                if !ready {
                    self.wake_at(quiet);
                }
                let gated = gate_all || gated.contains(group.as_str());
                let handed = sight.handed(group, &self.me);
                let barred = (view.placement.get(group)).is_some_and(|p| !p.allows(&self.me))
                    || fatal.contains(group.as_str());
                // The one other node that runs the group at its wanted level, if so.
                let holder = match held.then(|| self.peers.holders(view, group)).as_deref() {
                    Some([(n, c)]) if c.phase() == 2 && !c.leaving() && c.level == *want => {
                        Some(*n)
                    }
                    _ => None,
                };
                let rivals = standing.get(group.as_str()).map_or(&[][..], Vec::as_slice);
                let c = Candidate {
                    ready,
                    gated,
                    held,
                    handed,
                    barred,
                    holder,
                    rivals,
                };
                self.step_candidate(now, group, c, &mut mem, rng, &mut out);
            }
            kept.push((key, mem));
        }
        self.groups = kept;
        self.successors.end_step(&mut out);
        out
    }
}

fn tell(group: &str, level: &str) -> Action {
    Action::Tell {
        group: group.to_string(),
        level: level.to_string(),
    }
}
