//! The daemon's cluster step, a thin driver of the node core ([`crate::engine::node`]): it
//! hands the core what it observed (the gossip view, the supervisor's claims, the files in
//! force, fence results, operator commands), carries out the core's [`Ready`] (tells the
//! supervisor, publishes, runs fence agents, logs, persists the expected membership before
//! advancing), and replicates cltab, hactl, fencetab and admin (validates edits, writes
//! the versions the core adopts). Every decision is the core's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand_chacha::ChaCha12Rng;
use tracing::{error, info, warn};

use super::events::{self, Alerts};
use super::inputs::{fencing, placement, restart_policy, summary, wanted};
pub use super::members::read_members;
use super::members::Members;
use super::notices::Notices;
use super::replicated::{self, Replicated};
use crate::config::{self, Cltab, Fencetab, Fencing, Hactl, Problem};
use crate::engine::node::{self, Durable, Input, Node, Ready};
use crate::engine::{self, Event};
use crate::fence::{OsAgents, Runner};
use crate::files;
use crate::gossip::ClusterView;
use crate::replica::Version;
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

fn validate_admin(file: &str, text: &str) -> Result<(), Vec<Problem>> {
    config::admin::parse(file, text).map(|_| ())
}

/// The cluster half of a node: replicated files, expected membership, the node core.
pub struct Cluster {
    pub(super) me: String,
    /// Each member's (generation, key version) whose keys the core was last given.
    seen_versions: BTreeMap<String, (u64, u64)>,
    pub(super) dir: PathBuf,
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
    /// The replicated standing orders (standby, freeze, maintenance).
    pub admin_file: Replicated,
    /// The standing orders in force, parsed.
    pub admin: engine::Admin,
    /// `admin` is not yet applied to the supervisor (at start).
    admin_unapplied: bool,
    /// The standing orders given here, until the admin file in force says them.
    orders: super::orders::Pending,
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
    /// The node core: every decision.
    pub(super) core: Node,
    /// The status keys of this node's failed and restarted groups.
    health: super::health::Published,
    /// The core's orders to the supervisor not carried out yet.
    tells: super::tells::Tells,
    pub(super) last_view: Option<ClusterView>,
    /// The versions of cltab, hactl, fencetab and admin parsed into `cltab`, `hactl`,
    /// `fencetab`, `admin`.
    parsed: [Version; 4],
}

impl Cluster {
    /// Opens the node's files and creates its core (at gossip `generation`).
    ///
    /// # Errors
    /// Fails when `DIR/members` is invalid or unreadable (quorum cannot be computed from a
    /// damaged file), with every problem of it.
    pub fn open(
        dir: &Path,
        me: &str,
        generation: u64,
        cfg: engine::Config,
        rng: ChaCha12Rng,
        alert: Option<String>,
    ) -> Result<Cluster, String> {
        let (members, expected) = Members::open(dir)?;
        let mut core = Node::new(me, generation, cfg, expected, rng);
        let mut recorded = replicated::read_versions(dir);
        let mut open = |name, mode, validate| {
            let (file, loaded) = Replicated::open(dir, name, mode, validate, recorded.remove(name));
            core.observe(loaded);
            file
        };
        let cltab_file = open(
            "cltab",
            files::DEFAULT_MODE,
            validate_cltab as replicated::Validator,
        );
        let hactl_file = open("hactl", files::DEFAULT_MODE, validate_hactl);
        // The fencetab may hold passwords: readable by root only, on every node.
        let fencetab_file = open("fencetab", 0o600, validate_fencetab);
        let admin_file = open("admin", files::DEFAULT_MODE, validate_admin);
        let text = |name| core.file(name).map_or("", |(_, t)| t);
        let admin = config::admin::parse("admin", text("admin")).unwrap_or_default();
        let fencetab = Fencetab::parse("fencetab", text("fencetab")).unwrap_or_default();
        let cltab = Cltab::parse("cltab", text("cltab")).unwrap_or_default();
        let hactl = Hactl::parse("hactl", text("hactl")).unwrap_or_default();
        let version = |name| core.file(name).map(|(v, _)| v.clone()).unwrap_or_default();
        let parsed = FILES.map(version);
        core.observe(Input::Wanted(wanted(&cltab, &hactl)));
        core.observe(Input::Admin(admin.clone()));
        core.observe(Input::Placement(placement(&hactl)));
        core.observe(Input::Fencing(fencing(&fencetab)));
        Ok(Cluster {
            me: me.to_string(),
            dir: dir.to_path_buf(),
            cltab_file,
            hactl_file,
            cltab,
            hactl,
            fencetab_file,
            fencetab,
            admin_file,
            admin,
            admin_unapplied: true,
            orders: Default::default(),
            runner: Runner::new(),
            agents: OsAgents,
            alerts: Alerts {
                command: alert,
                me: me.to_string(),
            },
            members,
            notices: Notices::new(Instant::now(), super::wall_ms()),
            core,
            health: Default::default(),
            tells: Default::default(),
            last_view: None,
            seen_versions: BTreeMap::new(),
            parsed,
        })
    }

    /// Returns every error of the files rejected on this node (cltab, hactl, fencetab,
    /// members), as `file:line: what is wrong`.
    pub fn config_errors(&self) -> Vec<String> {
        [
            &self.cltab_file.errors,
            &self.hactl_file.errors,
            &self.fencetab_file.errors,
            &self.admin_file.errors,
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

    /// Returns the node core.
    pub fn core(&self) -> &Node {
        &self.core
    }

    /// Returns the version in force of replicated file `name` (zero: none).
    pub fn version(&self, name: &str) -> Version {
        self.core
            .file(name)
            .map(|(v, _)| v.clone())
            .unwrap_or_default()
    }

    /// Hands the core the edits of the local files that settled by `now` (`wall_ms`: the
    /// wall clock, for their versions).
    fn poll_local_files(&mut self, now: Instant, wall_ms: u64) {
        for file in [
            &mut self.cltab_file,
            &mut self.hactl_file,
            &mut self.fencetab_file,
            &mut self.admin_file,
        ] {
            if let Some(edit) = file.poll_local(now, self.core.file(file.name), wall_ms) {
                self.core.observe(edit);
            }
        }
    }

    /// Carries out the core's offers to adopt a peer's newer file, reading it from `view`.
    fn adopt_files(&mut self, offers: &[node::Adopt], view: &ClusterView) {
        for offer in offers {
            let file = match offer.file.as_str() {
                "cltab" => &mut self.cltab_file,
                "hactl" => &mut self.hactl_file,
                "fencetab" => &mut self.fencetab_file,
                "admin" => &mut self.admin_file,
                _ => continue,
            };
            // The first member that publishes the text whole.
            let outcome = (offer.from.iter())
                .filter_map(|m| Some((m, &view.members.get(m)?.keys)))
                .find_map(|(m, keys)| file.adopt(offer, m, keys, &mut self.notices));
            if let Some(outcome) = outcome {
                self.core.observe(outcome);
            }
        }
    }

    /// Parses the files whose version in force changed since they were last parsed, and
    /// hands the core what changed. Returns whether the cltab changed (the supervisor must
    /// be reconfigured).
    fn parse_changed_files(&mut self) -> bool {
        let now = FILES.map(|f| self.version(f));
        let changed: Vec<bool> = (now.iter().zip(&self.parsed))
            .map(|(a, b)| a != b)
            .collect();
        if !changed.contains(&true) {
            return false;
        }
        let text = |name| self.core.file(name).map_or("", |(_, t)| t);
        if changed[0] {
            let path = self.cltab_file.path().display().to_string();
            self.cltab = Cltab::parse(&path, text("cltab")).unwrap_or_default();
            for w in &self.cltab.warnings {
                warn!("{w}");
            }
        }
        if changed[3] {
            self.admin = config::admin::parse("admin", text("admin")).unwrap_or_default();
            info!(orders = %summary(&self.admin), "standing orders in force changed");
        }
        if changed[1] {
            self.hactl = Hactl::parse("hactl", text("hactl")).unwrap_or_default();
            info!(groups = self.hactl.groups.len(), "hactl in force changed");
        }
        if changed[2] {
            self.fencetab = Fencetab::parse("fencetab", text("fencetab")).unwrap_or_default();
            let off = self.fencetab.disabled();
            if !off.is_empty() {
                warn!(nodes = ?off, "fencing is turned OFF (none) for these nodes: their groups are recovered without fencing, which is unsafe");
            }
            self.core.observe(Input::Fencing(fencing(&self.fencetab)));
        }
        if changed[3] {
            self.core.observe(Input::Admin(self.admin.clone()));
        }
        if changed[0] || changed[1] {
            self.core
                .observe(Input::Wanted(wanted(&self.cltab, &self.hactl)));
            (self.core).observe(Input::Placement(placement(&self.hactl)));
            let hactl_path = self.hactl_file.path().display().to_string();
            for w in config::cross_check(&self.cltab, &self.hactl, &hactl_path) {
                warn!("{w}");
            }
        }
        self.parsed = now;
        changed[0]
    }

    /// Hands the core the gossip view: every other member's liveness, generation and keys,
    /// and the members gossip forgot.
    fn observe_view(&mut self, view: &ClusterView) {
        // A member's keys go to the core only when its generation or key version moved:
        // most ticks only liveness may have changed.
        self.seen_versions
            .retain(|n, _| view.members.contains_key(n));
        for (name, m) in view.members.iter().filter(|(n, _)| **n != self.me) {
            let seen = (m.generation, m.version);
            let keys = (self.seen_versions.get(name) != Some(&seen)).then(|| {
                (m.keys.iter())
                    .filter(|(k, _)| node::is_core_key(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            });
            if keys.is_some() {
                self.seen_versions.insert(name.clone(), seen);
            }
            self.core.observe(Input::Member {
                name: name.clone(),
                generation: m.generation,
                alive: m.alive,
                keys,
            });
        }
        let gone: Vec<String> = (self.core.view().members.keys())
            .filter(|n| **n != self.me && !view.members.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.core.observe(Input::Gone { name });
        }
    }

    /// Hands the core the supervisor's claims (and forgets those of groups it dropped).
    fn observe_claims(&mut self, sup: &Supervisor) {
        // Only what differs from the core's picture of this node. Both are maps sorted by
        // group, walked side by side: with thousands of groups and a look at every turn, a
        // lookup of each group in the other map cost more than the engine's step.
        let empty = engine::VecMap::new();
        let known = (self.core.view().members.get(&self.me)).map_or(&empty, |m| &m.claims);
        let mut changes: Vec<(String, Option<engine::Claim>)> = Vec::new();
        let mut ours = sup.claims().peekable();
        let mut theirs = known.iter().peekable();
        loop {
            let order = match (ours.peek(), theirs.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((g, ..)), Some((k, _))) => (*g).cmp(k.as_str()),
            };
            if order == std::cmp::Ordering::Greater {
                // Gone from the supervisor.
                if let Some((k, _)) = theirs.next() {
                    changes.push((k.clone(), None));
                }
                continue;
            }
            let Some((g, level, target, state)) = ours.next() else {
                break;
            };
            let same = order == std::cmp::Ordering::Equal
                && theirs.next().is_some_and(|(_, c)| {
                    c.level == level && c.target == target && c.state == state
                });
            if !same {
                let claim = engine::Claim {
                    level: level.to_string(),
                    target: target.to_string(),
                    state,
                };
                changes.push((g.to_string(), Some(claim)));
            }
        }
        if !changes.is_empty() {
            self.core.observe(Input::Claims(changes));
        }
    }

    /// Keeps `view` for status while the daemon decides nothing (see
    /// [`super::identity::Verdict::Hold`]); the loop still runs, so that is no freeze.
    pub fn hold(&mut self, view: ClusterView, now_ms: u64) {
        self.core.observe(Input::Awake { now: now_ms });
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
            self.core.observe(Input::Expected(m));
        }
        self.poll_local_files(now, wall_ms);
        self.take_changed_files(sup, os, now);
        let mut publish = Vec::new();
        let mut orders = Vec::new();
        for i in super::commands::carry_out(&self.dir, &self.core, &view, &mut orders) {
            self.core.observe(i);
        }
        for o in orders {
            self.orders.push(o, now);
        }
        self.write_orders(now, wall_ms);
        self.take_changed_files(sup, os, now);
        for r in self.runner.take_results() {
            let detail = format!("{} (at unix {:.1})", r.detail, wall_ms as f64 / 1000.0);
            if r.ok {
                info!(node = %r.victim, generation = r.generation, "fenced: {detail}");
            } else {
                error!(node = %r.victim, generation = r.generation, "fencing failed: {detail}");
            }
            self.core.observe(Input::FenceDone {
                node: r.victim,
                generation: r.generation,
                ok: r.ok,
                detail,
            });
        }
        self.observe_view(&view);
        self.observe_claims(sup);
        let ready = self.core.ready(now_ms);
        self.adopt_files(&ready.adopt, &view);
        self.take_changed_files(sup, os, now);
        publish.extend(self.carry(ready, sup, os, now));
        // One look at the supervisor after the tells: the claims to publish, and the view
        // hastat shows until the next step.
        publish.extend(self.claim_changes(sup));
        let engine = self.core.engine();
        publish.extend(self.health.changes(sup, os, engine, now_ms, wall_ms));
        self.last_view = Some(view);
        publish
    }

    /// Writes the standing orders that are due into the admin file, as a local edit that
    /// the core versions and spreads at once (the file is written too, so that it says
    /// what is in force).
    fn write_orders(&mut self, now: Instant, wall_ms: u64) {
        let Some(text) = self.orders.due(&self.admin, now) else {
            return;
        };
        let written = files::write_atomic(self.admin_file.path(), text.as_bytes());
        self.notices.outcome("write the admin file", &written);
        self.core.observe(Input::FileEdited {
            file: "admin".to_string(),
            text,
            wall_ms,
        });
    }

    /// Reparses the files whose version in force changed (a local edit, an adopted one) and
    /// hands a new cltab to the supervisor.
    fn take_changed_files(&mut self, sup: &mut Supervisor, os: &mut dyn Os, now: Instant) {
        let (admin, hactl) = (self.parsed[3].clone(), self.parsed[1].clone());
        let cltab = self.parse_changed_files();
        if cltab {
            sup.configure(now, os, &self.cltab);
        }
        if cltab || hactl != self.parsed[1] || self.admin_unapplied {
            sup.set_policies(&|g| restart_policy(&self.hactl, g));
        }
        if cltab || admin != self.parsed[3] || self.admin_unapplied {
            self.admin_unapplied = false;
            let admin = &self.admin;
            sup.set_frozen(now, os, &|g| admin.is_frozen(g));
        }
        if cltab {
            sup.retell_all(now, os);
        }
    }

    /// Carries out `ready`; returns its gossip changes.
    fn carry(
        &mut self,
        ready: Ready,
        sup: &mut Supervisor,
        os: &mut dyn Os,
        now: Instant,
    ) -> Vec<(String, Option<String>)> {
        for group in &ready.cleared {
            sup.clear_failures(now, os, group);
        }
        for (group, level) in &ready.tell {
            self.tells.push(group, level);
        }
        self.tells.carry(sup, os, now);
        for (node, generation) in ready.fence {
            match self.fencetab.for_node(&node) {
                Fencing::Methods(ms) => {
                    let ms = ms.to_vec();
                    self.runner
                        .start(now, &mut self.agents, &node, generation, &ms);
                }
                _ => {
                    self.core.observe(Input::FenceDone {
                        node,
                        generation,
                        ok: false,
                        detail: "no fence method configured any more".to_string(),
                    });
                }
            }
        }
        for node in ready.cancel_fence {
            if self.runner.cancel(&mut self.agents, &node) {
                warn!(%node, "fencing cancelled: quorum lost, or the node is already known to be off");
            }
        }
        for e in &ready.events {
            self.event(e);
        }
        // Persist before advance: the core learns whether the membership is durable.
        if let Some(m) = &ready.persist {
            let written = self.members.write(m);
            self.notices.outcome("write members", &written);
            self.core
                .advance(Durable::Members, written.map_err(|e| e.to_string()));
        }
        if let Some(v) = &ready.versions {
            let written = replicated::save_versions(&self.dir, v);
            self.notices.outcome("write .mosha-versions.json", &written);
            self.core
                .advance(Durable::Versions, written.map_err(|e| e.to_string()));
        }
        ready.publish
    }

    /// Logs an event and runs its alert.
    fn event(&self, e: &Event) {
        events::log(e);
        self.alerts.for_event(e);
    }

    /// Carries out the core's orders still waiting (see [`super::tells`]).
    pub fn carry_waiting(&mut self, sup: &mut Supervisor, os: &mut dyn Os, now: Instant) {
        self.tells.carry(sup, os, now);
    }

    /// Returns the time spent carrying out orders to the supervisor since the last call.
    pub fn take_orders_time(&mut self) -> std::time::Duration {
        self.tells.take_spent()
    }

    /// Drops the orders still waiting (at shutdown every group stops instead).
    pub fn forget_orders(&mut self) {
        self.tells = Default::default();
    }

    /// Tells whether orders to the supervisor wait (the loop then comes round at once).
    pub fn orders_waiting(&self) -> bool {
        self.tells.pending()
    }

    /// Returns the gossip changes that publish this node's claims as the supervisor has them
    /// now (and runs the group-started and group-stopped alerts).
    pub fn claim_changes(&mut self, sup: &Supervisor) -> Vec<(String, Option<String>)> {
        self.observe_claims(sup);
        let ready = self.core.flush();
        for e in &ready.events {
            self.event(e);
        }
        ready.publish
    }
}

/// The replicated files, in the order of [`Cluster::parsed`].
const FILES: [&str; 4] = ["cltab", "hactl", "fencetab", "admin"];
