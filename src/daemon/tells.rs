//! The core's orders to the supervisor ("take group G to level L"), carried out within a time
//! budget per turn of the event loop.
//!
//! Starting a process costs the loop a fork and a wait until the child has exec'd: on a busy
//! 2-core machine about 15 ms, so a node told to start 400 groups at once stalled its loop
//! for 7 s (no beat published, no child reaped meanwhile). The orders now wait in a queue,
//! and each turn carries out as many as fit in [`BUDGET`]; the loop comes round again at once
//! while some wait. Orders to `stop` go first and are never held back (quorum loss, a
//! hand-off, a failed stop: stopping is what safety waits for). A later order for a group
//! replaces one still waiting, so a group goes where the core last said.
//!
//! Holding an order back is safe for the same reason a slow supervisor is: the claims the node
//! publishes are the supervisor's actual state, never the orders.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::hactl::STOP;
use crate::supervisor::{Os, Supervisor};

/// How long a turn may spend carrying out orders that start something.
pub const BUDGET: Duration = Duration::from_millis(100);

/// The orders waiting, in the order the core gave them.
#[derive(Debug, Default)]
pub struct Tells {
    /// Sequence number → (group, level).
    queue: BTreeMap<u64, (String, String)>,
    /// Group → its order's sequence number.
    by_group: BTreeMap<String, u64>,
    next: u64,
    /// Time spent carrying orders out since [`Tells::take_spent`] last asked.
    spent: Duration,
}

impl Tells {
    /// Queues an order, replacing the one still waiting for the same group.
    pub fn push(&mut self, group: &str, level: &str) {
        if let Some(old) = self.by_group.remove(group) {
            self.queue.remove(&old);
        }
        self.next += 1;
        self.queue
            .insert(self.next, (group.to_string(), level.to_string()));
        self.by_group.insert(group.to_string(), self.next);
    }

    /// Tells whether orders are waiting.
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Carries out every order to stop, then the others in order for at most [`BUDGET`] (at
    /// least one per call).
    pub fn carry(&mut self, sup: &mut Supervisor, os: &mut dyn Os, now: Instant) {
        let began = Instant::now();
        let stops: Vec<u64> = (self.queue.iter())
            .filter(|(_, (_, level))| level == STOP)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in stops {
            self.run(seq, sup, os, now);
        }
        let mut first = true;
        while let Some(&seq) = self.queue.keys().next() {
            if !first && began.elapsed() >= BUDGET {
                break;
            }
            first = false;
            self.run(seq, sup, os, now);
        }
        self.spent += began.elapsed();
    }

    /// Returns the time spent carrying orders out since the last call (for the slow-turn log).
    pub fn take_spent(&mut self) -> Duration {
        std::mem::take(&mut self.spent)
    }

    fn run(&mut self, seq: u64, sup: &mut Supervisor, os: &mut dyn Os, now: Instant) {
        if let Some((group, level)) = self.queue.remove(&seq) {
            self.by_group.remove(&group);
            sup.tell(now, os, &group, &level);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_order_replaces_a_waiting_one_and_keeps_the_queue_in_order() {
        let mut t = Tells::default();
        t.push("a", "start");
        t.push("b", "start");
        t.push("a", "stop");
        let order: Vec<_> = t.queue.values().cloned().collect();
        assert_eq!(
            order,
            [
                ("b".to_string(), "start".to_string()),
                ("a".to_string(), "stop".to_string())
            ]
        );
        assert_eq!(t.by_group.len(), 2);
        assert!(t.pending());
    }
}
