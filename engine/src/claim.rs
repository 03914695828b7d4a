//! Claims: what a node says about one group (its level, target and state), and how that is
//! written as a gossip value. A node *holds* a group while anything of it may run there.

use std::fmt;

/// The level a group is at when nothing of it runs.
pub const STOP: &str = "stop";
/// The first lifecycle level: the node claims the group.
pub const PLAN: &str = "plan";
/// The second lifecycle level: the node checks that it can run the group.
pub const TEST: &str = "test";

/// A group's state on one node, as its supervisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Entries of the level are being started.
    Starting,
    /// Every entry of the level started; the level has no tests.
    Done,
    /// Every entry started and every test of the level passed.
    Passed,
    /// A test failed or a command could not be executed.
    Failed,
    /// An agent said the group's configuration is wrong (OCF 6, not configured): it fails
    /// everywhere, so no node starts it again until an operator's cleanup.
    Fatal,
    /// Entries of the previous level are being stopped.
    Stopping,
    /// A resource's stop failed: the node may still hold it, and nothing of the group may
    /// start elsewhere before the node is fenced (Pacemaker's `on-fail=fence` for a stop).
    StopFailed,
}

impl State {
    /// Returns the state's name (`DONE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "STARTING",
            State::Done => "DONE",
            State::Passed => "PASSED",
            State::Failed => "FAILED",
            State::Fatal => "FATAL",
            State::Stopping => "STOPPING",
            State::StopFailed => "STOP-FAILED",
        }
    }

    /// Parses a state name.
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "STARTING" => State::Starting,
            "DONE" => State::Done,
            "PASSED" => State::Passed,
            "FAILED" => State::Failed,
            "FATAL" => State::Fatal,
            "STOPPING" => State::Stopping,
            "STOP-FAILED" => State::StopFailed,
            _ => return None,
        })
    }

    /// Tells whether the group has settled at its level (a failed stop is settled too:
    /// nothing more happens to it until an operator acts, or the node is fenced).
    pub fn settled(self) -> bool {
        matches!(
            self,
            State::Done | State::Passed | State::Failed | State::Fatal | State::StopFailed
        )
    }
}

/// What one node says about one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The level being started or reached (the previous one while stopping).
    pub level: String,
    /// The level the node's supervisor was told.
    pub target: String,
    /// The group's state there.
    pub state: State,
}

/// Tells whether `level` means "nothing runs" (`stop`, or the empty shutdown level).
pub fn is_stopped_level(level: &str) -> bool {
    level == STOP || level.is_empty()
}

impl Claim {
    /// Returns a claim for a group at `level`, settled.
    pub fn settled(level: &str, state: State) -> Claim {
        Claim {
            level: level.to_string(),
            target: level.to_string(),
            state,
        }
    }

    /// Tells whether anything of the group may run on the node: it is at, going to, or
    /// coming down from a level other than `stop`.
    pub fn holds(&self) -> bool {
        !is_stopped_level(&self.level) || !is_stopped_level(&self.target)
    }

    /// Tells whether the node is on its way out of the group (told `stop`).
    pub fn leaving(&self) -> bool {
        self.holds() && is_stopped_level(&self.target)
    }

    /// Returns how far along the lifecycle the claim is: plan 0, test 1, running 2.
    pub fn phase(&self) -> u8 {
        match self.target.as_str() {
            PLAN => 0,
            TEST => 1,
            _ => 2,
        }
    }

    /// Returns the gossip value: `level target STATE`, with `-` for an empty level.
    pub fn encode(&self) -> String {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        format!(
            "{} {} {}",
            dash(&self.level),
            dash(&self.target),
            self.state.as_str()
        )
    }

    /// Parses a gossip value written by [`Claim::encode`].
    pub fn decode(value: &str) -> Option<Claim> {
        let mut w = value.split(' ');
        let undash = |s: &str| {
            if s == "-" {
                String::new()
            } else {
                s.to_string()
            }
        };
        let claim = Claim {
            level: undash(w.next()?),
            target: undash(w.next()?),
            state: State::parse(w.next()?)?,
        };
        w.next().is_none().then_some(claim)
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.level == self.target {
            write!(f, "{} {}", self.level, self.state.as_str())
        } else {
            write!(f, "{}→{} {}", self.level, self.target, self.state.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_through_gossip_values() {
        for c in [
            Claim::settled("start", State::Done),
            Claim {
                level: "start".into(),
                target: String::new(),
                state: State::Stopping,
            },
        ] {
            assert_eq!(Claim::decode(&c.encode()), Some(c));
        }
        assert_eq!(Claim::decode("start start"), None);
        assert_eq!(Claim::decode("a b DONE extra"), None);
        assert_eq!(Claim::decode("a b WHAT"), None);
    }

    #[test]
    fn a_node_holds_a_group_until_it_is_fully_stopped() {
        assert!(!Claim::settled(STOP, State::Done).holds());
        assert!(Claim::settled(PLAN, State::Done).holds());
        let leaving = Claim {
            level: "start".into(),
            target: STOP.into(),
            state: State::Stopping,
        };
        assert!(leaving.holds() && leaving.leaving());
        let coming = Claim {
            level: STOP.into(),
            target: PLAN.into(),
            state: State::Starting,
        };
        assert!(coming.holds() && !coming.leaving());
    }
}
