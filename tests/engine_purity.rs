//! Keeps the decision engine pure, as the compiler and clippy enforce it: `engine/` is its own
//! crate (`mosha-engine`, the engine and the node core around it) whose only dependencies are
//! `rand`'s traits and `rand_chacha`'s seeded generator (no tokio, nix, chitchat, mosha), and `engine/clippy.toml` forbids the clocks, I/O and hash-ordered collections
//! (`cargo clippy -D warnings` fails on them). This test keeps both in place.
//!
//! `cargo tree -p mosha-engine -e normal` shows the crate's whole dependency tree.

use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_engine_crate_depends_on_nothing_but_rand_and_a_seeded_generator() {
    let manifest = read("engine/Cargo.toml");
    let deps: Vec<&str> = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .expect("engine/Cargo.toml has a [dependencies] table")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l.split('=').next().unwrap().trim())
        .collect();
    assert_eq!(deps, ["rand", "rand_chacha"], "the engine's dependencies");
    for dep in deps {
        let line = (manifest.lines())
            .find(|l| l.starts_with(&format!("{dep} =")))
            .unwrap();
        assert!(
            line.contains("default-features = false"),
            "{dep} without its default features (no thread_rng, no OS randomness): {line}"
        );
    }
}

#[test]
fn clippy_forbids_clocks_io_and_hash_ordered_collections_in_the_engine() {
    let conf = read("engine/clippy.toml");
    for path in [
        "std::time::Instant::now",
        "std::time::SystemTime::now",
        "std::thread::sleep",
        "std::collections::HashMap",
        "std::collections::HashSet",
        "std::fs::File",
        "std::net::UdpSocket",
        "std::process::Command",
    ] {
        assert!(
            conf.contains(&format!("\"{path}\"")),
            "engine/clippy.toml must forbid {path}"
        );
    }
}
