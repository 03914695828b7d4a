//! The local side of a configuration file replicated through gossip (`cltab`, `hactl`,
//! `fencetab`): local edits are validated and handed to the node core, which versions and
//! publishes them; a newer version that the core offers to adopt is read from gossip,
//! validated, and written to the local file atomically. An invalid file is never published:
//! the node where it was edited logs every error and keeps the last good version in force.
//!
//! Versions survive restarts in `DIR/.mosha-versions.json` (written when the core says,
//! synced), so a restarted node neither loses its place nor mistakes its own file for a
//! fresh edit.
//!
//! A local edit is taken only once the file has settled ([`files::SETTLE`]), and a file larger
//! than [`replica::MAX_FILE_BYTES`] is rejected like any invalid one, without being read whole.
//! An adopted file is written with the file's mode (0600 for `fencetab`, which may hold
//! passwords).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use super::notices::Notices;
use crate::config::{text, Problem};
use crate::engine::node::{Adopt, FileVersion, Input};
use crate::files::{self, Content, Watched};
use crate::replica::{self, Version};

/// The files the size limit of replicated files is for, in messages.
const KIND: &str = "replicated files";

/// The local side of one replicated file: the file on disk, watched for edits, validated,
/// written when the node core adopts a peer's version. Which version is in force is the
/// core's ([`crate::engine::node::Files`]).
#[derive(Debug)]
pub struct Replicated {
    /// The file's name (`cltab`), also its gossip key prefix.
    pub name: &'static str,
    /// The mode an adopted version is written with.
    mode: u32,
    watched: Watched,
    validate: Validator,
    /// Every error of the rejected local edit, if the file on disk is not the one in force.
    pub errors: Vec<String>,
    /// The last text rejected, so that it is reported once.
    rejected_text: Option<String>,
}

/// Recorded versions, by file name.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    files: BTreeMap<String, RecordedFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordedFile {
    version: String,
    hash: String,
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join(".mosha-versions.json")
}

/// Returns the versions the last run recorded, by file (none if the record is missing or
/// damaged: every file then counts as edited at its modification time).
pub fn read_versions(dir: &Path) -> BTreeMap<String, FileVersion> {
    let record: Record = match files::read_bounded(&record_path(dir), files::MAX_READ_BYTES) {
        Content::Text(t) => serde_json::from_str(&t).unwrap_or_default(),
        _ => Record::default(),
    };
    (record.files.into_iter())
        .filter_map(|(name, f)| {
            let version = f.version.parse::<Version>().ok()?;
            let hash = u64::from_str_radix(&f.hash, 16).ok()?;
            Some((name, FileVersion { version, hash }))
        })
        .collect()
}

/// Returns what is wrong with a file that holds no text the parsers can look at (too large,
/// unreadable), as the one problem of its rejection; `None` for text or a missing file. `kind`
/// names the files the size limit is for ("replicated files").
pub(super) fn unusable(path: &str, content: &Content, kind: &str) -> Option<Problem> {
    match content {
        Content::TooLarge(bytes) => {
            Some(text::too_large(path, *bytes, kind, files::MAX_READ_BYTES))
        }
        Content::Unreadable(why) => Some(Problem::new(path, 1, format!("cannot read: {why}"))),
        Content::Missing | Content::Text(_) => None,
    }
}

/// Parses `text` as the file `name`, for validation.
pub type Validator = fn(&str, &str) -> Result<(), Vec<Problem>>;

impl Replicated {
    /// Opens `dir/name` and returns it with what the node core is to be told of it: its
    /// text if valid (validated at once: the first read does not wait for the file to
    /// settle), the version `recorded` for it and its modification time. An invalid file
    /// starts with nothing in force. Adopted versions will be written with `mode`.
    pub fn open(
        dir: &Path,
        name: &'static str,
        mode: u32,
        validate: Validator,
        recorded: Option<FileVersion>,
    ) -> (Replicated, Input) {
        let path = dir.join(name);
        let mut r = Replicated {
            name,
            mode,
            watched: Watched::new(path.clone()),
            validate,
            errors: Vec::new(),
            rejected_text: None,
        };
        let loaded = |text| Input::FileLoaded {
            file: name.to_string(),
            text,
            recorded: recorded.clone(),
            mtime_ms: mtime_ms(&path),
        };
        let text = match r.watched.poll(Instant::now()) {
            Some(Content::Text(t)) => t,
            Some(other) => {
                if let Some(p) = unusable(&path.display().to_string(), &other, KIND) {
                    r.reject(&format!("{other:?}"), &[p], None);
                }
                return (r, loaded(None));
            }
            None => return (r, loaded(None)),
        };
        if mode & 0o077 == 0 {
            use std::os::unix::fs::PermissionsExt;
            let now = std::fs::metadata(&path).map_or(0, |m| m.permissions().mode() & 0o777);
            if now & 0o077 != 0 {
                warn!(file = %path.display(), mode = format!("{now:o}"), "readable by others, and it may hold passwords: chmod 600 it (adopted versions are written 600)");
            }
        }
        match validate(&path.display().to_string(), &text) {
            Ok(()) => (r, loaded(Some(text))),
            Err(problems) => {
                r.reject(&text, &problems, None);
                (r, loaded(None))
            }
        }
    }

    /// Returns the file's path.
    pub fn path(&self) -> &Path {
        self.watched.path()
    }

    fn reject(&mut self, text: &str, problems: &[Problem], in_force: Option<&Version>) {
        if self.rejected_text.as_deref() == Some(text) {
            return;
        }
        let kept = match in_force {
            None => "no valid version yet: nothing from this file is in force".to_string(),
            Some(v) => format!("keeping the last good configuration, version {v}"),
        };
        error!(file = %self.path().display(), errors = problems.len(), "file rejected; {kept}");
        for p in problems {
            error!("{p}");
        }
        self.errors = problems.iter().map(ToString::to_string).collect();
        self.rejected_text = Some(text.to_string());
    }

    /// Checks the local file for an edit that has settled by `now`, against the version in
    /// force (`in_force`, the core's). Returns a valid edit, for the core
    /// ([`Input::FileEdited`], at wall clock `wall_ms`); an invalid one is logged with every
    /// error and kept in [`Replicated::errors`].
    pub fn poll_local(
        &mut self,
        now: Instant,
        in_force: Option<(&Version, &str)>,
        wall_ms: u64,
    ) -> Option<Input> {
        let version = in_force.map(|(v, _)| v);
        let text = match self.watched.poll(now)? {
            other @ (Content::TooLarge(_) | Content::Unreadable(_)) => {
                if let Some(p) = unusable(&self.path().display().to_string(), &other, KIND) {
                    self.reject(&format!("{other:?}"), &[p], version);
                }
                return None;
            }
            Content::Missing => {
                if let Some(v) = version {
                    warn!(file = %self.path().display(), "file deleted; keeping version {v} in force (write an empty file to clear it)");
                }
                return None;
            }
            Content::Text(t) => t,
        };
        if in_force.is_some_and(|(_, t)| t == text) || (in_force.is_none() && text.is_empty()) {
            self.errors.clear();
            self.rejected_text = None;
            return None;
        }
        match (self.validate)(&self.path().display().to_string(), &text) {
            Ok(()) => {
                self.errors.clear();
                self.rejected_text = None;
                Some(Input::FileEdited {
                    file: self.name.to_string(),
                    text,
                    wall_ms,
                })
            }
            Err(problems) => {
                self.reject(&text, &problems, version);
                None
            }
        }
    }

    /// Carries out the core's offer to adopt `offer`, whose text member `from` publishes in
    /// `keys`: validated, then written to the local file (with the file's mode).
    /// Returns what the core is to be told: adopted, or refused (logged with every error).
    /// Nothing while the text has not all arrived, or when it cannot be written (reported
    /// to `notices`; the offer stands at the next step).
    pub fn adopt(
        &mut self,
        offer: &Adopt,
        from: &str,
        keys: &BTreeMap<String, String>,
        notices: &mut Notices,
    ) -> Option<Input> {
        let published = replica::read_published(self.name, keys)?;
        if published.version != offer.version {
            return None;
        }
        let text = published.content?;
        let version = &offer.version;
        if let Err(problems) = (self.validate)(&self.path().display().to_string(), &text) {
            error!(file = self.name, %version, from, "a peer published an invalid file; ignoring it");
            for p in problems {
                error!("{p}");
            }
            return Some(Input::FileRefused {
                file: self.name.to_string(),
                version: version.clone(),
            });
        }
        let written = files::write_atomic_mode(self.path(), text.as_bytes(), self.mode);
        let what = format!("write the adopted {}", self.name);
        notices.outcome(&what, &written);
        written.ok()?;
        self.errors.clear();
        self.rejected_text = None;
        Some(Input::FileAdopted {
            file: self.name.to_string(),
            version: version.clone(),
            text,
            from: from.to_string(),
        })
    }
}

/// Returns the modification time of `path` in ms since the Unix epoch (1 if unknown).
fn mtime_ms(path: &Path) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(1, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Makes the versions in force durable (file and directory synced), so that a restart keeps
/// them.
///
/// # Errors
/// Fails when the record cannot be written.
pub fn save_versions(dir: &Path, versions: &BTreeMap<String, FileVersion>) -> std::io::Result<()> {
    let files = (versions.iter())
        .map(|(name, f)| {
            let rec = RecordedFile {
                version: f.version.to_string(),
                hash: format!("{:016x}", f.hash),
            };
            (name.clone(), rec)
        })
        .collect();
    let text = serde_json::to_string_pretty(&Record { files }).unwrap_or_default();
    files::write_atomic(&record_path(dir), text.as_bytes())
}
