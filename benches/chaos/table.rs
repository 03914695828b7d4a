//! What each chaos iteration found ([`Outcome`]) and the table per fault kind ([`Table`]).

use std::collections::BTreeMap;

use crate::faults::Kind;

/// What one iteration found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The longest time a wanted group ran nowhere (its lock held by nobody), in seconds;
    /// None when no group was interrupted.
    pub outage: Option<f64>,
    /// Seconds from the last heal until every wanted group ran on the nodes that ran.
    pub recovered: Option<f64>,
    /// Fewer than a quorum of nodes ran after the heal (so nothing could run until the
    /// restarts).
    pub no_quorum: bool,
    /// Services that found their lock taken (two copies at once).
    pub collisions: usize,
    /// Groups started elsewhere before their lost node was fenced or restarted.
    pub early: usize,
    /// Wanted groups not running again within the bounds.
    pub unrecovered: usize,
    /// Services running where their group is not placed, or twice.
    pub leftovers: usize,
    /// Live nodes fenced by a fault that cuts a node off (partition, one-way, hang, daemon
    /// kill).
    pub fences: usize,
    /// Live nodes fenced by any other fault.
    pub false_fences: usize,
    /// Daemon exits nobody asked for.
    pub crashes: usize,
    /// What went wrong, said plainly.
    pub details: Vec<String>,
}

impl Outcome {
    pub fn clean(&self) -> bool {
        self.collisions == 0
            && self.early == 0
            && self.unrecovered == 0
            && self.leftovers == 0
            && self.false_fences == 0
            && self.crashes == 0
    }

    pub fn summary(&self) -> String {
        let mut s = match self.outage {
            Some(o) => format!("longest outage {o:.2} s"),
            None => "no group interrupted".to_string(),
        };
        if self.no_quorum {
            s.push_str(", no quorum until the restarts");
        } else if let Some(r) = self.recovered {
            s.push_str(&format!(", settled {r:.2} s after the heal"));
        }
        for (n, what) in [
            (self.fences, "live node(s) fenced"),
            (self.collisions, "COLLISION(S)"),
            (self.early, "RECOVERY BEFORE FENCING"),
            (self.unrecovered, "UNRECOVERED"),
            (self.leftovers, "LEFT BEHIND"),
            (self.false_fences, "FALSE FENCE(S)"),
            (self.crashes, "CRASH(ES)"),
        ] {
            if n > 0 {
                s.push_str(&format!(", {n} {what}"));
            }
        }
        s
    }
}

#[derive(Default)]
struct Row {
    count: usize,
    overlapped: usize,
    times: Vec<f64>,
    collisions: usize,
    early: usize,
    unrecovered: usize,
    leftovers: usize,
    fences: usize,
    false_fences: usize,
    crashes: usize,
    no_quorum: usize,
}

impl Row {
    fn add(&mut self, o: &Outcome, overlapped: bool) {
        self.count += 1;
        self.overlapped += usize::from(overlapped);
        self.times.extend(o.outage);
        self.no_quorum += usize::from(o.no_quorum);
        self.collisions += o.collisions;
        self.early += o.early;
        self.unrecovered += o.unrecovered;
        self.leftovers += o.leftovers;
        self.fences += o.fences;
        self.false_fences += o.false_fences;
        self.crashes += o.crashes;
    }

    fn line(&mut self, name: &str) -> String {
        self.times.sort_by(|a, b| a.total_cmp(b));
        let q = |q: f64| -> String {
            if self.times.is_empty() {
                "-".into()
            } else {
                let k = ((self.times.len() as f64 - 1.0) * q).round() as usize;
                format!("{:.2}", self.times[k])
            }
        };
        format!(
            "| {name:<20} | {:>5} | {:>4} | {:>3} | {:>5} | {:>5} | {:>5} | {:>4} | {:>5} | {:>5} | {:>4} | {:>6} | {:>5} | {:>5} | {:>4} |",
            self.count,
            self.overlapped,
            self.times.len(),
            q(0.5),
            q(0.99),
            q(1.0),
            self.collisions,
            self.early,
            self.unrecovered,
            self.leftovers,
            self.fences,
            self.false_fences,
            self.crashes,
            self.no_quorum,
        )
    }
}

/// The per-kind table: an iteration with two faults counts in both kinds' rows (and once in
/// the total).
#[derive(Default)]
pub struct Table {
    rows: BTreeMap<Kind, Row>,
    total: Row,
}

impl Table {
    pub fn add(&mut self, kinds: Vec<Kind>, o: Outcome) {
        let overlapped = kinds.len() > 1;
        for k in kinds {
            self.rows.entry(k).or_default().add(&o, overlapped);
        }
        self.total.add(&o, overlapped);
    }

    pub fn clean(&self) -> bool {
        let t = &self.total;
        t.collisions + t.early + t.unrecovered + t.leftovers + t.false_fences + t.crashes == 0
    }

    pub fn verdict(&self) -> String {
        let t = &self.total;
        let faults: usize = self.rows.values().map(|r| r.count).sum();
        format!(
            "{faults} faults in {} iterations ({} with two overlapping): {} collisions, {} recoveries before fencing, {} groups unrecovered, {} left behind, {} false fences, {} daemon crashes",
            t.count, t.overlapped, t.collisions, t.early, t.unrecovered, t.leftovers, t.false_fences, t.crashes
        )
    }

    pub fn render(&mut self) -> String {
        let mut s = String::from(
            "| fault                | count | over | hit | p50 s | p99 s | max s | coll | early | unrec | left | fenced | false | crash | no-q |\n\
             |----------------------|------:|-----:|----:|------:|------:|------:|-----:|------:|------:|-----:|-----:|------:|-----:|------:|\n",
        );
        for (k, row) in self.rows.iter_mut() {
            s.push_str(&row.line(k.name()));
            s.push('\n');
        }
        s.push_str(&self.total.line("all"));
        s.push_str(
            "\nhit: iterations where a wanted group ran nowhere for a while (its lock held by nobody);\n\
             p50/p99/max: over those, the longest such outage of any group (a kill: kill -> running elsewhere);\n\
             over: iterations with a second, overlapping fault; fenced: live nodes fenced by a fault that\n\
             cuts one off (partition, one-way, hang, daemon kill); false: any other live node fenced;\n\
             no-q: iterations where fewer than a quorum of nodes ran until the restarts.",
        );
        s
    }
}
