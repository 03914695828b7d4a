//! The restart policy of a group (hactl's `max_restarts=` and `restart_window=`, like
//! rgmanager's `max_restarts` / `restart_expire_time` and Pacemaker's `migration-threshold`
//! / `failure-timeout`): how many times the exits of its `respawn` entries may restart them
//! on this node within a window before the group fails here, so that the engine records a
//! cooldown and the group relocates.
//!
//! Pure bookkeeping over instants handed in, like [`super::throttle`] (which still spaces
//! the restarts that the policy allows).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A group's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window` (`None`: no limit, the default).
    pub max: Option<u32>,
    /// The window over which restarts are counted.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> RestartPolicy {
        RestartPolicy {
            max: None,
            window: Duration::from_secs(crate::config::hactl::RESTART_WINDOW_S),
        }
    }
}

/// The restarts of one group on this node within the policy's window.
#[derive(Debug, Clone, Default)]
pub struct Restarts {
    /// When each counted exit happened, oldest first; never more than the limit plus one.
    at: VecDeque<Instant>,
}

impl Restarts {
    /// Counts an exit at `now`; returns whether the policy allows restarting (false: the
    /// group fails here).
    pub fn exit(&mut self, policy: &RestartPolicy, now: Instant) -> bool {
        self.expire(policy, now);
        self.at.push_back(now);
        let Some(max) = policy.max else {
            // No limit: keep only what the count shown in status needs.
            while self.at.len() > crate::config::hactl::MAX_RESTARTS as usize + 1 {
                self.at.pop_front();
            }
            return true;
        };
        while self.at.len() > max as usize + 1 {
            self.at.pop_front();
        }
        self.at.len() <= max as usize
    }

    /// Forgets the exits older than the window at `now`.
    pub fn expire(&mut self, policy: &RestartPolicy, now: Instant) {
        while (self.at.front()).is_some_and(|t| now.saturating_duration_since(*t) > policy.window) {
            self.at.pop_front();
        }
    }

    /// Returns how many exits are counted (within the window as of the last exit or expiry).
    pub fn count(&self) -> u32 {
        self.at.len() as u32
    }

    /// Forgets every exit (the group left this node, or an operator cleared its failures).
    pub fn clear(&mut self) {
        self.at.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_past_the_limit_within_the_window_fails() {
        let p = RestartPolicy {
            max: Some(2),
            window: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        let mut r = Restarts::default();
        assert!(r.exit(&p, t0));
        assert!(r.exit(&p, t0 + Duration::from_secs(10)));
        assert!(!r.exit(&p, t0 + Duration::from_secs(20)), "the third exit");
        // Spread out, the window forgets the old ones.
        let mut r = Restarts::default();
        for i in 0..10 {
            assert!(r.exit(&p, t0 + Duration::from_secs(40 * i)), "exit {i}");
        }
        assert_eq!(r.count(), 2);
        r.clear();
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn no_limit_always_restarts_and_stays_bounded() {
        let p = RestartPolicy::default();
        let t0 = Instant::now();
        let mut r = Restarts::default();
        for _ in 0..5000 {
            assert!(r.exit(&p, t0));
        }
        assert_eq!(r.count(), crate::config::hactl::MAX_RESTARTS + 1);
    }

    #[test]
    fn zero_restarts_fails_at_the_first_exit() {
        let p = RestartPolicy {
            max: Some(0),
            ..RestartPolicy::default()
        };
        assert!(!Restarts::default().exit(&p, Instant::now()));
    }
}
