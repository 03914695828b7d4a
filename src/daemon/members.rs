//! `DIR/members` as the daemon keeps it: the expected membership, read at start, written when
//! the engine says it changed, and re-read when an operator edits it (once the edit has
//! settled). A damaged file is refused whole: quorum is counted from it, and dropping a bad
//! line would shrink the membership. The syntax is [`crate::config::members`]'s.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use tracing::{error, info};

use super::replicated;
use crate::config;
use crate::files::{self, Content, Watched};

/// Reads the expected membership persisted in `DIR/members` (one name per line, `#` comments;
/// see [`config::members`]); a missing file is an empty membership.
///
/// # Errors
/// Returns every problem of a file that is invalid, too large or unreadable, as
/// `file:line: what is wrong`: such a file is refused whole.
pub fn read_members(path: &Path) -> Result<BTreeSet<String>, Vec<String>> {
    members_from(path, &files::read_bounded(path, files::MAX_READ_BYTES))
}

/// Returns the membership `content` (read from `path`) holds, or every problem with it.
fn members_from(path: &Path, content: &Content) -> Result<BTreeSet<String>, Vec<String>> {
    let file = path.display().to_string();
    let problems = match content {
        Content::Missing => return Ok(BTreeSet::new()),
        Content::Text(t) => match config::members::parse(&file, t) {
            Ok(m) => return Ok(m),
            Err(problems) => problems,
        },
        other => replicated::unusable(&file, other, "members files")
            .into_iter()
            .collect(),
    };
    Err(problems.iter().map(ToString::to_string).collect())
}

/// Returns the text the daemon writes for membership `m`.
fn members_text(m: &BTreeSet<String>) -> String {
    let mut s = String::from(
        "# Every member this node has seen: quorum needs more than half of them alive.\n\
         # To forget a node for good, stop it, then delete its line here on every node.\n",
    );
    for n in m {
        s.push_str(n);
        s.push('\n');
    }
    s
}

/// The members file of a running daemon.
#[derive(Debug)]
pub struct Members {
    file: Watched,
    /// What this daemon last wrote (its own write is not an edit).
    written: Option<String>,
    /// Every error of a rejected edit (the membership in force is kept).
    pub errors: Vec<String>,
}

impl Members {
    /// Reads `dir/members` at once and returns it with the membership it holds.
    ///
    /// # Errors
    /// Fails when the file is invalid, with every problem of it, one per line.
    pub fn open(dir: &Path) -> Result<(Members, BTreeSet<String>), String> {
        let mut file = Watched::new(dir.join("members"));
        let first = file.poll(Instant::now()).unwrap_or(Content::Missing);
        let expected = members_from(file.path(), &first).map_err(|e| e.join("\n"))?;
        let members = Members {
            file,
            written: None,
            errors: Vec::new(),
        };
        Ok((members, expected))
    }

    /// Returns the membership of an edit (settled by `now`) that this daemon did not write
    /// itself, if it is valid; an invalid one is refused whole and logged once, and its
    /// errors kept in [`Members::errors`]. Deleting the file forgets nobody.
    pub fn poll(&mut self, now: Instant) -> Option<BTreeSet<String>> {
        let content = self.file.poll(now)?;
        match &content {
            Content::Missing => return None,
            Content::Text(t) if self.written.as_deref() == Some(t.as_str()) => {
                self.errors.clear();
                return None;
            }
            _ => {}
        }
        match members_from(self.file.path(), &content) {
            Ok(m) => {
                info!(members = ?m, "members file edited: expected membership replaced");
                self.errors.clear();
                Some(m)
            }
            Err(problems) => {
                error!(
                    file = %self.file.path().display(),
                    "members file rejected; keeping the expected membership in force"
                );
                for p in &problems {
                    error!("{p}");
                }
                self.errors = problems;
                None
            }
        }
    }

    /// Persists membership `m`: written to a temporary file, synced, renamed over
    /// `DIR/members`, and the directory synced, so that it survives a power cut.
    ///
    /// # Errors
    /// Returns the write's error; the file then still holds the membership before.
    pub fn write(&mut self, m: &BTreeSet<String>) -> std::io::Result<()> {
        let text = members_text(m);
        files::write_atomic(self.file.path(), text.as_bytes())?;
        self.written = Some(text);
        Ok(())
    }
}
