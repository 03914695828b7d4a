//! Fuzzes every parser of outside input (issue 9): random bytes, soups of plausible and
//! hostile lines, and mutations of valid files, fed to the file parsers (`cltab`, `hactl`,
//! `fencetab`, `members`) and to the decoders of gossip values (replicated-file publications
//! and version lines, claims, fencing records). None may panic; every problem carries a line
//! of the file it names; the decoders round-trip what they accept. Proptest shrinks any
//! failure to a small input and records its seed under `proptest-regressions/`.

use std::collections::BTreeMap;

use mosha::config::{self, text, Cltab, Fencetab, Hactl, Problem};
use mosha::engine::{fencing::Record, Claim};
use mosha::replica::{self, Version};
use proptest::prelude::*;

/// Line fragments to build soups from: valid lines of every file, near misses, separators,
/// quotes, control characters, invalid UTF-8 stand-ins, huge numbers.
const FRAGMENTS: &[&str] = &[
    "web:srv:start:respawn:sleep 100",
    "web:t:test:test:test -f /etc/passwd",
    "db:a:12:once:echo $HOME",
    ":::socket:/run/x",
    "g:t:,:once:x",
    "g::1:once:",
    "web start",
    "db 1 key=value",
    "web stop stop",
    "n1 fence_ipmilan ip=10.0.0.1 password=\"s3 cret\" timeout=2.5",
    "* none",
    "n1 none",
    "n1 fence_a timeout=99999999999999999999",
    "n1 fence_a \"unterminated",
    "n1 fence_a a=\"\\\"\\\\",
    "n1",
    "n2",
    "# comment",
    "",
    " ",
    "\t",
    "\r",
    ":",
    "=",
    "\"",
    "\\",
    "\u{0}",
    "\u{7}",
    "\u{7f}",
    "\u{85}",
    "\u{fffd}",
    "\u{feff}",
    "é😀",
    "18446744073709551616",
    "-1",
];

/// Builds a text from fragment indices: each index picks a fragment, the separator decides
/// whether it ends a line.
fn soup(parts: &[(usize, bool)]) -> String {
    let mut s = String::new();
    for &(i, newline) in parts {
        s.push_str(FRAGMENTS[i % FRAGMENTS.len()]);
        s.push(if newline { '\n' } else { ' ' });
    }
    s
}

/// Valid files to mutate.
const VALID: &[&str] = &[
    "web:prepare:start:wait:mkdir -p /run/web\nweb:server:start:respawn:exec webd\n\
     web:smoke:test:test:curl -fs http://localhost/health\nweb:cleanup:stop:wait:rm -rf /run/web\n",
    "# group level\nweb   start\ndb    test\n",
    "n1 fence_ipmilan ip=10.0.9.1 username=admin password=\"s3cret pw\" lanplus=1\n\
     n1 fence_apc ip=10.0.9.50 plug=7 action=off\n* fence_apc ip=10.0.9.50 timeout=5\n",
    "# members\nn1\nn2\nn3\n",
];

/// Applies byte-level mutations to `base`: (position, kind, byte).
fn mutate(base: &str, edits: &[(usize, u8, u8)]) -> String {
    let mut b = base.as_bytes().to_vec();
    for &(pos, kind, byte) in edits {
        let at = if b.is_empty() { 0 } else { pos % (b.len() + 1) };
        match kind % 4 {
            0 if at < b.len() => b[at] = byte,
            1 => b.insert(at, byte),
            2 if at < b.len() => {
                b.remove(at);
            }
            3 => {
                let end = (at + usize::from(byte)).min(b.len());
                let piece = b[at..end].to_vec();
                b.splice(at..at, piece);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// Checks what a parser said of `text`: problems name `file`, a line of the text, and are
/// bounded in number.
fn check_problems(file: &str, text: &str, result: Result<(), Vec<Problem>>) {
    let Err(problems) = result else { return };
    let lines = text.split('\n').count();
    assert!(!problems.is_empty(), "an error without problems");
    assert!(
        problems.len() <= text::MAX_PROBLEMS + 1,
        "{} problems",
        problems.len()
    );
    for p in &problems {
        assert_eq!(p.file, file);
        assert!(
            (1..=lines).contains(&p.line),
            "line {} of a {lines}-line text: {p}",
            p.line
        );
        assert!(!p.message.is_empty());
    }
    let mut sorted = problems.clone();
    sorted.sort_by_key(|p| p.line);
    assert_eq!(sorted, problems, "problems are sorted by line");
}

/// Runs every file parser on `text`.
fn parse_all(text: &str) {
    check_problems(
        "cltab",
        text,
        Cltab::parse("cltab", text).map(|c| {
            for e in &c.entries {
                assert!(e.line >= 1 && !e.command.is_empty() && !e.levels.is_empty());
                assert!(!e
                    .command
                    .contains(|c: char| c.is_ascii_control() && c != '\t'));
            }
        }),
    );
    check_problems("hactl", text, Hactl::parse("hactl", text).map(|_| ()));
    check_problems(
        "fencetab",
        text,
        Fencetab::parse("fencetab", text).map(|f| {
            for m in f.methods.values().flatten() {
                assert!(m.timeout >= config::fencetab::MIN_TIMEOUT);
                assert!(m.timeout <= config::fencetab::MAX_TIMEOUT);
            }
        }),
    );
    check_problems(
        "members",
        text,
        config::members::parse("members", text).map(|m| {
            assert!(m.len() <= config::members::MAX_MEMBERS);
        }),
    );
}

/// Runs every gossip decoder on `value`; what they accept must round-trip.
fn decode_all(value: &str) {
    if let Some(c) = Claim::decode(value) {
        assert_eq!(Claim::decode(&c.encode()), Some(c));
    }
    if let Some(r) = Record::decode(value) {
        assert_eq!(Record::decode(&r.encode()), Some(r));
    }
    if let Ok(v) = value.parse::<Version>() {
        assert_eq!(v.to_string().parse::<Version>(), Ok(v));
    }
    let mut keys = BTreeMap::new();
    keys.insert("f/cltab/v".to_string(), value.to_string());
    keys.insert("f/cltab/0".to_string(), value.to_string());
    if let Some(p) = replica::read_published("cltab", &keys) {
        if let Some(content) = p.content {
            assert!(content.len() <= replica::MAX_FILE_BYTES);
        }
    }
}

proptest! {
    // A thousand cases each: about a second in all in a debug build.
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic_and_problems_carry_a_line(
        bytes in proptest::collection::vec(any::<u8>(), 0..1500)
    ) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        parse_all(&text);
        decode_all(&text);
    }

    #[test]
    fn line_soups_never_panic_and_problems_carry_a_line(
        parts in proptest::collection::vec((any::<usize>(), any::<bool>()), 0..60)
    ) {
        let text = soup(&parts);
        parse_all(&text);
        for line in text.lines() {
            decode_all(line);
        }
    }

    #[test]
    fn mutated_valid_files_never_panic_and_problems_carry_a_line(
        which in 0..VALID.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..12)
    ) {
        let text = mutate(VALID[which], &edits);
        parse_all(&text);
    }

    #[test]
    fn publications_round_trip_and_damaged_ones_yield_no_content(
        content in "[ -~\n]{0,300}",
        ms in any::<u64>(),
        seq in any::<u32>(),
        node in "[a-z0-9 .-]{0,12}",
        damage in proptest::collection::vec((any::<usize>(), "[ -~]{0,20}"), 0..4)
    ) {
        let version = Version { ms, seq, node };
        let keys = replica::publish_keys("cltab", &version, &content).unwrap();
        let mut map: BTreeMap<String, String> = keys.into_iter().collect();
        let published = replica::read_published("cltab", &map).unwrap();
        prop_assert_eq!(&published.version, &version);
        prop_assert_eq!(published.content.as_deref(), Some(content.as_str()));
        // Replace some values: what is read back is the original or nothing, never a mix.
        let names: Vec<String> = map.keys().cloned().collect();
        for (i, junk) in damage {
            let key = names[i % names.len()].clone();
            map.insert(key, junk);
        }
        if let Some(p) = replica::read_published("cltab", &map) {
            if let Some(c) = p.content {
                prop_assert!(c.len() <= replica::MAX_FILE_BYTES);
                let hash = format!("{:016x}", replica::content_hash(&c));
                prop_assert!(map["f/cltab/v"].contains(&hash), "hash {} not announced", hash);
            }
        }
    }

    #[test]
    fn gossip_values_never_panic(value in "[ -~\u{0}-\u{1f}é]{0,80}") {
        decode_all(&value);
    }
}
