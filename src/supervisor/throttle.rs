//! The respawn throttle: decides how long to wait before restarting an entry that exited.
//!
//! Pure bookkeeping over instants handed in; it never reads the clock. The rule (issue 2):
//! restart at once, but after more than `burst` exits within `window`, back off exponentially
//! (`initial`, doubling, capped at `max`), and stay in back-off until a run lasts `stable_after`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The throttle's tunables; see [`crate::supervisor::Options`] for their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// How many exits within `window` are tolerated before backing off (systemd's StartLimitBurst).
    pub burst: usize,
    /// The sliding window over which exits are counted.
    pub window: Duration,
    /// The first back-off delay.
    pub initial: Duration,
    /// The largest back-off delay.
    pub max: Duration,
    /// A run that lasts this long resets the throttle.
    pub stable_after: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> ThrottleConfig {
        ThrottleConfig {
            burst: 5,
            window: Duration::from_secs(10),
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            stable_after: Duration::from_secs(10),
        }
    }
}

/// Remembers recent exits of one entry and the back-off in force.
#[derive(Debug, Clone, Default)]
pub struct Throttle {
    /// Exit instants within the last window, oldest first.
    exits: VecDeque<Instant>,
    /// The delay used last time, while backing off.
    backoff: Option<Duration>,
}

impl Throttle {
    /// Records an exit at `now` of a run that began at `started`, and returns how long to wait
    /// before the next start (zero: restart at once).
    pub fn on_exit(&mut self, cfg: &ThrottleConfig, started: Instant, now: Instant) -> Duration {
        if now.saturating_duration_since(started) >= cfg.stable_after {
            self.exits.clear();
            self.backoff = None;
        }
        self.exits.push_back(now);
        while let Some(&first) = self.exits.front() {
            if now.saturating_duration_since(first) > cfg.window {
                self.exits.pop_front();
            } else {
                break;
            }
        }
        if self.backoff.is_none() && self.exits.len() <= cfg.burst {
            return Duration::ZERO;
        }
        let next = match self.backoff {
            None => cfg.initial,
            Some(d) => d.saturating_mul(2).min(cfg.max),
        };
        self.backoff = Some(next);
        next
    }

    /// Returns the back-off delay in force, if the entry is being throttled.
    pub fn backoff(&self) -> Option<Duration> {
        self.backoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn five_fast_exits_restart_at_once_the_sixth_backs_off() {
        let cfg = ThrottleConfig::default();
        let t0 = Instant::now();
        let mut th = Throttle::default();
        for i in 0..5 {
            let t = t0 + ms(100 * i);
            assert_eq!(th.on_exit(&cfg, t, t + ms(10)), Duration::ZERO, "exit {i}");
        }
        assert_eq!(th.on_exit(&cfg, t0 + ms(600), t0 + ms(610)), ms(1000));
        assert_eq!(th.backoff(), Some(ms(1000)));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_resets_after_a_stable_run() {
        let cfg = ThrottleConfig::default();
        let mut th = Throttle::default();
        let mut t = Instant::now();
        for _ in 0..6 {
            t += ms(10);
            th.on_exit(&cfg, t, t);
        }
        let mut seen = vec![th.backoff().unwrap()];
        for _ in 0..8 {
            // Each restart fails fast, long after the window: back-off keeps growing anyway.
            t += Duration::from_secs(100);
            seen.push(th.on_exit(&cfg, t, t + ms(5)));
        }
        let secs: Vec<u64> = seen.iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // A run of 10 s clears everything.
        t += Duration::from_secs(100);
        assert_eq!(
            th.on_exit(&cfg, t, t + Duration::from_secs(10)),
            Duration::ZERO
        );
        assert_eq!(th.backoff(), None);
    }

    #[test]
    fn exits_spread_wider_than_the_window_never_back_off() {
        let cfg = ThrottleConfig::default();
        let mut th = Throttle::default();
        let mut t = Instant::now();
        for _ in 0..50 {
            t += Duration::from_secs(3);
            assert_eq!(th.on_exit(&cfg, t - ms(1), t), Duration::ZERO);
        }
    }
}
