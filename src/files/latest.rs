//! A thread that carries out the newest job it was handed: for writes the event loop must not
//! wait on (a status document, the process-group record). A job handed while another waits
//! replaces it, since only the newest content matters; the outcome of the last job done is
//! kept until the loop takes it, so that failures still reach its notices.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The thread and what it shares with the caller.
#[derive(Debug)]
pub struct Latest<T> {
    shared: Arc<(Mutex<State<T>>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct State<T> {
    /// The newest job not yet taken by the thread.
    wanted: Option<T>,
    /// The thread is carrying a job out.
    busy: bool,
    /// The outcome of the last job, until [`Latest::take_outcome`] takes it.
    outcome: Option<Result<(), String>>,
    stop: bool,
}

fn lock<T>(m: &Mutex<State<T>>) -> MutexGuard<'_, State<T>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Send + 'static> Latest<T> {
    /// Starts the thread `name`, which runs `job` on each job handed to it.
    ///
    /// # Errors
    /// Fails when the system cannot start a thread.
    pub fn start(
        name: &str,
        mut job: impl FnMut(T) -> Result<(), String> + Send + 'static,
    ) -> std::io::Result<Latest<T>> {
        let shared = Arc::new((
            Mutex::new(State {
                wanted: None,
                busy: false,
                outcome: None,
                stop: false,
            }),
            Condvar::new(),
        ));
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let (state, changed) = &*theirs;
                loop {
                    let next = {
                        let mut s = lock(state);
                        while s.wanted.is_none() && !s.stop {
                            s = changed.wait(s).unwrap_or_else(PoisonError::into_inner);
                        }
                        let Some(next) = s.wanted.take() else {
                            return;
                        };
                        s.busy = true;
                        next
                    };
                    let outcome = job(next);
                    let mut s = lock(state);
                    s.busy = false;
                    s.outcome = Some(outcome);
                    changed.notify_all();
                }
            })?;
        Ok(Latest {
            shared,
            thread: Some(thread),
        })
    }

    /// Hands over a job, replacing one still waiting.
    pub fn hand(&self, job: T) {
        let (state, changed) = &*self.shared;
        lock(state).wanted = Some(job);
        changed.notify_all();
    }

    /// Returns the outcome of the last job done, once.
    pub fn take_outcome(&self) -> Option<Result<(), String>> {
        lock(&self.shared.0).outcome.take()
    }

    /// Lets the thread finish what it was handed, then stops it. Gives up waiting after
    /// `within` (a write stuck on a hung disk), leaving the thread to end with the process.
    pub fn stop(&mut self, within: Duration) {
        let (state, changed) = &*self.shared;
        let end = Instant::now() + within;
        let mut s = lock(state);
        s.stop = true;
        changed.notify_all();
        while s.wanted.is_some() || s.busy {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            s = (changed.wait_timeout(s, left))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(s);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn the_newest_job_replaces_a_waiting_one_and_stop_finishes_the_last() {
        let (done_tx, done_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let mut w = Latest::start("test-latest", move |n: u32| {
            if n == 1 {
                // The first job blocks until the test lets it go.
                go_rx.recv().unwrap();
            }
            done_tx.send(n).unwrap();
            if n == 3 {
                Err("three".to_string())
            } else {
                Ok(())
            }
        })
        .unwrap();
        w.hand(1);
        // Wait until the thread is busy with 1, then hand 2 and 3: 3 replaces 2.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lock(&w.shared.0).busy {
            assert!(Instant::now() < deadline, "the thread never took job 1");
            std::thread::sleep(Duration::from_millis(1));
        }
        w.hand(2);
        w.hand(3);
        go_tx.send(()).unwrap();
        w.stop(Duration::from_secs(10));
        let done: Vec<u32> = done_rx.try_iter().collect();
        assert_eq!(done, [1, 3]);
        assert_eq!(w.take_outcome(), Some(Err("three".to_string())));
        assert_eq!(w.take_outcome(), None);
    }

    #[test]
    fn stop_gives_up_on_a_job_that_hangs() {
        let (_keep, hang) = mpsc::channel::<()>();
        let mut w = Latest::start("test-hang", move |()| {
            let _ = hang.recv();
            Ok(())
        })
        .unwrap();
        w.hand(());
        let began = Instant::now();
        w.stop(Duration::from_millis(200));
        assert!(began.elapsed() < Duration::from_secs(5));
    }
}
