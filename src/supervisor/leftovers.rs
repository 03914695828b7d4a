//! The record of running process groups (`DIR/mosha.pgids`), and the clean-up a starting daemon
//! does with it: processes left behind by an earlier instance that died are stopped (SIGTERM,
//! then SIGKILL after the grace period) before anything new starts.
//!
//! Each line is `PGID STARTTIME`, the start time being the leader's field 22 of
//! `/proc/PID/stat`, so that a pid reused by an unrelated process is never signalled.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tracing::{info, warn};

use crate::files;

/// Returns the start time (in clock ticks since boot) of process `pid`, if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&stat, 22)
}

/// Returns the process group of process `pid`, if it exists and is not a zombie.
fn pgid_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
    if state == "Z" {
        return None;
    }
    stat_field(&stat, 5)
}

/// Returns every pid listed in `/proc`.
fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Tells whether process group `pgid` has a member that is not a zombie. (A zombie whose
/// parent is not us is not ours to reap; it is as good as gone.)
fn has_live_members(pgid: u32) -> bool {
    all_pids()
        .into_iter()
        .any(|p| pgid_of(p) == Some(u64::from(pgid)))
}

/// Returns field `n` (1-based, as in proc(5)) of a `/proc/PID/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// Writes the record of `pgids` to `path` atomically.
///
/// # Errors
/// Fails when the file cannot be written.
pub fn record(path: &Path, pgids: &[u32]) -> std::io::Result<()> {
    let mut text = String::new();
    for &pgid in pgids {
        let start = start_time(pgid).unwrap_or(0);
        text.push_str(&format!("{pgid} {start}\n"));
    }
    files::write_atomic(path, text.as_bytes())
}

/// Returns the recorded process groups that still have members and are still ours: the leader
/// is either gone or has the recorded start time.
fn live_groups(text: &str) -> Vec<u32> {
    let procs = all_pids();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some(Ok(pgid)), Some(Ok(start))) = (
            w.next().map(str::parse::<u32>),
            w.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        if pgid <= 1 {
            continue;
        }
        match start_time(pgid) {
            Some(s) if s != start && start != 0 => continue, // the pid now belongs to someone else
            _ => {}
        }
        if procs.iter().any(|&p| pgid_of(p) == Some(u64::from(pgid))) {
            out.push(pgid);
        }
    }
    out
}

/// Stops the process groups recorded at `path` by an earlier instance, waiting up to `grace`
/// before SIGKILL. Returns how many groups were found alive.
pub fn stop_leftovers(path: &Path, grace: Duration) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let groups = live_groups(&text);
    for &pgid in &groups {
        warn!(
            pgid,
            "process group left behind by an earlier mosha; stopping it"
        );
        let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let alive = |g: &u32| has_live_members(*g);
    while groups.iter().any(alive) && Instant::now() < deadline {
        crate::supervisor::process::reap();
        std::thread::sleep(Duration::from_millis(50));
    }
    for g in groups.iter().filter(|g| alive(g)) {
        warn!(
            pgid = g,
            "left-over process group ignored SIGTERM; sending SIGKILL"
        );
        let _ = killpg(Pid::from_raw(*g as i32), Signal::SIGKILL);
    }
    if !groups.is_empty() {
        info!(count = groups.len(), "left-over processes stopped");
    }
    let _ = std::fs::remove_file(path);
    groups.len()
}

#[cfg(test)]
mod tests {
    use super::stat_field;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat =
            "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0";
        assert_eq!(stat_field(stat, 5), Some(1234));
        assert_eq!(stat_field(stat, 22), Some(98765));
        assert_eq!(stat_field("garbage", 5), None);
    }
}
