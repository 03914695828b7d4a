//! The simulated cluster: an event queue in virtual time, the nodes, the network, and the
//! handlers of every event. Nodes are stepped only when their view or supervisor changed or
//! their engine's `next_wakeup()` is due, on their own 50 ms daemon tick.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::rc::Rc;

use std::collections::BTreeSet;

use mosha::engine::Config;
use mosha::replica::Version;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::faults::{self, Plan, Profile};
use crate::net::{Links, Timing};
use crate::node::{Kind, Node};
use crate::report::Stats;
use mosha::engine::node::Input;

/// The daemon's tick: a node steps on multiples of it (plus its phase).
pub const TICK: u64 = 50;

/// A gossip update.
#[derive(Debug, Clone)]
pub enum Upd {
    /// Changes of the publisher's keys, as its node core published them (`None`: deleted).
    Keys(Vec<(String, Option<String>)>),
}

/// An update on its way, with the nodes it reached so far: once it reached one, gossip
/// relays it from there even if its publisher falls silent (crash, hang) before it reached
/// everyone.
#[derive(Debug)]
pub struct Sent {
    /// The update.
    pub upd: Upd,
    /// The nodes it reached.
    pub reached: RefCell<NodeSet>,
}

/// A set of nodes by index, a bit each: at a thousand nodes at most 128 bytes, where a
/// vector of indices grew to 8 kB for every update in flight (the nodes it reached) and for
/// every batch of its deliveries due at one instant (after a partition heals, most nodes).
#[derive(Debug, Clone, Default)]
pub struct NodeSet(Vec<u64>);

impl NodeSet {
    /// Adds node `i`.
    pub fn insert(&mut self, i: usize) {
        let word = i / 64;
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (i % 64);
    }

    /// Returns the nodes in the set, in index order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (self.0.iter().enumerate()).flat_map(|(word, &bits)| {
            let mut rest = bits;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    word * 64 + bit
                })
            })
        })
    }
}

/// What happens at an instant. Small (24 bytes; what does not fit is boxed): at a thousand
/// nodes a cold start or a partition queues a million resyncs or failure detections at once.
#[derive(Debug, Clone)]
pub enum Kind2 {
    /// A node's daemon tick.
    Step(usize),
    /// Updates reach observers.
    Deliver(Box<Delivery>),
    /// `obs`'s failure detector checks whether it still hears `about`.
    Down { obs: usize, about: usize },
    /// `obs` catches up with `about`'s whole state.
    Resync { obs: usize, about: usize },
    /// A supervisor operation completes.
    Settle(Box<Settle>),
    /// A fence pass ends.
    FenceDone(Box<FenceDone>),
    /// The victim of a late fence agent powers off.
    PowerOff(usize),
    /// A powered-off node boots again (if `boot` still matches).
    Reboot(usize, u64),
    /// The scheduled fault number `i`.
    Fault(usize),
    /// Periodic invariant checks.
    Check,
    /// The standing orders number `.1` reach node `.0` (the replicated admin file).
    Admin(Box<(usize, u64, Rc<mosha::engine::Admin>)>),
    /// The placement options number `.1` reach node `.0` (an edit of hactl's options).
    Placement(Box<(usize, u64, Options)>),
}

const _: () = assert!(std::mem::size_of::<Kind2>() <= 24);

/// The groups' placement options, as an edit hands them to every node.
pub type Options = Rc<BTreeMap<String, mosha::engine::Placement>>;

/// Updates from `from` (at `generation`) reach the observers `to`.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub from: usize,
    pub generation: u64,
    pub ver: u64,
    pub upd: Rc<Sent>,
    pub to: NodeSet,
}

/// A supervisor operation completes.
#[derive(Debug, Clone)]
pub struct Settle {
    pub node: usize,
    pub generation: u64,
    pub group: String,
    pub op: u64,
}

/// A fence pass that `fencer` ran on `victim` ends.
#[derive(Debug, Clone)]
pub struct FenceDone {
    pub fencer: usize,
    pub fgen: u64,
    pub victim: usize,
    pub vgen: u64,
    pub ok: bool,
    pub detail: &'static str,
    pub token: u64,
}

struct Ev {
    t: u64,
    seq: u64,
    k: Kind2,
}

impl PartialEq for Ev {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

/// What a run is.
#[derive(Debug, Clone)]
pub struct Params {
    /// Node count.
    pub nodes: usize,
    /// Group count.
    pub groups: usize,
    /// Simulated duration (ms).
    pub duration: u64,
    /// The seed that fixes everything.
    pub seed: u64,
    /// The fault profile.
    pub profile: Profile,
    /// The policy.
    pub kind: Kind,
    /// Whether to keep a readable trace.
    pub trace: bool,
}

/// The checks the world runs as events happen (the invariants: `invariants::CHECKS`),
/// handed in by its caller so that the world does not depend on what it is checked against.
#[derive(Clone, Copy)]
pub struct Checks {
    /// A node tells its supervisor `plan`.
    pub on_plan: fn(&mut World, usize, &str),
    /// A node tells its supervisor `test`.
    pub on_test: fn(&mut World, usize, &str),
    /// A node's supervisor starts (`true`) or stops running a group at its level.
    pub census: fn(&mut World, usize, &str, bool),
    /// A group settled somewhere.
    pub placed: fn(&mut World),
    /// Every 250 ms of virtual time.
    pub periodic: fn(&mut World),
    /// At the end of the run.
    pub finish: fn(&mut World),
}

/// The simulated cluster.
pub struct World {
    /// The checks run as events happen.
    pub checks: Checks,
    /// The run's parameters.
    pub p: Params,
    /// Virtual time (ms).
    pub now: u64,
    seq: u64,
    q: BinaryHeap<Ev>,
    /// The simulator's RNG (delays, agents).
    pub rng: ChaCha12Rng,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Gossip timing.
    pub timing: Timing,
    /// Connectivity.
    pub links: Links,
    /// Ordering of deliveries per (observer, publisher).
    pub(crate) last: Vec<Vec<u64>>,
    /// The engine configuration every node runs.
    pub cfg: Config,
    /// The fault plan.
    pub plan: Plan,
    /// Whether everything was healed.
    pub healed: bool,
    /// When each group was last handed off (a planned move, standby, failback).
    pub handed_at: BTreeMap<String, u64>,
    /// When a fence agent last powered a node off (0: never).
    pub last_power_off: u64,
    /// The newest standing orders, with their number.
    pub admin: (u64, mosha::engine::Admin),
    /// The groups' placement options in force (hactl's), with their number.
    pub placement: (u64, Rc<BTreeMap<String, mosha::engine::Placement>>),
    /// The text of every hactl version made (see `files`); the newest is the truth.
    pub hactl: BTreeMap<Version, String>,
    /// Group names.
    pub gnames: Vec<String>,
    /// Node names (the membership every node persisted).
    pub names: BTreeSet<String>,
    /// Truth: how many nodes run each group at its run level.
    pub running: BTreeMap<String, usize>,
    /// Groups awaiting a failover: since when.
    pub pending_failover: BTreeMap<String, u64>,
    /// The figures.
    pub stats: Stats,
    /// The readable trace, when asked for.
    pub trace: Option<Vec<String>>,
    pub(crate) gen_counter: u64,
    /// The node indices in name order (`n0`, `n1`, `n10`, ...), the order a node's core
    /// takes many members' beats in.
    pub(crate) by_name: Vec<usize>,
    /// The node names by index (`n<i>`).
    pub(crate) node_names: Vec<String>,
    /// Fence passes running: (fencer, victim) → token.
    pub fence_runs: BTreeMap<(usize, usize), u64>,
    /// Lives (node, generation) a fence pass reported off: fencing one again is needless,
    /// and hits the node's next life if it rebooted meanwhile.
    pub fenced_lives: BTreeSet<(usize, u64)>,
    /// The node that each fault aimed at a group's holder hit, by slot (see
    /// `Fault::AtHolder`).
    pub(crate) hit: BTreeMap<usize, usize>,
}

impl World {
    /// Builds the cluster of run `p`, cold: every node starts within the first 200 ms.
    pub fn new(p: Params, checks: Checks) -> World {
        let n = p.nodes;
        let mut rng = ChaCha12Rng::seed_from_u64(p.seed);
        let cfg = Config::for_cluster_size(n);
        let timing = Timing::for_nodes(n, p.profile.loss);
        let heal_at = p
            .duration
            .saturating_sub(crate::net::liveness_bound(&cfg, &timing));
        let plan = faults::plan(p.seed, &p.profile, n, p.groups, heal_at.max(1));
        let gnames: Vec<String> = (0..p.groups).map(|g| format!("g{g}")).collect();
        let want: BTreeMap<String, String> = (gnames.iter())
            .map(|g| (g.clone(), "start".to_string()))
            .collect();
        // Every node's disk holds the first hactl, every group at `start`, made before the
        // cluster started.
        let first = Version {
            ms: 1,
            seq: 0,
            node: "n0".to_string(),
        };
        let text = World::hactl_text(&want);
        let mut nodes = Vec::with_capacity(n);
        let names: BTreeSet<String> = (0..n).map(|i| format!("n{i}")).collect();
        for i in 0..n {
            let mut node = Node::new(
                format!("n{i}"),
                p.kind,
                i as u64 + 1,
                p.seed ^ (i as u64) << 20,
                &cfg,
                &names,
            );
            node.want = want.clone();
            node.disk = (first.clone(), text.clone());
            node.reset(
                p.kind,
                i as u64 + 1,
                p.seed ^ (i as u64) << 20,
                &cfg,
                &names,
            );
            node.phase = rng.random_range(0..TICK);
            node.clock = plan.clocks[i];
            node.up = false;
            node.placement = (0, Rc::new(plan.placement.clone()));
            nodes.push(node);
        }
        let placement = plan.placement.clone();
        let mut by_name: Vec<usize> = (0..n).collect();
        by_name.sort_by(|a, b| nodes[*a].name.cmp(&nodes[*b].name));
        let mut w = World {
            checks,
            now: 0,
            seq: 0,
            q: BinaryHeap::new(),
            rng,
            nodes,
            timing,
            links: Links::new(n),
            last: vec![vec![0; n]; n],
            cfg,
            plan,
            healed: false,
            handed_at: BTreeMap::new(),
            last_power_off: 0,
            admin: (0, mosha::engine::Admin::default()),
            placement: (0, Rc::new(placement)),
            hactl: [(first, text)].into(),
            gnames,
            names,
            running: BTreeMap::new(),
            pending_failover: BTreeMap::new(),
            stats: Stats {
                nodes: n,
                duration: p.duration,
                ..Stats::default()
            },
            trace: p.trace.then(Vec::new),
            gen_counter: n as u64 + 1,
            by_name,
            node_names: (0..n).map(|i| format!("n{i}")).collect(),
            fence_runs: BTreeMap::new(),
            fenced_lives: BTreeSet::new(),
            hit: BTreeMap::new(),
            p,
        };
        for i in 0..n {
            let t = w.rng.random_range(0..200u64);
            w.push(t, Kind2::Reboot(i, 0));
        }
        for i in 0..w.plan.schedule.len() {
            let t = w.plan.schedule[i].0;
            w.push(t, Kind2::Fault(i));
        }
        w.push(250, Kind2::Check);
        w
    }

    /// Queues event `k` at `t`.
    pub fn push(&mut self, t: u64, k: Kind2) {
        self.seq += 1;
        self.q.push(Ev {
            t,
            seq: self.seq,
            k,
        });
    }

    /// Adds a trace line (when tracing).
    pub fn log(&mut self, f: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            t.push(format!("{:>9} {}", self.now, f()));
        }
    }

    /// Returns the simulated duration of the run, in ms.
    pub fn duration(&self) -> u64 {
        self.p.duration
    }

    /// Returns how many events are queued.
    pub fn queued(&self) -> usize {
        self.q.len()
    }

    /// Runs to the end; returns the figures.
    pub fn run(&mut self) -> Stats {
        self.run_until(self.p.duration);
        self.now = self.p.duration;
        (self.checks.finish)(self);
        self.stats.clone()
    }

    /// Handles every event up to time `t` (inclusive).
    pub fn run_until(&mut self, t: u64) {
        while self.q.peek().is_some_and(|ev| ev.t <= t) {
            let Some(ev) = self.q.pop() else { break };
            self.now = ev.t;
            self.stats.events += 1;
            self.handle(ev.k);
        }
        self.now = self.now.max(t);
    }

    fn handle(&mut self, k: Kind2) {
        match k {
            Kind2::Step(x) => {
                if self.nodes[x].next_step == Some(self.now) {
                    self.nodes[x].next_step = None;
                    if self.nodes[x].ok() {
                        self.step(x);
                    }
                }
            }
            Kind2::Deliver(d) => {
                let Delivery {
                    from,
                    generation,
                    ver,
                    upd,
                    to,
                } = *d;
                for y in to.iter() {
                    self.deliver(y, from, (generation, ver), &upd);
                }
            }
            Kind2::Down { obs, about } => {
                if self.nodes[obs].ok() && !self.links.heard(obs, about) {
                    let name = self.nodes[about].name.clone();
                    let seen = self.nodes[obs].core.view().members.get(&name);
                    if let Some(generation) = seen.filter(|m| m.alive).map(|m| m.generation) {
                        self.nodes[obs].core.observe(Input::Member {
                            name: name.clone(),
                            generation,
                            alive: false,
                            keys: None,
                        });
                        self.log(|| format!("n{obs} drops {name}"));
                        self.dirty(obs);
                    }
                }
            }
            Kind2::Resync { obs, about } => {
                if self.links.heard(obs, about) && !self.links.clog_out[obs] {
                    self.resync(obs, about);
                } else if self.links.heard(obs, about) {
                    self.heartbeats_only(obs, about);
                }
            }
            Kind2::Settle(s) => self.settle(s.node, s.generation, s.group, s.op),
            Kind2::FenceDone(f) => {
                let FenceDone {
                    fencer,
                    fgen,
                    victim,
                    vgen,
                    ok,
                    detail,
                    token,
                } = *f;
                if self.fence_runs.get(&(fencer, victim)) != Some(&token) {
                    return; // cancelled: the daemon killed the agent
                }
                self.fence_runs.remove(&(fencer, victim));
                if ok {
                    self.power_off(victim);
                    self.fenced_lives.insert((victim, vgen));
                }
                let f = &self.nodes[fencer];
                if !f.up || f.generation != fgen {
                    return;
                }
                self.log(|| format!("n{fencer} fence of n{victim} (gen {vgen}) done ok={ok}"));
                self.fence_result(fencer, victim, vgen, ok, detail);
            }
            // The heal also ends misbehaving agents: a late power-off no longer lands.
            Kind2::PowerOff(v) if !self.healed => self.power_off(v),
            Kind2::PowerOff(_) => {}
            Kind2::Reboot(v, boot) => {
                if !self.nodes[v].up && self.nodes[v].boot == boot {
                    self.restart(v);
                }
            }
            Kind2::Fault(i) => {
                let f = self.plan.schedule[i].1.clone();
                self.fault(f);
            }
            Kind2::Admin(a) => self.admin_arrives(a.0, a.1, &a.2),
            Kind2::Placement(p) => {
                let (node, seq, placement) = *p;
                self.placement_arrives(node, seq, placement)
            }
            Kind2::Check => {
                (self.checks.periodic)(self);
                self.push(self.now + 250, Kind2::Check);
            }
        }
    }

    /// Schedules a step of node `x` at its next tick at or after `at`.
    pub fn schedule_step(&mut self, x: usize, at: u64) {
        let ph = self.nodes[x].phase;
        let t = if at <= ph {
            ph
        } else {
            ph + (at - ph).div_ceil(TICK) * TICK
        };
        if self.nodes[x].next_step.is_some_and(|s| s <= t) {
            return;
        }
        self.nodes[x].next_step = Some(t);
        self.push(t, Kind2::Step(x));
    }

    /// Notes that node `x`'s view or supervisor changed (mosha steps on change; OpenMosix
    /// only polls on its cycle).
    pub fn dirty(&mut self, x: usize) {
        if self.p.kind == Kind::Ours {
            self.schedule_step(x, self.now + 1);
        }
    }

    /// Returns the index of node `name` (`n<i>`).
    pub fn name_index(&self, name: &str) -> Option<usize> {
        let i: usize = name.strip_prefix('n')?.parse().ok()?;
        (i < self.nodes.len()).then_some(i)
    }

    /// Returns when the last delivery from `about` to `obs` is due.
    pub fn last_delivery(&self, obs: usize, about: usize) -> u64 {
        self.last[obs][about]
    }

    /// Recomputes who hears whom for every pair involving `x` (or all pairs).
    pub fn relink(&mut self, x: Option<usize>) {
        let n = self.nodes.len();
        let pairs: Vec<(usize, usize)> = match x {
            Some(x) => (0..n)
                .filter(|y| *y != x)
                .flat_map(|y| [(y, x), (x, y)])
                .collect(),
            None => (0..n)
                .flat_map(|a| (0..n).filter(move |b| *b != a).map(move |b| (a, b)))
                .collect(),
        };
        for (obs, about) in pairs {
            let c = self.nodes[obs].ok() && self.nodes[about].ok() && self.links.path(obs, about);
            if !self.links.set(obs, about, c) {
                continue;
            }
            if c {
                // Invariant (d) counts the failure timeout from the last peer heard anew:
                // the detector cannot drop a peer it heard less than a timeout ago.
                if self.nodes[obs].nonquorate_since.is_some() {
                    self.nodes[obs].nonquorate_since = Some(self.now);
                }
                let t = (self.now + self.timing.dissem(&mut self.rng)).max(self.last[obs][about]);
                self.last[obs][about] = t;
                self.push(t, Kind2::Resync { obs, about });
            } else {
                let t = self.now + self.timing.detection(&mut self.rng);
                self.push(t, Kind2::Down { obs, about });
            }
        }
        // Invariant (d): quorum needs peers that hear this node and that it hears.
        for i in 0..n {
            let mutual = (0..n)
                .filter(|j| *j != i && self.links.heard(i, *j) && self.links.heard(*j, i))
                .count();
            let q = mutual + 1 > n / 2;
            let node = &mut self.nodes[i];
            match (q, node.nonquorate_since) {
                (false, None) => node.nonquorate_since = Some(self.now),
                (true, Some(_)) => node.nonquorate_since = None,
                _ => {}
            }
        }
    }

    /// Returns the generation counter (for new generations).
    pub fn gen_counter(&self) -> u64 {
        self.gen_counter
    }
}

#[cfg(test)]
mod node_set_tests {
    use super::NodeSet;

    #[test]
    fn a_node_set_holds_each_node_once_in_index_order() {
        let mut r = NodeSet::default();
        for i in [130, 0, 63, 64, 999, 63] {
            r.insert(i);
        }
        assert_eq!(r.iter().collect::<Vec<_>>(), [0, 63, 64, 130, 999]);
        assert_eq!(NodeSet::default().iter().count(), 0);
    }
}
