//! Running one seed, or a range of seeds, for both policies.

use crate::faults::Profile;
use crate::node::Kind;
use crate::report::Stats;
use crate::world::{Params, World};

/// What a run of one seed and one policy gives.
pub struct Outcome {
    /// The figures.
    pub stats: Stats,
    /// The readable trace (when asked for).
    pub trace: Vec<String>,
}

/// The most copies of claims (nodes × nodes × groups) that the OpenMosix::HA side is run
/// with. At its cold start every monitor's first cycle sees only its own node, so its dice
/// always win and it plans every group; each of those claims reaches every node's view. At
/// 1000 nodes × 200 groups that is 200 million claims held at once (some 250 bytes each:
/// past 24 GB, issue 13's seed 7, OOM-killed); 100 × 200 holds about 1 GB.
pub const OM_MAX_CLAIM_COPIES: u64 = 4_000_000;

/// Tells whether the OpenMosix::HA side fits in memory at this size (see
/// [`OM_MAX_CLAIM_COPIES`]).
pub fn om_fits(nodes: usize, groups: usize) -> bool {
    (nodes as u64)
        .saturating_mul(nodes as u64)
        .saturating_mul(groups as u64)
        <= OM_MAX_CLAIM_COPIES
}

/// Runs one seed with one policy.
pub fn run_one(
    nodes: usize,
    groups: usize,
    duration: u64,
    seed: u64,
    profile: &Profile,
    kind: Kind,
    trace: bool,
) -> Outcome {
    let mut w = World::new(
        Params {
            nodes,
            groups,
            duration,
            seed,
            profile: profile.clone(),
            kind,
            trace,
        },
        crate::invariants::CHECKS,
    );
    let stats = if crate::memory::wanted() {
        crate::memory::run(&mut w)
    } else {
        w.run()
    };
    Outcome {
        stats,
        trace: w.trace.take().unwrap_or_default(),
    }
}

/// Returns the command that replays `seed` with a readable trace.
pub fn replay_command(
    nodes: usize,
    groups: usize,
    duration: u64,
    seed: u64,
    profile: &str,
) -> String {
    format!(
        "cargo run -p sim --release -- --nodes {nodes} --groups {groups} --duration {} --seeds {seed}..{} --faults {profile} --trace",
        duration / 1000,
        seed + 1
    )
}
