//! The queue between the tracing layer and the thread that writes the groups' logs, so that
//! no thread that logs an event about a group waits on the disk: the daemon's loop logged
//! the planning of 400 groups in one turn, and opening (creating) 400 log files in it took
//! hundreds of milliseconds, long enough for the daemon to take itself for frozen.
//!
//! The queue is bounded ([`MAX_QUEUED`] records). A child's output waits for room (up to
//! [`MAX_WAIT`]): the task that reads the child's pipe stops reading meanwhile, and the child
//! waits on its full pipe, as it did when the task wrote the file itself, so a flood of output
//! is slowed down, not cut. The daemon's own events never wait (the event loop logs them):
//! one that finds the queue full is dropped and counted, and the writer says how many on
//! stderr.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Record;

/// The most records waiting for the writer.
pub const MAX_QUEUED: usize = 8192;

/// The longest a child's output line waits for room before it is dropped (and counted).
pub const MAX_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    /// Records waiting, oldest first, with their group.
    items: VecDeque<(String, Record)>,
    /// Records dropped since the writer last took the queue.
    dropped: u64,
    /// Whether records are taken (the writer started).
    open: bool,
    /// Whether the writer is writing a batch it took.
    busy: bool,
}

/// Records on their way to the writer thread.
#[derive(Debug, Default)]
pub struct Queue {
    state: Mutex<State>,
    /// Signalled when a record arrives.
    arrived: Condvar,
    /// Signalled when the writer has written everything.
    idle: Condvar,
    /// Signalled when the writer took the queue (there is room again).
    room: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a queue that is still a queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts taking records.
    pub fn open(&self) {
        self.lock().open = true;
    }

    /// Queues `rec` for `group`'s log: nothing before [`Queue::open`]. A record that finds
    /// the queue full waits for room up to [`MAX_WAIT`] with `wait`, and is then (at once
    /// without `wait`) dropped and counted.
    pub fn push(&self, group: String, rec: Record, wait: bool) {
        let mut s = self.lock();
        if !s.open {
            return;
        }
        if s.items.len() >= MAX_QUEUED && wait {
            let end = Instant::now() + MAX_WAIT;
            while s.items.len() >= MAX_QUEUED {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s = (self.room.wait_timeout(s, left))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        if s.items.len() >= MAX_QUEUED {
            s.dropped += 1;
            return;
        }
        s.items.push_back((group, rec));
        self.arrived.notify_one();
    }

    /// Waits for records and takes all of them, with the count of those dropped since the
    /// last take; until the next take the writer counts as busy.
    pub fn take(&self) -> (Vec<(String, Record)>, u64) {
        let mut s = self.lock();
        s.busy = false;
        while s.items.is_empty() && s.dropped == 0 {
            self.idle.notify_all();
            s = self.arrived.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.busy = true;
        self.room.notify_all();
        let dropped = std::mem::take(&mut s.dropped);
        (s.items.drain(..).collect(), dropped)
    }

    /// Waits until every record queued so far is written, at most `limit`; returns whether
    /// it was.
    pub fn flush(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut s = self.lock();
        while s.open && (s.busy || !s.items.is_empty()) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = (self.idle.wait_timeout(s, left))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(message: &str) -> Record {
        Record {
            at: std::time::SystemTime::UNIX_EPOCH,
            level: tracing::Level::INFO,
            tag: None,
            stream: None,
            message: message.to_string(),
        }
    }

    #[test]
    fn records_wait_in_order_and_the_overflow_is_counted() {
        let q = Queue::default();
        q.push("g".to_string(), rec("before open: not kept"), false);
        q.open();
        for i in 0..MAX_QUEUED + 3 {
            q.push("g".to_string(), rec(&i.to_string()), false);
        }
        let (items, dropped) = q.take();
        assert_eq!(items.len(), MAX_QUEUED);
        assert_eq!(items[0].1.message, "0");
        assert_eq!(dropped, 3);
        assert!(
            !q.flush(Duration::from_millis(10)),
            "busy until the next take"
        );
    }

    #[test]
    fn a_childs_line_waits_for_room_rather_than_being_dropped() {
        let q = std::sync::Arc::new(Queue::default());
        q.open();
        for i in 0..MAX_QUEUED {
            q.push("g".to_string(), rec(&i.to_string()), true);
        }
        let writer = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            writer.take()
        });
        q.push("g".to_string(), rec("waited"), true);
        let (items, dropped) = t.join().unwrap();
        assert_eq!((items.len(), dropped), (MAX_QUEUED, 0));
        assert_eq!(q.take().0[0].1.message, "waited");
    }

    #[test]
    fn flush_waits_for_the_writer() {
        let q = std::sync::Arc::new(Queue::default());
        q.open();
        q.push("g".to_string(), rec("one"), false);
        let writer = q.clone();
        let t = std::thread::spawn(move || {
            let (items, _) = writer.take();
            std::thread::sleep(Duration::from_millis(50));
            drop(items);
            // The next take, with nothing queued, marks the writer idle and waits; a record
            // pushed by the test thread afterwards ends it.
            writer.take().0.len()
        });
        assert!(q.flush(Duration::from_secs(10)));
        q.push("g".to_string(), rec("two"), false);
        assert_eq!(t.join().unwrap(), 1);
    }
}
