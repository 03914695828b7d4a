//! Repeated errors, said once: what the daemon does every tick (write clstat, hastat, the
//! process-group record, the membership, file versions, adopted files) fails every tick
//! while the cause lasts (a full disk, a read-only remount), and one log line per failure
//! would flood the log. Each failure is keyed by what failed ("write clstat.json"): the first
//! is logged as an error, repeats at most once a minute with a count, and the success that
//! ends them once, as "recovered". A failure that comes back within a minute of its recovery
//! (a disk that is *almost* full flaps) is counted, not said again; so each key makes at most
//! a few lines a minute, whatever happens. Failures of the last minute, ongoing or not, are
//! listed in hastat (`problems`), which `mosha status` shows.
//!
//! This module owns the bookkeeping and those log lines; it reads no clock (the daemon hands
//! the time in with [`Notices::at`]) and writes no file.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use crate::hastat::ProblemStat;

/// The shortest time between two log lines about one failure that goes on, and how long a
/// failure that ended is remembered (and listed in hastat).
pub const REPEAT_EVERY: Duration = Duration::from_secs(60);

/// The most failures followed at once (the keys are fixed in the code; this bounds memory
/// should that ever change).
const MAX_KEYS: usize = 64;

/// What a call to [`Notices::failed`] or [`Notices::ok`] logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// Nothing: a repeat inside the minute, or a success after successes.
    Nothing,
    /// The first failure, as an error.
    First,
    /// A repeat, with how many failures since the last line.
    Repeated(u64),
    /// The success that ended a run of failures, with how many there were.
    Recovered(u64),
}

/// One failure, ongoing or of the last minute.
#[derive(Debug, Clone)]
struct Notice {
    /// The last error, in words.
    error: String,
    /// Failures since the first.
    count: u64,
    /// When the first and the last failure happened (unix ms).
    first_ms: u64,
    last_ms: u64,
    /// When the last failure happened (monotonic).
    failed_at: Instant,
    /// The last attempt failed.
    failing: bool,
    /// When the last line about it was logged, whether that line said it fails, and how
    /// many failures came since.
    said_at: Instant,
    said_failing: bool,
    unsaid: u64,
}

/// The failures in progress or of the last minute, by what failed.
#[derive(Debug)]
pub struct Notices {
    now: Instant,
    wall_ms: u64,
    open: BTreeMap<String, Notice>,
}

impl Notices {
    /// Creates an empty set; times start at `now` (monotonic) and `wall_ms` (unix ms).
    pub fn new(now: Instant, wall_ms: u64) -> Notices {
        Notices {
            now,
            wall_ms,
            open: BTreeMap::new(),
        }
    }

    /// Sets the time of the failures and successes reported next (call once per loop turn),
    /// and forgets failures that ended more than [`REPEAT_EVERY`] ago (saying how many times
    /// one failed again unsaid, if it did).
    pub fn at(&mut self, now: Instant, wall_ms: u64) {
        self.now = now;
        self.wall_ms = wall_ms;
        self.open.retain(|what, n| {
            let keep = n.failing || now.saturating_duration_since(n.failed_at) < REPEAT_EVERY;
            if !keep && n.unsaid > 0 {
                info!(
                    "{what}: failed {} more time(s) ({}) before it worked again",
                    n.unsaid, n.error
                );
            }
            keep
        });
    }

    /// Reports that `what` failed with `err`: logged if it is the first failure (in the last
    /// minute), or the first in [`REPEAT_EVERY`] (with the count since the last line);
    /// counted otherwise.
    pub fn failed(&mut self, what: &str, err: &dyn Display) -> Said {
        let (now, wall_ms) = (self.now, self.wall_ms);
        let error = err.to_string();
        if !self.open.contains_key(what) && self.open.len() >= MAX_KEYS {
            debug!("cannot {what}: {error}");
            return Said::Nothing;
        }
        let Some(n) = self.open.get_mut(what) else {
            error!("cannot {what}: {error} (said once; repeats are counted)");
            let notice = Notice {
                error,
                count: 1,
                first_ms: wall_ms,
                last_ms: wall_ms,
                failed_at: now,
                failing: true,
                said_at: now,
                said_failing: true,
                unsaid: 0,
            };
            self.open.insert(what.to_string(), notice);
            return Said::First;
        };
        n.count += 1;
        n.last_ms = wall_ms;
        n.failed_at = now;
        n.failing = true;
        n.error = error;
        n.unsaid += 1;
        let since = now.saturating_duration_since(n.said_at);
        if since < REPEAT_EVERY {
            return Said::Nothing;
        }
        let times = n.unsaid;
        warn!(
            "cannot {what}: {} ({times} times in the last {} s)",
            n.error,
            since.as_secs()
        );
        n.said_at = now;
        n.said_failing = true;
        n.unsaid = 0;
        Said::Repeated(times)
    }

    /// Reports that `what` succeeded: if the last line about it said it fails, says once
    /// that it recovered.
    pub fn ok(&mut self, what: &str) -> Said {
        let now = self.now;
        let Some(n) = self.open.get_mut(what).filter(|n| n.failing) else {
            return Said::Nothing;
        };
        n.failing = false;
        if !n.said_failing {
            return Said::Nothing;
        }
        info!(
            "{what}: recovered after {} failure(s) (last: {})",
            n.count, n.error
        );
        n.said_at = now;
        n.said_failing = false;
        n.unsaid = 0;
        Said::Recovered(n.count)
    }

    /// Reports the outcome of `what`: [`Notices::ok`] or [`Notices::failed`].
    pub fn outcome<E: Display>(&mut self, what: &str, result: &Result<(), E>) -> Said {
        match result {
            Ok(()) => self.ok(what),
            Err(e) => self.failed(what, e),
        }
    }

    /// Returns the failures in progress or of the last minute, for hastat, sorted by what
    /// failed.
    pub fn problems(&self) -> Vec<ProblemStat> {
        self.open
            .iter()
            .map(|(what, n)| ProblemStat {
                what: what.clone(),
                error: n.error.clone(),
                count: n.count,
                first_at_ms: n.first_ms,
                last_at_ms: n.last_ms,
                failing: n.failing,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "No space left on device";

    /// Moves `n` to `ms` after `t0`.
    fn at(n: &mut Notices, t0: Instant, ms: u64) {
        n.at(t0 + Duration::from_millis(ms), 1_000 + ms);
    }

    #[test]
    fn a_failure_is_said_once_then_once_a_minute_then_recovered() {
        let t0 = Instant::now();
        let mut n = Notices::new(t0, 1_000);
        assert_eq!(n.failed("write clstat.json", &FULL), Said::First);
        // Every tick for a minute: nothing more is said.
        for tick in 1..1200u64 {
            at(&mut n, t0, 50 * tick);
            assert_eq!(
                n.failed("write clstat.json", &FULL),
                Said::Nothing,
                "{tick}"
            );
        }
        at(&mut n, t0, 60_000);
        assert_eq!(n.failed("write clstat.json", &FULL), Said::Repeated(1200));
        let p = n.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].what, "write clstat.json");
        assert_eq!(p[0].error, FULL);
        assert_eq!(p[0].count, 1201);
        assert!(p[0].failing);
        assert_eq!((p[0].first_at_ms, p[0].last_at_ms), (1_000, 61_000));
        assert_eq!(n.ok("write clstat.json"), Said::Recovered(1201));
        assert_eq!(n.ok("write clstat.json"), Said::Nothing);
        // Still listed for a minute, as no longer failing; then forgotten.
        assert!(!n.problems()[0].failing);
        at(&mut n, t0, 119_999);
        assert_eq!(n.problems().len(), 1);
        at(&mut n, t0, 120_000);
        assert!(n.problems().is_empty());
        // A new run starts over.
        assert_eq!(n.failed("write clstat.json", &FULL), Said::First);
    }

    #[test]
    fn a_flapping_failure_is_counted_not_said_again() {
        let t0 = Instant::now();
        let mut n = Notices::new(t0, 1_000);
        let ok: Result<(), &str> = Ok(());
        let full: Result<(), &str> = Err(FULL);
        let mut said = Vec::new();
        // Fails and works in turn every tick for 3 minutes.
        for tick in 0..3600u64 {
            at(&mut n, t0, 50 * tick);
            let r = if tick % 2 == 0 { &full } else { &ok };
            let s = n.outcome("write hastat.json", r);
            if s != Said::Nothing {
                said.push((tick, s));
            }
        }
        // The first failure, its recovery, then a line a minute each way at most.
        assert_eq!(said[0], (0, Said::First));
        assert_eq!(said[1], (1, Said::Recovered(1)));
        assert!(said.len() <= 2 + 2 * 3, "{said:?}");
        assert!(
            said.iter()
                .any(|(_, s)| matches!(s, Said::Repeated(n) if *n > 100)),
            "{said:?}"
        );
    }

    #[test]
    fn failures_are_kept_apart_by_what_failed() {
        let t0 = Instant::now();
        let mut n = Notices::new(t0, 5);
        assert_eq!(n.failed("write hastat.json", &"EROFS"), Said::First);
        assert_eq!(n.failed("write members", &"EROFS"), Said::First);
        assert_eq!(n.failed("write hastat.json", &"EROFS"), Said::Nothing);
        let ok: Result<(), String> = Ok(());
        assert_eq!(n.outcome("write members", &ok), Said::Recovered(1));
        let failing: Vec<(String, bool)> = n
            .problems()
            .into_iter()
            .map(|p| (p.what, p.failing))
            .collect();
        assert_eq!(
            failing,
            vec![
                ("write hastat.json".to_string(), true),
                ("write members".to_string(), false)
            ]
        );
    }

    #[test]
    fn the_number_of_failures_followed_is_bounded() {
        let mut n = Notices::new(Instant::now(), 0);
        for i in 0..2 * MAX_KEYS {
            n.failed(&format!("write f{i}"), &"x");
        }
        assert_eq!(n.problems().len(), MAX_KEYS);
    }
}
