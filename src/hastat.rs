//! `DIR/hastat.json`: the cluster as one node sees it (members, quorum, where each group runs,
//! file versions, nodes lost without fencing, gossip traffic, the node's own repeated
//! errors), written by the daemon and read by `mosha status`, which renders it as a
//! clustat-like table and says how old it is.
//!
//! Generations are written as JSON strings: they are 19-digit nanosecond counts, which jq and
//! JavaScript (doubles) would round.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::files::Holder;

mod render;
pub use render::duration_words;

/// The version of the layout of hastat.json and clstat.json (`"schema"`), raised when a
/// field changes meaning or type.
pub const SCHEMA: u32 = 1;

/// How old hastat may be before `mosha status` calls it stale: the daemon rewrites it at
/// least every second.
pub const STALE_AFTER_MS: u64 = 5000;

/// The hastat document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hastat {
    /// The layout version ([`SCHEMA`]); 0 in documents from before it existed.
    #[serde(default)]
    pub schema: u32,
    /// When the document was written (unix ms); 0 in documents from before it existed.
    #[serde(default)]
    pub written_at_ms: u64,
    /// The node that wrote it.
    pub node: String,
    /// That node's generation (a new one at every daemon start).
    #[serde(with = "u64_string")]
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
    /// How long the writing daemon's event loop took to go round, at worst.
    #[serde(default, rename = "loop")]
    pub event_loop: LoopStat,
    /// Live daemons that gossip under a member's name but are not the one counted (a
    /// restart for a moment; two daemons with one name for longer).
    #[serde(default)]
    pub shadows: Vec<ShadowStat>,
    /// What fails again and again on the writing node (a full or read-only directory...).
    #[serde(default)]
    pub problems: Vec<ProblemStat>,
    /// The operators' standing orders in force (the admin file).
    #[serde(default)]
    pub admin: AdminStat,
}

/// The standing orders in force: standby nodes, frozen groups, maintenance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminStat {
    /// The nodes in standby, each with the node its groups are drained to (`null`: the
    /// best-ranked node that can take each).
    pub standby: BTreeMap<String, Option<String>>,
    /// The frozen groups (`mosha freeze`).
    pub frozen: Vec<String>,
    /// The whole cluster is in maintenance: every group is frozen.
    pub maintenance: bool,
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
    /// Its generation (a string in JSON).
    #[serde(with = "u64_string")]
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

/// A failure that goes on, on the writing node (see [`crate::daemon::notices`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemStat {
    /// What fails, e.g. `write clstat.json`.
    pub what: String,
    /// The last error, in words.
    pub error: String,
    /// How many times it failed since it began to.
    pub count: u64,
    /// When it first failed (unix ms).
    pub first_at_ms: u64,
    /// When it last failed (unix ms).
    pub last_at_ms: u64,
    /// Whether the last attempt failed (false: it works again, and is listed for a minute).
    #[serde(default)]
    pub failing: bool,
}

/// Serializes a `u64` as a JSON string, and reads it back from a string or a number (older
/// documents), so that 19-digit generations survive readers that use doubles.
pub mod u64_string {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `v` as a string.
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Reads a string of digits, or a number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Number(u64),
        }
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(n),
            Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// One member, as seen by the writing node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberStat {
    /// Whether the failure detector considers it alive.
    pub alive: bool,
    /// Its generation.
    #[serde(with = "u64_string")]
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
    /// A planned move under way (`mosha move`): requested, or handed off and not yet taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<MoveStat>,
    /// Live nodes in cooldown for the group: it failed there (a test, or its restarts used
    /// up), and they are no candidates for it until the cooldown ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cooldown_on: Vec<String>,
    /// Live nodes where the group failed or restarted lately: cooldown, cause, restarts
    /// (`mosha cleanup` clears them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, FailureStat>,
    /// Why a wanted group runs nowhere, in words (absent when it runs, or is not wanted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Frozen (by itself, or by maintenance): mosha leaves its processes as they are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
}

/// A group's failures on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureStat {
    /// Exits of its `respawn` entries counted against its restart policy there.
    pub restarts: u32,
    /// When the node's cooldown for the group ends (unix ms, that node's clock; absent: no
    /// cooldown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_until_ms: Option<u64>,
    /// Why it last failed there (`test t2: exit status 3: ...`; empty: unknown).
    pub cause: String,
    /// Its health checks that do not pass there (`vip degraded; check failing (...)`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checks: String,
}

/// A planned move of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveStat {
    /// The node it leaves.
    pub from: String,
    /// The node it goes to.
    pub to: String,
    /// `requested` (the holder has not stopped it yet) or `handed-off` (the holder stopped
    /// it for `to`).
    pub stage: String,
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
    #[serde(with = "u64_string")]
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

/// The writing daemon's longest event-loop turns: one turn reaps children, steps the core,
/// carries out its decisions and writes status; while it runs, nothing else happens (a long
/// turn delays respawns and looks like a freeze to the engine).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopStat {
    /// The longest turn since the daemon started, in ms.
    pub longest_ms: u64,
    /// The longest turn in the last one to two minutes, in ms.
    pub longest_recent_ms: u64,
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

    /// Returns a copy without the fields that change all the time (time of writing, heartbeat
    /// ages, traffic, repeat counts of problems), to tell a real change from the clock ticking.
    pub fn structural(&self) -> Hastat {
        let mut h = self.clone();
        h.written_at_ms = 0;
        h.gossip = GossipStat::default();
        h.event_loop = LoopStat::default();
        for m in h.members.values_mut() {
            m.last_heard_ms = None;
        }
        for s in &mut h.shadows {
            s.alive_s = 0.0;
        }
        for p in &mut h.problems {
            p.count = 0;
            p.last_at_ms = 0;
        }
        h
    }

    /// Tells whether `self` and `other` differ only in the fields [`Hastat::structural`]
    /// clears, without copying the groups and files (thousands of entries in a big cluster,
    /// compared at every build): those are compared in place.
    pub fn same_structure(&self, other: &Hastat) -> bool {
        self.groups == other.groups
            && self.files == other.files
            && self.light().structural() == other.light().structural()
    }

    /// Returns a copy without the groups and files.
    fn light(&self) -> Hastat {
        Hastat {
            schema: self.schema,
            written_at_ms: self.written_at_ms,
            node: self.node.clone(),
            generation: self.generation,
            quorate: self.quorate,
            live: self.live,
            expected: self.expected.clone(),
            members: self.members.clone(),
            groups: BTreeMap::new(),
            files: BTreeMap::new(),
            not_fenced: self.not_fenced.clone(),
            fencing: self.fencing.clone(),
            fencing_off: self.fencing_off.clone(),
            gossip: self.gossip.clone(),
            security: self.security.clone(),
            event_loop: self.event_loop.clone(),
            shadows: self.shadows.clone(),
            problems: self.problems.clone(),
            admin: self.admin.clone(),
        }
    }

    /// Says how old the document is at `now_ms` (unix ms) and whether it is stale: older than
    /// [`STALE_AFTER_MS`], or of unknown age. For a stale document, `holder` tells whether a
    /// daemon still holds `dir` (then it may be hung) or none runs there.
    pub fn age(&self, now_ms: u64, dir: &Path, holder: impl FnOnce() -> Holder) -> (String, bool) {
        let written = if self.written_at_ms == 0 {
            None
        } else {
            Some(now_ms.saturating_sub(self.written_at_ms))
        };
        let ago = match written {
            Some(ms) => format!("written {:.1} s ago", ms as f64 / 1000.0),
            None => "written at an unknown time (no written_at_ms)".to_string(),
        };
        if written.is_some_and(|ms| ms <= STALE_AFTER_MS) {
            return (ago, false);
        }
        let dir = dir.display();
        let why = match holder() {
            Holder::Free => format!("no daemon runs on {dir}"),
            Holder::Held(Some(pid)) => {
                format!("but a daemon holds {dir} (pid {pid}): it may be hung")
            }
            Holder::Held(None) => format!("but a daemon holds {dir}: it may be hung"),
            Holder::Unknown(e) => format!("cannot tell whether a daemon runs on {dir} ({e})"),
        };
        (format!("stale: {ago}, {why}"), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Hastat {
        let mut h = Hastat {
            schema: SCHEMA,
            written_at_ms: 1_000_000,
            node: "n1".into(),
            generation: 1_795_302_790_678_602_465,
            ..Hastat::default()
        };
        h.members.insert(
            "n1".into(),
            MemberStat {
                generation: 1_795_302_790_678_311_955,
                ..MemberStat::default()
            },
        );
        h.fencing.insert(
            "n3".into(),
            FenceStat {
                generation: u64::MAX,
                ..FenceStat::default()
            },
        );
        h
    }

    #[test]
    fn generations_are_strings_and_read_back_exactly() {
        let h = doc();
        let json = h.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["schema"], 1);
        assert_eq!(v["written_at_ms"], 1_000_000);
        assert_eq!(v["generation"], "1795302790678602465");
        assert_eq!(v["members"]["n1"]["generation"], "1795302790678311955");
        assert_eq!(v["fencing"]["n3"]["generation"], "18446744073709551615");
        let back: Hastat = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn documents_of_older_daemons_still_read() {
        let old = r#"{"node": "n1", "generation": 17, "quorate": true, "live": 1,
            "expected": ["n1"], "members": {}, "groups": {}, "files": {},
            "not_fenced": {}, "gossip": {"bytes_sent": 0, "bytes_received": 0, "sent_per_s": 0.0}}"#;
        let h: Hastat = serde_json::from_str(old).unwrap();
        assert_eq!((h.schema, h.written_at_ms, h.generation), (0, 0, 17));
        assert!(serde_json::from_str::<Hastat>(&old.replace("17", "\"x\"")).is_err());
    }

    #[test]
    fn structural_ignores_the_time_of_writing() {
        let mut later = doc();
        later.written_at_ms += 1000;
        assert_eq!(later.structural(), doc().structural());
        assert!(later.same_structure(&doc()));
        let mut grown = doc();
        grown.groups.insert("web".into(), GroupStat::default());
        assert!(!grown.same_structure(&doc()), "a group is structure");
        let mut heard = doc();
        heard.members.get_mut("n1").unwrap().last_heard_ms = Some(5);
        assert!(heard.same_structure(&doc()), "a heartbeat age is not");
    }

    #[test]
    fn age_says_fresh_or_stale_and_why() {
        let h = doc();
        let dir = Path::new("/etc/mosha");
        let never = || -> Holder { panic!("a fresh document needs no lock check") };
        assert_eq!(
            h.age(1_000_400, dir, never),
            ("written 0.4 s ago".to_string(), false)
        );
        assert!(!h.age(999_000, dir, never).1, "clock stepped back");
        assert_eq!(
            h.age(1_040_000, dir, || Holder::Free),
            (
                "stale: written 40.0 s ago, no daemon runs on /etc/mosha".to_string(),
                true
            )
        );
        assert_eq!(
            h.age(1_040_000, dir, || Holder::Held(Some(42))).0,
            "stale: written 40.0 s ago, but a daemon holds /etc/mosha (pid 42): it may be hung"
        );
        let old = Hastat::default();
        let (text, stale) = old.age(5, dir, || Holder::Free);
        assert!(stale);
        assert!(text.contains("unknown time"), "{text}");
    }

    #[test]
    fn problems_are_rendered() {
        let mut h = doc();
        h.problems.push(ProblemStat {
            what: "write clstat.json".into(),
            error: "No space left on device (os error 28)".into(),
            count: 12,
            first_at_ms: 1000,
            last_at_ms: 2500,
            failing: true,
        });
        let text = h.render();
        assert!(
            text.contains("write clstat.json: No space left on device (os error 28) (12 times"),
            "{text}"
        );
        // Generations are short unless verbose.
        assert!(!text.contains("1795302790678602465"), "{text}");
        assert!(text.contains("…602465"), "{text}");
        assert!(h.render_with(true).contains("1795302790678602465"));
    }
}
