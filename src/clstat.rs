//! The node's status document, `DIR/clstat.json`: each local group's level and state and each
//! entry's process, plus whether the daemon runs on its files or on a last good copy of them.
//! It is rewritten atomically whenever anything in it changes, and removed when the daemon exits.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::supervisor::GroupStatus;

/// The clstat document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clstat {
    /// The layout version ([`crate::hastat::SCHEMA`], shared with hastat).
    pub schema: u32,
    /// When the document was written (unix ms). clstat is rewritten when its content
    /// changes, not on a timer: an old time alone does not mean that the daemon is gone.
    pub written_at_ms: u64,
    /// This node's name.
    pub node: String,
    /// The daemon's pid.
    pub pid: u32,
    /// True once the daemon has begun to stop every group and exit.
    pub shutting_down: bool,
    /// Whether the configuration files in force are the ones on disk.
    pub config: ConfigStatus,
    /// Every local group, by name.
    pub groups: BTreeMap<String, GroupStatus>,
}

/// Whether the daemon runs on the files as they are on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigStatus {
    /// True when the files on disk are valid and in force; false when the last good
    /// configuration is kept because an edit was rejected.
    pub ok: bool,
    /// Every error of the rejected files, as `file:line: message`.
    pub errors: Vec<String>,
}

impl Clstat {
    /// Returns the document as pretty JSON, newline-terminated.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            // Serializing plain strings and numbers cannot fail; say so loudly if it ever does.
            format!("{{\"error\": \"cannot serialize clstat: {e}\"}}")
        });
        s.push('\n');
        s
    }
}
