//! `DIR/hastat.json`: the cluster as one node sees it (members, quorum, where each group runs,
//! file versions, nodes lost without fencing, gossip traffic), written by the daemon and read
//! by `mosha status`, which renders it as a clustat-like table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The hastat document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hastat {
    /// The node that wrote it.
    pub node: String,
    /// That node's generation (a new one at every daemon start).
    pub generation: u64,
    /// Whether that node is in a quorate partition.
    pub quorate: bool,
    /// How many members it sees alive (itself included).
    pub live: usize,
    /// The expected membership: every member ever seen, unless forgotten (`DIR/members`).
    pub expected: Vec<String>,
    /// Every member known, by name.
    pub members: BTreeMap<String, MemberStat>,
    /// Every group of cltab, by name.
    pub groups: BTreeMap<String, GroupStat>,
    /// The replicated files, by name.
    pub files: BTreeMap<String, FileStat>,
    /// Nodes lost without fencing because fencing is off for them (`none`), until they are
    /// back: node → the groups still waiting to be recovered (already recovered ones are
    /// gone from the list, but the node stays: its old copies may still run).
    pub not_fenced: BTreeMap<String, Vec<String>>,
    /// Every node lost without a clean shutdown, and where its fencing stands.
    #[serde(default)]
    pub fencing: BTreeMap<String, FenceStat>,
    /// Nodes (or `*`) fencing is turned off for in the fencing table.
    #[serde(default)]
    pub fencing_off: Vec<String>,
    /// Gossip traffic of this node since it started.
    pub gossip: GossipStat,
    /// How this node's gossip is protected.
    #[serde(default)]
    pub security: SecurityStat,
    /// Live daemons that gossip under a member's name but are not the one counted (a
    /// restart for a moment; two daemons with one name for longer).
    #[serde(default)]
    pub shadows: Vec<ShadowStat>,
}

/// How gossip is protected on the writing node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityStat {
    /// True with `--insecure`: datagrams are neither authenticated nor encrypted.
    pub insecure: bool,
    /// Fingerprints of the keys in force, the one that seals first.
    pub keys: Vec<String>,
    /// Why the key file on disk is not in force, if it is not (the keys above stay).
    pub key_error: Option<String>,
}

/// A live daemon under a member's name that is not the one counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowStat {
    /// The name.
    pub node: String,
    /// Its generation.
    pub generation: u64,
    /// Its gossip address.
    pub addr: String,
    /// Seconds it has been alive.
    pub alive_s: f64,
}

/// A source of refused datagrams.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectingStat {
    /// Its address (`*` for every address past the first 256).
    pub addr: String,
    /// Why its last datagram was refused.
    pub reason: String,
    /// Datagrams refused since this node started.
    pub count: u64,
    /// Seconds since its last refused datagram.
    pub last_s_ago: f64,
}

/// One member, as seen by the writing node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberStat {
    /// Whether the failure detector considers it alive.
    pub alive: bool,
    /// Its generation.
    pub generation: u64,
    /// Its gossip address.
    pub addr: String,
    /// Milliseconds since its heartbeat was last seen to advance (0 for the writer itself).
    pub last_heard_ms: Option<u64>,
    /// The cltab version it runs, if it published one.
    pub cltab: Option<String>,
    /// The hactl version it runs, if it published one.
    pub hactl: Option<String>,
    /// Fingerprint of the key its last datagram was sealed with.
    #[serde(default)]
    pub key: Option<String>,
}

/// One group across the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStat {
    /// The level hactl wants (`stop` when hactl does not name the group).
    pub want: String,
    /// Nodes where it runs at a level other than plan/test/stop.
    pub running_on: Vec<String>,
    /// Every live node that holds the group (plans, tests, runs or stops it), with its claim.
    pub nodes: BTreeMap<String, NodeGroupStat>,
}

/// A group on one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeGroupStat {
    /// The level being started or reached.
    pub level: String,
    /// `STARTING`, `DONE`, `PASSED`, `FAILED` or `STOPPING`.
    pub state: String,
    /// The level it was told.
    pub target: String,
}

/// The fencing of one lost node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FenceStat {
    /// The generation that was lost.
    pub generation: u64,
    /// `pending`, `fencing`, `fenced`, `acked`, `failed`, `unconfigured` or `not-fenced`.
    pub state: String,
    /// In words: by whom and how, or why not.
    pub detail: String,
    /// Groups it held that wait for its fencing before they can be recovered.
    pub waiting_groups: Vec<String>,
}

/// A replicated file on the writing node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileStat {
    /// The version in force (`ms.seq@node`).
    pub version: String,
    /// False when the file on disk was rejected and the last good version is kept.
    pub ok: bool,
    /// The rejected file's errors, as `file:line: message`.
    pub errors: Vec<String>,
}

/// Gossip traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GossipStat {
    /// Bytes sent since start.
    pub bytes_sent: u64,
    /// Bytes received since start.
    pub bytes_received: u64,
    /// Average bytes sent per second since start.
    pub sent_per_s: f64,
    /// Datagrams refused since start (they are never answered nor decoded).
    #[serde(default)]
    pub rejected: u64,
    /// The same, by reason (`bad-auth`, `unknown-key`, `not-sealed`, `replayed`, ...).
    #[serde(default)]
    pub rejected_by: BTreeMap<String, u64>,
    /// Sources refused in the last five minutes, most recent first.
    #[serde(default)]
    pub rejecting: Vec<RejectingStat>,
    /// Sends that failed (unreachable network, full buffers).
    #[serde(default)]
    pub send_failures: u64,
    /// Datagrams that passed mosha's checks but that chitchat's decoder refused.
    #[serde(default)]
    pub decoder_refusals: u64,
}

impl Hastat {
    /// Returns the document as pretty JSON, newline-terminated.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Returns a copy without the fields that change all the time (heartbeat ages, traffic),
    /// to tell a real change from the clock ticking.
    pub fn structural(&self) -> Hastat {
        let mut h = self.clone();
        h.gossip = GossipStat::default();
        for m in h.members.values_mut() {
            m.last_heard_ms = None;
        }
        for s in &mut h.shadows {
            s.alive_s = 0.0;
        }
        h
    }

    /// Renders the document as a clustat-like table for `mosha status`.
    pub fn render(&self) -> String {
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
            self.generation,
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
            let _ = writeln!(
                out,
                " {:<16} {:<8} {:>20} {:>12}  {}",
                name,
                if m.alive { "online" } else { "OFFLINE" },
                m.generation,
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
            if g.nodes.is_empty() {
                let _ = writeln!(
                    out,
                    " {:<16} {:<10} {:<16} {:<10} -",
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
                    " {:<16} {:<10} {:<16} {:<10} {}",
                    name, g.want, node, level, c.state
                );
            }
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
                f.generation, f.detail
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
}
