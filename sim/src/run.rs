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
    let stats = w.run();
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
