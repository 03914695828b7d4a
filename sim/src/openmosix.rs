//! A model of OpenMosix::HA 0.555's `monitor()` loop, driven on the same simulated cluster as
//! mosha's engine: per cycle, the 60 % ratcheting quorum, then `compile_metrics` and
//! `scangroups` over hastat ∪ hactl with the first-match decision table (deleted, inconflict,
//! passed, failed, planned, needplan with the dice `rand(N) > 1.5`, intransition, chlevel),
//! the cycle time averaging `ct = (ct + x) / 2`, `ct += rand(10)` on conflict, and
//! `sleep(int(ct))`. There is no fencing: STOMITH only writes an alert, so a lost node's
//! groups are replanned as soon as it is no longer "up".

use mosha::engine::{claim, Action, Claim, State, View, PLAN, STOP, TEST};
use rand::RngExt;
use rand_chacha::ChaCha12Rng;

/// What one OpenMosix::HA monitor remembers between cycles.
#[derive(Debug, Clone, Default)]
pub struct Om {
    /// The cycle time, in seconds.
    pub ct: f64,
    /// The last accepted count of up nodes (the quorum ratchet).
    pub last_up: usize,
}

/// The outcome of one monitor cycle.
pub struct Cycle {
    /// What to tell the local supervisor.
    pub actions: Vec<Action>,
    /// How many groups were found in conflict.
    pub conflicts: u64,
    /// How many groups this node planned.
    pub planned: u64,
    /// How long to sleep before the next cycle, in ms.
    pub sleep_ms: u64,
}

impl Om {
    /// Returns a monitor as `new` leaves it (cycle time 1 s).
    pub fn new() -> Om {
        Om {
            ct: 1.0,
            last_up: 0,
        }
    }

    /// Runs one cycle of `monitor()` for node `me` with the cluster as `view` shows it.
    pub fn cycle(&mut self, me: &str, view: &View, rng: &mut ChaCha12Rng) -> Cycle {
        let mut out = Cycle {
            actions: Vec::new(),
            conflicts: 0,
            planned: 0,
            sleep_ms: 0,
        };
        let up: Vec<&String> = view
            .members
            .iter()
            .filter(|(n, m)| m.alive || n.as_str() == me)
            .map(|(n, _)| n)
            .collect();
        let mine = view.members.get(me);
        if (up.len() as f64) < 0.6 * self.last_up as f64 {
            // Quorum lost: haltwait (stop everything here), sleep 30 s, start over.
            if let Some(m) = mine {
                for (g, c) in &m.claims {
                    if c.holds() && !c.leaving() {
                        out.actions.push(tell(g, STOP));
                    }
                }
            }
            out.sleep_ms = 30_000;
            return out;
        }
        self.last_up = up.len();
        let n = up.len() as f64;
        let mut groups: Vec<&String> = view.want.keys().collect();
        if let Some(m) = mine {
            groups.extend(m.claims.keys().filter(|g| !view.want.contains_key(*g)));
        }
        for g in groups {
            let want = view.want.get(g).map(String::as_str).unwrap_or(STOP);
            let instances = view
                .members
                .iter()
                .filter(|(nm, m)| m.alive || nm.as_str() == me)
                .filter(|(_, m)| m.claims.get(g).is_some_and(Claim::holds))
                .count();
            let local = mine.and_then(|m| m.claims.get(g)).filter(|c| c.holds());
            let ct = &mut self.ct;
            let mut cyc = |x: f64| *ct = (*ct + x) / 2.0;
            match local {
                Some(_) if claim::is_stopped_level(want) => {
                    if !local.is_some_and(Claim::leaving) {
                        out.actions.push(tell(g, STOP));
                    }
                    cyc(5.0);
                }
                Some(c) if instances > 1 && !c.leaving() => {
                    out.actions.push(tell(g, STOP));
                    out.conflicts += 1;
                    self.ct += rng.random_range(0.0..10.0);
                }
                Some(c) if c.level == TEST && c.target == TEST && c.state == State::Passed => {
                    out.actions.push(tell(g, want));
                    cyc(5.0);
                }
                Some(c) if c.level == TEST && c.target == TEST && c.state == State::Failed => {
                    out.actions.push(tell(g, STOP));
                    cyc(5.0);
                }
                Some(c) if c.level == PLAN && c.target == PLAN && c.state == State::Done => {
                    out.actions.push(tell(g, TEST));
                    cyc(5.0);
                }
                None if !claim::is_stopped_level(want) && instances == 0 => {
                    cyc(10.0);
                    if rng.random_range(0.0..n) <= 1.5 {
                        out.actions.push(tell(g, PLAN));
                        out.planned += 1;
                    }
                }
                Some(c) if !c.state.settled() => cyc(5.0),
                Some(c) if c.level != want && !c.leaving() => {
                    out.actions.push(tell(g, want));
                    cyc(5.0);
                }
                _ => cyc(n),
            }
        }
        // sleep(cycletime) with integer truncation; a zero sleep still costs a /proc scan.
        out.sleep_ms = ((self.ct as u64) * 1000).max(100);
        out
    }
}

fn tell(group: &str, level: &str) -> Action {
    Action::Tell {
        group: group.to_string(),
        level: level.to_string(),
    }
}
