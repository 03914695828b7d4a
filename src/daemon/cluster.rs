//! The daemon's cluster step: reads the gossip view, replicates cltab and hactl, feeds the
//! engine, carries out its decisions on the supervisor, publishes this node's claims, and
//! builds hastat. Everything that turns gossip into engine inputs and engine outputs into
//! effects lives here; the decisions themselves are the engine's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand_chacha::ChaCha12Rng;
use tracing::{error, info, warn};

use super::events::{self, Alerts};
pub use super::members::read_members;
use super::members::Members;
use super::notices::Notices;
use super::replicated::{self, Change, Replicated};
use crate::config::{self, Cltab, Fencetab, Fencing, Hactl, Problem};
use crate::engine::{self, Action, Claim, Engine, Policy, Record};
use crate::fence::{OsAgents, Runner};
use crate::files;
use crate::gossip::ClusterView;
use crate::replica::Hlc;
use crate::supervisor::{Os, Supervisor};

fn validate_cltab(file: &str, text: &str) -> Result<(), Vec<Problem>> {
    Cltab::parse(file, text).map(|_| ())
}

fn validate_hactl(file: &str, text: &str) -> Result<(), Vec<Problem>> {
    Hactl::parse(file, text).map(|_| ())
}

fn validate_fencetab(file: &str, text: &str) -> Result<(), Vec<Problem>> {
    Fencetab::parse(file, text).map(|_| ())
}

pub use engine::keys::{BEAT as BEAT_KEY, BYE as BYE_KEY};

/// When this node last got news (a new beat) from a member.
struct News {
    generation: u64,
    beat: Option<String>,
    at: u64,
}

/// Returns how `node` is fenced according to `tab`, with the time one pass may take (every
/// level's timeout, twice for `off` which is confirmed by `status`, plus a margin). The sum
/// saturates: it can never overflow, whatever a table holds.
pub fn policy(tab: &Fencetab, node: &str) -> Policy {
    match tab.for_node(node) {
        Fencing::Methods(ms) => {
            let total = ms.iter().fold(2000u64, |total, m| {
                let t = u64::try_from(m.timeout.as_millis()).unwrap_or(u64::MAX);
                let runs = if m.action == "off" { 2 } else { 1 };
                total.saturating_add(t.saturating_mul(runs))
            });
            Policy::Configured { timeout: total }
        }
        Fencing::Disabled => Policy::Disabled,
        Fencing::Unconfigured => Policy::Unconfigured,
    }
}

/// The cluster half of a node: replicated files, expected membership, engine.
pub struct Cluster {
    pub(super) me: String,
    pub(super) dir: PathBuf,
    hlc: Hlc,
    /// The replicated cltab.
    pub cltab_file: Replicated,
    /// The replicated hactl.
    pub hactl_file: Replicated,
    /// The cltab in force, parsed.
    pub cltab: Cltab,
    /// The hactl in force, parsed.
    pub hactl: Hactl,
    /// The replicated fencing table.
    pub fencetab_file: Replicated,
    /// The fencing table in force, parsed.
    pub fencetab: Fencetab,
    /// The fence agents this node runs.
    pub runner: Runner,
    /// The real fence agents.
    pub agents: OsAgents,
    /// The alert command, if any.
    pub(super) alerts: Alerts,
    /// `DIR/members`.
    members: Members,
    /// Repeated errors of the files this node writes, said once (shown in hastat).
    pub notices: Notices,
    /// The engine.
    pub engine: Engine,
    rng: ChaCha12Rng,
    published_claims: BTreeMap<String, String>,
    pub(super) last_view: Option<ClusterView>,
    /// The engine's view at the last step, this node's claims as they were after it: what
    /// hastat shows, without building it again.
    pub(super) last_ev: Option<engine::View>,
    /// This node's beat counter, and when it was last published (engine time).
    beat: (u64, Option<u64>),
    /// News from each member, as its beats arrive.
    news: BTreeMap<String, News>,
    /// When the last step ran (engine time), to notice that this daemon was frozen.
    last_step: Option<u64>,
}

impl Cluster {
    /// Opens the node's files and creates its engine.
    ///
    /// # Errors
    /// Fails when `DIR/members` is invalid (quorum cannot be computed from a damaged file),
    /// with every problem of it.
    pub fn open(
        dir: &Path,
        me: &str,
        cfg: engine::Config,
        rng: ChaCha12Rng,
        alert: Option<String>,
    ) -> Result<Cluster, String> {
        let mut hlc = Hlc::default();
        let cltab_file = Replicated::open(dir, "cltab", files::DEFAULT_MODE, me, validate_cltab);
        let hactl_file = Replicated::open(dir, "hactl", files::DEFAULT_MODE, me, validate_hactl);
        // The fencetab may hold passwords: readable by root only, on every node.
        let fencetab_file = Replicated::open(dir, "fencetab", 0o600, me, validate_fencetab);
        hlc.observe(&cltab_file.version);
        hlc.observe(&hactl_file.version);
        hlc.observe(&fencetab_file.version);
        let fencetab = Fencetab::parse("fencetab", &fencetab_file.text).unwrap_or_default();
        let cltab = Cltab::parse("cltab", &cltab_file.text).unwrap_or_default();
        let hactl = Hactl::parse("hactl", &hactl_file.text).unwrap_or_default();
        let (members, expected) = Members::open(dir)?;
        Ok(Cluster {
            me: me.to_string(),
            dir: dir.to_path_buf(),
            hlc,
            cltab_file,
            hactl_file,
            cltab,
            hactl,
            fencetab_file,
            fencetab,
            runner: Runner::new(),
            agents: OsAgents,
            alerts: Alerts {
                command: alert,
                me: me.to_string(),
            },
            members,
            notices: Notices::new(Instant::now(), super::wall_ms()),
            engine: Engine::new(me, cfg, expected),
            rng,
            published_claims: BTreeMap::new(),
            last_view: None,
            last_ev: None,
            beat: (0, None),
            news: BTreeMap::new(),
            last_step: None,
        })
    }

    /// Returns every error of the files rejected on this node (cltab, hactl, fencetab,
    /// members), as `file:line: what is wrong`.
    pub fn config_errors(&self) -> Vec<String> {
        [
            &self.cltab_file.errors,
            &self.hactl_file.errors,
            &self.fencetab_file.errors,
            &self.members.errors,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }

    /// Returns the last gossip view read.
    pub fn last_view(&self) -> Option<&ClusterView> {
        self.last_view.as_ref()
    }

    /// Reads edits of the local files (settled by `now`) and newer versions from peers.
    /// Returns whether the cltab in force changed (the supervisor must be reconfigured) and
    /// whether the hactl in force did.
    fn sync_files(&mut self, view: &ClusterView, now: Instant, wall_ms: u64) -> (bool, bool) {
        let peers = || {
            view.members
                .iter()
                .filter(|(n, _)| **n != self.me)
                .map(|(n, m)| (n.as_str(), &m.keys))
        };
        let mut changed = [false, false, false];
        for (i, (file, validate)) in [
            (
                &mut self.cltab_file,
                validate_cltab as replicated::Validator,
            ),
            (&mut self.hactl_file, validate_hactl),
            (&mut self.fencetab_file, validate_fencetab),
        ]
        .into_iter()
        .enumerate()
        {
            if file.poll_local(now, &mut self.hlc, wall_ms, &self.me, validate) == Change::Applied {
                changed[i] = true;
            }
            if file.poll_peers(&mut self.hlc, peers(), validate, &mut self.notices)
                == Change::Applied
            {
                changed[i] = true;
            }
        }
        if changed[0] {
            self.cltab = Cltab::parse(
                &self.cltab_file.path().display().to_string(),
                &self.cltab_file.text,
            )
            .unwrap_or_default();
            for w in &self.cltab.warnings {
                warn!("{w}");
            }
        }
        if changed[1] {
            self.hactl = Hactl::parse("hactl", &self.hactl_file.text).unwrap_or_default();
        }
        if changed[2] {
            self.fencetab =
                Fencetab::parse("fencetab", &self.fencetab_file.text).unwrap_or_default();
            let off = self.fencetab.disabled();
            if !off.is_empty() {
                warn!(nodes = ?off, "fencing is turned OFF (none) for these nodes: their groups are recovered without fencing, which is unsafe");
            }
        }
        if changed.iter().any(|c| *c) {
            replicated::save_versions(
                &self.dir,
                &[&self.cltab_file, &self.hactl_file, &self.fencetab_file],
                &mut self.notices,
            );
            let hactl_path = self.hactl_file.path().display().to_string();
            for w in config::cross_check(&self.cltab, &self.hactl, &hactl_path) {
                warn!("{w}");
            }
        }
        (changed[0], changed[1])
    }

    /// Returns this node's claims, from its supervisor.
    fn my_claims(sup: &Supervisor) -> BTreeMap<String, Claim> {
        sup.status()
            .into_iter()
            .map(|(g, s)| {
                let claim = Claim {
                    level: s.level,
                    target: s.target,
                    state: s.state,
                };
                (g, claim)
            })
            .collect()
    }

    /// Notes which members' beats changed since the last step, at `now_ms`.
    fn note_news(&mut self, view: &ClusterView, now_ms: u64) {
        for (name, m) in &view.members {
            let beat = m.keys.get(BEAT_KEY);
            let fresh = self
                .news
                .get(name)
                .is_none_or(|n| n.generation != m.generation || n.beat.as_ref() != beat);
            if fresh {
                let news = News {
                    generation: m.generation,
                    beat: beat.cloned(),
                    at: now_ms,
                };
                self.news.insert(name.clone(), news);
            }
        }
        self.news.retain(|n, _| view.members.contains_key(n));
    }

    /// Notices that this daemon did not step for a while (SIGSTOP, a paused VM, starvation):
    /// the engine then holds every move until fresh state arrives, and the silence of peers
    /// during the freeze is not held against them.
    fn note_stall(&mut self, now_ms: u64) {
        let limit = self.engine.config().news_timeout / 2;
        if let Some(last) = self.last_step.filter(|l| now_ms > l + limit) {
            warn!(
                frozen_ms = now_ms - last,
                "this daemon did not run for a while: its view is stale; holding every group \
                 where it is until it has heard the cluster again"
            );
            self.engine.resumed(now_ms);
            for n in self.news.values_mut() {
                n.at = now_ms;
            }
        }
        self.last_step = Some(now_ms);
    }

    /// Returns this node's next beat, when one is due at `now_ms`.
    fn beat_due(&mut self, now_ms: u64) -> Option<(String, Option<String>)> {
        let every = self.engine.config().beat;
        if self.beat.1.is_some_and(|t| now_ms < t + every) {
            return None;
        }
        self.beat = (self.beat.0 + 1, Some(now_ms));
        Some((BEAT_KEY.to_string(), Some(self.beat.0.to_string())))
    }

    /// Converts the gossip view into the engine's.
    pub(super) fn engine_view(&self, view: &ClusterView, sup: &Supervisor) -> engine::View {
        let mut members = BTreeMap::new();
        for (name, m) in &view.members {
            let claims = m
                .keys
                .iter()
                .filter_map(|(k, v)| {
                    let g = k.strip_prefix(engine::CLAIM_PREFIX)?;
                    Some((g.to_string(), Claim::decode(v)?))
                })
                .collect();
            let cooldown = m
                .keys
                .keys()
                .filter_map(|k| k.strip_prefix(engine::COOLDOWN_PREFIX))
                .map(str::to_string)
                .collect();
            members.insert(
                name.clone(),
                engine::Member {
                    alive: m.alive,
                    generation: m.generation,
                    claims,
                    cooldown,
                    left: m.keys.contains_key(BYE_KEY),
                    quiet_since: self.news.get(name).map(|n| n.at),
                    blank: !m.keys.contains_key(BEAT_KEY),
                },
            );
        }
        let me = members.entry(self.me.clone()).or_default();
        me.alive = true;
        me.claims = Self::my_claims(sup);
        let want = self
            .cltab
            .groups()
            .into_iter()
            .map(|g| (g.to_string(), self.hactl.level_of(g).to_string()))
            .collect();
        let policy = members
            .keys()
            .map(|n| (n.clone(), policy(&self.fencetab, n)))
            .collect();
        let records = engine::fencing::reduce(view.members.values().flat_map(|m| {
            m.keys.iter().filter_map(|(k, v)| {
                let victim = k.strip_prefix(engine::fencing::RECORD_PREFIX)?;
                Some((victim, Record::decode(v)?))
            })
        }));
        engine::View {
            members,
            want,
            policy,
            records,
        }
    }

    /// Keeps `view` for status while the daemon decides nothing (see
    /// [`super::identity::Verdict::Hold`]).
    pub fn hold(&mut self, view: ClusterView) {
        self.last_view = Some(view);
    }

    /// Runs one cluster step on `view` at `now_ms` (engine time) and `wall_ms` (for file
    /// versions). Returns the gossip changes to publish.
    pub fn step(
        &mut self,
        view: ClusterView,
        sup: &mut Supervisor,
        os: &mut dyn Os,
        now: Instant,
        now_ms: u64,
        wall_ms: u64,
    ) -> Vec<(String, Option<String>)> {
        if let Some(m) = self.members.poll(now) {
            self.engine.set_expected(m);
        }
        let (cltab_changed, hactl_changed) = self.sync_files(&view, now, wall_ms);
        if cltab_changed {
            sup.configure(now, os, &self.cltab);
            sup.retell_all(now, os);
        }
        let mut publish = self.cltab_file.publication();
        publish.extend(self.hactl_file.publication());
        publish.extend(self.fencetab_file.publication());
        publish.extend(super::commands::carry_out(
            &self.dir,
            &mut self.engine,
            &view,
        ));
        for r in self.runner.take_results() {
            let detail = format!("{} (at unix {:.1})", r.detail, wall_ms as f64 / 1000.0);
            if r.ok {
                info!(node = %r.victim, generation = r.generation, "fenced: {detail}");
            } else {
                error!(node = %r.victim, generation = r.generation, "fencing failed: {detail}");
            }
            for a in self
                .engine
                .fence_result(now_ms, &r.victim, r.generation, r.ok, &detail)
            {
                if let Action::Publish { key, value } = a {
                    publish.push((key, value));
                }
            }
        }
        publish.extend(self.beat_due(now_ms));
        self.note_stall(now_ms);
        self.note_news(&view, now_ms);
        let ev = self.engine_view(&view, sup);
        let actions = self.engine.step(now_ms, &ev, &mut self.rng);
        for a in actions {
            match a {
                Action::Tell { group, level } => sup.tell(now, os, &group, &level),
                Action::Publish { key, value } => publish.push((key, value)),
                Action::Members(m) => self.members.write(&m, &mut self.notices),
                Action::Fence { node, generation } => match self.fencetab.for_node(&node) {
                    Fencing::Methods(ms) => {
                        let ms = ms.to_vec();
                        self.runner
                            .start(now, &mut self.agents, &node, generation, &ms);
                    }
                    _ => {
                        for a in self.engine.fence_result(
                            now_ms,
                            &node,
                            generation,
                            false,
                            "no fence method configured any more",
                        ) {
                            if let Action::Publish { key, value } = a {
                                publish.push((key, value));
                            }
                        }
                    }
                },
                Action::CancelFence { node } => {
                    if self.runner.cancel(&mut self.agents, &node) {
                        warn!(%node, "fencing cancelled: quorum lost, or the node is already known to be off");
                    }
                }
                Action::Event(e) => {
                    events::log(&e);
                    self.alerts.for_event(&e);
                }
            }
        }
        if hactl_changed {
            info!(groups = self.hactl.groups.len(), "hactl in force changed");
        }
        // One look at the supervisor after the actions: for the claims to publish, and for
        // the view hastat shows until the next step.
        let claims = Self::my_claims(sup);
        publish.extend(self.changes_of(&claims));
        let mut ev = ev;
        ev.members.entry(self.me.clone()).or_default().claims = claims;
        self.last_ev = Some(ev);
        self.last_view = Some(view);
        publish
    }

    /// Returns the gossip changes that publish this node's current claims.
    pub fn claim_changes(&mut self, sup: &Supervisor) -> Vec<(String, Option<String>)> {
        let claims = Self::my_claims(sup);
        self.changes_of(&claims)
    }

    /// Returns the gossip changes that publish `all`, this node's claims now (and runs the
    /// group-started and group-stopped alerts).
    fn changes_of(&mut self, all: &BTreeMap<String, Claim>) -> Vec<(String, Option<String>)> {
        // Only claims that hold a group are published: a node at `stop` says nothing about
        // it, which keeps gossip small with many groups.
        let now: BTreeMap<String, String> = all
            .iter()
            .filter(|(_, c)| c.holds())
            .map(|(g, c)| (engine::keys::claim(g), c.encode()))
            .collect();
        for (g, new) in all {
            let k = engine::keys::claim(g);
            let new = new.clone();
            let old = self.published_claims.get(&k).and_then(|o| Claim::decode(o));
            let running = |c: &Claim| {
                c.level == c.target
                    && c.state.settled()
                    && ![engine::PLAN, engine::TEST, engine::STOP, ""].contains(&c.level.as_str())
            };
            let was = old.as_ref().is_some_and(running);
            if running(&new) && !was {
                self.alerts.run("group-started", "", g, &new.to_string());
            } else if was && !new.holds() {
                self.alerts.run("group-stopped", "", g, &new.to_string());
            }
        }
        let mut out: Vec<(String, Option<String>)> = now
            .iter()
            .filter(|(k, v)| self.published_claims.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        out.extend(
            self.published_claims
                .keys()
                .filter(|k| !now.contains_key(*k))
                .map(|k| (k.clone(), None)),
        );
        self.published_claims = now;
        out
    }
}
