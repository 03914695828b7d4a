//! The gossip key file on disk (`DIR/authkey` unless `--key-file`): reading it with the
//! checks an operator expects (it exists, is a regular file private to its owner, parses),
//! and watching it while the daemon runs, so that a rotation needs no restart: a valid edit
//! replaces the keys in force, an invalid one is refused and the old keys stay.
//!
//! The syntax is [`crate::config::authkey`]'s; the ciphers are [`crate::gossip`]'s.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{error, info};

use crate::config::authkey::{self, MAX_FILE_BYTES};
use crate::files::{Content, Watched};
use crate::gossip::Keys;

/// The key file's name in the node directory.
pub const KEY_FILE: &str = "authkey";

/// Why a key file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileError(pub String);

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads and checks the key file at `path`.
///
/// # Errors
/// Fails, saying what to do, when the file is missing, not a regular file, readable or
/// writable by group or others, owned by another user than the one running mosha, too large,
/// or not a valid key file (every error with its line).
pub fn load(path: &Path) -> Result<Keys, KeyFileError> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| {
        KeyFileError(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "{shown}: missing: create it on one node with `mosha keygen > {shown}`, copy it \
                 to every node (mode 0600), or run with --insecure (anyone who can send UDP to \
                 this node could then run commands on it)"
            )
        } else {
            format!("{shown}: cannot read: {e}")
        })
    })?;
    let meta = file
        .metadata()
        .map_err(|e| KeyFileError(format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return Err(KeyFileError(format!("{shown}: not a regular file")));
    }
    if let Some(e) = open_to_others(path, &meta) {
        return Err(KeyFileError(e));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(KeyFileError(format!(
            "{shown}: owned by uid {}, not by the user running mosha (uid {euid})",
            meta.uid()
        )));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyFileError(format!("{shown}: cannot read: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| KeyFileError(format!("{shown}: not text (a key file is hex digits)")))?;
    let keys = authkey::parse(&shown.to_string(), &text).map_err(|problems| {
        KeyFileError(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Keys::new(keys).ok_or_else(|| KeyFileError(format!("{shown}: no usable key")))
}

/// Says what is wrong when the key file `path` (with `meta`) may be read or changed by group
/// or others.
fn open_to_others(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    let mode = meta.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{0}: mode {mode:04o} lets other users read or change the cluster key: `chmod 600 {0}`",
            path.display()
        )
    })
}

/// The key file, watched while the daemon runs.
pub struct KeyWatch {
    path: PathBuf,
    watched: Watched,
    /// The keys in force.
    keys: Keys,
    /// Why the file's content is not in force, if it is not.
    content_error: Option<String>,
    /// Why the file's mode is unsafe, if it is.
    mode_error: Option<String>,
}

impl KeyWatch {
    /// Watches `path`, whose content `keys` were loaded from at start (`now`).
    pub fn new(path: PathBuf, keys: Keys, now: Instant) -> KeyWatch {
        let mut watched = Watched::new(path.clone());
        watched.poll(now);
        KeyWatch {
            path,
            watched,
            keys,
            content_error: None,
            mode_error: None,
        }
    }

    /// Returns what is wrong with the key file on disk, if anything (the keys in force stay).
    pub fn error(&self) -> Option<&str> {
        self.content_error.as_deref().or(self.mode_error.as_deref())
    }

    /// Returns the keys in force.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Returns the new keys when the file changed to a valid key set (to put in force), and
    /// records why when it changed to something unusable (the old keys stay). A file whose
    /// mode stops being private is reported even when its content does not change. Like
    /// every watched file, an edit is taken once it has settled ([`crate::files::SETTLE`]).
    pub fn poll(&mut self, now: Instant) -> Option<Keys> {
        let mode_error = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| open_to_others(&self.path, &m));
        if mode_error != self.mode_error {
            if let Some(e) = &mode_error {
                error!(file = %self.path.display(), "{e}");
            }
            self.mode_error = mode_error;
        }
        let changed = self.watched.poll(now)?;
        let refused = if changed == Content::Missing {
            format!(
                "{}: deleted; the keys loaded before stay in force",
                self.path.display()
            )
        } else {
            match load(&self.path) {
                Ok(keys) if keys == self.keys => {
                    self.content_error = None;
                    return None;
                }
                Ok(keys) => {
                    info!(
                        file = %self.path.display(),
                        keys = ?keys.fingerprints(),
                        "key file changed: new keys in force (the first one seals)"
                    );
                    self.content_error = None;
                    self.keys = keys.clone();
                    return Some(keys);
                }
                Err(e) => format!("{e}; the keys loaded before stay in force"),
            }
        };
        if self.content_error.as_deref() != Some(refused.as_str()) {
            error!(file = %self.path.display(), "key file edit refused: {refused}");
        }
        self.content_error = Some(refused);
        None
    }
}

/// Writes a key file holding `keys_text` at `path`, created private (mode 0600).
///
/// # Errors
/// Fails when the file cannot be created or written.
pub fn install(path: &Path, keys_text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(keys_text.as_bytes())?;
    f.sync_all()
}

/// Returns a fresh random key, formatted for a key file.
///
/// # Errors
/// Fails when the operating system's random source does.
pub fn generate() -> Result<String, String> {
    let mut key = [0u8; authkey::KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| format!("cannot draw a random key: {e}"))?;
    Ok(authkey::encode_hex(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(KEY_FILE);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_private_valid_file_loads_and_anything_else_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate().unwrap();
        assert_eq!(key.len(), 64);
        assert_ne!(key, generate().unwrap());
        let p = write(dir.path(), &format!("{key}\n"), 0o600);
        assert_eq!(load(&p).unwrap().fingerprints().len(), 1);
        let p = write(dir.path(), &format!("{key}\n"), 0o644);
        assert!(
            load(&p).unwrap_err().0.contains("mode 0644"),
            "{:?}",
            load(&p)
        );
        let p = write(dir.path(), "nope\n", 0o600);
        let e = load(&p).unwrap_err().0;
        assert!(
            e.contains("authkey:1: a key is 64 hexadecimal digits"),
            "{e}"
        );
        std::fs::remove_file(&p).unwrap();
        assert!(load(&p).unwrap_err().0.contains("mosha keygen"));
        assert!(load(dir.path())
            .unwrap_err()
            .0
            .contains("not a regular file"));
    }

    #[test]
    fn the_watch_takes_valid_edits_and_keeps_the_keys_on_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (generate().unwrap(), generate().unwrap());
        let p = write(dir.path(), &k1, 0o600);
        let mut t = Instant::now();
        let mut w = KeyWatch::new(p.clone(), load(&p).unwrap(), t);
        // Polls twice, the second time once the edit has settled.
        let mut poll = |w: &mut KeyWatch| {
            t += std::time::Duration::from_millis(10);
            let first = w.poll(t);
            t += crate::files::SETTLE;
            first.or_else(|| w.poll(t))
        };
        assert_eq!(poll(&mut w), None);
        write(dir.path(), &format!("{k2}\n{k1}\n"), 0o600);
        let new = poll(&mut w).expect("a valid edit is taken");
        assert_eq!(new.fingerprints().len(), 2);
        write(dir.path(), &format!("{k2}\n{k1}\n"), 0o640);
        assert_eq!(poll(&mut w), None);
        assert!(w.error().unwrap().contains("mode 0640"), "{:?}", w.error());
        assert_eq!(w.keys(), &new);
        write(dir.path(), "garbage", 0o600);
        assert_eq!(poll(&mut w), None);
        assert!(
            w.error().unwrap().contains("stay in force"),
            "{:?}",
            w.error()
        );
        assert_eq!(w.keys(), &new);
        write(dir.path(), &format!("{k2}\n{k1}\n# fixed\n"), 0o600);
        assert_eq!(poll(&mut w), None, "same keys: nothing to change");
        assert_eq!(w.error(), None);
    }
}
