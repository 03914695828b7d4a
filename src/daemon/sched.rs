//! The daemon's CPU priority: its threads run under the real-time round-robin policy
//! (`SCHED_RR`, priority [`PRIORITY`]) with `SCHED_RESET_ON_FORK`, so that the services it
//! starts do not inherit it (they run under the normal policy at nice 0).
//!
//! Why: the loop publishes the beats that keep this node in the quorum and carries out
//! stops; on a host whose services saturate the CPU (thousands of starts at once, a runaway
//! service), a normal-priority daemon waits its turn behind them and its peers may take it
//! for lost. corosync runs under `SCHED_RR` for the same reason. The loop's work per turn is
//! bounded, and the kernel keeps 5 % of each CPU for normal tasks whatever real-time tasks do
//! (`kernel.sched_rt_runtime_us`).
//!
//! Where the policy cannot be had (no `CAP_SYS_NICE`, a container, a cgroup without a
//! real-time budget), the daemon says so once and runs at normal priority.

use nix::libc;

/// The real-time priority (1–99): above every normal task, below the kernel's own threads
/// (watchdog, interrupts) and below corosync's 99.
pub const PRIORITY: i32 = 10;

/// Puts the calling thread under `SCHED_RR` at [`PRIORITY`], reset for its children.
///
/// # Errors
/// Returns the system's reason when the policy is refused.
pub fn realtime() -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: PRIORITY,
    };
    // SAFETY: sched_setscheduler reads `param` only; pid 0 is the calling thread.
    let r =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Returns the calling thread's scheduling policy, without the reset-on-fork flag.
pub fn policy() -> i32 {
    // SAFETY: no arguments to check; pid 0 is the calling thread.
    unsafe { libc::sched_getscheduler(0) & !libc::SCHED_RESET_ON_FORK }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_under_rr_starts_children_under_the_normal_policy() {
        // Run in a thread of its own: the test harness's threads keep their policy.
        std::thread::spawn(|| {
            if let Err(e) = realtime() {
                panic!("SCHED_RR refused (the tests run as root): {e}");
            }
            assert_eq!(policy(), libc::SCHED_RR);
            let out = std::process::Command::new("cat")
                .arg("/proc/self/sched")
                .output()
                .expect("cat");
            let text = String::from_utf8_lossy(&out.stdout);
            let line = (text.lines())
                .find(|l| l.starts_with("policy"))
                .expect("a policy line");
            assert!(line.trim_end().ends_with(" 0"), "child: {line}");
            // A thread started from it: reset too (the daemon sets each of its own).
            let inner = std::thread::spawn(policy).join().unwrap();
            assert_eq!(inner, libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }
}
