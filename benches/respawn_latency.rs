//! Respawn latency of the real daemon: the time from a supervised child's death to its
//! replacement running (exec'd), over many restarts. Prints median, p99 and max.
//!
//! Run with `cargo bench --bench respawn_latency [-- RESTARTS]` (default 300). The child is
//! killed with SIGKILL at t0; the replacement counts as running when the daemon's children
//! include a new pid whose /proc/PID/comm is `sleep` (so fork, setsid and exec are all done).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn running_sleep(daemon: u32, not: u32) -> Option<u32> {
    children(daemon).into_iter().find(|&c| {
        c != not
            && std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|s| s.trim() == "sleep")
    })
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<u32>) -> u32 {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::hint::spin_loop();
    }
}

fn main() {
    let restarts: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cltab"),
        "bench:child:run:respawn:sleep 100000\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("hactl"), "bench run\n").unwrap();
    let key = Command::new(env!("CARGO_BIN_EXE_mosha"))
        .arg("keygen")
        .stdout(std::fs::File::create(dir.path().join("authkey")).unwrap())
        .status()
        .unwrap();
    assert!(key.success(), "mosha keygen failed");
    // The throttle would back off after 5 exits in 10 s; the benchmark measures the fast path
    // (10000, the largest burst allowed, is far more than the restarts made in 10 s).
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_mosha"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--node",
            "bench",
            "--log",
            "warn",
            "--respawn-burst",
            "10000",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = daemon.id();
    let mut pid = wait_for("the first child", Duration::from_secs(10), || {
        if let Some(st) = daemon.try_wait().unwrap() {
            panic!("mosha run exited at once ({st}): rerun it by hand to see why");
        }
        running_sleep(d, 0)
    });
    let mut samples = Vec::with_capacity(restarts);
    for _ in 0..restarts {
        let t0 = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        pid = wait_for("a respawned child", Duration::from_secs(10), || {
            running_sleep(d, pid)
        });
        samples.push(t0.elapsed());
        // Let the daemon settle (clstat write) so samples do not overlap.
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = daemon.wait();
    samples.sort();
    let q = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "respawn latency over {} restarts: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        ms(q(0.5)),
        ms(q(0.99)),
        ms(*samples.last().unwrap())
    );
}
