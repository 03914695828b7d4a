//! Figures of a run and of a sweep, and the side-by-side table printed by the CLI.

use std::fmt::Write;

/// What one run of one policy measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Failover times (ms): from a fault taking a running group away to it running elsewhere.
    pub failovers: Vec<u64>,
    /// Time (ms) until every wanted group ran, from the cold start.
    pub cold_place: Option<u64>,
    /// Conflicts seen (yields, or OpenMosix's inconflict stops).
    pub conflicts: u64,
    /// Placements attempted (plans).
    pub plans: u64,
    /// Starts of a group at its run level while it already ran elsewhere.
    pub dup_starts: u64,
    /// Fence passes run.
    pub fences: u64,
    /// Fence passes started by a node that, in truth, could not exchange with a strict
    /// majority of the nodes at that moment (only a quorate partition should fence).
    pub minority_fences: u64,
    /// Fence passes started against a node that, in truth, was up and could exchange with a
    /// strict majority (a healthy node of the majority: a false fence).
    pub false_fences: u64,
    /// Fence passes started against a life of a node that a pass had already reported off
    /// (found by the chaos run: a fencer's restart took its record out of gossip, and the
    /// others fenced the victim again, hitting its next life).
    pub repeat_fences: u64,
    /// Gossip key updates published, all nodes together.
    pub publishes: u64,
    /// Simulated duration (ms) and nodes, for per-node rates.
    pub duration: u64,
    /// Node count.
    pub nodes: usize,
    /// Engine steps run (all nodes).
    pub steps: u64,
    /// Events handled.
    pub events: u64,
    /// Invariant violations: (invariant letter, description).
    pub violations: Vec<(char, String)>,
}

impl Stats {
    /// Adds another run's figures to these.
    pub fn merge(&mut self, o: &Stats) {
        self.failovers.extend_from_slice(&o.failovers);
        if let Some(c) = o.cold_place {
            self.cold_place = Some(self.cold_place.map_or(c, |m| m.max(c)));
        }
        self.conflicts += o.conflicts;
        self.plans += o.plans;
        self.dup_starts += o.dup_starts;
        self.fences += o.fences;
        self.minority_fences += o.minority_fences;
        self.false_fences += o.false_fences;
        self.repeat_fences += o.repeat_fences;
        self.publishes += o.publishes;
        self.steps += o.steps;
        self.events += o.events;
        self.duration += o.duration;
        self.nodes = self.nodes.max(o.nodes);
        self.violations.extend(o.violations.iter().cloned());
    }
}

/// Returns the `q`-quantile of sorted `v` in seconds, or `-`.
fn q(v: &[u64], q: f64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    format!("{:.2}", v[i] as f64 / 1000.0)
}

/// Returns the side-by-side table of two policies' merged figures, with mosha/OpenMosix ratios.
pub fn table(ours: &Stats, om: &Stats, cold: (&[u64], &[u64])) -> String {
    let mut s = String::new();
    let mut a = ours.failovers.clone();
    let mut b = om.failovers.clone();
    a.sort_unstable();
    b.sort_unstable();
    let mut ca = cold.0.to_vec();
    let mut cb = cold.1.to_vec();
    ca.sort_unstable();
    cb.sort_unstable();
    let per = |st: &Stats, x: u64| x as f64 / (st.plans.max(1)) as f64;
    let rate = |st: &Stats| {
        st.publishes as f64 / st.nodes.max(1) as f64 / (st.duration.max(1) as f64 / 1000.0)
    };
    let rows: Vec<(&str, String, String)> = vec![
        (
            "failovers (count)",
            a.len().to_string(),
            b.len().to_string(),
        ),
        ("failover p50 (s)", q(&a, 0.5), q(&b, 0.5)),
        ("failover p99 (s)", q(&a, 0.99), q(&b, 0.99)),
        ("failover max (s)", q(&a, 1.0), q(&b, 1.0)),
        ("cold start, all placed p50 (s)", q(&ca, 0.5), q(&cb, 0.5)),
        ("cold start, all placed max (s)", q(&ca, 1.0), q(&cb, 1.0)),
        (
            "plan conflicts per placement",
            format!("{:.3}", per(ours, ours.conflicts)),
            format!("{:.3}", per(om, om.conflicts)),
        ),
        (
            "duplicate starts",
            ours.dup_starts.to_string(),
            om.dup_starts.to_string(),
        ),
        (
            "fencing actions",
            ours.fences.to_string(),
            om.fences.to_string(),
        ),
        (
            "fences from a minority",
            ours.minority_fences.to_string(),
            om.minority_fences.to_string(),
        ),
        (
            "fences of a healthy majority node",
            ours.false_fences.to_string(),
            om.false_fences.to_string(),
        ),
        (
            "fences of a life already fenced",
            ours.repeat_fences.to_string(),
            om.repeat_fences.to_string(),
        ),
        (
            "key updates per node per s",
            format!("{:.3}", rate(ours)),
            format!("{:.3}", rate(om)),
        ),
    ];
    let _ = writeln!(
        s,
        "{:<34} {:>12} {:>12} {:>8}",
        "metric", "mosha", "openmosix", "ratio"
    );
    for (name, x, y) in rows {
        let ratio = match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(x), Ok(y)) if y > 0.0 => format!("{:.2}", x / y),
            _ => "-".into(),
        };
        let _ = writeln!(s, "{name:<34} {x:>12} {y:>12} {ratio:>8}");
    }
    for k in ['a', 'b', 'c', 'd', 'e'] {
        let x = ours.violations.iter().filter(|(c, _)| *c == k).count();
        let y = om.violations.iter().filter(|(c, _)| *c == k).count();
        let _ = writeln!(
            s,
            "{:<34} {x:>12} {y:>12} {:>8}",
            format!("invariant ({k}) violations"),
            "-"
        );
    }
    s
}
