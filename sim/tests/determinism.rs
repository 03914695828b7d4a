//! The same seed gives a byte-identical event trace; different seeds differ.

use sim::faults::Profile;
use sim::node::Kind;
use sim::run::run_one;

fn trace(seed: u64, kind: Kind) -> String {
    let p = Profile::named("default").unwrap();
    run_one(5, 10, 60_000, seed, &p, kind, true)
        .trace
        .join("\n")
}

#[test]
fn the_same_seed_gives_a_byte_identical_trace() {
    for kind in [Kind::Ours, Kind::OpenMosix] {
        let a = trace(42, kind);
        let b = trace(42, kind);
        assert!(a.len() > 1000, "trace too short: {}", a.len());
        assert_eq!(a, b);
        assert_ne!(a, trace(43, kind));
    }
}

#[test]
fn a_quiet_cluster_places_every_group_without_violation() {
    let p = Profile::named("none").unwrap();
    for seed in 0..20 {
        let o = run_one(5, 10, 30_000, seed, &p, Kind::Ours, false);
        assert!(o.stats.violations.is_empty(), "{:?}", o.stats.violations);
        assert!(o.stats.cold_place.is_some_and(|t| t < 5_000), "seed {seed}");
    }
}
