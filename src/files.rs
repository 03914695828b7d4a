//! Files the daemon writes and watches: atomic replacement (write, fsync, rename) with the
//! file's mode set at creation, bounded reads (a huge file never enters memory), change
//! detection by content with a settle time (which does not miss two edits within the same
//! second as Cluster::Init's whole-second mtime check did, and never takes a file half
//! written for an edit; a file whose last change is two seconds old is only `stat`ed until
//! its change time moves), and the lock that keeps two daemons off one directory ([`DirLock`]).

mod latest;
mod lock;

use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use latest::Latest;
pub use lock::{DirLock, Holder, LockError, LOCK_FILE};

/// How long a watched file's content must stay the same before a change is reported: an
/// editor that writes in place, or `echo >> cltab` twice, is never taken in the middle.
pub const SETTLE: Duration = Duration::from_millis(200);

/// The most a watched file may hold, in bytes: the limit of replicated files. A larger file is
/// reported as [`Content::TooLarge`] and only this much (plus one byte) of it is ever read.
pub const MAX_READ_BYTES: usize = crate::replica::MAX_FILE_BYTES;

/// The mode of files written with [`write_atomic`].
pub const DEFAULT_MODE: u32 = 0o644;

/// Replaces `path` with `data` atomically and durably, mode [`DEFAULT_MODE`] (less the
/// umask): readers see the old or the new file, never a part, and once this returns the new
/// file survives a power cut (the file and then its directory are synced).
///
/// # Errors
/// Fails when the temporary file cannot be written, synced or renamed, or the directory
/// cannot be synced.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, data, DEFAULT_MODE)
}

/// Replaces a file that means nothing after a reboot (the status documents `clstat.json`
/// and `hastat.json`, the record of this daemon's process groups) atomically, as
/// [`write_atomic`] does, without syncing anything: readers see the old or the new file,
/// never a part, but a power cut may lose it, and by then what it said is gone too. A sync
/// is a wait on the disk: with thousands of services starting, one took 800 ms, all of it
/// in the event loop.
///
/// # Errors
/// Fails when the temporary file cannot be written or renamed.
pub fn write_volatile(path: &Path, data: &[u8]) -> std::io::Result<()> {
    replace(path, data, DEFAULT_MODE, false)
}

/// Replaces `path` with `data` atomically, as [`write_atomic`] does, with the new file created
/// with `mode` (less the umask) from the start, so that a secret is never readable by others,
/// not even for a moment. A stale temporary file (left by a crash) is replaced, never followed
/// if it is a symbolic link.
///
/// # Errors
/// Fails when the temporary file cannot be created, written, synced or renamed, or the
/// directory cannot be synced.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, data, mode, true)
}

/// Writes `data` to a temporary file beside `path` (created with `mode`) and renames it over
/// `path`; with `durable` the file is synced before the rename and the directory after it,
/// so that the new file and the rename itself are on disk.
fn replace(path: &Path, data: &[u8], mode: u32, durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
    };
    let result = (|| {
        let mut f = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp)?;
                create()?
            }
            other => other?,
        };
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Rewrites the existing file `path` in place with `data`, padded with spaces to the file's
/// old length: the fallback for status documents when [`write_atomic`] fails because the
/// directory is full. Rewriting blocks a file already holds needs no free space, so the
/// document does not go stale silently; it is not atomic, and JSON readers ignore the padding.
///
/// # Errors
/// Fails when the file does not exist or cannot be written.
pub fn overwrite_in_place(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    let old = f.metadata()?.len();
    let mut buf = data.to_vec();
    if let Ok(old) = usize::try_from(old) {
        if old > buf.len() {
            buf.resize(old, b' ');
        }
    }
    f.write_all_at(&buf, 0)
}

/// What a file holds, as read by [`read_bounded`] or reported by [`Watched::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The file is missing.
    Missing,
    /// The file's text (lossily decoded if it is not UTF-8: invalid bytes become U+FFFD,
    /// which the parsers refuse).
    Text(String),
    /// The file holds more than the limit; only the limit was read. The size is the file's.
    TooLarge(u64),
    /// The file exists but cannot be read (permissions, not a regular file...): why.
    Unreadable(String),
}

/// Reads `path`, at most `limit` + 1 bytes of it. Never blocks on a FIFO and never reads a
/// device: anything but a regular file is [`Content::Unreadable`].
pub fn read_bounded(path: &Path, limit: usize) -> Content {
    match read_bytes(path, limit) {
        Snapshot::Missing => Content::Missing,
        Snapshot::Bytes(b) => Content::Text(String::from_utf8_lossy(&b).into_owned()),
        Snapshot::TooLarge(n) => Content::TooLarge(n),
        Snapshot::Unreadable(e) => Content::Unreadable(e),
    }
}

/// A file as read, before decoding: compared byte for byte to tell changes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Snapshot {
    Missing,
    Bytes(Vec<u8>),
    TooLarge(u64),
    Unreadable(String),
}

fn read_bytes(path: &Path, limit: usize) -> Snapshot {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Snapshot::Missing,
        Err(e) => return Snapshot::Unreadable(e.to_string()),
    };
    let size = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Snapshot::Unreadable("not a regular file".to_string()),
        Err(e) => return Snapshot::Unreadable(e.to_string()),
    };
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::with_capacity(usize::try_from(size.min(cap)).unwrap_or(0));
    if let Err(e) = file.take(cap).read_to_end(&mut bytes) {
        return Snapshot::Unreadable(e.to_string());
    }
    if bytes.len() > limit {
        Snapshot::TooLarge(size.max(bytes.len() as u64))
    } else {
        Snapshot::Bytes(bytes)
    }
}

/// What `stat` says of a file that tells an edit: which file, its size, and its change
/// times (an edit sets `ctime` to the time of the edit, whatever it does to `mtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// Returns the stamp of `path`, if it is a regular file, with whether its last change
    /// is old enough (two seconds before the wall clock's now) that a later edit cannot
    /// carry the same change time, even on a file system with coarse timestamps.
    fn of(path: &Path) -> Option<(Stamp, bool)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file)?;
        let stamp = Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        };
        let changed = std::time::UNIX_EPOCH
            + Duration::new(
                m.ctime().max(0) as u64,
                m.ctime_nsec().clamp(0, 999_999_999) as u32,
            );
        let old = (std::time::SystemTime::now().duration_since(changed))
            .is_ok_and(|age| age > Duration::from_secs(2));
        Some((stamp, old))
    }
}

/// A file watched for changes by content, reported once they have settled.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    /// What the last report said (`None` before the first poll).
    reported: Option<Snapshot>,
    /// A different content seen since, and when it was first seen.
    pending: Option<(Snapshot, Instant)>,
    /// The stamp of the file when its content was last found the same as reported, its last
    /// change old enough: while the stamp stays so, the content is not read again (a poll
    /// at every step read a large cltab 20 times a second).
    quiet: Option<Stamp>,
}

impl Watched {
    /// Watches `path`; the first [`Watched::poll`] reports its content at once.
    pub fn new(path: PathBuf) -> Watched {
        Watched {
            path,
            reported: None,
            pending: None,
            quiet: None,
        }
    }

    /// Returns the watched path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the file's content at the first call, and afterwards whenever it changed and
    /// then stayed the same for [`SETTLE`] up to `now` (so a file is never reported half
    /// written). At most [`MAX_READ_BYTES`] + 1 bytes are read.
    pub fn poll(&mut self, now: Instant) -> Option<Content> {
        let stamp = Stamp::of(&self.path);
        if self.quiet.is_some() && stamp.map(|(s, _)| s) == self.quiet {
            return None;
        }
        self.quiet = None;
        let snap = read_bytes(&self.path, MAX_READ_BYTES);
        if self.reported.is_some() {
            if self.reported.as_ref() == Some(&snap) {
                self.pending = None;
                // Read again after the stamp; unchanged since, it is still this content.
                if let Some((s, old)) = stamp.filter(|_| matches!(snap, Snapshot::Bytes(_))) {
                    self.quiet = (old && Stamp::of(&self.path) == Some((s, true))).then_some(s);
                }
                return None;
            }
            match &self.pending {
                Some((seen, since)) if *seen == snap => {
                    if now.saturating_duration_since(*since) < SETTLE {
                        return None;
                    }
                }
                _ => {
                    self.pending = Some((snap, now));
                    return None;
                }
            }
        }
        self.pending = None;
        let content = match &snap {
            Snapshot::Missing => Content::Missing,
            Snapshot::Bytes(b) => Content::Text(String::from_utf8_lossy(b).into_owned()),
            Snapshot::TooLarge(n) => Content::TooLarge(*n),
            Snapshot::Unreadable(e) => Content::Unreadable(e.clone()),
        };
        self.reported = Some(snap);
        Some(content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Polls at `t0 + ms`.
    fn at(w: &mut Watched, t0: Instant, ms: u64) -> Option<Content> {
        w.poll(t0 + Duration::from_millis(ms))
    }

    #[test]
    fn two_edits_in_the_same_second_are_both_seen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hactl");
        let t0 = Instant::now();
        let mut w = Watched::new(p.clone());
        assert_eq!(at(&mut w, t0, 0), Some(Content::Missing));
        assert_eq!(at(&mut w, t0, 50), None);
        write_atomic(&p, b"a start\n").unwrap();
        assert_eq!(at(&mut w, t0, 100), None, "not settled yet");
        assert_eq!(at(&mut w, t0, 299), None);
        assert_eq!(at(&mut w, t0, 300), Some(Content::Text("a start\n".into())));
        write_atomic(&p, b"a stop\n").unwrap();
        assert_eq!(at(&mut w, t0, 350), None);
        assert_eq!(at(&mut w, t0, 550), Some(Content::Text("a stop\n".into())));
        assert_eq!(at(&mut w, t0, 600), None);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(at(&mut w, t0, 650), None);
        assert_eq!(at(&mut w, t0, 900), Some(Content::Missing));
    }

    #[test]
    fn a_quiet_file_is_not_read_again_until_an_edit_even_one_that_keeps_its_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cltab");
        std::fs::write(&p, b"a:a1:start:wait:true\n").unwrap();
        let old = std::fs::metadata(&p).unwrap().modified().unwrap();
        let t0 = Instant::now();
        let mut w = Watched::new(p.clone());
        assert!(matches!(at(&mut w, t0, 0), Some(Content::Text(_))));
        assert_eq!(at(&mut w, t0, 50), None);
        assert!(w.quiet.is_none(), "changed just now: read at every poll");
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(at(&mut w, t0, 2200), None);
        assert!(w.quiet.is_some(), "changed over 2 s ago: stat only");
        assert_eq!(at(&mut w, t0, 2250), None);
        // In place, the same size, mtime put back: only ctime tells.
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"b", 0).unwrap();
        f.set_modified(old).unwrap();
        assert_eq!(at(&mut w, t0, 2300), None, "not settled yet");
        let text = at(&mut w, t0, 2600);
        assert_eq!(text, Some(Content::Text("b:a1:start:wait:true\n".into())));
    }

    #[test]
    fn a_file_still_changing_is_not_reported_until_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cltab");
        write_atomic(&p, b"old\n").unwrap();
        let t0 = Instant::now();
        let mut w = Watched::new(p.clone());
        assert_eq!(at(&mut w, t0, 0), Some(Content::Text("old\n".into())));
        // Written in two halves: the first half is never reported.
        std::fs::write(&p, b"half\n").unwrap();
        assert_eq!(at(&mut w, t0, 50), None);
        std::fs::write(&p, b"half\nand the rest\n").unwrap();
        assert_eq!(at(&mut w, t0, 100), None);
        assert_eq!(
            at(&mut w, t0, 250),
            None,
            "200 ms since the last change: not yet"
        );
        assert_eq!(
            at(&mut w, t0, 300),
            Some(Content::Text("half\nand the rest\n".into()))
        );
        // Changed and changed back before settling: nothing to report.
        std::fs::write(&p, b"x\n").unwrap();
        assert_eq!(at(&mut w, t0, 350), None);
        std::fs::write(&p, b"half\nand the rest\n").unwrap();
        assert_eq!(at(&mut w, t0, 400), None);
        assert_eq!(at(&mut w, t0, 900), None);
    }

    #[test]
    fn a_huge_file_is_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cltab");
        std::fs::write(&p, vec![b'#'; 2 * MAX_READ_BYTES]).unwrap();
        let mut w = Watched::new(p.clone());
        let big = 2 * MAX_READ_BYTES as u64;
        assert_eq!(w.poll(Instant::now()), Some(Content::TooLarge(big)));
        assert_eq!(read_bounded(&p, 10), Content::TooLarge(big));
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_bounded(&p, 10), Content::Text("0123456789".into()));
        assert_eq!(read_bounded(&p, 9), Content::TooLarge(10));
    }

    #[test]
    fn fifos_and_directories_are_unreadable_not_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("cltab");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(
            read_bounded(&fifo, 10),
            Content::Unreadable("not a regular file".into())
        );
        assert!(matches!(
            read_bounded(dir.path(), 10),
            Content::Unreadable(_)
        ));
        assert_eq!(read_bounded(&dir.path().join("nope"), 10), Content::Missing);
    }

    #[test]
    fn write_atomic_mode_creates_the_file_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fencetab");
        write_atomic_mode(&p, b"secret\n", 0o600).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A stale temporary file (even a symbolic link) is replaced, not followed.
        let target = dir.path().join("target");
        let tmp = dir
            .path()
            .join(format!(".fencetab.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        write_atomic_mode(&p, b"again\n", 0o600).unwrap();
        assert!(!target.exists());
        assert_eq!(std::fs::read(&p).unwrap(), b"again\n");
        write_atomic(&p, b"x").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o644, 0, "{mode:o}");
    }

    #[test]
    fn overwrite_in_place_pads_a_shorter_document() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hastat.json");
        assert!(
            overwrite_in_place(&p, b"{}").is_err(),
            "the file must exist"
        );
        std::fs::write(&p, b"{\"a\": 1234567}\n").unwrap();
        overwrite_in_place(&p, b"{\"a\": 1}\n").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "{\"a\": 1}\n      ");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["a"],
            1
        );
        overwrite_in_place(&p, b"{\"a\": 123456789012345}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"a\": 123456789012345}\n"
        );
    }
}
