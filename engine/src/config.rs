//! The engine's tunables ([`Config`]): one constructor derives every timing from the slot,
//! and [`Config::validate`] checks the rules the engine's safety rests on before a daemon
//! starts with them. Pure, like the rest of the engine: it knows the driver's tick only as a
//! constant.

use super::Millis;

/// The engine's tunables. Every duration is in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Time between two ranks: at least the p99 time for a gossip update to reach every node.
    pub slot: Millis,
    /// How long a node stays at `plan` before testing: at least two propagation times, so that
    /// a competing claim made just before ours is seen.
    pub plan_window: Millis,
    /// How long after start-up a node only watches before it plans anything, so that it
    /// hears the cluster first.
    pub startup_wait: Millis,
    /// How long a node whose test failed for a group stays ineligible for it.
    pub test_cooldown: Millis,
    /// How long a node that yielded in a conflict waits before it may plan the group again.
    pub yield_backoff: Millis,
    /// Two-node mode: with an expected membership of exactly two, one live node is quorate.
    /// Only safe with fencing; off by default.
    pub two_node: bool,
    /// In two-node mode, how long one of the two (the one of lower weight) waits before it
    /// fences the other, so that the two never fence each other at once.
    pub two_node_fence_delay: Millis,
    /// How long a node must have been lost before anyone fences it. When a partition cuts a
    /// node off from several others, it sees them die one by one (a gossip round or two
    /// apart) and stays quorate until it has seen enough of them go: waiting this long lets it
    /// find out that it is the minority before it acts.
    pub fence_settle: Millis,
    /// How often the driver publishes a new beat (a gossip key that changes only to show
    /// that this node's state still reaches others).
    pub beat: Millis,
    /// How long without news from a member (no new beat although its heartbeats arrive)
    /// before it no longer counts for quorum: two beats (one may be late) and one propagation
    /// (a slot). Shorter than the plan window by more than a tick, so that a node whose
    /// outgoing packets are lost finds out before a claim it made out of everyone's sight
    /// reaches `test`.
    pub news_timeout: Millis,
    /// How long a node must have stood as a group's successor, in everyone's sight, before
    /// it may take the group without a plan window when its holder dies (see
    /// [`crate::successor`]): longer than the news timeout, a propagation (a slot) and a
    /// tick, so that a successor whose packets stopped getting out, or that missed a rival's
    /// key, has lost quorum by then.
    pub successor_wait: Millis,
}

impl Config {
    /// Returns the defaults for a LAN cluster of about `n` nodes: [`Config::with_slot`] with
    /// `slot` = 150 ms + 5 ms × n (the measured p99 gossip propagation at 100 ms gossip is
    /// 0.10 s at 3 nodes and 0.30 s at 30).
    ///
    /// The beat stays [`BEAT`] whatever `n`: a member judges every peer's news by its own
    /// news timeout, so all members must beat alike, and `n` is only what this node knew at
    /// its start (few seeds and no members file yet: less than the cluster). A faster beat
    /// ([`FAST_BEAT`]) is the operator's choice for every node at once (`mosha run --beat`).
    pub fn for_cluster_size(n: usize) -> Config {
        Config::with_slot(150 + 5 * n.min(1000) as Millis)
    }

    /// Returns the tunables for a given `slot` and the default beat ([`BEAT`]); see
    /// [`Config::with_timing`].
    pub fn with_slot(slot: Millis) -> Config {
        Config::with_timing(slot, BEAT)
    }

    /// Returns the tunables for a given `slot` and `beat`, every field that depends on them
    /// derived from them (the one place that does): `news_timeout` = 2 beats + 1 slot,
    /// `plan_window` = 2 slots + 2 beats − 100 ms (the news timeout plus more than a tick
    /// and a margin, so that a node cut off from the majority right after it planned finds
    /// out that it lost quorum before it moves on — found by the simulator; 2 slots + 400
    /// ms at the default beat), `yield_backoff` = 2 slots, `successor_wait` = 2 plan
    /// windows; start-up wait 1 s, test cooldown
    /// 10 min, fence settle 500 ms, two-node fence delay 5 s. The arithmetic saturates;
    /// [`Config::validate`] tells whether the result is safe.
    pub fn with_timing(slot: Millis, beat: Millis) -> Config {
        let two_beats = beat.saturating_mul(2);
        let plan_window = (slot.saturating_mul(2))
            .saturating_add(two_beats)
            .saturating_sub(PLAN_SHORTFALL);
        Config {
            slot,
            plan_window,
            startup_wait: 1000,
            test_cooldown: 600_000,
            yield_backoff: slot.saturating_mul(2),
            two_node: false,
            two_node_fence_delay: 5000,
            fence_settle: 500,
            beat,
            news_timeout: two_beats.saturating_add(slot),
            successor_wait: plan_window.saturating_mul(2),
        }
    }

    /// Returns the shortest slot that [`Config::validate`] accepts with `gossip_interval` (ms)
    /// and the default beat: the news timeout plus a tick must fit in the plan window, and a
    /// slot must hold a gossip round and a tick.
    pub fn min_slot(gossip_interval: Millis) -> Millis {
        // 2 beats + slot + tick < 2 slots + 2 beats - shortfall  <=>  slot > tick + shortfall.
        let by_news = TICK + PLAN_SHORTFALL + 1;
        by_news.max(gossip_interval.saturating_add(TICK))
    }

    /// Checks the timing rules the engine's safety rests on, for a driver that steps it every
    /// [`TICK`] and gossips every `gossip_interval` ms, and that every field is in a sane
    /// range (so that no deadline computed from it can overflow):
    /// - `news_timeout` + a tick < `plan_window`: a node whose outgoing packets are lost
    ///   finds out (and loses quorum) before a plan it made out of everyone's sight reaches
    ///   `test` (see "Failure detection" in the README);
    /// - `slot` ≥ `gossip_interval` + a tick: a candidate's turn lasts long enough for the
    ///   claim of the one before it to arrive;
    /// - `slot` ≤ 10 s, `beat` in 10 ms..10 s and below `news_timeout`, `plan_window`,
    ///   `yield_backoff` and `startup_wait` ≤ 1 min, `test_cooldown` ≤ 1 day,
    ///   `fence_settle` ≤ 1 min, `two_node_fence_delay` ≤ 1 h;
    /// - `successor_wait` > news timeout + slot + tick, and ≤ 2 min.
    ///
    /// # Errors
    /// Returns one explanation per broken rule, naming the value that would work.
    pub fn validate(&self, gossip_interval: Millis) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let min_slot = Config::min_slot(gossip_interval);
        if self.news_timeout.saturating_add(TICK) >= self.plan_window {
            errors.push(format!(
                "slot {} ms is too short: the news timeout (2 beats + 1 slot = {} ms) plus the \
                 daemon's {TICK} ms tick must be shorter than the plan window (2 slots + 2 \
                 beats - {PLAN_SHORTFALL} ms = {} ms), so that a node whose packets no longer \
                 get out loses quorum before a plan it made unseen moves on; use a slot of at \
                 least {min_slot} ms",
                self.slot, self.news_timeout, self.plan_window
            ));
        }
        let successor_min = (self.news_timeout.saturating_add(self.slot)).saturating_add(TICK);
        if self.successor_wait <= successor_min {
            errors.push(format!(
                "successor wait {} ms is too short: it must be longer than the news timeout, \
                 a slot and the daemon's {TICK} ms tick ({successor_min} ms)",
                self.successor_wait
            ));
        }
        if self.slot < gossip_interval.saturating_add(TICK) {
            errors.push(format!(
                "slot {} ms is shorter than a gossip round ({gossip_interval} ms) plus the \
                 daemon's {TICK} ms tick: a candidate would act before the claim of the one \
                 ranked before it can arrive; use a slot of at least {min_slot} ms (or gossip \
                 more often)",
                self.slot
            ));
        }
        let mut range = |what: &str, value: Millis, min: Millis, max: Millis| {
            if !(min..=max).contains(&value) {
                errors.push(format!(
                    "{what} {value} ms is out of range: from {min} to {max} ms"
                ));
            }
        };
        range("slot", self.slot, 1, MAX_SLOT);
        range("beat", self.beat, 10, 10_000);
        range("plan window", self.plan_window, 1, 60_000);
        range("yield back-off", self.yield_backoff, 0, 60_000);
        range("start-up wait", self.startup_wait, 0, 60_000);
        range("test cooldown", self.test_cooldown, 0, 86_400_000);
        range("fence settle", self.fence_settle, 0, 60_000);
        range("successor wait", self.successor_wait, 1, 120_000);
        range(
            "two-node fence delay",
            self.two_node_fence_delay,
            0,
            3_600_000,
        );
        range(
            "news timeout",
            self.news_timeout,
            self.beat.saturating_add(1),
            60_000,
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// The default beat interval (see [`Config::beat`]).
pub const BEAT: Millis = 250;

/// How often the driver steps the engine, at most (the daemon's loop, the simulator's): the
/// timing rules of [`Config::validate`] count it as a delay anything may suffer.
pub const TICK: Millis = 50;

/// A beat for small clusters, validated by the simulator at 3 and 5 nodes (`mosha run --beat
/// 100` on every node; see [`Config::for_cluster_size`]).
pub const FAST_BEAT: Millis = 100;

/// What the plan window takes off two slots and two beats (see [`Config::with_timing`]).
pub const PLAN_SHORTFALL: Millis = 100;

/// What the plan window adds to two slots at the default beat: 2 × [`BEAT`] −
/// [`PLAN_SHORTFALL`].
pub const PLAN_MARGIN: Millis = 2 * BEAT - PLAN_SHORTFALL;

/// The longest slot accepted: 10 s (the plan window is then 20.4 s; longer would be no LAN).
pub const MAX_SLOT: Millis = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_that_depends_on_the_slot_is_derived_from_it() {
        let c = Config::with_slot(200);
        assert_eq!(c.plan_window, 2 * 200 + PLAN_MARGIN);
        assert_eq!(c.yield_backoff, 400);
        assert_eq!(c.news_timeout, 2 * BEAT + 200);
        assert_eq!(c.successor_wait, 2 * c.plan_window);
        assert_eq!(Config::for_cluster_size(5), Config::with_slot(175));
        assert_eq!(Config::with_slot(175).plan_window, 750);
        let fast = Config::with_timing(175, FAST_BEAT);
        assert_eq!(fast.news_timeout, 2 * FAST_BEAT + 175);
        assert_eq!(fast.plan_window, 2 * 175 + 2 * FAST_BEAT - PLAN_SHORTFALL);
        // Absurd slots saturate instead of overflowing, and are refused.
        let huge = Config::with_slot(u64::MAX);
        assert!(huge.plan_window >= u64::MAX - PLAN_SHORTFALL);
        assert!(huge.validate(100).is_err());
    }

    #[test]
    fn the_defaults_are_valid_at_every_size() {
        for n in [1, 2, 3, 5, 30, 100, 1000, 5000] {
            let c = Config::for_cluster_size(n);
            assert_eq!(c.validate(100), Ok(()), "{n} nodes");
        }
    }

    #[test]
    fn a_slot_too_short_for_the_news_timeout_is_refused_with_the_value_that_works() {
        assert_eq!(Config::min_slot(100), 151);
        assert_eq!(Config::with_slot(151).validate(100), Ok(()));
        let errors = Config::with_slot(150).validate(100).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("plan window"), "{}", errors[0]);
        assert!(errors[0].contains("at least 151 ms"), "{}", errors[0]);
        let errors = Config::with_slot(100).validate(100).unwrap_err();
        assert!(
            errors[0].starts_with("slot 100 ms is too short"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_slot_shorter_than_a_gossip_round_and_a_tick_is_refused() {
        assert_eq!(Config::min_slot(500), 550);
        let errors = Config::with_slot(300).validate(500).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("gossip round (500 ms)"), "{}", errors[0]);
        assert!(errors[0].contains("at least 550 ms"), "{}", errors[0]);
        assert_eq!(Config::with_slot(550).validate(500), Ok(()));
    }

    #[test]
    fn every_field_is_range_checked() {
        assert!(Config::with_slot(MAX_SLOT).validate(100).is_ok());
        let errors = Config::with_slot(MAX_SLOT + 1).validate(100).unwrap_err();
        assert_eq!(
            errors,
            vec!["slot 10001 ms is out of range: from 1 to 10000 ms"]
        );
        let mut c = Config::for_cluster_size(3);
        c.two_node_fence_delay = 3_600_001;
        c.test_cooldown = u64::MAX;
        let errors = c.validate(100).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("test cooldown"), "{errors:?}");
        assert!(errors[1].starts_with("two-node fence delay"), "{errors:?}");
    }
}
