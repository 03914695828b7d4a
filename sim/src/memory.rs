//! Memory reports of a run (`SIM_MEM=1`, on standard error): at every simulated second, the
//! process's resident size, the allocator's live blocks by size, the event queue, and the
//! entries of every node core's maps summed over the nodes. A diagnostic for issue 13's
//! memory bound at a thousand nodes; it decides nothing and prints nothing to standard
//! output, so a run's report is the same with or without it.

use std::collections::BTreeMap;

use crate::report::Stats;
use crate::world::World;

/// Tells whether reports are asked for (the environment variable `SIM_MEM` is set).
pub fn wanted() -> bool {
    std::env::var_os("SIM_MEM").is_some()
}

/// Returns the process's resident size in kB, from `VmRSS` in `/proc/self/status`, which
/// the kernel gives in kB whatever the page size (0 where unknown).
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (status.lines())
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `w` to the end as [`World::run`] does, the same events in the same order, stopping
/// at every simulated second to report.
pub fn run(w: &mut World) -> Stats {
    for t in (1000..w.duration()).step_by(1000) {
        w.run_until(t);
        report(w);
    }
    w.run()
}

/// Prints one report of `w` to standard error.
pub fn report(w: &World) {
    let live = crate::alloc::live();
    let blocks: i64 = live.iter().map(|l| l.1).sum();
    let bytes: i64 = live.iter().map(|l| l.2).sum();
    eprintln!(
        "mem t={}s rss={} kB live={} kB blocks={} queue={}",
        w.now / 1000,
        rss_kb(),
        bytes / 1024,
        blocks,
        w.queued()
    );
    let sizes: Vec<String> = (live.iter())
        .filter(|l| l.2 > 8 << 20)
        .map(|(s, b, n)| format!("<={s}:{b}/{}M", n >> 20))
        .collect();
    eprintln!("mem   sizes {}", sizes.join(" "));
    let mut maps: BTreeMap<&str, usize> = BTreeMap::new();
    for n in w.nodes.iter().filter(|n| n.up) {
        for (k, v) in n.core.sizes() {
            *maps.entry(k).or_default() += v;
        }
    }
    let maps: Vec<String> = maps.iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!("mem   maps {}", maps.join(" "));
}
