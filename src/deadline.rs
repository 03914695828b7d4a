//! Deadlines that cannot overflow. `Instant + Duration` panics when the sum does not fit, and
//! durations come from outside (fencetab `timeout=`, `--grace`): every deadline in the crate
//! is computed here, with a sane fallback instead of a panic.
//!
//! This module owns only that arithmetic; it reads no clock.

use std::time::{Duration, Instant};

/// The fallback for a deadline that does not fit: ten years from now is "never" for a daemon.
pub const FAR: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Returns `now + d`, or `now` + [`FAR`] when that does not fit (or `now` itself should even
/// that not fit, which no clock reaches).
pub fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR.min(d)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_or_falls_back_without_panicking() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(after(now, Duration::MAX), now + FAR);
        assert_eq!(after(now, Duration::ZERO), now);
    }
}
