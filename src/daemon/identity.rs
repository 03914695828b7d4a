//! One daemon per node name, as the daemon enforces it from what gossip shows ([`Shadow`]s:
//! live generations of a name that the view does not show).
//!
//! - A daemon that has just started holds every decision while an older generation of its
//!   own name is alive (a predecessor that was killed is declared dead within about a
//!   second), and refuses to run if that one stays alive for [`REFUSE_AFTER`]: two daemons
//!   with one name would both run its groups. It counts as started once it has heard a peer
//!   (or been alone for [`ALONE_AFTER`]) and run for [`CLEAR_AFTER`], the engine's start-up
//!   wait, during which it plans nothing anyway.
//! - A running daemon that sees a newer daemon with its name logs it (that one refuses within
//!   a few seconds). If a second daemon with its name is still alive after [`YIELD_AFTER`],
//!   or appears right after this daemon was frozen (peers may have counted this one as lost
//!   and shown the other since), it stops every group and exits: at most one may run.
//! - Shadows of other names (a peer's restart, or two daemons with a peer's name) are logged
//!   at most once a minute each, and only when both heartbeat.
//!
//! Decisions only; the daemon carries them out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::{error, info};

use crate::gossip::{ClusterView, Shadow};

/// How long an older live generation of our name may last before a starting daemon refuses.
pub const REFUSE_AFTER: Duration = Duration::from_secs(3);
/// How long a second live daemon with our name is tolerated by a running daemon.
pub const YIELD_AFTER: Duration = Duration::from_secs(10);
/// How long a starting daemon keeps looking for an older daemon of its name.
pub const CLEAR_AFTER: Duration = Duration::from_secs(1);
/// How long a starting daemon that hears no peer keeps looking.
pub const ALONE_AFTER: Duration = Duration::from_secs(3);
/// A gap between two checks longer than this means this daemon was frozen.
const FROZEN: Duration = Duration::from_secs(1);
/// How long after a freeze a second daemon with our name makes this one yield.
const AFTER_FREEZE: Duration = Duration::from_secs(10);
/// How often one conflict is logged again.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// How long a shadow of another name must last before it is reported.
const REPORT_AFTER: Duration = Duration::from_secs(2);

/// What the daemon must do about its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Run,
    /// Decide nothing yet (no engine step, nothing published but heartbeats).
    Hold,
    /// Stop every group and exit with this error.
    Exit(String),
}

/// The identity checks of one daemon run.
pub struct IdentityGuard {
    me: String,
    generation: u64,
    /// Once true, this daemon has started (see the module documentation): it no longer holds.
    cleared: bool,
    first_check: Option<Instant>,
    last_check: Option<Instant>,
    frozen_at: Option<Instant>,
    reported: BTreeMap<(String, u64), Instant>,
}

impl IdentityGuard {
    /// Returns the guard of node `me` at `generation`.
    pub fn new(me: &str, generation: u64) -> IdentityGuard {
        IdentityGuard {
            me: me.to_string(),
            generation,
            cleared: false,
            first_check: None,
            last_check: None,
            frozen_at: None,
            reported: BTreeMap::new(),
        }
    }

    /// Returns the shadows of this node's own name that `view` lists.
    fn own<'a>(&self, view: &'a ClusterView) -> impl Iterator<Item = &'a Shadow> + 'a {
        let me = self.me.clone();
        view.shadows.iter().filter(move |s| s.node == me)
    }

    /// Decides, at `now`, what the daemon does given `view`.
    pub fn check(&mut self, view: &ClusterView, now: Instant) -> Verdict {
        if self
            .last_check
            .is_some_and(|t| now.saturating_duration_since(t) > FROZEN)
        {
            self.frozen_at = Some(now);
        }
        self.last_check = Some(now);
        let up = now.saturating_duration_since(*self.first_check.get_or_insert(now));
        self.report_others(view, now);
        let own: Vec<Shadow> = self.own(view).cloned().collect();
        if !self.cleared {
            let older: Vec<&Shadow> = own
                .iter()
                .filter(|s| s.generation < self.generation)
                .collect();
            if let Some(s) = older.iter().find(|s| s.since >= REFUSE_AFTER) {
                return Verdict::Exit(format!(
                    "another mosha runs as {} at {} (generation {}), alive for {:.1} s: \
                     refusing to run a second daemon with that name (both would run its \
                     groups); give this node another --node, or stop the other one",
                    self.me,
                    s.addr,
                    s.generation,
                    s.since.as_secs_f64()
                ));
            }
            if !older.is_empty() {
                return Verdict::Hold;
            }
            let heard = view.members.iter().any(|(n, m)| *n != self.me && m.alive);
            self.cleared = up >= CLEAR_AFTER && (heard || up >= ALONE_AFTER);
            return Verdict::Run;
        }
        let after_freeze = self
            .frozen_at
            .is_some_and(|t| now.saturating_duration_since(t) < AFTER_FREEZE);
        for s in &own {
            if after_freeze || s.since >= YIELD_AFTER {
                return Verdict::Exit(format!(
                    "another mosha runs as {} at {} (generation {}){}: stopping every group \
                     here and exiting, so that at most one runs them",
                    self.me,
                    s.addr,
                    s.generation,
                    if after_freeze {
                        " and this daemon was frozen: peers may count that one instead"
                    } else {
                        " and has not given way"
                    }
                ));
            }
            self.report(s, now, || {
                error!(
                    node = %s.node, addr = %s.addr, generation = s.generation,
                    "another mosha claims this node's name; peers keep counting this one, and \
                     the other should refuse to run"
                )
            });
        }
        Verdict::Run
    }

    /// Logs shadows of other names where both generations heartbeat, at most once a minute.
    fn report_others(&mut self, view: &ClusterView, now: Instant) {
        self.reported.retain(|(n, g), _| {
            view.shadows
                .iter()
                .any(|s| s.node == *n && s.generation == *g)
        });
        let others: Vec<Shadow> = view
            .shadows
            .iter()
            .filter(|s| s.node != self.me && s.shown_heard && s.since >= REPORT_AFTER)
            .cloned()
            .collect();
        for s in &others {
            self.report(s, now, || {
                error!(
                    node = %s.node, shown = s.shown, shown_addr = %s.shown_addr,
                    other = s.generation, other_addr = %s.addr,
                    "two daemons heartbeat as one node name: the one shown keeps counting, the \
                     other is ignored while the first lives"
                )
            });
        }
    }

    /// Runs `log` unless `s` was reported in the last minute.
    fn report(&mut self, s: &Shadow, now: Instant, log: impl FnOnce()) {
        let key = (s.node.clone(), s.generation);
        if self
            .reported
            .get(&key)
            .is_some_and(|t| now.saturating_duration_since(*t) < REPORT_EVERY)
        {
            return;
        }
        if !self.reported.contains_key(&key) && s.node == self.me {
            info!(node = %s.node, "watching a second daemon with this node's name");
        }
        self.reported.insert(key, now);
        log();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn shadow(node: &str, generation: u64, since_ms: u64) -> Shadow {
        Shadow {
            node: node.to_string(),
            generation,
            addr: "127.0.0.1:9".parse().unwrap(),
            shown: 5,
            shown_addr: "127.0.0.1:1".parse().unwrap(),
            shown_heard: true,
            since: Duration::from_millis(since_ms),
        }
    }

    /// Checks `g` with an empty view every 100 ms from `from` to `to`; returns `to`.
    fn quietly(g: &mut IdentityGuard, from: Instant, to: Instant) -> Instant {
        let mut t = from;
        while t < to {
            t += Duration::from_millis(100);
            assert_eq!(g.check(&view(vec![]), t), Verdict::Run);
        }
        t
    }

    fn view(shadows: Vec<Shadow>) -> ClusterView {
        ClusterView {
            me: "me".to_string(),
            members: BTreeMap::new(),
            shadows,
        }
    }

    #[test]
    fn a_starting_daemon_waits_for_its_predecessor_then_runs() {
        let t = Instant::now();
        let mut g = IdentityGuard::new("me", 5);
        assert_eq!(g.check(&view(vec![shadow("me", 3, 0)]), t), Verdict::Hold);
        let t1 = t + Duration::from_millis(800);
        assert_eq!(
            g.check(&view(vec![shadow("me", 3, 800)]), t1),
            Verdict::Hold
        );
        let t2 = t1 + Duration::from_millis(500);
        assert_eq!(g.check(&view(vec![]), t2), Verdict::Run);
        assert!(!g.cleared, "heard no peer yet");
        let t3 = quietly(&mut g, t2, t + ALONE_AFTER);
        assert!(g.cleared, "alone for 3 s");
        // Once running, a younger duplicate is only reported.
        let t4 = t3 + Duration::from_millis(50);
        assert_eq!(g.check(&view(vec![shadow("me", 9, 0)]), t4), Verdict::Run);
    }

    #[test]
    fn a_starting_daemon_refuses_when_the_other_stays_alive() {
        let t = Instant::now();
        let mut g = IdentityGuard::new("me", 5);
        assert_eq!(g.check(&view(vec![shadow("me", 3, 0)]), t), Verdict::Hold);
        let later = t + Duration::from_millis(50);
        let v = g.check(&view(vec![shadow("me", 3, 3000)]), later);
        assert!(
            matches!(&v, Verdict::Exit(m) if m.contains("refusing")),
            "{v:?}"
        );
        // A newer one (started after us) is that one's problem, not ours.
        let mut g = IdentityGuard::new("me", 5);
        assert_eq!(g.check(&view(vec![shadow("me", 9, 5000)]), t), Verdict::Run);
    }

    #[test]
    fn a_running_daemon_yields_to_a_lasting_duplicate_or_after_a_freeze() {
        let t0 = Instant::now();
        let mut g = IdentityGuard::new("me", 5);
        assert_eq!(g.check(&view(vec![]), t0), Verdict::Run);
        let t = quietly(&mut g, t0, t0 + ALONE_AFTER);
        let t1 = t + Duration::from_millis(50);
        assert_eq!(
            g.check(&view(vec![shadow("me", 9, 9000)]), t1),
            Verdict::Run
        );
        let t2 = t1 + Duration::from_millis(50);
        let v = g.check(&view(vec![shadow("me", 9, 10_000)]), t2);
        assert!(matches!(v, Verdict::Exit(_)), "{v:?}");

        let mut g = IdentityGuard::new("me", 5);
        assert_eq!(g.check(&view(vec![]), t0), Verdict::Run);
        let t = quietly(&mut g, t0, t0 + ALONE_AFTER);
        let woke = t + Duration::from_secs(30);
        assert_eq!(g.check(&view(vec![]), woke), Verdict::Run);
        let v = g.check(
            &view(vec![shadow("me", 9, 100)]),
            woke + Duration::from_millis(50),
        );
        assert!(
            matches!(&v, Verdict::Exit(m) if m.contains("frozen")),
            "{v:?}"
        );
    }

    #[test]
    fn other_names_never_stop_anything() {
        let t = Instant::now();
        let mut g = IdentityGuard::new("me", 5);
        assert_eq!(
            g.check(&view(vec![shadow("b", 3, 60_000)]), t),
            Verdict::Run
        );
        assert_eq!(g.reported.len(), 1);
        assert_eq!(g.check(&view(vec![]), t), Verdict::Run);
        assert!(g.reported.is_empty());
    }
}
