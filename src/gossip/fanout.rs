//! The gossip fan-out: how many live peers one round of this node opens an exchange with.
//!
//! chitchat opens an exchange (a SYN carrying a digest of every member) with three random live
//! peers each round, whatever the cluster's size, so the bytes and the CPU a node spends on
//! gossip grow with N × 3 × rounds. [`Fanout`] sits in the transport and lets only the first
//! [`width`] SYNs of a round to live peers go out; the rest are dropped before chitchat's
//! codec compresses them (chitchat sees a lost datagram, which it is built for). SYNs to
//! members that are not live (a dead node chitchat probes, a seed, every peer while none is
//! live yet) always go, so partitions heal and starts converge as before. Replies (SYN-ACK,
//! ACK) always go.
//!
//! The trade-off: a node still takes part in about two exchanges a round (the one it opens and,
//! on average, one another opens with it), so every member's heartbeat keeps reaching every
//! other about once a round, and detection stays near `phi × gossip interval`; a state change
//! needs a round or two more to reach everyone in a large cluster. Small clusters (up to
//! [`FULL_UP_TO`] members) keep chitchat's three, so their propagation (which the engine's slot
//! is sized from) does not change.
//!
//! Pure: the caller passes the time and the live set.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// chitchat's own fan-out (its `GOSSIP_COUNT`).
pub const CHITCHAT_FANOUT: usize = 3;
/// Clusters of at most this many members keep chitchat's fan-out of three.
pub const FULL_UP_TO: usize = 10;

/// Clusters of at most this many members (and more than [`FULL_UP_TO`]) open two exchanges.
pub const TWO_UP_TO: usize = 40;

/// Returns the fan-out for a cluster of `members` live members (this node included): 3 up to
/// [`FULL_UP_TO`] members, 2 up to [`TWO_UP_TO`], then 1. Measured at 30 members (membership
/// benchmark): fan-out 3 sends 33 KB/s per node and detects a death in 0.67 s (p50); 2, 23
/// KB/s and 0.79 s; 1, 12 KB/s and 1.19 s, because every message a node processes also
/// advances its heartbeat, so fewer exchanges mean sparser heartbeats and a longer phi timeout
/// (a lower phi threshold at fan-out 1 gave false deaths).
pub fn width(members: usize) -> usize {
    if members <= FULL_UP_TO {
        CHITCHAT_FANOUT
    } else if members <= TWO_UP_TO {
        2
    } else {
        1
    }
}

/// Counts the SYNs of the current round (see the module documentation).
#[derive(Debug)]
pub struct Fanout {
    /// Two SYNs further apart than this belong to different rounds (half a gossip interval:
    /// chitchat sends a round's SYNs back to back).
    gap: Duration,
    /// `None`: the fan-out follows [`width`]; `Some(k)`: always `k`.
    fixed: Option<usize>,
    last_syn: Option<Instant>,
    live_syns: usize,
}

impl Fanout {
    /// Returns a counter for rounds every `interval`, with a `fixed` fan-out or (`None`) the
    /// adaptive one.
    pub fn new(interval: Duration, fixed: Option<usize>) -> Fanout {
        Fanout {
            gap: interval / 2,
            fixed,
            last_syn: None,
            live_syns: 0,
        }
    }

    /// Tells whether a SYN to `to` may go out at `now`, `live` being the live peers (this
    /// node excluded); counts it if so.
    pub fn allow(&mut self, now: Instant, to: SocketAddr, live: &HashSet<SocketAddr>) -> bool {
        if self
            .last_syn
            .is_none_or(|t| now.saturating_duration_since(t) > self.gap)
        {
            self.live_syns = 0;
        }
        self.last_syn = Some(now);
        if !live.contains(&to) {
            return true;
        }
        let width = self.fixed.unwrap_or_else(|| width(live.len() + 1));
        if self.live_syns >= width {
            return false;
        }
        self.live_syns += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: u16) -> HashSet<SocketAddr> {
        (1..=n)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], 7000 + p)))
            .collect()
    }

    #[test]
    fn width_shrinks_with_the_cluster() {
        assert_eq!(width(3), 3);
        assert_eq!(width(10), 3);
        assert_eq!(width(15), 2);
        assert_eq!(width(40), 2);
        assert_eq!(width(41), 1);
        assert_eq!(width(1000), 1);
    }

    #[test]
    fn a_round_sends_its_width_to_live_peers_and_everything_else() {
        let live = peers(49);
        let dead = SocketAddr::from(([127, 0, 0, 1], 9999));
        let mut f = Fanout::new(Duration::from_millis(100), None);
        let t0 = Instant::now();
        let round = |f: &mut Fanout, t: Instant| {
            let sent: Vec<bool> = live
                .iter()
                .take(3)
                .map(|to| f.allow(t, *to, &live))
                .collect();
            (sent, f.allow(t, dead, &live))
        };
        assert_eq!(round(&mut f, t0), (vec![true, false, false], true));
        // The next round, 100 ms later, opens one exchange again.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(round(&mut f, t1), (vec![true, false, false], true));
        // A small cluster keeps all three.
        let small = peers(4);
        let mut f = Fanout::new(Duration::from_millis(100), None);
        assert!(small.iter().take(3).all(|to| f.allow(t0, *to, &small)));
        // A fixed fan-out overrides the size.
        let mut f = Fanout::new(Duration::from_millis(100), Some(2));
        let sent = live.iter().take(3).filter(|to| f.allow(t0, **to, &live));
        assert_eq!(sent.count(), 2);
    }
}
