//! Files the daemon writes and watches: atomic replacement (write, fsync, rename) and change
//! detection by content, which does not miss two edits within the same second as Cluster::Init's
//! whole-second mtime check did.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `path` with `data` atomically: readers see the old or the new file, never a part.
///
/// # Errors
/// Fails when the temporary file cannot be written, synced or renamed.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A file watched for changes by content.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    last: Option<Option<Vec<u8>>>,
}

/// What a changed file now holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The file is missing.
    Missing,
    /// The file's text (lossily decoded if it is not UTF-8).
    Text(String),
}

impl Watched {
    /// Watches `path`; the first [`Watched::poll`] reports its content.
    pub fn new(path: PathBuf) -> Watched {
        Watched { path, last: None }
    }

    /// Returns the watched path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the file's content if it changed since the last call (or this is the first).
    /// A read error other than "not found" is reported as no change, and tried again next time.
    pub fn poll(&mut self) -> Option<Content> {
        let now = match std::fs::read(&self.path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => return None,
        };
        if self.last.as_ref() == Some(&now) {
            return None;
        }
        let content = match &now {
            None => Content::Missing,
            Some(b) => Content::Text(String::from_utf8_lossy(b).into_owned()),
        };
        self.last = Some(now);
        Some(content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_edits_in_the_same_second_are_both_seen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hactl");
        let mut w = Watched::new(p.clone());
        assert_eq!(w.poll(), Some(Content::Missing));
        assert_eq!(w.poll(), None);
        write_atomic(&p, b"a start\n").unwrap();
        assert_eq!(w.poll(), Some(Content::Text("a start\n".into())));
        write_atomic(&p, b"a stop\n").unwrap();
        assert_eq!(w.poll(), Some(Content::Text("a stop\n".into())));
        assert_eq!(w.poll(), None);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(w.poll(), Some(Content::Missing));
    }
}
