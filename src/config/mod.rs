//! Configuration files: `cltab` (what runs, at which level), `hactl` (which level each
//! group should be at), `fencetab` (how nodes are fenced), `members` (the expected
//! membership) and `authkey` (the gossip keys). This module owns parsing and validation only;
//! it reads no files.
//!
//! Every parser collects *all* the problems in a file before returning, each as a [`Problem`]
//! that prints as `file:line: what is wrong`, so an operator fixes a file in one pass. Every
//! parser first applies the shared limits of [`text`]: size, line length, no control
//! characters, a bounded number of entries and of problems reported.

pub mod admin;
pub mod authkey;
pub mod cltab;
pub mod fencetab;
pub mod hactl;
pub mod members;
pub mod modes;
pub mod text;

pub use cltab::{Cltab, Entry, Mode};
pub use fencetab::{Fencetab, Fencing, Method};
pub use hactl::{Hactl, Want};

use std::fmt;

/// One problem found in a configuration file, printed as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file's name as the operator knows it (`cltab`, `hactl`, or a path).
    pub file: String,
    /// The 1-based line the problem is on.
    pub line: usize,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl Problem {
    /// Creates a problem for `file` at `line`.
    pub fn new(file: &str, line: usize, message: impl Into<String>) -> Problem {
        Problem {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Longest group, tag, level or node name, in bytes (a DNS name's limit): names travel in
/// gossip keys and values.
pub const MAX_NAME_BYTES: usize = 253;

/// Checks that `name` is a valid group, tag or level name: one to [`MAX_NAME_BYTES`] of
/// `A-Z a-z 0-9 _ . -`, not starting with `-` or `.`. Returns a description of what is wrong
/// otherwise.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("empty {what}"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} is {} bytes long; names are limited to {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "invalid character {bad:?} in {what} {name:?} (allowed: letters, digits, '_', '.', '-')"
        ));
    }
    if name.starts_with(['-', '.']) {
        return Err(format!("{what} {name:?} must not start with '-' or '.'"));
    }
    Ok(())
}

/// Returns warnings about hactl lines that name groups with no entries in cltab, and hactl levels
/// that no entry of the group uses (except "stop"). Never errors: such lines are legal.
///
/// The warnings name `hactl_file` and are sorted by line.
pub fn cross_check(cltab: &Cltab, hactl: &Hactl, hactl_file: &str) -> Vec<Problem> {
    let mut warnings: Vec<Problem> = hactl
        .groups
        .iter()
        .filter_map(|(group, want)| {
            if !cltab.has_group(group) {
                Some(Problem::new(
                    hactl_file,
                    want.line,
                    format!("group '{group}' has no entries in cltab"),
                ))
            } else if want.level != hactl::STOP
                && !cltab.entries_of(group).any(|e| e.in_level(&want.level))
            {
                Some(Problem::new(
                    hactl_file,
                    want.line,
                    format!(
                        "no entry of group '{group}' runs at level '{}' in cltab",
                        want.level
                    ),
                ))
            } else {
                None
            }
        })
        .collect();
    warnings.sort_by_key(|p| p.line);
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cltab: &str, hactl: &str) -> Vec<String> {
        let cltab = Cltab::parse("cltab", cltab).expect("valid cltab");
        let hactl = Hactl::parse("hactl", hactl).expect("valid hactl");
        cross_check(&cltab, &hactl, "/etc/mosha/hactl")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn cross_check_warns_about_unknown_groups_and_unused_levels() {
        let cltab = "web:a:1:once:x\nweb:b:start:respawn:y\ndb:c:12:wait:z\n";
        let hactl = "zz 1\nweb 2\n# c\ndb 1\nweb2 stop\nweb3 start\nmail stop\n";
        assert_eq!(
            check(cltab, hactl),
            vec![
                "/etc/mosha/hactl:1: group 'zz' has no entries in cltab",
                "/etc/mosha/hactl:2: no entry of group 'web' runs at level '2' in cltab",
                "/etc/mosha/hactl:5: group 'web2' has no entries in cltab",
                "/etc/mosha/hactl:6: group 'web3' has no entries in cltab",
                "/etc/mosha/hactl:7: group 'mail' has no entries in cltab",
            ]
        );
    }

    #[test]
    fn cross_check_accepts_used_levels_and_stop() {
        let cltab = "web:a:1,start:once:x\ndb:c:12:wait:z\n";
        assert!(check(cltab, "web start\ndb 2\n").is_empty());
        assert!(check(cltab, "web stop\ndb stop\n").is_empty());
        assert!(check(cltab, "").is_empty());
        assert!(check("", "").is_empty());
        // A level of another group does not count.
        assert_eq!(
            check(cltab, "db start"),
            vec!["/etc/mosha/hactl:1: no entry of group 'db' runs at level 'start' in cltab"]
        );
    }

    #[test]
    fn problem_prints_file_line_and_message() {
        assert_eq!(Problem::new("cltab", 7, "bad").to_string(), "cltab:7: bad");
    }
}
