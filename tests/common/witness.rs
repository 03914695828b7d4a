//! The witness of "never two copies at once" that the cluster tests share: each service takes
//! a lock in the cluster's shared directory (`flock -n`), and a copy that finds the lock taken
//! appends `<lock> <node>` to `SHARED/collisions` (checked by
//! [`super::cluster::Cluster::assert_no_collisions`]).

use std::path::Path;

use super::cluster::Cluster;

/// A respawn entry at `level` that holds `SHARED/<lock>.lock` while it runs, and appends
/// `<lock> <node>` to `SHARED/collisions` if it finds the lock taken.
pub fn service(group: &str, tag: &str, level: &str, lock: &str) -> String {
    format!(
        "{group}:{tag}:{level}:respawn:flock -n {{SHARED}}/{lock}.lock -c 'exec sleep 100000' \
         || echo \"{lock} $MOSHA_NODE\" >> {{SHARED}}/collisions\n"
    )
}

/// The server of `group` (tag `<group>-srv`, level `start`, lock `<group>.lock`).
pub fn server(group: &str) -> String {
    service(group, &srv(group), "start", group)
}

/// The tag of `group`'s server.
pub fn srv(group: &str) -> String {
    format!("{group}-srv")
}

/// A cltab with one server per group.
pub fn cltab_of(groups: &[&str]) -> String {
    groups.iter().map(|g| server(g)).collect()
}

/// An hactl that wants every group at `level`.
pub fn hactl_of(groups: &[&str], level: &str) -> String {
    groups.iter().map(|g| format!("{g} {level}\n")).collect()
}

/// Tells whether someone holds `SHARED/<lock>.lock`, from the kernel's list of file locks
/// (`/proc/locks`) rather than by trying to take it: a probe that took the lock for an
/// instant could make a service starting at that instant find it taken and report a
/// collision that never was.
pub fn lock_held(c: &Cluster, lock: &str) -> bool {
    path_locked(&c.shared().join(format!("{lock}.lock")))
}

/// Tells whether someone holds an flock on the file at `path`, from `/proc/locks` (see
/// [`lock_held`]). `path` may lead into a node's own mount namespace through
/// `/proc/<pid>/root`.
pub fn path_locked(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false; // never created: nobody ever took it
    };
    let dev = meta.dev();
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").expect("reading /proc/locks");
    // "1: FLOCK  ADVISORY  WRITE 4242 00:2a:123456 0 EOF" (a waiting one has "->" first).
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&id.as_str())
    })
}
