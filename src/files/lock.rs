//! `DIR/.mosha.lock`: the lock that makes a node directory one daemon's. A second `mosha run`
//! on the same directory would take the first one's services for left-overs of a crash and
//! kill them; with the lock it refuses to start instead. The lock is an `flock` held for the
//! daemon's life (the kernel drops it when the process dies, however it dies), and the file
//! holds the daemon's pid for the messages of others.
//!
//! This module owns the lock and the question "is it held?"; what to do about either answer
//! is the caller's.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the node directory.
pub const LOCK_FILE: &str = ".mosha.lock";

/// How many times, [`RETRY`] apart, a lock held by someone else is tried again before giving
/// up: `mosha status` holds it shared for an instant when it checks it.
const TRIES: usize = 10;

/// The pause between two tries.
const RETRY: Duration = Duration::from_millis(20);

/// The lock on a node directory, held until dropped (keep it for the process's life). The
/// file is opened close-on-exec, so no child inherits the lock.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
    path: PathBuf,
}

/// Why a directory cannot be locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Another process holds the lock: its pid, if the file says it.
    InUse { dir: PathBuf, pid: Option<u32> },
    /// The directory is on a read-only file system.
    ReadOnly { dir: PathBuf },
    /// The directory is not writable, or the lock cannot be taken: why.
    NotWritable { dir: PathBuf, why: String },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::InUse { dir, pid } => {
                write!(f, "{} is in use by another mosha", dir.display())?;
                match pid {
                    Some(pid) => write!(f, " (pid {pid})"),
                    None => write!(f, " (pid unknown)"),
                }
            }
            LockError::ReadOnly { dir } => write!(
                f,
                "{} is on a read-only file system: mosha writes its status, its records and \
                 adopted files there",
                dir.display()
            ),
            LockError::NotWritable { dir, why } => write!(
                f,
                "{} is not writable ({why}): mosha writes its status, its records and adopted \
                 files there",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for LockError {}

/// Who holds a directory's lock, as [`DirLock::holder`] finds out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody: no daemon runs on the directory.
    Free,
    /// A process holds it: its pid, if the file says it.
    Held(Option<u32>),
    /// It cannot be told: why.
    Unknown(String),
}

impl DirLock {
    /// Takes the lock on `dir` (creating `DIR/.mosha.lock`), writes this process's pid into
    /// it, and checks that `dir` is writable. A lock held by another process is tried again
    /// for a moment (see [`TRIES`]) before giving up.
    ///
    /// # Errors
    /// Fails when another process holds the lock, or the directory is read-only or not
    /// writable.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let not_writable = |e: &std::io::Error| match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::EROFS) => LockError::ReadOnly {
                dir: dir.to_path_buf(),
            },
            _ => LockError::NotWritable {
                dir: dir.to_path_buf(),
                why: e.to_string(),
            },
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| not_writable(&e))?;
        let mut tries = 0;
        let mut lock = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((f, Errno::EWOULDBLOCK)) if tries + 1 < TRIES => {
                    file = f;
                    tries += 1;
                    std::thread::sleep(RETRY);
                }
                Err((mut f, Errno::EWOULDBLOCK)) => {
                    return Err(LockError::InUse {
                        dir: dir.to_path_buf(),
                        pid: read_pid(&mut f),
                    })
                }
                Err((_, e)) => return Err(not_writable(&std::io::Error::from(e))),
            }
        };
        let pid = format!("{}\n", std::process::id());
        let written = lock
            .set_len(0)
            .and_then(|()| lock.write_all(pid.as_bytes()))
            .and_then(|()| lock.sync_all());
        written.map_err(|e| not_writable(&e))?;
        // The lock file may predate a permission change: prove that new files can be made.
        let probe = dir.join(format!(".mosha-probe.{}", std::process::id()));
        File::create(&probe)
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|e| not_writable(&e))?;
        Ok(DirLock { _lock: lock, path })
    }

    /// Returns the lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tells who holds the lock on `dir`, without ever blocking and without creating the
    /// file. (It takes the lock shared for an instant; [`DirLock::acquire`] tries again
    /// meanwhile.)
    pub fn holder(dir: &Path) -> Holder {
        let file = match File::open(dir.join(LOCK_FILE)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Holder::Free,
            Err(e) => return Holder::Unknown(e.to_string()),
        };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_unlocked_on_drop) => Holder::Free,
            Err((mut f, Errno::EWOULDBLOCK)) => Holder::Held(read_pid(&mut f)),
            Err((_, e)) => Holder::Unknown(e.to_string()),
        }
    }
}

/// Reads the pid a lock file holds (at most a few bytes of it).
fn read_pid(f: &mut File) -> Option<u32> {
    use std::io::Seek;
    let mut text = String::new();
    f.rewind().ok()?;
    f.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_directory_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(DirLock::holder(dir.path()), Holder::Free);
        let lock = DirLock::acquire(dir.path()).unwrap();
        let me = std::process::id();
        assert_eq!(
            std::fs::read_to_string(lock.path()).unwrap(),
            format!("{me}\n")
        );
        // flock locks belong to open files: a second open in this process conflicts too.
        assert_eq!(DirLock::holder(dir.path()), Holder::Held(Some(me)));
        let err = DirLock::acquire(dir.path()).unwrap_err();
        assert_eq!(
            err,
            LockError::InUse {
                dir: dir.path().to_path_buf(),
                pid: Some(me)
            }
        );
        assert!(err
            .to_string()
            .ends_with(&format!("is in use by another mosha (pid {me})")));
        drop(lock);
        assert_eq!(DirLock::holder(dir.path()), Holder::Free);
        let again = DirLock::acquire(dir.path()).unwrap();
        drop(again);
    }

    #[test]
    fn a_missing_directory_is_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let err = DirLock::acquire(&gone).unwrap_err();
        assert!(matches!(err, LockError::NotWritable { .. }), "{err}");
        assert!(err.to_string().contains("is not writable"), "{err}");
    }
}
