//! The `hactl` file: the level each resource group should run at, one `group level` per line.
//!
//! ```text
//! # group  level  options
//! web      1
//! db       start  prefer=n2,n1 only=n1,n2,n3
//! ```
//!
//! - Lines are split on `\n` and lose a trailing `\r`; blank lines and lines whose first
//!   non-blank character is `#` are skipped.
//! - Fields are separated by ASCII whitespace. Fields after the level are options written
//!   `key=value`, each at most once: `prefer=` (the nodes placed first, in order) and `only=`
//!   (the only nodes that may run the group), each a comma-separated list of distinct node
//!   names, at most [`MAX_OPTION_NODES`]; every `prefer` node must be an `only` one.
//!   `failback=no|yes|DURATION` (default `no`): whether a running group moves back to a
//!   node its `prefer=` list places before the node running it, once that node has been
//!   alive for DURATION (`yes`: [`FAILBACK_DELAY_S`] s; a number of seconds, or with a
//!   suffix `s`, `m`, `h`; 1 s to 1 day).
//! - The restart policy (rgmanager's `max_restarts` / `restart_expire_time`, Pacemaker's
//!   `migration-threshold` / `failure-timeout`): `max_restarts=N` (0 to
//!   [`MAX_RESTARTS`]; default: no limit) lets the exits of the group's `respawn` entries
//!   restart them here at most N times within `restart_window=DURATION` (default
//!   [`RESTART_WINDOW_S`] s); the next exit fails the group here, and it relocates.
//!   `cooldown=DURATION` (default [`COOLDOWN_S`] s) is how long a node where the group
//!   failed (a test, or its restarts used up) is no candidate for it. Durations as for
//!   `failback=`.
//! - A group missing from the file is wanted at [`STOP`].
//! - The limits of [`crate::config::text`] apply (size, line length, control characters, at
//!   most 10,000 groups).
//!
//! This module owns the syntax and the checks that need only the file itself; whether the
//! groups and levels exist in `cltab` is [`crate::config::cross_check`]'s business.

use std::collections::btree_map::Entry as MapEntry;
use std::collections::{BTreeMap, BTreeSet};

use crate::config::{check_name, text, Problem};

/// Names the level of a group that is stopped, and of every group absent from `hactl`.
pub const STOP: &str = "stop";

/// Lists the option keys accepted after the level; adding a key here is enough to accept it.
const KNOWN_OPTIONS: &[&str] = &[
    PREFER,
    ONLY,
    FAILBACK,
    MAX_RESTARTS_KEY,
    RESTART_WINDOW,
    COOLDOWN,
];

/// Names the option that lists a group's preferred nodes, best first.
pub const PREFER: &str = "prefer";

/// Names the option that lists the only nodes that may run a group.
pub const ONLY: &str = "only";

/// Names the option that says whether (and after how long) a group moves back to a
/// preferred node that returns.
pub const FAILBACK: &str = "failback";

/// How long a preferred node must have been alive before a group with `failback=yes` moves
/// back to it, in seconds: long enough that a node which flaps (comes back, dies again) does
/// not drag its groups along each time.
pub const FAILBACK_DELAY_S: u64 = 30;

/// Names the option that limits how often a group's `respawn` entries are restarted here
/// within the restart window before the group fails here and relocates.
pub const MAX_RESTARTS_KEY: &str = "max_restarts";

/// The largest `max_restarts=` accepted.
pub const MAX_RESTARTS: u32 = 1000;

/// Names the option that sets the window over which restarts are counted.
pub const RESTART_WINDOW: &str = "restart_window";

/// The default restart window, in seconds (10 minutes).
pub const RESTART_WINDOW_S: u64 = 600;

/// Names the option that sets how long a node where the group failed is no candidate for it.
pub const COOLDOWN: &str = "cooldown";

/// The default cooldown, in seconds (10 minutes): the engine's
/// [`crate::engine::Config::test_cooldown`].
pub const COOLDOWN_S: u64 = 600;

/// The longest duration any option accepts, in seconds (a day).
pub const MAX_DURATION_S: u64 = 86_400;

/// Most nodes that one `prefer=` or `only=` option lists.
pub const MAX_OPTION_NODES: usize = 64;

/// Describes one `hactl` line: the level a group should run at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The level the group should run at.
    pub level: String,
    /// The 1-based line this want is on.
    pub line: usize,
    /// The `key=value` fields after the level, as written (valid: see [`Want::prefer`] and
    /// [`Want::only`]).
    pub options: BTreeMap<String, String>,
}

impl Want {
    /// Returns the nodes its `prefer=` option lists, best first (none without the option).
    pub fn prefer(&self) -> Vec<&str> {
        self.options
            .get(PREFER)
            .map_or(Vec::new(), |v| v.split(',').collect())
    }

    /// Returns the nodes its `only=` option lists: the only ones that may run the group
    /// (`None`: any node may).
    pub fn only(&self) -> Option<BTreeSet<&str>> {
        self.options.get(ONLY).map(|v| v.split(',').collect())
    }

    /// Returns how long a preferred node must have been alive before the group moves back
    /// to it, in seconds (`None`: it never does, the default).
    pub fn failback(&self) -> Option<u64> {
        parse_failback(self.options.get(FAILBACK)?).ok().flatten()
    }

    /// Returns how many times the group's `respawn` entries may be restarted here within
    /// [`Want::restart_window`] (`None`: no limit, the default).
    pub fn max_restarts(&self) -> Option<u32> {
        parse_count(self.options.get(MAX_RESTARTS_KEY)?).ok()
    }

    /// Returns the window over which restarts are counted, in seconds.
    pub fn restart_window(&self) -> u64 {
        (self.options.get(RESTART_WINDOW))
            .and_then(|v| parse_duration(RESTART_WINDOW, v).ok())
            .unwrap_or(RESTART_WINDOW_S)
    }

    /// Returns how long a node where the group failed is no candidate for it, in seconds
    /// (`None`: the default, [`COOLDOWN_S`]).
    pub fn cooldown(&self) -> Option<u64> {
        parse_duration(COOLDOWN, self.options.get(COOLDOWN)?).ok()
    }
}

/// Holds a parsed `hactl` file: the wanted level of each group it names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hactl {
    /// The wants, by group name.
    pub groups: BTreeMap<String, Want>,
}

impl Hactl {
    /// Parses the text of a `hactl` file; `file` is the name printed in problems.
    ///
    /// Returns every error of the file otherwise, sorted by line (several per line are
    /// possible; at most [`text::MAX_PROBLEMS`] and a count of the rest).
    pub fn parse(file: &str, text: &str) -> Result<Hactl, Vec<Problem>> {
        let mut lines = text::Lines::new(file, text, "replicated files")?;
        let mut hactl = Hactl::default();
        let mut errors = Vec::new();
        let mut first_line: BTreeMap<String, usize> = BTreeMap::new();

        while let Some((line, content)) = lines.next() {
            let mut fields = content.split_ascii_whitespace();
            let Some(group) = fields.next() else {
                continue; // blank line
            };
            if group.starts_with('#') {
                continue;
            }
            if !lines.entry(line, "groups") {
                break;
            }

            let mut messages = Vec::new();
            let group_ok = match check_name("group", group) {
                Ok(()) => true,
                Err(message) => {
                    messages.push(message);
                    false
                }
            };
            let level = match fields.next() {
                None => {
                    messages.push(format!("missing level for group '{group}'"));
                    None
                }
                Some(level) if level == crate::config::modes::PROBE => {
                    messages.push(crate::config::cltab::reserved_probe());
                    None
                }
                Some(level) => match check_name("level", level) {
                    Ok(()) => Some(level),
                    Err(message) => {
                        messages.push(message);
                        None
                    }
                },
            };
            let options = parse_options(fields, KNOWN_OPTIONS, &mut messages);
            check_placement(&options, &mut messages);
            if let Some(Err(m)) = options.get(FAILBACK).map(|v| parse_failback(v)) {
                messages.push(m);
            }
            if let Some(Err(m)) = options.get(MAX_RESTARTS_KEY).map(|v| parse_count(v)) {
                messages.push(m);
            }
            for key in [RESTART_WINDOW, COOLDOWN] {
                if let Some(Err(m)) = options.get(key).map(|v| parse_duration(key, v)) {
                    messages.push(m);
                }
            }
            if group_ok {
                match first_line.entry(group.to_string()) {
                    MapEntry::Occupied(first) => messages.push(format!(
                        "duplicate group '{group}' (first at line {})",
                        first.get()
                    )),
                    MapEntry::Vacant(slot) => {
                        slot.insert(line);
                    }
                }
            }

            match level {
                Some(level) if messages.is_empty() => {
                    let want = Want {
                        level: level.to_string(),
                        line,
                        options,
                    };
                    hactl.groups.insert(group.to_string(), want);
                }
                _ => errors.extend(messages.into_iter().map(|m| Problem::new(file, line, m))),
            }
        }

        lines.finish(hactl, errors)
    }

    /// Returns the wanted level of `group`: its line's level, or "stop" when the group is absent.
    pub fn level_of(&self, group: &str) -> &str {
        self.groups
            .get(group)
            .map_or(STOP, |want| want.level.as_str())
    }
}

/// Parses the `key=value` fields after the level, accepting only keys in `known`; pushes a
/// message to `messages` for every bad field and returns the accepted options.
fn parse_options<'a>(
    fields: impl Iterator<Item = &'a str>,
    known: &[&str],
    messages: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut options = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            messages.push(format!(
                "unexpected field '{field}' (options are key=value)"
            ));
            continue;
        };
        if key.is_empty() {
            messages.push(format!("empty option name in '{field}'"));
        } else if value.is_empty() {
            messages.push(format!("empty value for option '{key}'"));
        } else if !seen.insert(key) {
            messages.push(format!("duplicate option '{key}'"));
        } else if !known.contains(&key) {
            messages.push(format!("unknown option '{key}'"));
        } else {
            options.insert(key.to_string(), value.to_string());
        }
    }
    options
}

/// Checks the node lists of the `prefer=` and `only=` options in `options`: node names
/// separated by commas, none twice, at most [`MAX_OPTION_NODES`]; and every preferred node
/// among the `only` ones. Pushes a message to `messages` for every fault.
fn check_placement(options: &BTreeMap<String, String>, messages: &mut Vec<String>) {
    let mut lists = BTreeMap::new();
    for key in [PREFER, ONLY] {
        let Some(value) = options.get(key) else {
            continue;
        };
        let nodes: Vec<&str> = value.split(',').collect();
        if nodes.len() > MAX_OPTION_NODES {
            messages.push(format!(
                "option '{key}' lists {} nodes; at most {MAX_OPTION_NODES}",
                nodes.len()
            ));
            continue;
        }
        let before = messages.len();
        let mut seen = BTreeSet::new();
        for node in &nodes {
            if let Err(message) = check_name("node", node) {
                messages.push(format!("option '{key}': {message}"));
            } else if !seen.insert(*node) {
                messages.push(format!("option '{key}': node '{node}' is listed twice"));
            }
        }
        if messages.len() == before {
            lists.insert(key, nodes);
        }
    }
    if let (Some(prefer), Some(only)) = (lists.get(PREFER), lists.get(ONLY)) {
        for node in prefer.iter().filter(|n| !only.contains(n)) {
            messages.push(format!(
                "option 'prefer' names '{node}', which option 'only' leaves out"
            ));
        }
    }
}

/// Parses the value of a `failback=` option: `no` (`None`), `yes` ([`FAILBACK_DELAY_S`]),
/// or a delay as [`parse_duration`] reads it.
fn parse_failback(value: &str) -> Result<Option<u64>, String> {
    match value {
        "no" => Ok(None),
        "yes" => Ok(Some(FAILBACK_DELAY_S)),
        _ => parse_duration(FAILBACK, value)
            .map(Some)
            .map_err(|_| format!("option 'failback': '{value}' is not yes, no or a delay from 1s to 24h (like 90s, 5m)")),
    }
}

/// Parses the value of a `max_restarts=` option: a count from 0 to [`MAX_RESTARTS`].
fn parse_count(value: &str) -> Result<u32, String> {
    (value.parse::<u32>().ok())
        .filter(|n| value.bytes().all(|b| b.is_ascii_digit()) && *n <= MAX_RESTARTS)
        .ok_or_else(|| {
            format!(
                "option '{MAX_RESTARTS_KEY}': '{value}' is not a count from 0 to {MAX_RESTARTS}"
            )
        })
}

/// Parses the duration value of option `key`: seconds (`90`), or with a suffix `s`, `m` or
/// `h` (`90s`, `5m`, `1h`), from 1 s to [`MAX_DURATION_S`]; returns seconds.
fn parse_duration(key: &str, value: &str) -> Result<u64, String> {
    let (digits, unit) = match value.char_indices().last() {
        Some((i, 's')) => (&value[..i], 1),
        Some((i, 'm')) => (&value[..i], 60),
        Some((i, 'h')) => (&value[..i], 3600),
        _ => (value, 1),
    };
    let seconds = (digits.parse::<u64>().ok())
        .filter(|d| digits.bytes().all(|b| b.is_ascii_digit()) && *d > 0)
        .and_then(|d| d.checked_mul(unit))
        .filter(|s| *s <= MAX_DURATION_S);
    seconds.ok_or_else(|| {
        format!("option '{key}': '{value}' is not a duration from 1s to 24h (like 90s, 5m)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Hactl {
        match Hactl::parse("hactl", text) {
            Ok(hactl) => hactl,
            Err(problems) => panic!("unexpected problems: {problems:?}"),
        }
    }

    /// Returns the problems of a text that must fail, printed as `file:line: message`.
    fn errors(text: &str) -> Vec<String> {
        match Hactl::parse("hactl", text) {
            Ok(hactl) => panic!("unexpectedly parsed: {hactl:?}"),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    fn want(level: &str, line: usize) -> Want {
        Want {
            level: level.to_string(),
            line,
            options: BTreeMap::new(),
        }
    }

    /// Runs `parse_options` on a field list with the given known keys.
    fn options(fields: &str, known: &[&str]) -> (BTreeMap<String, String>, Vec<String>) {
        let mut messages = Vec::new();
        let options = parse_options(fields.split_ascii_whitespace(), known, &mut messages);
        (options, messages)
    }

    #[test]
    fn parses_group_and_level_per_line() {
        let hactl = parse("web 1\ndb start\nmail stop\n");
        assert_eq!(hactl.groups.len(), 3);
        assert_eq!(hactl.groups["web"], want("1", 1));
        assert_eq!(hactl.groups["db"], want("start", 2));
        assert_eq!(hactl.groups["mail"], want("stop", 3));
    }

    #[test]
    fn level_of_defaults_to_stop() {
        let hactl = parse("web 1\ndb stop\n");
        assert_eq!(hactl.level_of("web"), "1");
        assert_eq!(hactl.level_of("db"), STOP);
        assert_eq!(hactl.level_of("absent"), STOP);
        assert_eq!(hactl.level_of(""), STOP);
        assert_eq!(Hactl::default().level_of("web"), "stop");
    }

    #[test]
    fn empty_and_comment_only_files_have_no_groups() {
        for text in ["", "\n", "   \n\t\n", "# nothing", " \t# indented\r\n\r\n"] {
            assert_eq!(parse(text), Hactl::default(), "{text:?}");
        }
    }

    #[test]
    fn skips_comments_and_blank_lines_and_keeps_line_numbers() {
        let hactl = parse("# header\n\n  # web 2\n\t\nweb 1\n#db 1\n");
        assert_eq!(hactl.groups.len(), 1);
        assert_eq!(hactl.groups["web"], want("1", 5));
    }

    #[test]
    fn accepts_any_ascii_whitespace_between_fields() {
        let hactl = parse("  web\t\t1  \ndb \t start\t\r\n");
        assert_eq!(hactl.groups["web"], want("1", 1));
        assert_eq!(hactl.groups["db"], want("start", 2));
        // A form feed is a control character, not a separator.
        assert_eq!(
            errors("db \x0c start"),
            vec!["hactl:1: control character U+000C in column 4: only TAB is allowed"]
        );
    }

    #[test]
    fn strips_carriage_returns_of_crlf_files() {
        let hactl = parse("web 1\r\ndb 2\r\n");
        assert_eq!(hactl.level_of("web"), "1");
        assert_eq!(hactl.level_of("db"), "2");
    }

    #[test]
    fn group_must_be_a_valid_name() {
        assert_eq!(
            errors("w*b 1"),
            vec![format!(
                "hactl:1: {}",
                check_name("group", "w*b").unwrap_err()
            )]
        );
        assert_eq!(
            errors(".web 1"),
            vec![format!(
                "hactl:1: {}",
                check_name("group", ".web").unwrap_err()
            )]
        );
        // Non-ASCII whitespace is not a separator: it ends up inside the group name.
        assert_eq!(
            errors("\u{a0}web 1"),
            vec![format!(
                "hactl:1: {}",
                check_name("group", "\u{a0}web").unwrap_err()
            )]
        );
    }

    #[test]
    fn level_must_be_a_valid_name() {
        assert_eq!(
            errors("web -1"),
            vec![format!(
                "hactl:1: {}",
                check_name("level", "-1").unwrap_err()
            )]
        );
        assert_eq!(
            errors("web 1,2"),
            vec![format!(
                "hactl:1: {}",
                check_name("level", "1,2").unwrap_err()
            )]
        );
    }

    #[test]
    fn missing_level_is_an_error() {
        assert_eq!(
            errors("web"),
            vec!["hactl:1: missing level for group 'web'"]
        );
        assert_eq!(
            errors("  web \t\r"),
            vec!["hactl:1: missing level for group 'web'"]
        );
    }

    #[test]
    fn field_without_equals_is_an_error() {
        assert_eq!(
            errors("web 1 node1"),
            vec!["hactl:1: unexpected field 'node1' (options are key=value)"]
        );
        assert_eq!(
            errors("web 1 # trailing comment"),
            vec![
                "hactl:1: unexpected field '#' (options are key=value)",
                "hactl:1: unexpected field 'trailing' (options are key=value)",
                "hactl:1: unexpected field 'comment' (options are key=value)",
            ]
        );
    }

    #[test]
    fn options_other_than_the_known_ones_are_unknown() {
        assert_eq!(
            KNOWN_OPTIONS,
            [
                PREFER,
                ONLY,
                FAILBACK,
                MAX_RESTARTS_KEY,
                RESTART_WINDOW,
                COOLDOWN
            ]
        );
        assert_eq!(
            errors("web 1 stickiness=100"),
            vec!["hactl:1: unknown option 'stickiness'"]
        );
    }

    #[test]
    fn the_restart_policy_and_the_cooldown_are_options() {
        let hactl =
            parse("a 1\nb 1 max_restarts=3 restart_window=2m cooldown=90\nc 1 max_restarts=0\n");
        let (a, b, c) = (&hactl.groups["a"], &hactl.groups["b"], &hactl.groups["c"]);
        assert_eq!(
            (a.max_restarts(), a.restart_window(), a.cooldown()),
            (None, 600, None)
        );
        assert_eq!(
            (b.max_restarts(), b.restart_window(), b.cooldown()),
            (Some(3), 120, Some(90))
        );
        assert_eq!(c.max_restarts(), Some(0));
        assert_eq!(
            errors("web 1 max_restarts=-1 restart_window=0 cooldown=2d\ndb 1 max_restarts=1001"),
            vec![
                "hactl:1: option 'max_restarts': '-1' is not a count from 0 to 1000",
                "hactl:1: option 'restart_window': '0' is not a duration from 1s to 24h (like 90s, 5m)",
                "hactl:1: option 'cooldown': '2d' is not a duration from 1s to 24h (like 90s, 5m)",
                "hactl:2: option 'max_restarts': '1001' is not a count from 0 to 1000",
            ]
        );
    }

    #[test]
    fn failback_is_no_yes_or_a_delay() {
        let hactl = parse("a 1\nb 1 failback=no\nc 1 failback=yes\nd 1 failback=90\ne 1 failback=5m\nf 1 failback=1h\n");
        let got: Vec<Option<u64>> = hactl.groups.values().map(Want::failback).collect();
        let want = [
            None,
            None,
            Some(FAILBACK_DELAY_S),
            Some(90),
            Some(300),
            Some(3600),
        ];
        assert_eq!(got, want);
        for bad in [
            "maybe",
            "0",
            "0s",
            "25h",
            "-5",
            "1.5m",
            "m",
            "99999999999999999999h",
        ] {
            assert_eq!(
                errors(&format!("web 1 failback={bad}")),
                vec![format!("hactl:1: option 'failback': '{bad}' is not yes, no or a delay from 1s to 24h (like 90s, 5m)")],
                "{bad}"
            );
        }
    }

    #[test]
    fn prefer_and_only_list_nodes() {
        let hactl = parse("web 1 prefer=n3,n1\ndb 1 only=n2,n1 prefer=n2\nmail 1\n");
        let web = &hactl.groups["web"];
        assert_eq!((web.prefer(), web.only()), (vec!["n3", "n1"], None));
        let db = &hactl.groups["db"];
        assert_eq!(db.prefer(), ["n2"]);
        assert_eq!(db.only(), Some(["n1", "n2"].into()));
        let mail = &hactl.groups["mail"];
        assert_eq!((mail.prefer(), mail.only()), (Vec::new(), None));
        // The most nodes a list may hold.
        let many: Vec<String> = (0..MAX_OPTION_NODES).map(|i| format!("n{i}")).collect();
        let hactl = parse(&format!("web 1 only={}", many.join(",")));
        assert_eq!(hactl.groups["web"].only().unwrap().len(), MAX_OPTION_NODES);
    }

    #[test]
    fn node_lists_must_hold_distinct_valid_names() {
        assert_eq!(
            errors("web 1 prefer=n1,,n2\ndb 1 only=n1,n/2\nmail 1 prefer=n1,n2,n1 only=n2,"),
            vec![
                format!(
                    "hactl:1: option 'prefer': {}",
                    check_name("node", "").unwrap_err()
                ),
                format!(
                    "hactl:2: option 'only': {}",
                    check_name("node", "n/2").unwrap_err()
                ),
                "hactl:3: option 'prefer': node 'n1' is listed twice".to_string(),
                format!(
                    "hactl:3: option 'only': {}",
                    check_name("node", "").unwrap_err()
                ),
            ]
        );
        let many: Vec<String> = (0..=MAX_OPTION_NODES).map(|i| format!("n{i}")).collect();
        assert_eq!(
            errors(&format!("web 1 prefer={}", many.join(","))),
            vec!["hactl:1: option 'prefer' lists 65 nodes; at most 64"]
        );
    }

    #[test]
    fn preferred_nodes_must_be_among_the_only_ones() {
        assert_eq!(
            errors("web 1 prefer=n4,n1,n5 only=n1,n2,n3\ndb 1 only=n1 prefer=n1\n"),
            vec![
                "hactl:1: option 'prefer' names 'n4', which option 'only' leaves out",
                "hactl:1: option 'prefer' names 'n5', which option 'only' leaves out",
            ]
        );
    }

    #[test]
    fn option_errors_are_collected_with_the_others() {
        assert_eq!(
            errors("web 1 prefer=n1,n1\nbad\ndb 1 only=x, prefer=y"),
            vec![
                "hactl:1: option 'prefer': node 'n1' is listed twice".to_string(),
                "hactl:2: missing level for group 'bad'".to_string(),
                format!(
                    "hactl:3: option 'only': {}",
                    check_name("node", "").unwrap_err()
                ),
            ]
        );
    }

    #[test]
    fn option_needs_a_name_and_a_value() {
        assert_eq!(
            errors("web 1 =x"),
            vec!["hactl:1: empty option name in '=x'"]
        );
        assert_eq!(errors("web 1 ="), vec!["hactl:1: empty option name in '='"]);
        assert_eq!(
            errors("web 1 k="),
            vec!["hactl:1: empty value for option 'k'"]
        );
    }

    #[test]
    fn duplicate_option_on_one_line_is_an_error() {
        assert_eq!(
            errors("web 1 k=1 k=2"),
            vec![
                "hactl:1: unknown option 'k'",
                "hactl:1: duplicate option 'k'"
            ]
        );
        let (accepted, messages) = options("k=1 j=2 k=1", &["k", "j"]);
        assert_eq!(messages, vec!["duplicate option 'k'"]);
        assert_eq!(accepted.len(), 2);
    }

    #[test]
    fn known_options_are_kept() {
        let (accepted, messages) = options("prefer=a,b when=x=y", &["prefer", "when"]);
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(accepted["prefer"], "a,b");
        assert_eq!(accepted["when"], "x=y");
        let (accepted, messages) = options("", &[]);
        assert!(accepted.is_empty() && messages.is_empty());
        let (accepted, messages) = options("prefer=a other=b", &["prefer"]);
        assert_eq!(messages, vec!["unknown option 'other'"]);
        assert_eq!(accepted.len(), 1);
    }

    #[test]
    fn duplicate_group_names_the_first_line() {
        assert_eq!(
            errors("web 1\ndb 2\n\nweb 2\nweb stop\n"),
            vec![
                "hactl:4: duplicate group 'web' (first at line 1)",
                "hactl:5: duplicate group 'web' (first at line 1)",
            ]
        );
    }

    #[test]
    fn a_group_counts_as_named_even_on_a_line_with_other_errors() {
        assert_eq!(
            errors("web\nweb 1"),
            vec![
                "hactl:1: missing level for group 'web'",
                "hactl:2: duplicate group 'web' (first at line 1)",
            ]
        );
    }

    #[test]
    fn every_error_of_a_line_is_reported() {
        assert_eq!(
            errors("w/b -x y =z"),
            vec![
                format!("hactl:1: {}", check_name("group", "w/b").unwrap_err()),
                format!("hactl:1: {}", check_name("level", "-x").unwrap_err()),
                "hactl:1: unexpected field 'y' (options are key=value)".to_string(),
                "hactl:1: empty option name in '=z'".to_string(),
            ]
        );
    }

    #[test]
    fn errors_of_the_whole_file_are_collected_in_line_order() {
        assert_eq!(
            errors("web 1\nbad\n# ok\ndb 1 x\nweb 2\n"),
            vec![
                "hactl:2: missing level for group 'bad'",
                "hactl:4: unexpected field 'x' (options are key=value)",
                "hactl:5: duplicate group 'web' (first at line 1)",
            ]
        );
    }

    #[test]
    fn problems_carry_the_given_file_name() {
        let Err(problems) = Hactl::parse("/etc/mosha/hactl", "\n\nweb") else {
            panic!("expected an error");
        };
        assert_eq!(problems[0].file, "/etc/mosha/hactl");
        assert_eq!(problems[0].line, 3);
        assert_eq!(
            problems[0].to_string(),
            "/etc/mosha/hactl:3: missing level for group 'web'"
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            "=",
            "= =",
            "a = =",
            "\r",
            "\r\r\n",
            "é ü",
            "web 1 ==",
            "web 1 a==",
            "\u{0} \u{0}",
            "#",
            "web\u{feff} 1",
            "x y z=1=2=3 z=",
            "\u{b}web 1",
        ];
        for text in odd {
            // Each is either a file that parses, or errors that all name a line of it.
            if let Err(problems) = Hactl::parse("hactl", text) {
                let lines = text.split('\n').count();
                assert!(!problems.is_empty(), "{text:?}");
                for p in problems {
                    assert!((1..=lines).contains(&p.line), "{text:?}: {p}");
                    assert!(p.to_string().starts_with("hactl:"), "{text:?}: {p}");
                }
            }
        }
        // Some of them are plainly wrong.
        assert!(Hactl::parse("hactl", "web 1 ==").is_err());
        assert!(Hactl::parse("hactl", "\u{0} \u{0}").is_err());
        assert!(Hactl::parse("hactl", "#").is_ok());
    }

    #[test]
    fn control_characters_and_oversized_files_are_errors() {
        assert_eq!(
            errors("web start\ndb\u{0} start\n"),
            vec!["hactl:2: control character U+0000 in column 3: only TAB is allowed"]
        );
        let big = "# x\n".repeat(text::MAX_FILE_BYTES / 4 + 1);
        assert_eq!(errors(&big).len(), 1);
        let many: String = (0..=text::MAX_ENTRIES)
            .map(|i| format!("g{i} 1\n"))
            .collect();
        assert_eq!(
            errors(&many),
            vec!["hactl:10001: more than 10000 groups; a file holds at most 10000"]
        );
    }
}
