//! The record of running process groups (`DIR/mosha.pgids`), and the clean-up a starting daemon
//! does with it: processes left behind by an earlier instance that died are stopped (SIGTERM,
//! then SIGKILL after the grace period) before anything new starts.
//!
//! Each line is `PGID STARTTIME`, the start time being the leader's field 22 of
//! `/proc/PID/stat`. A recorded group is stopped only when everything matches: its leader
//! (pid = pgid) exists, has the recorded start time, and still leads that process group. A
//! pid now used by an unrelated process, a start time recorded as 0 or unreadable, a leader
//! that is gone (its group cannot be told from a stranger's): all are left alone, with one
//! warning each. Killing a stranger is worse than missing a left-over, which the new daemon
//! then reports as processes it did not start.
//!
//! The record is written by a thread of its own ([`recorder`]): reading a new leader's start
//! time waits while that process is still in its exec, which on a machine saturated by
//! thousands of starting services took up to 2 s of the event loop's turn.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tracing::{info, warn};

use crate::files::{self, Content};

/// The most lines of the record that are looked at (a daemon runs far fewer groups).
const MAX_RECORDED: usize = 10_000;

/// Returns the start time (in clock ticks since boot) of process `pid`, if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    leader(pid).map(|l| l.start)
}

/// What `/proc/PID/stat` says of a process, for the checks on a recorded leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    /// Its start time (field 22).
    pub start: u64,
    /// Its process group (field 5).
    pub pgid: u64,
}

/// Reads the start time and process group of process `pid` (zombies included), if it exists.
fn leader(pid: u32) -> Option<Leader> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(Leader {
        start: stat_field(&stat, 22)?,
        pgid: stat_field(&stat, 5)?,
    })
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

/// What to do with one recorded process group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything matches: it is ours, stop it.
    Stop,
    /// It cannot be ours, or cannot be shown to be: leave it alone, for this reason.
    Leave(String),
}

/// Decides about the group `pgid` recorded with start time `start`, given what `/proc` says
/// of the process whose pid is `pgid` (`None`: there is none).
pub fn verdict(pgid: u32, start: u64, found: Option<Leader>) -> Verdict {
    let leave = |why: &str| Verdict::Leave(why.to_string());
    if pgid <= 1 {
        return leave("not a process group a daemon starts");
    }
    if start == 0 {
        return leave("recorded without a start time, so it cannot be verified");
    }
    match found {
        None => leave("its leader is gone, so the group cannot be verified as ours"),
        Some(l) if l.start != start => leave("the pid now belongs to another process"),
        Some(l) if l.pgid != u64::from(pgid) => {
            leave("the process with that pid no longer leads that process group")
        }
        Some(_) => Verdict::Stop,
    }
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

/// Writes the record of `pgids` to `path` atomically, unsynced: it is rewritten at every
/// spawn of a burst, and after a power cut no process it names is left. A group whose leader's start time
/// cannot be read (it already exited) is left out: it could not be verified later anyway.
/// `starts` keeps the start times read before (pgid → start), so that a record rewritten
/// at every spawn of a burst reads `/proc` only for the new groups; groups no longer in
/// `pgids` leave it. (A pgid reused between two records keeps its old start time, which
/// makes a later start-up leave that group alone rather than stop a stranger's.)
///
/// # Errors
/// Fails when the file cannot be written.
pub fn record(
    path: &Path,
    pgids: &[u32],
    starts: &mut std::collections::BTreeMap<u32, u64>,
) -> std::io::Result<()> {
    let wanted: std::collections::BTreeSet<u32> = pgids.iter().copied().collect();
    starts.retain(|pgid, _| wanted.contains(pgid));
    let mut text = String::new();
    for &pgid in pgids {
        let start = match starts.get(&pgid) {
            Some(&s) => Some(s),
            None => start_time(pgid).inspect(|&s| {
                starts.insert(pgid, s);
            }),
        };
        if let Some(start) = start {
            text.push_str(&format!("{pgid} {start}\n"));
        }
    }
    files::write_volatile(path, text.as_bytes())
}

/// Starts the thread `pgid-record`, which writes the record at `path` with the newest list of
/// process groups handed to it.
///
/// # Errors
/// Fails when the system cannot start a thread.
pub fn recorder(path: PathBuf) -> std::io::Result<files::Latest<Vec<u32>>> {
    let mut starts = std::collections::BTreeMap::new();
    files::Latest::start("pgid-record", move |pgids: Vec<u32>| {
        record(&path, &pgids, &mut starts).map_err(|e| e.to_string())
    })
}

/// Returns the recorded process groups that are verified as ours (see [`verdict`]) and still
/// have members, warning once about each one left alone.
fn live_groups(text: &str) -> Vec<u32> {
    // The process groups that have a member that is not a zombie, read once.
    let live: std::collections::BTreeSet<u64> =
        all_pids().into_iter().filter_map(pgid_of).collect();
    let mut out = Vec::new();
    for line in text.lines().take(MAX_RECORDED) {
        let mut w = line.split_whitespace();
        let (Some(Ok(pgid)), Some(Ok(start))) = (
            w.next().map(str::parse::<u32>),
            w.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        let alive = live.contains(&u64::from(pgid));
        match verdict(pgid, start, leader(pgid)) {
            Verdict::Stop if alive && !out.contains(&pgid) => out.push(pgid),
            Verdict::Leave(why) if alive => {
                warn!(pgid, "recorded process group left alone: {why}")
            }
            _ => {}
        }
    }
    out
}

/// Stops the process groups recorded at `path` by an earlier instance, waiting up to `grace`
/// before SIGKILL. Returns how many groups were found alive.
pub fn stop_leftovers(path: &Path, grace: Duration) -> usize {
    let Content::Text(text) = files::read_bounded(path, files::MAX_READ_BYTES) else {
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
    let deadline = crate::deadline::after(Instant::now(), grace);
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
    use super::*;

    fn at(start: u64, pgid: u64) -> Option<Leader> {
        Some(Leader { start, pgid })
    }

    #[test]
    fn a_group_is_stopped_only_when_everything_matches() {
        assert_eq!(verdict(4242, 777, at(777, 4242)), Verdict::Stop);
    }

    #[test]
    fn anything_that_does_not_match_is_left_alone() {
        let leaves = |v: Verdict, word: &str| match v {
            Verdict::Leave(why) => assert!(why.contains(word), "{why}"),
            Verdict::Stop => panic!("must be left alone ({word})"),
        };
        // A start time recorded as 0 is never trusted, even if the pid's start is 0 too.
        leaves(verdict(4242, 0, at(777, 4242)), "start time");
        leaves(verdict(4242, 0, at(0, 4242)), "start time");
        leaves(verdict(4242, 0, None), "start time");
        leaves(verdict(4242, 777, at(778, 4242)), "another process");
        leaves(verdict(4242, 777, at(777, 100)), "no longer leads");
        leaves(verdict(4242, 777, None), "leader is gone");
        leaves(verdict(1, 777, at(777, 1)), "not a process group");
        leaves(verdict(0, 777, at(777, 0)), "not a process group");
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let me = std::process::id();
        let found = leader(me).expect("our own /proc entry");
        assert!(found.start > 0);
        assert_eq!(start_time(me), Some(found.start));
        assert_eq!(
            found.pgid,
            u64::try_from(nix::unistd::getpgrp().as_raw()).unwrap()
        );
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat =
            "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0";
        assert_eq!(stat_field(stat, 5), Some(1234));
        assert_eq!(stat_field(stat, 22), Some(98765));
        assert_eq!(stat_field("garbage", 5), None);
    }
}
