//! `--help` tells the truth: each command's help is run and the facts it states are checked
//! against the code's constants, and the options of `mosha run` against the README's options
//! table (same options, same defaults), so that neither can drift from the code unseen.

use std::collections::BTreeMap;
use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mosha"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run mosha --help");
    assert!(out.status.success(), "mosha {args:?} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

fn says(text: &str, fact: &str, what: &str) {
    // clap wraps long lines: compare with whitespace collapsed.
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(fact), "{what} does not say {fact:?}:\n{text}");
}

#[test]
fn the_top_level_help_describes_the_cluster() {
    let h = help(&[]);
    for fact in [
        "cltab",
        "hactl",
        "fencetab",
        "quorum",
        "exactly one node",
        "newest valid",
    ] {
        says(&h, fact, "`mosha --help`");
    }
    for cmd in [
        "run",
        "check",
        "fence",
        "move",
        "standby",
        "unstandby",
        "drain",
        "freeze",
        "unfreeze",
        "maintenance",
        "cleanup",
        "status",
        "log",
        "demo",
        "keygen",
    ] {
        let listed = h
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{cmd} ")));
        assert!(listed, "`mosha --help` does not list {cmd}:\n{h}");
    }
}

#[test]
fn the_demo_help_describes_what_the_demo_runs() {
    let h = help(&["demo"]);
    let words = ["zero", "one", "two", "three", "four", "five"];
    says(
        &h,
        &format!("{} nodes", words[mosha::demo::NODES]),
        "`mosha demo --help`",
    );
    for fact in [
        "cltab-examples/cluster",
        "powered off",
        "fence_dummy",
        "Cleans up",
    ] {
        says(&h, fact, "`mosha demo --help`");
    }
    assert!(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cltab-examples/cluster/cltab"
    ))
    .exists());
}

#[test]
fn the_run_help_states_the_real_timings_and_files() {
    let h = help(&["run"]);
    let tick = mosha::engine::TICK;
    let settle = mosha::files::SETTLE.as_millis();
    says(&h, &format!("every {tick} ms"), "`mosha run --help`");
    says(&h, &format!("for {settle} ms"), "`mosha run --help`");
    for file in [
        "DIR/cltab",
        "DIR/hactl",
        "DIR/fencetab",
        "DIR/admin",
        "DIR/clstat.json",
        "DIR/hastat.json",
        "DIR/authkey",
        "members",
        "mosha.pgids",
        "commands/",
        "log/",
        ".mosha.lock",
    ] {
        says(&h, file, "`mosha run --help`");
    }
    let lock = mosha::files::LOCK_FILE;
    says(&h, lock, "`mosha run --help`");
}

#[test]
fn the_cleanup_help_states_how_long_a_request_lasts() {
    let h = help(&["cleanup"]);
    let ttl = mosha::engine::cleanup::CLEANUP_TTL / 1000;
    says(
        &h,
        &format!("the request lasts {ttl} s in gossip"),
        "`mosha cleanup --help`",
    );
}

#[test]
fn every_verb_the_readme_names_in_commands_compared_exists() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("### Commands compared")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .expect("README has a Commands compared table");
    let top = help(&[]);
    let mut seen = 0;
    for verb in table.split("`mosha ").skip(1) {
        let verb = verb.split([' ', '`']).next().unwrap();
        let listed = top
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{verb} ")));
        assert!(
            listed,
            "README's Commands compared names `mosha {verb}`, which `mosha --help` does not list"
        );
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} mosha commands found in the table");
}

#[test]
fn the_standby_help_states_the_hand_off_window() {
    let h = help(&["standby"]);
    let window = mosha::engine::admin::LEAVE_WINDOW;
    says(
        &h,
        &format!("at most {window} at once"),
        "`mosha standby --help`",
    );
    says(&h, "DIR/admin", "`mosha standby --help`");
}

#[test]
fn the_check_and_status_help_name_what_they_read() {
    let h = help(&["check"]);
    for file in [
        "DIR/cltab",
        "DIR/hactl",
        "DIR/fencetab",
        "DIR/admin",
        "DIR/authkey",
    ] {
        says(&h, file, "`mosha check --help`");
    }
    says(
        &h,
        "cltab, hactl, fencetab, admin and authkey",
        "`mosha check --help`",
    );
    let h = help(&["status"]);
    let stale_s = mosha::hastat::STALE_AFTER_MS / 1000;
    says(&h, "DIR/hastat.json", "`mosha status --help`");
    says(&h, &format!("for {stale_s} s"), "`mosha status --help`");
}

#[test]
fn the_log_help_states_the_bound_and_where_to_look() {
    let h = help(&["log"]);
    let kib = mosha::grouplog::FILE_LIMIT / 1024;
    says(
        &h,
        &format!("two files of at most {kib} KiB"),
        "`mosha log --help`",
    );
    for fact in [
        "DIR/log/GROUP.log",
        "on this node",
        "mosha status",
        "INFO",
        "--follow",
        "Exits 1",
    ] {
        says(&h, fact, "`mosha log --help`");
    }
    let h = help(&["run"]);
    says(&h, "DIR/log keep INFO and up", "`mosha run --help`");
}

/// The options of `mosha run --help` and their defaults (`None`: no `[default: …]`).
fn run_options() -> BTreeMap<String, Option<String>> {
    let h = help(&["run"]);
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in h.lines() {
        let t = line.trim();
        if t.starts_with("--") {
            let name = t.split([' ', ',', '=']).next().unwrap().to_string();
            if name != "--help" {
                out.insert(name.clone(), None);
                current = Some(name);
            } else {
                current = None;
            }
        } else if let (Some(name), Some(rest)) = (&current, t.strip_prefix("[default: ")) {
            out.insert(name.clone(), Some(rest.trim_end_matches(']').to_string()));
        }
    }
    out
}

/// The options of the README's `mosha run` table and their default column.
fn readme_options() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(row) = line.strip_prefix("| `--") else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let name = format!("--{}", cells[0].split([' ', '`']).next().unwrap());
        out.insert(name, cells[1].trim_matches('`').to_string());
    }
    out
}

#[test]
fn the_readme_lists_every_run_option_with_its_default() {
    let help = run_options();
    let readme = readme_options();
    let (h, r): (Vec<&String>, Vec<&String>) = (help.keys().collect(), readme.keys().collect());
    assert_eq!(
        h, r,
        "options in `mosha run --help` and in the README's table differ"
    );
    for (name, default) in &help {
        if let Some(d) = default {
            assert_eq!(&readme[name], d, "README's default for {name}");
        }
    }
}
