//! One simulated node: its daemon's node core (mosha's production `engine::node::Node`,
//! which builds the view from gossip keys and decides; with the OpenMosix::HA model as the
//! brain instead, the core only builds the view), its gossip state, its supervisor's true
//! claims, and its clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use mosha::engine::node::{Fencing, Input, Node as Core};
use mosha::engine::{Admin, Claim, Config, Placement, Policy, PLAN};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

use crate::openmosix::Om;
use mosha::engine::node::FileVersion;
use mosha::replica::{self, Version};

/// How many publication times a node keeps (see [`Node::pub_times`]).
pub const PUB_TIMES: usize = 256;

/// The replicated file the simulator carries (see `files`).
pub const HACTL: &str = "hactl";

/// Which policy a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// mosha's engine (`engine/`, the `mosha-engine` crate).
    Ours,
    /// The OpenMosix::HA 0.555 model.
    OpenMosix,
}

impl Kind {
    /// Returns the policy's short name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "mosha",
            Kind::OpenMosix => "openmosix",
        }
    }
}

/// One node of the simulated cluster.
#[derive(Debug)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// The generation of its current daemon.
    pub generation: u64,
    /// The machine is powered and its daemon runs (maybe hung).
    pub up: bool,
    /// The daemon is hung: silent, deaf, not stepping; its processes keep running.
    pub hung: bool,
    /// The daemon's node core: what it knows of the cluster, and (for mosha) every decision.
    pub core: Box<Core>,
    /// The OpenMosix::HA monitor, when it is the brain instead of mosha's core.
    pub om: Option<Om>,
    /// The node's own RNG (the OpenMosix dice).
    pub rng: ChaCha12Rng,
    /// The hactl level in force here per group, as its replicated hactl says.
    pub want: BTreeMap<String, String>,
    /// Its disk's hactl: the version in force when its daemon last changed it, and its text
    /// (what a restarted daemon starts from).
    pub disk: (Version, String),
    /// The standing orders on its disk (the admin file), with their number (newer ones
    /// replace older ones as they arrive).
    pub admin: (u64, Admin),
    /// The groups' placement options on its disk (hactl's), with their number (newer ones
    /// replace older ones).
    pub placement: (u64, Rc<BTreeMap<String, Placement>>),
    /// The supervisor's true claims (only groups that hold something).
    pub claims: BTreeMap<String, Claim>,
    /// The pending supervisor operation per group (to drop superseded completions).
    pub op: BTreeMap<String, u64>,
    /// Its gossip state: every key its daemon published (but the beat, see
    /// `World::feed_beats`), as chitchat keeps a node's own state.
    pub published: BTreeMap<String, String>,
    /// Its daemon was hung until its next step: the gap is real, the core must see it.
    pub resuming: bool,
    /// Truth: until when a group is in test-failure cooldown here (global ms).
    pub cooldown_until: BTreeMap<String, u64>,
    /// The groups whose next stop here fails (a resource agent's stop: the group may still
    /// run here, and its claim says `STOP-FAILED` until the node is powered off or an
    /// operator's cleanup retries the stop).
    pub stop_fails: BTreeSet<String>,
    /// Groups it held, as far as its last state that got out said, when it went down
    /// without being fenced (for invariant b).
    pub held_at_down: BTreeSet<String>,
    /// Per group, whether the last claim of it that reached any other node runs it past
    /// `plan`, with that claim's version: what the cluster can know of its groups (a claim
    /// made just before a crash may never leave the node).
    pub out_claims: BTreeMap<String, (u64, bool)>,
    /// It is down because a fence agent powered it off.
    pub fenced_off: bool,
    /// The pending step time, if any.
    pub next_step: Option<u64>,
    /// The phase of its 50 ms daemon tick.
    pub phase: u64,
    /// Clock drift (ppm) and offset (ms).
    pub clock: (i64, u64),
    /// Since when the node is truly without quorum (for invariant d).
    pub nonquorate_since: Option<u64>,
    /// A token matching the pending reboot after a power-off.
    pub boot: u64,
    /// How many updates this daemon published (the version of its state).
    pub pub_ver: u64,
    /// When each of its last updates was published (version, time), oldest first, at most
    /// [`PUB_TIMES`]: which beat reaches an observer still missing some (see
    /// `World::feed_beats`).
    pub pub_times: VecDeque<(u64, u64)>,
    /// The version of each member's state that the view reflects, by node index (for
    /// relaying the state of dead members the way gossip does: a newer version replaces an
    /// older one). A vector, not a map by name: every step reads it for every member.
    pub seen_ver: Vec<Option<u64>>,
    /// When its core's maps of members were last packed (see [`Node::tidy`]).
    pub tidy: Tidy,
}

/// The member count of a node's core at its last step and since when it holds, and the
/// count when the core's maps were last packed.
#[derive(Debug, Default)]
pub struct Tidy {
    seen: (usize, u64),
    packed: usize,
}

impl Node {
    /// Returns node `name`, up with `generation`, with a fresh daemon of `kind`, in a
    /// cluster of `names` (the membership its earlier runs persisted).
    pub fn new(
        name: String,
        kind: Kind,
        generation: u64,
        seed: u64,
        cfg: &Config,
        names: &BTreeSet<String>,
    ) -> Node {
        let core = Core::new(&name, generation, cfg.clone(), names.clone(), rng(seed, 0));
        let mut n = Node {
            name,
            generation,
            up: true,
            hung: false,
            core: Box::new(core),
            om: None,
            rng: rng(seed, 1),
            want: BTreeMap::new(),
            disk: (Version::zero(), String::new()),
            admin: (0, Admin::default()),
            placement: (0, Rc::default()),
            claims: BTreeMap::new(),
            op: BTreeMap::new(),
            published: BTreeMap::new(),
            resuming: false,
            cooldown_until: BTreeMap::new(),
            stop_fails: BTreeSet::new(),
            held_at_down: BTreeSet::new(),
            out_claims: BTreeMap::new(),
            fenced_off: false,
            next_step: None,
            phase: 0,
            clock: (0, 0),
            nonquorate_since: None,
            boot: 0,
            pub_ver: 0,
            pub_times: VecDeque::new(),
            seen_ver: vec![None; names.len()],
            tidy: Tidy::default(),
        };
        n.reset(kind, generation, seed, cfg, names);
        n
    }

    /// Starts a fresh daemon: new core (knowing only itself), new generation, nothing
    /// published; it starts from the hactl on its disk, whose levels `want` holds.
    pub fn reset(
        &mut self,
        kind: Kind,
        generation: u64,
        seed: u64,
        cfg: &Config,
        names: &BTreeSet<String>,
    ) {
        self.generation = generation;
        self.up = true;
        self.hung = false;
        self.resuming = false;
        let mix = seed ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut core = Core::new(
            &self.name,
            generation,
            cfg.clone(),
            names.clone(),
            rng(mix, 0),
        );
        let (version, text) = &self.disk;
        core.observe(Input::FileLoaded {
            file: HACTL.to_string(),
            text: (!version.is_zero()).then(|| text.clone()),
            recorded: Some(recorded(version, text)),
            mtime_ms: 0,
        });
        core.observe(Input::Wanted(self.want.clone()));
        core.observe(Input::Admin(self.admin.1.clone()));
        core.observe(Input::Placement((*self.placement.1).clone()));
        core.observe(Input::Fencing(Fencing {
            default: Some(fence_policy()),
            nodes: BTreeMap::new(),
        }));
        *self.core = core;
        self.tidy = Tidy::default();
        self.rng = rng(mix, 1);
        self.om = (kind == Kind::OpenMosix).then(Om::new);
        self.claims.clear();
        self.op.clear();
        self.published.clear();
        self.cooldown_until.clear();
        self.next_step = None;
        self.pub_ver = 0;
        self.pub_times.clear();
        self.seen_ver.iter_mut().for_each(|v| *v = None);
        self.out_claims.clear();
        self.fenced_off = false;
    }

    /// Packs its core's maps of members (`Node::compact`) once their count has held for 2 s
    /// at global time `now`: a core learns its members one by one at its start, which leaves
    /// its B-trees a third empty, and they hardly change after that. Memory only: what the
    /// core holds and decides is the same.
    pub fn tidy(&mut self, now: u64) {
        let n = self.core.view().members.len();
        if n != self.tidy.seen.0 {
            self.tidy.seen = (n, now);
        } else if n != self.tidy.packed && now >= self.tidy.seen.1 + 2_000 {
            self.core.compact();
            self.tidy.packed = n;
        }
    }

    /// Returns the node's clock reading at global time `t`.
    pub fn local(&self, t: u64) -> u64 {
        let (drift, off) = self.clock;
        (off as i128 + t as i128 + t as i128 * drift as i128 / 1_000_000) as u64
    }

    /// Returns the global time at which the node's clock reads `l` (not before `now`).
    pub fn global(&self, l: u64, now: u64) -> u64 {
        let (drift, off) = self.clock;
        let t = (l.saturating_sub(off) as f64 / (1.0 + drift as f64 * 1e-6)).ceil() as u64;
        t.max(now)
    }

    /// Returns whether its processes run `group` at `level` (alive machine).
    pub fn runs_at(&self, group: &str, level: &str) -> bool {
        self.up && self.claims.get(group).is_some_and(|c| c.level == level)
    }

    /// Returns the groups that the last state it got out says it runs past `plan`.
    pub fn out_held(&self) -> BTreeSet<String> {
        self.out_claims
            .iter()
            .filter(|(_, (_, holds))| *holds)
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Notes that its claim on `group` at version `ver` reached another node.
    pub fn got_out(&mut self, group: &str, ver: u64, past_plan: bool) {
        let e = self
            .out_claims
            .entry(group.to_string())
            .or_insert((0, false));
        if e.0 < ver {
            *e = (ver, past_plan);
        }
    }

    /// Returns whether anything of `group` past `plan` runs here.
    pub fn runs_past_plan(&self, group: &str) -> bool {
        self.up && self.claims.get(group).is_some_and(past_plan)
    }

    /// Returns whether its daemon hears and speaks.
    pub fn ok(&self) -> bool {
        self.up && !self.hung
    }
}

/// Tells whether a claim runs its group past `plan`: `plan` is only a claim (it runs no
/// commands of the group), `test` and later levels do.
pub fn past_plan(c: &Claim) -> bool {
    let claim_only = |l: &str| l == PLAN || mosha::engine::claim::is_stopped_level(l);
    c.holds() && !(claim_only(&c.level) && claim_only(&c.target))
}

/// Returns the generator of stream `stream` of `seed` (the core's, the dice).
fn rng(seed: u64, stream: u64) -> ChaCha12Rng {
    let mut r = ChaCha12Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Returns the fencing policy every node gets: configured, 10 s per pass.
pub fn fence_policy() -> Policy {
    Policy::Configured { timeout: 10_000 }
}

/// Returns how `text` at `version` is recorded on a node's disk.
pub fn recorded(version: &Version, text: &str) -> FileVersion {
    FileVersion {
        version: version.clone(),
        hash: replica::content_hash(text),
    }
}
