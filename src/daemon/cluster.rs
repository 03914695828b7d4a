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
pub use super::members::read_members;
use super::members::Members;
use super::notices::Notices;
use super::replicated::{self, Replicated};
use crate::config::{self, Cltab, Fencetab, Fencing, Hactl, Problem};
use crate::engine::node::{self, Durable, Input, Node, Ready};
use crate::engine::{self, Event, Policy};
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

/// Returns how every node is fenced according to `tab`, for the node core.
pub fn fencing(tab: &Fencetab) -> node::Fencing {
    let named = tab.methods.keys().chain(tab.off.keys());
    node::Fencing {
        default: Some(policy(tab, config::fencetab::ANY_NODE)),
        nodes: named
            .filter(|n| *n != config::fencetab::ANY_NODE)
            .map(|n| (n.clone(), policy(tab, n)))
            .collect(),
    }
}

/// The cluster half of a node: replicated files, expected membership, the node core.
pub struct Cluster {
    pub(super) me: String,
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
            last_view: None,
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
        for (name, m) in view.members.iter().filter(|(n, _)| **n != self.me) {
            let keys = (m.keys.iter())
                .filter(|(k, _)| node::is_core_key(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.core.observe(Input::Member {
                name: name.clone(),
                generation: m.generation,
                alive: m.alive,
                keys: Some(keys),
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
        let now: BTreeMap<String, engine::Claim> = (sup.status().into_iter())
            .map(|(g, s)| {
                let claim = engine::Claim {
                    level: s.level,
                    target: s.target,
                    state: s.state,
                };
                (g, claim)
            })
            .collect();
        let gone: Vec<(String, Option<engine::Claim>)> = (self.core.view().members.get(&self.me))
            .into_iter()
            .flat_map(|m| m.claims.keys())
            .filter(|g| !now.contains_key(*g))
            .map(|g| (g.clone(), None))
            .collect();
        let claims = now.into_iter().map(|(g, c)| (g, Some(c))).chain(gone);
        self.core.observe(Input::Claims(claims.collect()));
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
            sup.tell(now, os, group, level);
        }
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

/// Describes the standing orders `a` in a few words, for the log.
fn summary(a: &engine::Admin) -> String {
    let mut parts: Vec<String> = (a.standby.iter())
        .map(|(n, to)| match to {
            Some(to) => format!("{n} standby (drained to {to})"),
            None => format!("{n} standby"),
        })
        .collect();
    parts.extend(a.frozen.iter().map(|g| format!("{g} frozen")));
    if a.maintenance {
        parts.push("maintenance: every group frozen".into());
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// Returns the placement options (`prefer=`, `only=`, `failback=`) of the groups of `hactl`
/// that have some.
fn placement(hactl: &Hactl) -> BTreeMap<String, engine::Placement> {
    (hactl.groups.iter())
        .filter_map(|(group, want)| {
            let prefer: Vec<String> = want.prefer().into_iter().map(String::from).collect();
            let only = (want.only()).map(|o| o.into_iter().map(String::from).collect());
            let failback = want.failback().map(|s| s.saturating_mul(1000));
            let cooldown = want.cooldown().map(|s| s.saturating_mul(1000));
            let p = engine::Placement {
                prefer,
                only,
                failback,
                cooldown,
                standby: Default::default(),
            };
            (p != engine::Placement::default()).then(|| (group.clone(), p))
        })
        .collect()
}

/// Returns the restart policy of `group` according to `hactl` (the defaults when it has no
/// line).
fn restart_policy(hactl: &Hactl, group: &str) -> crate::supervisor::RestartPolicy {
    hactl
        .groups
        .get(group)
        .map_or_else(Default::default, |w| crate::supervisor::RestartPolicy {
            max: w.max_restarts(),
            window: std::time::Duration::from_secs(w.restart_window()),
        })
}

/// Returns every group of `cltab` with the level `hactl` wants.
fn wanted(cltab: &Cltab, hactl: &Hactl) -> BTreeMap<String, String> {
    cltab
        .groups()
        .into_iter()
        .map(|g| (g.to_string(), hactl.level_of(g).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_holds_the_groups_with_options_only() {
        let text = "web start prefer=n3,n1\ndb start only=n2,n1 prefer=n2\nmail start\n";
        let hactl = Hactl::parse("hactl", text).unwrap();
        let names = |v: &[&str]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let web = engine::Placement {
            prefer: names(&["n3", "n1"]),
            only: None,
            ..engine::Placement::default()
        };
        let db = engine::Placement {
            prefer: names(&["n2"]),
            only: Some(names(&["n1", "n2"]).into_iter().collect()),
            ..engine::Placement::default()
        };
        let want = BTreeMap::from([("db".to_string(), db), ("web".to_string(), web)]);
        assert_eq!(placement(&hactl), want);
        assert!(placement(&Hactl::default()).is_empty());
    }
}
