//! The modelled network and membership layer: who hears whom (crashes, hangs, partitions,
//! one-way clogs), how long a gossip update takes to reach one observer, and how long the
//! phi-accrual failure detector takes to drop a silent node.
//!
//! Figures come from `chitchat.md` (100 ms gossip, phi 8, initial interval 100 ms): a key is
//! visible on all nodes after 0.05/0.10 s (median/max) at N=3 and 0.17/0.30 s at N=30; a
//! killed node is dropped by all after 0.5 s at N=3 and 0.8 s at N=30. Between and beyond
//! those sizes the figures are extrapolated on `log10(N/3)`, as dissemination in epidemic
//! gossip grows with the number of rounds, i.e. logarithmically.

use mosha::engine::Config;
use rand::RngExt;
use rand_chacha::ChaCha12Rng;

/// The gossip interval of the daemon's defaults.
pub const GOSSIP_MS: u64 = 100;

/// Timing of gossip for a cluster of a given size.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Median time for an update to reach one observer.
    pub dissem_median: u64,
    /// Largest time for an update to reach one observer (without loss).
    pub dissem_max: u64,
    /// Time for the failure detector to drop a silent node (all observers, before jitter).
    pub detect: u64,
    /// Probability that a gossip round is lost on the way (adds one round per loss).
    pub loss: f64,
}

fn log_scale(n: usize) -> f64 {
    ((n.max(3) as f64) / 3.0).log10()
}

impl Timing {
    /// Returns the timing measured (N = 3, 30) or extrapolated for `n` nodes.
    pub fn for_nodes(n: usize, loss: f64) -> Timing {
        let s = log_scale(n);
        let detect = 500.0 + 300.0 * s;
        Timing {
            dissem_median: (50.0 + 120.0 * s) as u64,
            dissem_max: (100.0 + 200.0 * s) as u64,
            // Liveness is recomputed once per gossip tick: snap to a multiple of it.
            detect: (detect / GOSSIP_MS as f64).round() as u64 * GOSSIP_MS,
            loss,
        }
    }

    /// Draws the delay for one update to reach one observer: median `dissem_median`, at most
    /// `dissem_max`, plus one gossip round per lost exchange.
    pub fn dissem(&self, rng: &mut ChaCha12Rng) -> u64 {
        let u: f64 = rng.random_range(0.0..1.0);
        let m = self.dissem_median as f64;
        let mx = self.dissem_max as f64;
        let mut d = if u < 0.5 {
            m * (0.4 + 1.2 * u)
        } else {
            m * (mx / m).powf(2.0 * u - 1.0)
        } as u64;
        while self.loss > 0.0 && rng.random_bool(self.loss.min(0.9)) {
            d += GOSSIP_MS;
        }
        d.max(1)
    }

    /// Draws the time for one observer to drop a node that went silent: the detection time
    /// give or take one gossip tick (the observer's liveness recomputation phase).
    pub fn detection(&self, rng: &mut ChaCha12Rng) -> u64 {
        self.detect - GOSSIP_MS / 2 + rng.random_range(0..GOSSIP_MS)
    }

    /// The longest detection time [`Timing::detection`] can return.
    pub fn detect_max(&self) -> u64 {
        self.detect + GOSSIP_MS / 2
    }
}

/// Who can hear whom, as faults set it.
#[derive(Debug, Clone)]
pub struct Links {
    /// The partition side of each node (all 0 when healed).
    pub side: Vec<u32>,
    /// Nodes whose outgoing gossip is clogged (others stop hearing them; they hear others).
    pub clog_out: Vec<bool>,
    /// The last computed connectivity: `heard[obs][about]`.
    heard: Vec<Vec<bool>>,
    /// How many others each node hears.
    pub hears: Vec<usize>,
}

impl Links {
    /// Returns a healed network of `n` nodes where nobody hears anybody yet.
    pub fn new(n: usize) -> Links {
        Links {
            side: vec![0; n],
            clog_out: vec![false; n],
            heard: vec![vec![false; n]; n],
            hears: vec![0; n],
        }
    }

    /// Returns the stored connectivity of `obs` hearing `about`.
    pub fn heard(&self, obs: usize, about: usize) -> bool {
        self.heard[obs][about]
    }

    /// Stores the connectivity of `obs` hearing `about`; returns whether it changed.
    pub fn set(&mut self, obs: usize, about: usize, c: bool) -> bool {
        if self.heard[obs][about] == c {
            return false;
        }
        self.heard[obs][about] = c;
        if c {
            self.hears[obs] += 1;
        } else {
            self.hears[obs] -= 1;
        }
        true
    }

    /// Tells whether the links (not the nodes' health) let `obs` hear `about`.
    pub fn path(&self, obs: usize, about: usize) -> bool {
        self.side[obs] == self.side[about] && !self.clog_out[about]
    }
}

/// The longest a group may stay unplaced after every fault healed, for the defaults of
/// `cfg` and `timing`. Justification, in order: a restarted node waits `startup_wait`
/// (1 s) before it plans; peers see it after at most one dissemination (`dissem_max`) and
/// drop the dead after `detect_max`; the first-ranked eligible node plans within its
/// jitter (< `slot`/4); a conflict costs a yield back-off (2 slots) and a new rank turn (1
/// slot), allowed twice; the plan window is 2 slots; the test takes up to 5 s (slow tests)
/// and the start 50 ms, each published in `dissem_max`; a fence pass of a node lost just
/// before the heal takes up to its 10 s timeout. Plus 2 s of margin.
pub fn liveness_bound(cfg: &Config, t: &Timing) -> u64 {
    cfg.startup_wait
        + t.dissem_max
        + t.detect_max()
        + cfg.slot
        + 2 * (cfg.yield_backoff + cfg.slot)
        + cfg.plan_window
        + 5_000
        + 50
        + 4 * t.dissem_max
        + 10_000
        + 2_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn timing_matches_the_measurements() {
        let t3 = Timing::for_nodes(3, 0.0);
        assert_eq!((t3.dissem_median, t3.dissem_max, t3.detect), (50, 100, 500));
        let t30 = Timing::for_nodes(30, 0.0);
        assert_eq!(
            (t30.dissem_median, t30.dissem_max, t30.detect),
            (170, 300, 800)
        );
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        let mut d: Vec<u64> = (0..10_001).map(|_| t30.dissem(&mut rng)).collect();
        d.sort_unstable();
        assert!((150..=190).contains(&d[5000]), "median {}", d[5000]);
        assert!(d[10_000] <= 300);
    }
}
