//! The node core: everything one node decides from what it observes, with no I/O, in the
//! style of raft-rs's `step` / `Ready` / `advance`. The driver (the daemon, or the simulator)
//! hands it what it observed as [`Input`]s — gossip key-values and liveness, the supervisor's
//! claims, cltab/hactl's wanted levels and placement options, the fencing table, fence
//! results, operator records — and takes one [`Ready`] at each tick: what to tell the
//! supervisor, what to publish, whom to fence, what to log, and what must be made durable
//! before [`Node::advance`].
//!
//! Inside: the [`Engine`] (placement, quorum, fencing decisions), the view built
//! incrementally from gossip keys ([`view::Observed`]), this node's beat and the news of
//! every member, the freeze check (a daemon that did not run for a while holds every group
//! until it has heard the cluster again), the publication of this node's claims, and the
//! expected membership waiting to be persisted.

pub mod files;
pub mod keymap;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha12Rng;

use crate::admin::{self, Admin};
use crate::claim::Claim;
use crate::fencing::Outcome;
use crate::replica::Version;
use crate::{keys, Action, Config, Engine, Event, Millis, Placement, View, PLAN, STOP, TEST};
pub use files::{Adopt, FileVersion, Files};
pub use keymap::KeyMap;
pub use view::{is_core_key, Fencing, Observed};

/// Something the driver observed, for [`Node::observe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// What the failure detector says of a member (not this node): alive or not, at which
    /// generation, with — when `keys` is given — its whole published state as gossip shows
    /// it (keys the core does not read are ignored). A new generation drops everything the
    /// old one published.
    Member {
        name: String,
        generation: u64,
        alive: bool,
        keys: Option<BTreeMap<String, String>>,
    },
    /// Changes of a member's keys as gossip delivered them (`None`: deleted), for
    /// `generation` (ignored for another one).
    Keys {
        name: String,
        generation: u64,
        changes: Vec<(String, Option<String>)>,
    },
    /// Gossip forgot a member altogether.
    Gone { name: String },
    /// This node's supervisor's claim on each group given (`None`: the group is gone from
    /// the supervisor).
    Claims(Vec<(String, Option<Claim>)>),
    /// Every group of cltab, with the level hactl wants.
    Wanted(BTreeMap<String, String>),
    /// The placement options of the groups that have some (hactl's `prefer=`, `only=`).
    /// An input of its own rather than a part of [`Input::Wanted`]: a driver without options
    /// (the simulator) need not send it, and the engine compares it apart from the levels.
    Placement(BTreeMap<String, Placement>),
    /// The operators' standing orders (the `admin` file): standby nodes, frozen groups,
    /// maintenance (see [`crate::admin`]).
    Admin(Admin),
    /// How each node is fenced (the fencetab).
    Fencing(Fencing),
    /// An operator replaced the expected membership (edited `DIR/members`).
    Expected(BTreeSet<String>),
    /// A fence pass on `node`'s `generation` ended.
    FenceDone {
        node: String,
        generation: u64,
        ok: bool,
        detail: String,
    },
    /// An operator's record about `node`'s `generation` (`mosha fence ack`, `mosha fence`).
    Operator {
        node: String,
        generation: u64,
        outcome: Outcome,
        detail: String,
    },
    /// An operator here asked to move `group` from `from` (the node that runs it) to `to`
    /// (see [`crate::moves`]); the request is published at the next step.
    Move {
        group: String,
        to: String,
        from: String,
    },
    /// An operator here asked to clear the failures of `group` on `node` (`None`: every
    /// node; see [`crate::cleanup`]); the request is published at the next step.
    Cleanup { group: String, node: Option<String> },
    /// The driver's loop was running at `now` (a driver that skips idle ticks says so, so
    /// that the gap is not taken for a freeze).
    Awake { now: Millis },
    /// Replicate `file`, which holds `text` as the daemon starts (`None`: no valid text),
    /// with the version `recorded` by the last run and the file's modification time (see
    /// [`Files::load`]).
    FileLoaded {
        file: String,
        text: Option<String>,
        recorded: Option<FileVersion>,
        mtime_ms: u64,
    },
    /// An operator edited `file` here; `text` is valid. `wall_ms`: the wall clock, for its
    /// version.
    FileEdited {
        file: String,
        text: String,
        wall_ms: u64,
    },
    /// The text of an [`Adopt`] offer was valid and is written to the local file.
    FileAdopted {
        file: String,
        version: Version,
        text: String,
        from: String,
    },
    /// The text of an [`Adopt`] offer is invalid here.
    FileRefused { file: String, version: Version },
}

/// What the driver made durable, for [`Node::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// The expected membership of [`Ready::persist`].
    Members,
    /// The file versions of [`Ready::versions`].
    Versions,
}

/// What the driver carries out after a step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready {
    /// Tell the supervisor to take `group` to `level`, in this order.
    pub tell: Vec<(String, String)>,
    /// Set (`Some`) or delete (`None`) these gossip keys of this node.
    pub publish: Vec<(String, Option<String>)>,
    /// Run the fence levels for `node`, lost at `generation`; report with
    /// [`Input::FenceDone`].
    pub fence: Vec<(String, u64)>,
    /// Stop the fencing of these nodes (no result expected).
    pub cancel_fence: Vec<String>,
    /// Tell the operator (logs, alerts).
    pub events: Vec<Event>,
    /// Forget the restarts of these groups here, and why they last failed (an operator's
    /// cleanup).
    pub cleared: Vec<String>,
    /// Make this expected membership durable (file, then directory, synced), then call
    /// [`Node::advance`] with [`Durable::Members`] and the outcome.
    pub persist: Option<BTreeSet<String>>,
    /// Newer versions of replicated files that peers announce: read, validate and write
    /// each, and report with [`Input::FileAdopted`] or [`Input::FileRefused`].
    pub adopt: Vec<Adopt>,
    /// Make these file versions durable, then call [`Node::advance`] with
    /// [`Durable::Versions`] and the outcome.
    pub versions: Option<BTreeMap<String, FileVersion>>,
}

impl Ready {
    /// Tells whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Ready::default()
    }
}

/// The node core of one node (see the module documentation).
#[derive(Debug, Clone)]
pub struct Node {
    engine: Engine,
    rng: ChaCha12Rng,
    observed: Observed,
    /// This node's beat counter, and when it was last published.
    beat: (u64, Option<Millis>),
    /// When the driver's loop last ran (a step, or [`Input::Awake`]).
    last_awake: Option<Millis>,
    /// The claim keys published, with their values.
    published: BTreeMap<String, String>,
    /// What the last published claims said of each group (for group-started/stopped).
    said: BTreeMap<String, Claim>,
    /// The groups whose claims changed since they were last published.
    claims_changed: BTreeSet<String>,
    /// What the next [`Ready`] carries so far.
    pending: Ready,
    /// Fence results and operator records for the engine at the next step.
    outcomes: Vec<Input>,
    /// The expected membership not yet durable, and whether its last write failed.
    unsaved: Option<BTreeSet<String>>,
    save_failed: bool,
    /// The replicated files.
    files: Files,
    /// The placement options as the driver gave them (hactl's), before the standby nodes
    /// are folded in.
    placement: BTreeMap<String, Placement>,
}

impl Node {
    /// Creates the core of node `me` at `generation`, which expects at least `expected`
    /// (persisted by earlier runs), drawing randomness from `rng`.
    pub fn new(
        me: &str,
        generation: u64,
        cfg: Config,
        expected: BTreeSet<String>,
        rng: ChaCha12Rng,
    ) -> Node {
        let observed = Observed::new(me, generation, cfg.news_timeout);
        Node {
            engine: Engine::new(me, cfg, expected),
            rng,
            observed,
            beat: (0, None),
            last_awake: None,
            published: BTreeMap::new(),
            said: BTreeMap::new(),
            claims_changed: BTreeSet::new(),
            pending: Ready::default(),
            outcomes: Vec::new(),
            unsaved: None,
            save_failed: false,
            files: Files::default(),
            placement: BTreeMap::new(),
        }
    }

    /// Returns the engine (quorum, lost members, cooldowns, expected membership).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Returns the engine's view: every member as gossip shows it, this node with its
    /// supervisor's claims.
    pub fn view(&self) -> &View {
        &self.observed.view
    }

    /// Returns the version in force of replicated file `file`, with its text.
    pub fn file(&self, file: &str) -> Option<(&Version, &str)> {
        self.files.get(file)
    }

    /// Sets the view's placement: the driver's options with the standby nodes folded in
    /// (see [`admin::fold_standby`]). Returns whether it changed.
    fn fold_placement(&mut self) -> bool {
        let v = &mut self.observed.view;
        let placement = admin::fold_standby(&self.placement, &v.want, &v.admin.standby);
        let changed = v.placement != placement;
        v.placement = placement;
        changed
    }

    /// Returns what the core knows of the cluster, keys included.
    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    /// Returns the earliest instant at which a step may decide something new although
    /// nothing was observed (the engine's next wake-up); beats are due every
    /// [`Config::beat`] on top of it.
    pub fn next_wakeup(&self) -> Option<Millis> {
        self.engine.next_wakeup()
    }

    /// Hands the core one observation. Returns whether it may change a decision (a driver
    /// that steps only on change steps then).
    pub fn observe(&mut self, input: Input) -> bool {
        let o = &mut self.observed;
        match input {
            Input::Member {
                name,
                generation,
                alive,
                keys,
            } => {
                let mut m = o.liveness(&name, generation, alive);
                if let Some(keys) = keys {
                    m |= o.replace(&name, generation, &keys);
                }
                m
            }
            Input::Keys {
                name,
                generation,
                changes,
            } => self.observe_keys(
                &name,
                generation,
                changes.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
            ),
            Input::Gone { name } => o.forget(&name),
            Input::Claims(claims) => {
                let me = self.engine.me().to_string();
                let m = o
                    .view
                    .members
                    .get_mut(&me)
                    .expect("this node is in its view");
                let mut changed = false;
                for (g, c) in claims {
                    let old = m.claims.get(&g);
                    if old == c.as_ref() {
                        continue;
                    }
                    changed = true;
                    match c {
                        Some(c) => m.claims.insert(g.clone(), c),
                        None => m.claims.remove(&g),
                    };
                    self.claims_changed.insert(g);
                }
                changed
            }
            Input::Wanted(want) => {
                let changed = o.view.want != want;
                o.view.want = want;
                if changed {
                    self.fold_placement();
                }
                changed
            }
            Input::Placement(placement) => {
                self.placement = placement;
                self.fold_placement()
            }
            Input::Admin(a) => {
                let changed = o.view.admin != a;
                o.view.admin = a;
                self.fold_placement() || changed
            }
            Input::Fencing(f) => o.set_fencing(f),
            Input::Expected(m) => {
                self.engine.set_expected(m);
                true
            }
            // Outcomes are the engine's at the next step, at that step's time.
            i @ (Input::FenceDone { .. }
            | Input::Operator { .. }
            | Input::Move { .. }
            | Input::Cleanup { .. }) => {
                self.outcomes.push(i);
                true
            }
            Input::Awake { now } => {
                self.last_awake = Some(self.last_awake.map_or(now, |t| t.max(now)));
                false
            }
            Input::FileLoaded {
                file,
                text,
                recorded,
                mtime_ms,
            } => {
                let me = self.engine.me().to_string();
                self.files.load(&me, &file, text, recorded, mtime_ms);
                true
            }
            Input::FileEdited {
                file,
                text,
                wall_ms,
            } => {
                let me = self.engine.me().to_string();
                let e = self.files.edited(&me, &file, text, wall_ms);
                self.pending.events.extend(e);
                true
            }
            Input::FileAdopted {
                file,
                version,
                text,
                from,
            } => {
                let e = self.files.adopted(&file, version, text, &from);
                self.pending.events.extend(e);
                true
            }
            Input::FileRefused { file, version } => {
                self.files.refused(&file, version);
                true
            }
        }
    }

    /// [`Input::Keys`] without building one: changes of member `name`'s keys at
    /// `generation`. Returns whether they may change a decision.
    pub fn observe_keys<'a>(
        &mut self,
        name: &str,
        generation: u64,
        changes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> bool {
        self.observed.changes(name, generation, changes)
    }

    /// The beats of many members at once, in name order, as (name, generation, beat): the
    /// same as [`Node::observe_keys`] with each one's beat alone, in one walk (see
    /// [`Observed::beats`]). Returns whether they may change a decision.
    pub fn observe_beats<'a>(
        &mut self,
        beats: impl IntoIterator<Item = (&'a str, u64, &'a str)>,
    ) -> bool {
        self.observed.beats(beats)
    }

    /// Runs one step at `now` (the driver's monotonic clock, in ms) and returns what to
    /// carry out. If it says to persist, call [`Node::advance`] once that is done.
    pub fn ready(&mut self, now: Millis) -> Ready {
        self.note_freeze(now);
        self.observed.stamp_news(now);
        let mut out = std::mem::take(&mut self.pending);
        if let Some(b) = self.beat_due(now) {
            out.publish.push(b);
        }
        self.pending = out;
        for i in std::mem::take(&mut self.outcomes) {
            let a = match i {
                Input::FenceDone {
                    node,
                    generation,
                    ok,
                    detail,
                } => self
                    .engine
                    .fence_result(now, &node, generation, ok, &detail),
                Input::Operator {
                    node,
                    generation,
                    outcome,
                    detail,
                } => self
                    .engine
                    .operator_record(&node, generation, outcome, &detail),
                Input::Move { group, to, from } => {
                    self.engine.request_move(now, &group, &to, &from);
                    Vec::new()
                }
                Input::Cleanup { group, node } => {
                    self.engine.request_cleanup(now, &group, node.as_deref());
                    Vec::new()
                }
                _ => Vec::new(),
            };
            self.take(a);
        }
        let actions = self.engine.step(now, &self.observed.view, &mut self.rng);
        self.take(actions);
        let mut out = std::mem::take(&mut self.pending);
        if let Some(m) = &self.unsaved {
            out.persist = Some(m.clone());
        }
        out.publish.extend(self.files.publication());
        out.adopt = self.files.offers(&self.observed.announced);
        out.versions = self.files.unsaved();
        out
    }

    /// Returns the publications and events of this node's claims as they are now (the
    /// supervisor moved between steps), without a step.
    pub fn flush(&mut self) -> Ready {
        let mut out = Ready::default();
        self.claim_changes(&mut out);
        out
    }

    /// Tells the core that what the last [`Ready`] said to make durable (`what`: the
    /// expected membership, or the file versions) was (`Ok`), or why not: it is offered again
    /// at every step until it is.
    pub fn advance(&mut self, what: Durable, persisted: Result<(), String>) {
        if what == Durable::Versions {
            let e = self.files.saved(persisted);
            self.pending.events.extend(e);
            return;
        }
        match persisted {
            Ok(()) => {
                self.unsaved = None;
                self.save_failed = false;
            }
            Err(error) if !self.save_failed => {
                self.save_failed = true;
                self.pending.events.push(Event::MembersNotSaved { error });
            }
            Err(_) => {}
        }
    }

    /// Returns the gossip change that says this node is shutting down cleanly (once it
    /// holds nothing, peers need not fence it).
    pub fn bye(&self) -> (String, Option<String>) {
        (keys::BYE.to_string(), Some("1".to_string()))
    }

    /// Sorts the engine's actions into the pending [`Ready`]; this node's own publications
    /// also go into its picture of itself (gossip shows a node its own keys).
    fn take(&mut self, actions: Vec<Action>) {
        let me = self.engine.me().to_string();
        for a in actions {
            match a {
                Action::Tell { group, level } => self.pending.tell.push((group, level)),
                Action::Publish { key, value } => {
                    self.observed.set_key(&me, &key, value.as_deref());
                    self.pending.publish.push((key, value));
                }
                Action::Members(m) => self.unsaved = Some(m),
                Action::Fence { node, generation } => self.pending.fence.push((node, generation)),
                Action::CancelFence { node } => self.pending.cancel_fence.push(node),
                Action::Cleared { group } => self.pending.cleared.push(group),
                Action::Event(e) => self.pending.events.push(e),
            }
        }
        let mut out = std::mem::take(&mut self.pending);
        self.claim_changes(&mut out);
        self.pending = out;
    }

    /// Notices that the driver's loop did not run for a while (SIGSTOP, a paused VM,
    /// starvation): the engine then holds every move until fresh state arrives, and the
    /// silence of peers during the freeze is not held against them.
    fn note_freeze(&mut self, now: Millis) {
        // Half the news timeout at the default beat, whatever the beat: a 100 ms beat would
        // take every loop turn over 0.19 s for a freeze (peers take a node for lost only
        // after failure detection, 0.45 s and more).
        let limit = (2 * crate::BEAT).saturating_add(self.engine.config().slot) / 2;
        if let Some(last) = self.last_awake.filter(|l| now > l + limit) {
            self.pending.events.push(Event::Frozen { ms: now - last });
            self.engine.resumed(now);
            self.observed.forgive_silence(now);
        }
        self.last_awake = Some(now);
    }

    /// Returns this node's next beat, when one is due at `now`.
    fn beat_due(&mut self, now: Millis) -> Option<(String, Option<String>)> {
        let every = self.engine.config().beat;
        if self.beat.1.is_some_and(|t| now < t + every) {
            return None;
        }
        self.beat = (self.beat.0 + 1, Some(now));
        let value = self.beat.0.to_string();
        let me = self.engine.me().to_string();
        self.observed.set_key(&me, keys::BEAT, Some(&value));
        Some((keys::BEAT.to_string(), Some(value)))
    }

    /// Adds to `out` the gossip changes that publish this node's claims as they are, and
    /// the group-started and group-stopped events. Only claims that hold a group are
    /// published: a node at `stop` says nothing about it, which keeps gossip small.
    fn claim_changes(&mut self, out: &mut Ready) {
        // Only the groups whose claims changed: with thousands of groups, a burst of starts
        // changes a few at every turn.
        let changed = std::mem::take(&mut self.claims_changed);
        if changed.is_empty() {
            return;
        }
        let me = self.engine.me();
        let Some(mine) = self.observed.view.members.get(me) else {
            return;
        };
        let running = |c: &Claim| {
            c.level == c.target
                && c.state.settled()
                && ![PLAN, TEST, STOP, ""].contains(&c.level.as_str())
        };
        let mut dropped = Vec::new();
        for g in changed {
            let key = keys::claim(&g);
            let was = self.said.get(&g).is_some_and(running);
            // A group gone from the supervisor stopped before it went: no event.
            if let Some(c) = mine.claims.get(&g) {
                if running(c) && !was {
                    out.events.push(Event::GroupStarted {
                        group: g.clone(),
                        claim: c.to_string(),
                    });
                } else if was && !c.holds() {
                    out.events.push(Event::GroupStopped {
                        group: g.clone(),
                        claim: c.to_string(),
                    });
                }
                if c.holds() {
                    let v = c.encode();
                    if self.published.get(&key) != Some(&v) {
                        out.publish.push((key.clone(), Some(v.clone())));
                        self.published.insert(key, v);
                    }
                    self.said.insert(g, c.clone());
                    continue;
                }
            }
            self.said.remove(&g);
            if self.published.remove(&key).is_some() {
                dropped.push((key, None));
            }
        }
        out.publish.extend(dropped);
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_admin;
#[cfg(test)]
mod tests_cleanup;
#[cfg(test)]
mod tests_moves;
