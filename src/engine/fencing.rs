//! Fencing decisions (STOMITH): which lost nodes must be fenced, which quorate node fences
//! each one, when the next one takes over, when to retry, and whether a lost node's groups
//! may be recovered yet (the recovery gate). Pure, like the rest of the engine; the daemon
//! runs the fence agents and hands the outcome back.
//!
//! Records of outcomes travel as gossip keys `x/<victim>` published by the node that fenced
//! (or acknowledged), as `GENERATION OUTCOME BY DETAIL...`.

use std::collections::BTreeMap;

use super::Millis;

/// The prefix of the gossip keys that carry fencing records (`x/<victim>`).
pub const RECORD_PREFIX: &str = "x/";

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
