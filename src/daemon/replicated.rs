//! A configuration file replicated through gossip (`cltab`, `hactl`): local edits are
//! validated and published with a new hybrid-logical-clock version; a newer valid version
//! published by any node is adopted and written to the local file atomically. An invalid file
//! is never published: the node where it was edited logs every error and keeps the last good
//! version in force.
//!
//! Versions survive restarts in `DIR/.mosha-versions.json`, so a restarted node neither loses
//! its place nor mistakes its own file for a fresh edit.
//!
//! A local edit is taken only once the file has settled ([`files::SETTLE`]), and a file larger
//! than [`replica::MAX_FILE_BYTES`] is rejected like any invalid one, without being read whole.
//! An adopted file is written with the file's mode (0600 for `fencetab`, which may hold
//! passwords).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::notices::Notices;
use crate::config::{text, Problem};
use crate::files::{self, Content, Watched};
use crate::replica::{self, Hlc, Version};

/// The files the size limit of replicated files is for, in messages.
const KIND: &str = "replicated files";

/// What happened to a replicated file at a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing new.
    None,
    /// A new version is in force (a valid local edit, or adopted from a peer).
    Applied,
    /// A local edit was rejected; the last good version stays in force.
    Rejected,
}

/// One replicated file.
#[derive(Debug)]
pub struct Replicated {
    /// The file's name (`cltab`), also its gossip key prefix.
    pub name: &'static str,
    /// The mode an adopted version is written with.
    mode: u32,
    watched: Watched,
    /// The version in force.
    pub version: Version,
    /// The text in force (the last good one).
    pub text: String,
    /// Every error of the rejected local edit, if the file on disk is not the one in force.
    pub errors: Vec<String>,
    /// Versions published by peers that failed validation here (logged once).
    refused: Vec<Version>,
    /// The gossip keys published for the version in force.
    published: BTreeMap<String, String>,
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

fn read_record(dir: &Path) -> Record {
    match files::read_bounded(&record_path(dir), files::MAX_READ_BYTES) {
        Content::Text(t) => serde_json::from_str(&t).unwrap_or_default(),
        _ => Record::default(),
    }
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
    /// Opens `dir/name`, with the version recorded for it if the file is unchanged since;
    /// a file changed while the daemon was down counts as an edit made at its mtime. The text
    /// is validated (at once: the first read does not wait for the file to settle): an invalid
    /// file starts with nothing in force. Adopted versions will be written with `mode`.
    pub fn open(
        dir: &Path,
        name: &'static str,
        mode: u32,
        me: &str,
        validate: Validator,
    ) -> Replicated {
        let path = dir.join(name);
        let mut r = Replicated {
            name,
            mode,
            watched: Watched::new(path.clone()),
            version: Version::zero(),
            text: String::new(),
            errors: Vec::new(),
            refused: Vec::new(),
            published: BTreeMap::new(),
            rejected_text: None,
        };
        let text = match r.watched.poll(Instant::now()) {
            Some(Content::Text(t)) => t,
            Some(other) => {
                if let Some(p) = unusable(&path.display().to_string(), &other, KIND) {
                    r.reject(&format!("{other:?}"), &[p]);
                }
                return r;
            }
            None => return r,
        };
        if mode & 0o077 == 0 {
            use std::os::unix::fs::PermissionsExt;
            let now = std::fs::metadata(&path).map_or(0, |m| m.permissions().mode() & 0o777);
            if now & 0o077 != 0 {
                warn!(file = %path.display(), mode = format!("{now:o}"), "readable by others, and it may hold passwords: chmod 600 it (adopted versions are written 600)");
            }
        }
        let hash = format!("{:016x}", replica::content_hash(&text));
        let recorded = read_record(dir)
            .files
            .remove(name)
            .filter(|f| f.hash == hash)
            .and_then(|f| f.version.parse::<Version>().ok());
        let version = recorded.unwrap_or_else(|| {
            let ms = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(1, |d| d.as_millis() as u64);
            Version {
                ms,
                seq: 0,
                node: me.to_string(),
            }
        });
        match validate(&path.display().to_string(), &text) {
            Ok(()) => {
                r.version = version;
                r.text = text;
            }
            Err(problems) => r.reject(&text, &problems),
        }
        r
    }

    /// Returns the file's path.
    pub fn path(&self) -> &Path {
        self.watched.path()
    }

    fn reject(&mut self, text: &str, problems: &[Problem]) {
        if self.rejected_text.as_deref() == Some(text) {
            return;
        }
        let kept = if self.version.is_zero() {
            "no valid version yet: nothing from this file is in force".to_string()
        } else {
            format!(
                "keeping the last good configuration, version {}",
                self.version
            )
        };
        error!(file = %self.path().display(), errors = problems.len(), "file rejected; {kept}");
        for p in problems {
            error!("{p}");
        }
        self.errors = problems.iter().map(ToString::to_string).collect();
        self.rejected_text = Some(text.to_string());
    }

    /// Checks the local file for an edit that has settled by `now`. A valid one gets a new
    /// version from `hlc`.
    pub fn poll_local(
        &mut self,
        now: Instant,
        hlc: &mut Hlc,
        wall_ms: u64,
        me: &str,
        validate: Validator,
    ) -> Change {
        let text = match self.watched.poll(now) {
            None => return Change::None,
            Some(other @ (Content::TooLarge(_) | Content::Unreadable(_))) => {
                if let Some(p) = unusable(&self.path().display().to_string(), &other, KIND) {
                    self.reject(&format!("{other:?}"), &[p]);
                }
                return Change::Rejected;
            }
            Some(Content::Missing) => {
                if self.text.is_empty() {
                    return Change::None;
                }
                warn!(file = %self.path().display(), "file deleted; keeping version {} in force (write an empty file to clear it)", self.version);
                return Change::None;
            }
            Some(Content::Text(t)) => t,
        };
        if text == self.text {
            self.errors.clear();
            self.rejected_text = None;
            return Change::None;
        }
        match validate(&self.path().display().to_string(), &text) {
            Ok(()) => {
                self.version = hlc.tick(wall_ms, me);
                info!(file = %self.path().display(), version = %self.version, "local edit accepted; spreading it to the cluster");
                self.text = text;
                self.errors.clear();
                self.rejected_text = None;
                Change::Applied
            }
            Err(problems) => {
                self.reject(&text, &problems);
                Change::Rejected
            }
        }
    }

    /// Adopts the newest valid version that a peer publishes, if newer than ours, and writes
    /// it to the local file (with the file's mode); a failure to write is reported to
    /// `notices` and tried again at the next poll.
    pub fn poll_peers<'a>(
        &mut self,
        hlc: &mut Hlc,
        peers: impl Iterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
        validate: Validator,
        notices: &mut Notices,
    ) -> Change {
        let mut best: Option<(Version, String, &str)> = None;
        for (node, keys) in peers {
            let Some(p) = replica::read_published(self.name, keys) else {
                continue;
            };
            let Some(content) = p.content else { continue };
            if p.version > self.version
                && !self.refused.contains(&p.version)
                && best.as_ref().is_none_or(|(v, _, _)| p.version > *v)
            {
                best = Some((p.version, content, node));
            }
        }
        let Some((version, text, from)) = best else {
            return Change::None;
        };
        hlc.observe(&version);
        if let Err(problems) = validate(&self.path().display().to_string(), &text) {
            error!(file = self.name, %version, from, "a peer published an invalid file; ignoring it");
            for p in problems {
                error!("{p}");
            }
            self.refused.push(version);
            return Change::None;
        }
        let written = files::write_atomic_mode(self.path(), text.as_bytes(), self.mode);
        let what = format!("write the adopted {}", self.name);
        notices.outcome(&what, &written);
        if written.is_err() {
            return Change::None;
        }
        info!(file = %self.path().display(), %version, from, "adopted a newer version from the cluster");
        self.version = version;
        self.text = text;
        self.errors.clear();
        self.rejected_text = None;
        Change::Applied
    }

    /// Returns the gossip changes that publish the version in force (chunks before the
    /// version key; stale chunks deleted), or nothing if it is already published.
    pub fn publication(&mut self) -> Vec<(String, Option<String>)> {
        if self.version.is_zero() {
            return Vec::new();
        }
        let keys = match replica::publish_keys(self.name, &self.version, &self.text) {
            Ok(k) => k,
            Err(e) => {
                error!(file = %self.path().display(), "cannot publish: {e}");
                return Vec::new();
            }
        };
        let wanted: BTreeMap<String, String> = keys.iter().cloned().collect();
        if wanted == self.published {
            return Vec::new();
        }
        let mut out: Vec<(String, Option<String>)> = keys
            .into_iter()
            .filter(|(k, v)| self.published.get(k) != Some(v))
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let nchunks = wanted.len().saturating_sub(1);
        for k in replica::stale_keys(self.name, &self.published, nchunks) {
            out.push((k, None));
        }
        self.published = wanted;
        out
    }
}

/// Persists the versions in force, so that a restart keeps them; a failure is reported to
/// `notices`.
pub fn save_versions(dir: &Path, files: &[&Replicated], notices: &mut Notices) {
    let mut rec = Record::default();
    for f in files {
        if f.version.is_zero() {
            continue;
        }
        rec.files.insert(
            f.name.to_string(),
            RecordedFile {
                version: f.version.to_string(),
                hash: format!("{:016x}", replica::content_hash(&f.text)),
            },
        );
    }
    let text = serde_json::to_string_pretty(&rec).unwrap_or_default();
    let written = files::write_atomic(&record_path(dir), text.as_bytes());
    notices.outcome("write .mosha-versions.json", &written);
}
