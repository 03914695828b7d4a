//! Keeps `src/engine/` pure: the decision engine is driven by the daemon and by the simulator
//! alike, so it must not read a clock, touch files, sockets or processes, use tokio, draw
//! unseeded randomness, or iterate hash maps (whose order differs from run to run).

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::time",
    "Instant",
    "SystemTime",
    "tokio",
    "std::fs",
    "std::net",
    "std::process",
    "std::thread",
    "std::env",
    "HashMap",
    "HashSet",
    "thread_rng",
    "rand::rng(",
    "from_entropy",
    "from_os_rng",
    "OsRng",
    "println!",
    "eprintln!",
    "chitchat",
    "nix::",
    "crate::supervisor",
    "crate::daemon",
    "crate::gossip",
];

#[test]
fn the_engine_reads_no_clock_and_does_no_io() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = 0;
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    problems.push(format!("{}:{}: uses {word}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(files >= 3, "src/engine/ has its files");
    assert!(
        problems.is_empty(),
        "the engine must stay pure:\n{}",
        problems.join("\n")
    );
}
