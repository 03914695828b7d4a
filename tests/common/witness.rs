//! The witness of "never two copies at once" that the cluster tests share: each service takes
//! a lock in the cluster's shared directory (`flock -n`), and a copy that finds the lock taken
//! appends `<lock> <node>` to `SHARED/collisions` (checked by
//! [`super::cluster::Cluster::assert_no_collisions`]).

use std::process::Command;

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

/// Tells whether someone holds `SHARED/<lock>.lock` (a non-blocking `flock` from here fails).
pub fn lock_held(c: &Cluster, lock: &str) -> bool {
    let path = c.shared().join(format!("{lock}.lock"));
    let st = Command::new("flock")
        .arg("-n")
        .arg(&path)
        .arg("true")
        .status()
        .expect("running flock");
    !st.success()
}
