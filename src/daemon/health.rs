//! What this node tells the cluster about its groups' failures, for status only (no
//! decision reads it): a gossip key per group, `s/<group>` = `<restarts> <until_ms> <cause>`,
//! published while the group has restarts counted here (hactl's `max_restarts=`) or this
//! node is in cooldown for it, and withdrawn after. `until_ms` is the end of the cooldown on
//! this node's wall clock (unix ms; 0: no cooldown), `cause` why the group last failed here
//! (`test t2: exit status 3: <the first line of its stderr>`).
//!
//! The engine's own cooldown key (`c/<group>`) is what placement reads; this one adds what an
//! operator needs to see and clear it (`mosha status`, `mosha cleanup`).

use std::collections::BTreeMap;

use crate::engine::{Engine, Millis};
use crate::supervisor::{Failure, Os, Supervisor};

/// The prefix of the status keys (`s/<group>`).
pub const STATUS_PREFIX: &str = "s/";

/// Most bytes of a cause, so that a key stays small whatever a child prints.
const MAX_CAUSE_BYTES: usize = 300;

/// A group's failures on one node, as its `s/<group>` key says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// Exits of its `respawn` entries counted against its restart policy.
    pub restarts: u32,
    /// When the node's cooldown for the group ends (unix ms; 0: none).
    pub until_ms: u64,
    /// Why it last failed there (empty: unknown).
    pub cause: String,
    /// Its health checks that do not pass there, in words (`vip degraded; check failing:
    /// exit status 1`; empty: none).
    pub checks: String,
}

impl Health {
    /// Returns the gossip value.
    pub fn encode(&self) -> String {
        format!(
            "{} {} {}\t{}",
            self.restarts, self.until_ms, self.cause, self.checks
        )
    }

    /// Parses a value written by [`Health::encode`] (a peer's: bounded, never trusted).
    pub fn decode(value: &str) -> Option<Health> {
        let mut w = value.splitn(3, ' ');
        let restarts = w.next()?.parse().ok()?;
        let until_ms = w.next()?.parse().ok()?;
        let rest = w.next().unwrap_or("");
        let (cause, checks) = rest.split_once('\t').unwrap_or((rest, ""));
        Some(Health {
            restarts,
            until_ms,
            cause: bounded(cause),
            checks: bounded(checks),
        })
    }
}

/// Returns `failure` in words, with the first line its entry wrote to stderr when `os`
/// kept one.
pub fn cause(failure: &Failure, os: &dyn Os) -> String {
    let head =
        (failure.pid.and_then(|p| os.stderr_head(p))).map_or(String::new(), |l| format!(": {l}"));
    bounded(&format!(
        "{} {}: {}{head}",
        failure.mode, failure.tag, failure.why
    ))
}

/// Returns the health checks of `g` that do not pass, in words.
fn checks(g: &crate::supervisor::Group) -> String {
    use crate::supervisor::group::Health as H;
    let parts: Vec<String> = (g.slots.iter())
        .filter_map(|s| match &s.health {
            H::Degraded => Some(format!("{} degraded", s.entry.tag)),
            H::Failing(why) => Some(format!(
                "{} failing ({why}, {} of {} in a row)",
                s.entry.tag,
                s.fails.max(1),
                s.entry.params.fall.max(1)
            )),
            _ => None,
        })
        .collect();
    bounded(&parts.join("; "))
}

/// Cuts `s` to [`MAX_CAUSE_BYTES`] on a character boundary, control characters replaced.
fn bounded(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > MAX_CAUSE_BYTES {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// The status keys this node published, and the wall-clock ends of its cooldowns.
#[derive(Debug, Default)]
pub struct Published {
    /// Group → the value published.
    keys: BTreeMap<String, String>,
    /// Group → (the engine's end of the cooldown, the same on the wall clock), so that a
    /// cooldown's wall-clock end is computed once and does not jitter from step to step.
    until: BTreeMap<String, (Millis, u64)>,
}

impl Published {
    /// Returns the gossip changes that bring the status keys up to date with `sup` and
    /// `engine` at `now_ms` (engine time) and `wall_ms`.
    pub fn changes(
        &mut self,
        sup: &Supervisor,
        os: &dyn Os,
        engine: &Engine,
        now_ms: Millis,
        wall_ms: u64,
    ) -> Vec<(String, Option<String>)> {
        let cooldowns = engine.cooldowns();
        self.until.retain(|g, (u, _)| cooldowns.get(g) == Some(u));
        let mut now: BTreeMap<String, String> = BTreeMap::new();
        let groups = sup.groups();
        for name in groups.keys().chain(cooldowns.keys()) {
            if now.contains_key(name) {
                continue;
            }
            let g = groups.get(name);
            let restarts = g.map_or(0, |g| g.restarts.count());
            let until_ms = cooldowns.get(name).map_or(0, |until| {
                let (_, wall) = *self.until.entry(name.clone()).or_insert_with(|| {
                    (*until, wall_ms.saturating_add(until.saturating_sub(now_ms)))
                });
                wall
            });
            let checks = g.map_or(String::new(), checks);
            if restarts == 0 && until_ms == 0 && checks.is_empty() {
                continue;
            }
            let cause =
                (g.and_then(|g| g.failure.as_ref())).map_or(String::new(), |f| cause(f, os));
            let h = Health {
                restarts,
                until_ms,
                cause,
                checks,
            };
            now.insert(name.clone(), h.encode());
        }
        let mut out = Vec::new();
        for (g, v) in &now {
            if self.keys.get(g) != Some(v) {
                out.push((format!("{STATUS_PREFIX}{g}"), Some(v.clone())));
            }
        }
        for g in self.keys.keys().filter(|g| !now.contains_key(*g)) {
            out.push((format!("{STATUS_PREFIX}{g}"), None));
        }
        self.keys = now;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_hostile_ones_are_refused_or_cut() {
        let h = Health {
            restarts: 3,
            until_ms: 1_700_000_000_000,
            cause: "test t2: exit status 3: no such file".into(),
            checks: "vip degraded".into(),
        };
        assert_eq!(Health::decode(&h.encode()), Some(h));
        assert_eq!(Health::decode("x 1 a"), None);
        assert_eq!(Health::decode("1"), None);
        assert_eq!(Health::decode("-1 0 a"), None);
        let long = format!("0 0 {}", "é".repeat(5000));
        let cut = Health::decode(&long).unwrap();
        assert!(cut.cause.len() <= MAX_CAUSE_BYTES + '…'.len_utf8());
        assert_eq!(Health::decode("0 0 a\u{1b}[2Jb").unwrap().cause, "a [2Jb");
    }
}
