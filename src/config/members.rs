//! The `members` file: the expected membership, every member this node has seen, one node
//! name per line (the daemon writes it; an operator deletes the line of a node gone for good).
//!
//! ```text
//! # Every member this node has seen: quorum needs more than half of them alive.
//! n1
//! n2
//! ```
//!
//! - Blank lines and lines whose first non-blank character is `#` are skipped; a name is
//!   trimmed of surrounding whitespace. A name listed twice counts once.
//! - Each name must be a valid node name ([`crate::config::check_name`]); the limits of
//!   [`crate::config::text`] apply, and at most [`MAX_MEMBERS`] names.
//!
//! Quorum is computed from this file, so a damaged one is refused whole, never read in part:
//! dropping a bad line would shrink the membership and make a minority quorate.
//!
//! This module owns the syntax; reading and writing the file are the daemon's.

use std::collections::BTreeSet;

use crate::config::{check_name, text, Problem};

/// Most members the file may name (the engine is tuned and simulated up to 1000 nodes).
pub const MAX_MEMBERS: usize = 1000;

/// Parses the text of a `members` file; `file` is the name printed in problems.
///
/// # Errors
/// Returns every problem of the file, sorted by line (at most [`text::MAX_PROBLEMS`] and a
/// count of the rest).
pub fn parse(file: &str, text: &str) -> Result<BTreeSet<String>, Vec<Problem>> {
    let mut lines = text::Lines::new(file, text, "members files")?;
    let mut members = BTreeSet::new();
    let mut errors = Vec::new();
    for (line, content) in lines.by_ref() {
        let name = content.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if let Err(message) = check_name("node name", name) {
            errors.push(Problem::new(file, line, message));
        } else if members.insert(name.to_string()) && members.len() > MAX_MEMBERS {
            errors.push(Problem::new(
                file,
                line,
                format!("more than {MAX_MEMBERS} members; the file holds at most {MAX_MEMBERS}"),
            ));
            break;
        }
    }
    lines.finish(members, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse("members", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn reads_names_skipping_comments_and_blanks() {
        let got = parse("members", "# header\n n2 \n\nn1\r\n#n3\nn1\n").unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec!["n1", "n2"]);
        assert!(parse("members", "").unwrap().is_empty());
    }

    #[test]
    fn a_bad_line_refuses_the_whole_file() {
        assert_eq!(
            errors("n1\nn 2\nn3\u{0}\n"),
            vec![
                format!("members:2: {}", check_name("node name", "n 2").unwrap_err()),
                "members:3: control character U+0000 in column 3: only TAB is allowed".into(),
            ]
        );
    }

    #[test]
    fn the_membership_is_bounded() {
        let many: String = (0..=MAX_MEMBERS).map(|i| format!("n{i}\n")).collect();
        assert_eq!(
            errors(&many),
            vec!["members:1001: more than 1000 members; the file holds at most 1000"]
        );
        let dup: String = (0..2 * MAX_MEMBERS)
            .map(|i| format!("n{}\n", i % 10))
            .collect();
        assert_eq!(parse("members", &dup).unwrap().len(), 10);
    }
}
