//! `mosha status`'s tables: the hastat document rendered as a clustat-like text — members,
//! groups with the nodes that hold them, and under them what an operator must know: standing
//! orders, moves, cooldowns and why a wanted group runs nowhere, fencing, problems.

use std::fmt::Write as _;

use super::Hastat;

impl Hastat {
    /// Renders the document as a clustat-like table for `mosha status`.
    pub fn render(&self) -> String {
        self.render_with(false)
    }

    /// Returns the status lines of the standing orders: maintenance, and each node in
    /// standby with what it still runs (the progress of its drain).
    fn admin_notes(&self) -> String {
        let mut notes = String::new();
        if self.admin.maintenance {
            let _ = writeln!(
                notes,
                " MAINTENANCE: every group is frozen; mosha starts, stops and moves nothing                  (`mosha maintenance off` to end it)"
            );
        }
        for (node, to) in &self.admin.standby {
            let left: Vec<&str> = (self.groups.iter())
                .filter(|(_, g)| g.nodes.contains_key(node))
                .map(|(n, _)| n.as_str())
                .collect();
            let to = to
                .as_ref()
                .map_or(String::new(), |t| format!(", drained to {t}"));
            let progress = if left.is_empty() {
                "runs no group".to_string()
            } else {
                format!(
                    "{} group(s) still to leave: {}",
                    left.len(),
                    left.join(", ")
                )
            };
            let _ = writeln!(notes, " {node}: standby{to}; {progress}");
        }
        notes
    }

    /// Renders the document as tables; `verbose` prints generations in full (they are
    /// shortened to their last 6 digits otherwise, which tell two lives of a node apart).
    pub fn render_with(&self, verbose: bool) -> String {
        let gen = |g: u64| short_generation(g, verbose);
        let mut out = String::new();
        let quorum = if self.quorate {
            "quorate"
        } else {
            "NOT QUORATE"
        };
        let _ = writeln!(
            out,
            "Cluster as seen by {} (generation {}): {}, {} of {} expected members live",
            self.node,
            gen(self.generation),
            quorum,
            self.live,
            self.expected.len()
        );
        if self.security.insecure {
            let _ = writeln!(
                out,
                "WARNING: gossip is NOT authenticated (--insecure): anyone who can reach the \
                 gossip port can join and run commands"
            );
        }
        let _ = writeln!(
            out,
            "\n {:<16} {:<8} {:>20} {:>12}  Address",
            "Member", "State", "Generation", "Last heard"
        );
        for (name, m) in &self.members {
            let heard = match m.last_heard_ms {
                Some(0) if name == &self.node => "local".to_string(),
                Some(ms) => format!("{:.1} s ago", ms as f64 / 1000.0),
                None => "-".to_string(),
            };
            let state = match (m.alive, self.admin.standby.contains_key(name)) {
                (true, true) => "standby",
                (true, false) => "online",
                (false, _) => "OFFLINE",
            };
            let _ = writeln!(
                out,
                " {:<16} {:<8} {:>20} {:>12}  {}",
                name,
                state,
                gen(m.generation),
                heard,
                m.addr
            );
        }
        let _ = writeln!(
            out,
            "\n {:<16} {:<10} {:<16} {:<10} State",
            "Group", "Wanted", "Node", "Level"
        );
        for (name, g) in &self.groups {
            let frozen = if g.frozen { " FROZEN" } else { "" };
            if g.nodes.is_empty() {
                let _ = writeln!(
                    out,
                    " {:<16} {:<10} {:<16} {:<10} -{frozen}",
                    name, g.want, "(none)", "-"
                );
            }
            for (node, c) in &g.nodes {
                let level = if c.level == c.target {
                    c.level.clone()
                } else {
                    format!("{}->{}", c.level, c.target)
                };
                let _ = writeln!(
                    out,
                    " {:<16} {:<10} {:<16} {:<10} {}{frozen}",
                    name, g.want, node, level, c.state
                );
            }
        }
        let mut notes = self.admin_notes();
        for (name, g) in &self.groups {
            if let Some(m) = &g.moving {
                let _ = writeln!(
                    notes,
                    " {name}: moving from {} to {} ({})",
                    m.from, m.to, m.stage
                );
            }
            if let Some(why) = &g.why {
                let _ = writeln!(notes, " {name}: {why}");
            }
            for (node, f) in &g.failures {
                // A cooldown the sentence above names already.
                if g.why.is_some() && f.restarts == 0 && g.cooldown_on.contains(node) {
                    continue;
                }
                let _ = writeln!(notes, " {name} on {node}: {}", self.failure_words(f));
            }
            let unexplained = (g.cooldown_on.iter()).filter(|n| !g.failures.contains_key(*n));
            for node in unexplained {
                let _ = writeln!(notes, " {name} on {node}: in cooldown (it failed there)");
            }
        }
        if !notes.is_empty() {
            let _ = write!(out, "\n{notes}");
        }
        if !self.fencing_off.is_empty() {
            let _ = writeln!(
                out,
                "\n WARNING: fencing is OFF for {} (fencetab `none`): unsafe",
                self.fencing_off.join(", ")
            );
        }
        for (node, f) in &self.fencing {
            let waiting = if f.waiting_groups.is_empty() {
                String::new()
            } else {
                format!("; waiting: {}", f.waiting_groups.join(", "))
            };
            let _ = writeln!(
                out,
                "\n Fencing {node} (generation {}): {}{waiting}",
                gen(f.generation),
                f.detail
            );
        }
        for (node, groups) in &self.not_fenced {
            let _ = writeln!(
                out,
                "\n WARNING: {node} was lost and was NOT FENCED: anything it ran may still run{}",
                if groups.is_empty() {
                    String::new()
                } else {
                    format!(" (waiting: {})", groups.join(", "))
                }
            );
        }
        for sh in &self.shadows {
            let _ = writeln!(
                out,
                "\n WARNING: a second daemon gossips as {} from {} (generation {}, alive {:.0} s): \
                 it is ignored while the one above runs",
                sh.node, sh.addr, sh.generation, sh.alive_s
            );
        }
        if let Some(e) = &self.security.key_error {
            let _ = writeln!(out, "\n Key file: {e}");
        }
        for r in &self.gossip.rejecting {
            let _ = writeln!(
                out,
                "\n Refused: {} datagrams from {} ({}, last {:.0} s ago)",
                r.count, r.addr, r.reason, r.last_s_ago
            );
        }
        if !self.problems.is_empty() {
            let _ = writeln!(out, "\n Problems on {} (repeated errors):", self.node);
            for p in &self.problems {
                let _ = writeln!(
                    out,
                    "   {}: {} ({} times, first {}, last {}){}",
                    p.what,
                    p.error,
                    p.count,
                    self.when(p.first_at_ms),
                    self.when(p.last_at_ms),
                    if p.failing { "" } else { "; works again" }
                );
            }
        }
        for (name, f) in &self.files {
            if !f.ok {
                let _ = writeln!(
                    out,
                    "\n {name}: edit REJECTED, version {} stays in force:",
                    f.version
                );
                for e in &f.errors {
                    let _ = writeln!(out, "   {e}");
                }
            }
        }
        out
    }

    /// Describes a group's failures on one node: its cooldown and the time left (as of the
    /// document's writing), why it failed, its restarts.
    fn failure_words(&self, f: &super::FailureStat) -> String {
        let mut parts = Vec::new();
        if let Some(until) = f.cooldown_until_ms {
            let left = until.saturating_sub(self.written_at_ms).div_ceil(1000);
            parts.push(if left > FOR_EVER_S {
                "FATAL: no node starts it until `mosha cleanup`".to_string()
            } else {
                format!(
                    "in cooldown, {} left (no candidate for it there)",
                    duration_words(left)
                )
            });
        }
        if !f.cause.is_empty() {
            parts.push(format!("failed: {}", f.cause));
        }
        if f.restarts > 0 {
            parts.push(format!("{} restart(s) lately", f.restarts));
        }
        if !f.checks.is_empty() {
            parts.push(format!("checks: {}", f.checks));
        }
        parts.join("; ")
    }

    /// Says when `at_ms` (unix ms) was, as seen when the document was written ("12 s before");
    /// a document without its write time gives the unix time.
    fn when(&self, at_ms: u64) -> String {
        if self.written_at_ms == 0 {
            return format!("at unix {:.1}", at_ms as f64 / 1000.0);
        }
        let s = self.written_at_ms.saturating_sub(at_ms) / 1000;
        match s {
            0..=119 => format!("{s} s before"),
            120..=7199 => format!("{} min before", s / 60),
            _ => format!("{} h before", s / 3600),
        }
    }
}

/// Returns generation `g` in full when `verbose`, else its last 6 digits.
fn short_generation(g: u64, verbose: bool) -> String {
    if verbose || g < 1_000_000 {
        g.to_string()
    } else {
        format!("…{:06}", g % 1_000_000)
    }
}

/// A cooldown longer than this (seconds) lasts until an operator's cleanup (a fatal error).
pub const FOR_EVER_S: u64 = 10 * 365 * 86_400;

/// Returns `s` seconds in words an operator reads at a glance: `45 s`, `9 min`, `2 h`,
/// `1 h 30 min`.
pub fn duration_words(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=3599 => format!("{} min", s / 60),
        _ if s % 3600 < 60 => format!("{} h", s / 3600),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}
