//! Fencing decisions (STOMITH): which lost nodes must be fenced, which quorate node fences
//! each one, when the next one takes over, when to retry, and whether a lost node's groups
//! may be recovered yet (the recovery gate). Pure, like the rest of the engine; the daemon
//! runs the fence agents and hands the outcome back.
//!
//! Records of outcomes travel as gossip keys `x/<victim>` published by the node that fenced
//! (or acknowledged), as `GENERATION OUTCOME BY DETAIL...`.

use std::collections::BTreeMap;

use super::Millis;

pub use crate::keys::RECORD_PREFIX;

/// How a node is to be fenced, per the fencing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Fence methods are configured; one pass over them takes at most `timeout` ms.
    Configured { timeout: Millis },
    /// Fencing is explicitly off (`none`): recovery goes ahead, loudly, without fencing.
    Disabled,
    /// Nothing is configured: recovery waits for an operator's acknowledgement.
    Unconfigured,
}

/// What a fencing record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The last pass over the fence levels failed.
    Failed,
    /// The node was fenced by an agent.
    Fenced,
    /// An operator acknowledged that the node is off (`mosha fence ack`).
    Acked,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Failed => "failed",
            Outcome::Fenced => "fenced",
            Outcome::Acked => "acked",
        }
    }

    /// Tells whether the node is known to be off.
    pub fn is_safe(self) -> bool {
        matches!(self, Outcome::Fenced | Outcome::Acked)
    }
}

/// A fencing record: the outcome for one generation of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The generation of the victim the record is about.
    pub generation: u64,
    /// What happened.
    pub outcome: Outcome,
    /// Who fenced or acknowledged.
    pub by: String,
    /// Free text: which agent, when, or why it failed.
    pub detail: String,
}

impl Record {
    /// Returns the gossip value.
    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.generation,
            self.outcome.as_str(),
            self.by,
            self.detail
        )
    }

    /// Parses a gossip value written by [`Record::encode`].
    pub fn decode(v: &str) -> Option<Record> {
        let mut w = v.splitn(4, ' ');
        let generation = w.next()?.parse().ok()?;
        let outcome = match w.next()? {
            "failed" => Outcome::Failed,
            "fenced" => Outcome::Fenced,
            "acked" => Outcome::Acked,
            _ => return None,
        };
        let by = w.next()?.to_string();
        if by.is_empty() {
            return None;
        }
        let detail = w.next().unwrap_or("").to_string();
        Some(Record {
            generation,
            outcome,
            by,
            detail,
        })
    }

    /// Returns the record that matters most of two about one victim: the newer generation,
    /// then a safe outcome over a failure.
    pub fn better(self, other: Record) -> Record {
        if (other.generation, other.outcome) > (self.generation, self.outcome) {
            other
        } else {
            self
        }
    }
}

/// Where the fencing of one lost node stands, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceState {
    /// Fencing is needed and nobody has reported yet.
    Pending,
    /// This node runs the fence agents now.
    Fencing,
    /// A pass failed; another follows at `retry_at` (if it is our turn).
    Failed { by: String, why: String },
    /// The node is off (fenced or acknowledged): its groups may be recovered.
    Done {
        outcome: Outcome,
        by: String,
        detail: String,
    },
    /// Fencing is turned off for it: its groups are recovered without fencing.
    Disabled,
    /// No fence method is configured: its groups wait for `mosha fence ack`.
    Unconfigured,
}

impl FenceState {
    /// Tells whether the lost node's groups may be recovered.
    pub fn gate_open(&self) -> bool {
        matches!(self, FenceState::Done { .. } | FenceState::Disabled)
    }

    /// Returns a short description for status.
    pub fn describe(&self) -> String {
        match self {
            FenceState::Pending => "fencing pending".into(),
            FenceState::Fencing => "fencing in progress (this node)".into(),
            FenceState::Failed { by, why } => format!("fencing failed ({by}): {why}"),
            FenceState::Done {
                outcome,
                by,
                detail,
            } => {
                format!("{} by {by}: {detail}", outcome.as_str())
            }
            FenceState::Disabled => "NOT FENCED: fencing is off for it (none)".into(),
            FenceState::Unconfigured => {
                "waiting: no fence method configured; run `mosha fence ack NODE` once it is off"
                    .into()
            }
        }
    }
}

/// This node's own fencing work on one victim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    /// When our current pass started, if one runs.
    pub running_since: Option<Millis>,
    /// How many passes of ours failed.
    pub failures: u32,
    /// No new pass of ours before this.
    pub retry_at: Millis,
}

/// The delay before retry number `failures` (1 s doubling, capped at 30 s).
pub fn retry_delay(failures: u32) -> Millis {
    (1000u64 << failures.saturating_sub(1).min(5)).min(30_000)
}

/// Returns the best record about each victim in `records` (victim → record), already reduced.
pub fn reduce<'a>(all: impl Iterator<Item = (&'a str, Record)>) -> BTreeMap<String, Record> {
    let mut out: BTreeMap<String, Record> = BTreeMap::new();
    for (victim, r) in all {
        let merged = match out.remove(victim) {
            Some(old) => old.better(r),
            None => r,
        };
        out.insert(victim.to_string(), merged);
    }
    out
}

use super::rank;
use super::{keys, Action, Engine, Event, View};

/// The fencing half of the engine's step (see the module documentation).
impl Engine {
    /// Decides the fencing of every lost node: its state, and whether this node fences it now.
    pub(super) fn step_fencing(
        &mut self,
        now: Millis,
        view: &View,
        quorate: bool,
        out: &mut Vec<Action>,
    ) {
        // The live members are the others alive, and this node when the view has it.
        let me_live = view.members.contains_key(&self.me);
        let delayed_side = self.cfg.two_node
            && self.expected.len() == 2
            && rank::order("fence-delay", self.expected.iter().map(String::as_str))
                .last()
                .is_some_and(|n| *n == self.me);
        let mut wake = None;
        let confirmed: Vec<String> = (self.lost.iter())
            .filter(|(n, l)| self.heard_after(view, n, l.since))
            .map(|(n, _)| n.clone())
            .collect();
        for (node, lost) in &mut self.lost {
            // Our own record first: on a tie it is the newer one.
            let obsolete = self.obsolete.get(node);
            let record = [self.own_records.get(node), view.records.get(node)]
                .into_iter()
                .flatten()
                .filter(|r| r.generation >= lost.generation)
                .filter(|r| !obsolete.is_some_and(|o| o.contains(r)))
                .cloned()
                .reduce(Record::better);
            // A safe outcome seen once for this loss stays, though its record left gossip:
            // the node that published it may have restarted since, which takes its keys
            // with it (found by the chaos run: the fencer's daemon restarted, and the others
            // fenced the victim again, powering off its new life that had just booted). It
            // is published again, by this node, for those that start later (found by the
            // simulator: the restarted fencer fenced the same lives again).
            let kept = (self.best_records.get(node))
                .filter(|r| r.outcome.is_safe() && r.generation >= lost.generation)
                .filter(|r| !obsolete.is_some_and(|o| o.contains(r)))
                .cloned();
            let record = match (record, kept) {
                (Some(r), Some(k)) => Some(r.better(k)),
                (None, Some(k)) => {
                    self.own_records.insert(node.clone(), k.clone());
                    out.push(Action::Publish {
                        key: keys::record(node),
                        value: Some(k.encode()),
                    });
                    Some(k)
                }
                (r, None) => r,
            };
            match &record {
                Some(r) if self.best_records.get(node) != Some(r) => {
                    self.best_records.insert(node.clone(), r.clone());
                }
                Some(_) => {}
                None => {
                    self.best_records.remove(node);
                }
            }
            let safe = record.as_ref().is_some_and(|r| r.outcome.is_safe());
            if lost.attempts.running_since.is_some() && (safe || !quorate) {
                lost.attempts.running_since = None;
                out.push(Action::CancelFence { node: node.clone() });
            }
            let policy = view
                .policy
                .get(node)
                .copied()
                .unwrap_or(Policy::Unconfigured);
            let state = match (&record, policy) {
                (Some(r), _) if r.outcome.is_safe() => FenceState::Done {
                    outcome: r.outcome,
                    by: r.by.clone(),
                    detail: r.detail.clone(),
                },
                (_, Policy::Disabled) => FenceState::Disabled,
                (_, Policy::Unconfigured) => FenceState::Unconfigured,
                _ if lost.attempts.running_since.is_some() => FenceState::Fencing,
                (Some(r), _) => FenceState::Failed {
                    by: r.by.clone(),
                    why: r.detail.clone(),
                },
                (None, _) => FenceState::Pending,
            };
            if state != lost.fence {
                lost.fence = state.clone();
                out.push(Action::Event(Event::FenceState {
                    node: node.clone(),
                    state,
                }));
            }
            let Policy::Configured { timeout } = policy else {
                continue;
            };
            if lost.fence.gate_open() || lost.attempts.running_since.is_some() || !quorate {
                continue;
            }
            if now < self.quiet_until {
                wake = Some(wake.map_or(self.quiet_until, |w: Millis| w.min(self.quiet_until)));
                continue;
            }
            // One fencer per victim, by rank; the next takes over when no outcome was
            // published within a pass's timeout. Our rank is how many live nodes come before
            // us in rank::order's order, kept between steps while the live members stay.
            if !me_live {
                continue;
            }
            let mut r = self.peers.fence_rank(&self.me, node);
            // A blocked victim is alive, and counted among the fencers: it fences nobody.
            if lost.blocked && self.peers.fence_outranks(node, node, &self.me) {
                r = r.saturating_sub(1);
            }
            // The timeout comes from the fencetab: saturate rather than overflow.
            let turn = lost
                .since
                .saturating_add((r as Millis).saturating_mul(timeout));
            if r > 0 && (record.is_some() || now < turn) {
                if record.is_none() {
                    wake = Some(wake.map_or(turn, |w: Millis| w.min(turn)));
                }
                continue;
            }
            // The settle is waived once a majority was heard from after the victim fell
            // silent (see `heard_after`).
            let settle = if confirmed.contains(node) {
                0
            } else {
                self.cfg.fence_settle
            };
            let mut at = (lost.since + settle).max(lost.attempts.retry_at);
            if delayed_side {
                at = at.max(lost.since + self.cfg.two_node_fence_delay);
            }
            if now < at {
                wake = Some(wake.map_or(at, |w: Millis| w.min(at)));
                continue;
            }
            lost.attempts.running_since = Some(now);
            lost.fence = FenceState::Fencing;
            out.push(Action::Event(Event::FenceStarted {
                node: node.clone(),
                rank: r,
            }));
            out.push(Action::Fence {
                node: node.clone(),
                generation: lost.generation,
            });
        }
        if let Some(t) = wake {
            self.wake_at(t);
        }
    }

    /// Tells whether this node heard news from a strict majority of the expected members
    /// (itself included) more than a beat after the last news from `victim`, and after it
    /// found the victim lost (`lost_at`): it is connected to a majority now, after the victim
    /// fell silent, so the victim is not silent because this node is the one cut off, and
    /// the fence settle (which waits for a node cut off from a majority to see the rest of it
    /// go) can be skipped. A partition silences both sides at once: the last news of the
    /// victim and of the majority this node lost are less than a beat apart (every member
    /// beats every [`crate::Config::beat`]). Not when the victim lagged before the cut (found
    /// by the chaos run: a node just back from CPU starvation was silent before the partition
    /// began, the minority heard the majority after that, and fenced it): hence news after
    /// the loss too, which a node cut off does not get.
    fn heard_after(&self, view: &View, victim: &str, lost_at: Millis) -> bool {
        let Some(last) = view.members.get(victim).and_then(|m| m.quiet_since) else {
            return false;
        };
        let after = last.saturating_add(self.cfg.beat).max(lost_at);
        let fresh = (view.members.iter())
            .filter(|(n, m)| {
                *n != victim
                    && (**n == self.me || (m.alive && m.quiet_since.is_some_and(|q| q > after)))
            })
            .count();
        fresh * 2 > self.expected.len()
    }

    /// Records an outcome about `node`'s `generation` as this node's own and returns the
    /// gossip change publishing it: an operator's word (acknowledged off with `mosha fence
    /// ack`, or fenced by hand with `mosha fence`; a fencing pass of ours for it is then
    /// cancelled at the next step), or the end of our own pass ([`Engine::fence_result`]).
    pub fn operator_record(
        &mut self,
        node: &str,
        generation: u64,
        outcome: Outcome,
        detail: &str,
    ) -> Vec<Action> {
        let record = Record {
            generation,
            outcome,
            by: self.me.clone(),
            detail: detail.to_string(),
        };
        self.own_records.insert(node.to_string(), record.clone());
        vec![Action::Publish {
            key: crate::keys::record(node),
            value: Some(record.encode()),
        }]
    }

    /// Takes the outcome of a fencing pass this node ran (see [`Action::Fence`]) and returns
    /// what to publish. `detail` says which agent and when, or why it failed.
    pub fn fence_result(
        &mut self,
        now: Millis,
        node: &str,
        generation: u64,
        ok: bool,
        detail: &str,
    ) -> Vec<Action> {
        // A node already known to be off (acknowledged, or fenced by another) keeps that
        // record: a late failure of ours must not replace it.
        let known_safe = [self.own_records.get(node), self.best_records.get(node)]
            .into_iter()
            .flatten()
            .any(|r| r.generation >= generation && r.outcome.is_safe());
        if known_safe && !ok {
            if let Some(lost) = self.lost.get_mut(node) {
                lost.attempts.running_since = None;
            }
            return Vec::new();
        }
        if let Some(lost) = self.lost.get_mut(node) {
            lost.attempts.running_since = None;
            if ok {
                lost.attempts.failures = 0;
            } else {
                lost.attempts.failures += 1;
                lost.attempts.retry_at = now + retry_delay(lost.attempts.failures);
            }
        }
        let outcome = if ok { Outcome::Fenced } else { Outcome::Failed };
        self.operator_record(node, generation, outcome, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_the_best_one_wins() {
        let r = Record {
            generation: 42,
            outcome: Outcome::Fenced,
            by: "n2".into(),
            detail: "fence_dummy off confirmed at 2026-11-21T23:00:00Z".into(),
        };
        assert_eq!(Record::decode(&r.encode()), Some(r.clone()));
        assert_eq!(Record::decode("x fenced n1"), None);
        assert_eq!(Record::decode("1 maybe n1 d"), None);
        let failed = Record {
            outcome: Outcome::Failed,
            ..r.clone()
        };
        assert_eq!(failed.clone().better(r.clone()), r);
        let newer = Record {
            generation: 43,
            ..failed
        };
        assert_eq!(r.better(newer.clone()), newer);
    }

    #[test]
    fn retries_back_off_to_thirty_seconds() {
        let d: Vec<Millis> = (1..=8).map(retry_delay).collect();
        assert_eq!(d, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    }
}
