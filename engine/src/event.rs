//! What the engine tells an operator ([`Event`]): every event a step may report, which the
//! daemon logs (and alerts on) and the simulator traces.

use crate::{FenceState, Millis};

/// Something an operator should hear about; the daemon logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Quorum was lost: every group here is being stopped.
    QuorumLost { live: usize, expected: usize },
    /// Quorum is back.
    QuorumRegained { live: usize, expected: usize },
    /// This node has not had quorum since it started (it holds nothing): it waits to hear
    /// enough members. Not an alarm: every start begins so.
    QuorumWaiting { live: usize, expected: usize },
    /// This node has quorum for the first time since it started.
    QuorumReached { live: usize, expected: usize },
    /// This node plans a group that runs nowhere.
    Planning { group: String, rank: usize },
    /// This node takes a group over at once: its holder was lost, and this node stood as
    /// its successor (see [`crate::successor`]); no plan window.
    TakingOver { group: String },
    /// Another node's claim outranks ours: we stop and back off.
    Yielding { group: String, to: String },
    /// The group failed here at `level` (a test failed, or its restarts were used up):
    /// this node is no candidate for it for `cooldown_ms`; `elsewhere` live nodes may take
    /// it now (0: it stays stopped until a cooldown ends, or an operator clears them).
    TestFailed {
        group: String,
        level: String,
        cooldown_ms: Millis,
        elsewhere: usize,
    },
    /// A member stopped being alive.
    NodeLost { node: String, held: Vec<String> },
    /// A live member failed to stop a resource of `groups`: it may still hold them, and it
    /// is fenced before they start elsewhere.
    NodeBlocked { node: String, groups: Vec<String> },
    /// A member whose stop had failed stopped its groups after all (an operator's cleanup):
    /// it needs no fencing any more.
    NodeUnblocked { node: String },
    /// A member shut down cleanly (it said goodbye, holding nothing): no alarm, no fencing.
    NodeLeft { node: String },
    /// A member is alive again.
    NodeBack { node: String },
    /// A member of the expected membership was never heard since this daemon started, and
    /// no peer knows anything of it: it is treated as lost holding anything.
    NeverHeard { node: String },
    /// A live member's heartbeats arrive but no new state from it has for `ms`: gossip from
    /// this node probably does not get out (a one-way link). It does not count for quorum.
    NoNews { node: String, ms: Millis },
    /// News from a member arrives again.
    NewsBack { node: String },
    /// A group that a lost node held is recovered here although that node was not fenced.
    RecoveringUnfenced { group: String, from: String },
    /// This node starts fencing a lost node (its `rank` among the fencers).
    FenceStarted { node: String, rank: usize },
    /// The fencing of a lost node changed state (fenced, failed, waiting...).
    FenceState { node: String, state: FenceState },
    /// The driver's loop did not run for `ms` (SIGSTOP, a paused VM, starvation): its view
    /// is stale; every group is held where it is until the cluster was heard again
    /// (reported by the node core, [`node::Node`]).
    Frozen { ms: Millis },
    /// This node stops a group to hand it to `to` (`why`: an operator's move, standby,
    /// failback...).
    HandingOff {
        group: String,
        to: String,
        why: String,
    },
    /// This node stops a group it may no longer run (`why`: standby, `only=`) and that no
    /// other node can take: it stays stopped until one can.
    NowhereToGo { group: String, why: String },
    /// A move of `group` to `to` requested or handed off here did not happen (`why`); the
    /// group is placed as usual.
    MoveAbandoned {
        group: String,
        to: String,
        why: String,
    },
    /// An operator's cleanup (made on `by`) cleared the group's failures here: its restarts,
    /// and its cooldown when it had one (`cooldown`).
    CleanedUp {
        group: String,
        by: String,
        cooldown: bool,
    },
    /// A group reached its run level here (`claim`: how it stands).
    GroupStarted { group: String, claim: String },
    /// A group that ran here stopped holding anything here.
    GroupStopped { group: String, claim: String },
    /// The expected membership could not be made durable; it is tried again at every step.
    MembersNotSaved { error: String },
    /// A new version of a replicated file is in force here: a local edit (`from` is
    /// `None`), or adopted from the member `from`.
    FileChanged {
        file: String,
        version: String,
        from: Option<String>,
    },
    /// The versions of the replicated files could not be made durable; tried again at every
    /// step.
    VersionsNotSaved { error: String },
}
