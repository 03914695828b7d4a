//! Every gossip key a mosha node publishes, in one place. Each node owns its keys; every peer
//! eventually sees them (`crate::View` is built from them by the node core, `crate::node`). Values are at most
//! 8 KiB (the gossip layer refuses more).
//!
//! | key | value | published by |
//! |---|---|---|
//! | `g/<group>` | a [`crate::Claim`]: `level target STATE` | the node core, for each group this node holds |
//! | `c/<group>` | the level it failed at, or `fatal` | the engine, while the group failed here (cooldown; `fatal`: an agent said its configuration is wrong, and no node starts it until a cleanup) |
//! | `m/<group>` | `<to> <from>`: an operator asked to move the group from `from` to `to` | the engine ([`crate::moves`]), until the move is under way or moot |
//! | `k/<group>` | `<node\|*> <seq>`: an operator asked to clear the group's failures on `node` (`*`: everywhere) | the engine ([`crate::cleanup`]), for [`crate::cleanup::CLEANUP_TTL`] |
//! | `h/<group>` | `<to>`: this node stopped the group to hand it to `to` | the engine ([`crate::moves`]), until `to` runs it or the hand-off lapses |
//! | `n/<group>` | `1`: this node stands ready to take the group at once if its holder dies | the engine ([`crate::successor`]), while another node runs the group and this one would be next |
//! | `s/<group>` | `restarts until_ms cause`: the group's failures here, for status only | the daemon (`src/daemon/health.rs`; no decision reads it) |
//! | `x/<node>` | a [`crate::Record`]: how a lost node was fenced | the engine |
//! | `b` | a counter | the node core, every [`crate::BEAT`] ms: news still gets out |
//! | `bye` | `1` | the daemon ([`crate::node::Node::bye`]), at a clean shutdown |
//! | `f/<file>/<i>`, `f/<file>/v` | chunks of a replicated file, and its version line | the node core ([`crate::node`], encoded by [`crate::replica`]) |

/// The most bytes one gossip value may hold (the gossip layer refuses more).
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// The prefix of a node's keys that carry its claims (`g/<group>`).
pub const CLAIM_PREFIX: &str = "g/";
/// The prefix of a node's keys that say a group's test failed there (`c/<group>`).
pub const COOLDOWN_PREFIX: &str = "c/";
/// The value of a cooldown key (`c/<group>`) that stops the group everywhere: an agent's
/// fatal error (OCF 6, not configured), until an operator's cleanup.
pub const FATAL: &str = "fatal";
/// The prefix of the keys that carry move requests (`m/<group>`).
pub const MOVE_PREFIX: &str = "m/";
/// The prefix of the keys that carry cleanup requests (`k/<group>`).
pub const CLEANUP_PREFIX: &str = "k/";
/// The prefix of the keys that carry hand-offs (`h/<group>`).
pub const HANDOFF_PREFIX: &str = "h/";
/// The prefix of the keys that say a node is a group's successor (`n/<group>`).
pub const SUCCESSOR_PREFIX: &str = "n/";
/// The prefix of the keys that carry fencing records (`x/<victim>`).
pub const RECORD_PREFIX: &str = "x/";
/// The key whose value a node changes every beat: peers that see it change know that this
/// node's state still reaches them (see [`crate::Member::quiet_since`]).
pub const BEAT: &str = "b";
/// The key a node sets when it shuts down cleanly (it holds nothing any more).
pub const BYE: &str = "bye";
/// The prefix of the keys that carry replicated files (`f/<file>/<i>` chunks and `f/<file>/v`).
pub const FILE_PREFIX: &str = "f/";

/// Returns the claim key of `group`.
pub fn claim(group: &str) -> String {
    format!("{CLAIM_PREFIX}{group}")
}

/// Returns the cooldown key of `group`.
pub fn cooldown(group: &str) -> String {
    format!("{COOLDOWN_PREFIX}{group}")
}

/// Returns the fencing-record key of `node`.
pub fn record(node: &str) -> String {
    format!("{RECORD_PREFIX}{node}")
}

/// Returns the move-request key of `group`.
pub fn move_request(group: &str) -> String {
    format!("{MOVE_PREFIX}{group}")
}

/// Returns the cleanup-request key of `group`.
pub fn cleanup(group: &str) -> String {
    format!("{CLEANUP_PREFIX}{group}")
}

/// Returns the hand-off key of `group`.
pub fn handoff(group: &str) -> String {
    format!("{HANDOFF_PREFIX}{group}")
}

/// Returns the successor key of `group`.
pub fn successor(group: &str) -> String {
    format!("{SUCCESSOR_PREFIX}{group}")
}
