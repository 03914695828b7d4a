//! The `cltab` file: which processes each resource group runs, at which levels, and how.
//!
//! The format is inherited from Perl's Cluster::Init, one entry per line:
//!
//! ```text
//! # group:tag:levels:mode:command
//! web:apache:1,start:respawn:/usr/sbin/apache2 -DFOREGROUND
//! web:check:12:test:/usr/local/bin/check-web
//! ```
//!
//! - Lines are split on `\n` and lose a trailing `\r`; blank lines and lines whose first
//!   non-blank character is `#` are skipped. A `#` later in a line is part of the command.
//! - A line starting with `:::` is a Cluster::Init directive (`:::NAME:VALUE`): it is
//!   accepted with a warning and otherwise ignored.
//! - The command is everything after the fourth `:`, so it may itself contain `:`.
//! - The levels field is a comma-separated list of level names (`long1,long2,5`; empty pieces
//!   at either end are tolerated), or, without a comma, either a run of digits where each digit
//!   is one level (`12` is levels `1` and `2`, as in inittab) or a single level name (`start`).
//! - Tags are unique across the whole file.
//! - The limits of [`crate::config::text`] apply: at most 1 MiB, lines of at most 4096 bytes,
//!   no control character but TAB (a NUL byte in a command is refused here, not at exec on
//!   every node in turn), at most 10,000 entries.
//!
//! This module owns the syntax and the checks that need only the file itself; it reads no
//! files and runs nothing.

use std::collections::btree_map::Entry as MapEntry;
use std::collections::{BTreeMap, BTreeSet};

use crate::config::modes::{self, Params};
use crate::config::{check_name, text, Problem};

pub use crate::config::modes::Mode;

/// Describes one valid `cltab` line: a command that a group runs at some levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The resource group the entry belongs to.
    pub group: String,
    /// The entry's name, unique in the file.
    pub tag: String,
    /// The level names, in the order written, without duplicates.
    pub levels: Vec<String>,
    /// How the command is run.
    pub mode: Mode,
    /// The parameters of a `monitor` or `resource` mode (defaults for the others).
    pub params: Params,
    /// The command, trimmed of surrounding whitespace.
    pub command: String,
    /// The 1-based line the entry is on.
    pub line: usize,
}

impl Entry {
    /// Returns whether the entry runs at `level`, comparing names literally (never as a pattern).
    pub fn in_level(&self, level: &str) -> bool {
        self.levels.iter().any(|l| l == level)
    }

    /// Returns whether `other` describes the same process: same group, mode and command, even
    /// if the levels differ.
    pub fn same_process(&self, other: &Entry) -> bool {
        self.group == other.group
            && self.mode == other.mode
            && self.command == other.command
            && self.params == other.params
    }
}

/// Holds a parsed `cltab` file: its entries in file order and the warnings found on the way.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cltab {
    /// The entries, in file order.
    pub entries: Vec<Entry>,
    /// Lines that are legal but probably not what the operator meant (e.g. directives).
    pub warnings: Vec<Problem>,
    /// Group → the indices of its entries in `entries`, in file order (built by
    /// [`Cltab::parse`]), so that a lookup by group does not scan thousands of entries.
    by_group: BTreeMap<String, Vec<usize>>,
}

impl Cltab {
    /// Parses the text of a `cltab` file; `file` is the name printed in problems.
    ///
    /// Returns every error of the file, sorted by line (several per line are possible; at most
    /// [`text::MAX_PROBLEMS`] and a count of the rest). On error the warnings are dropped: the
    /// returned problems are all errors.
    pub fn parse(file: &str, text: &str) -> Result<Cltab, Vec<Problem>> {
        let mut lines = text::Lines::new(file, text, "replicated files")?;
        let mut cltab = Cltab::default();
        let mut errors = Vec::new();
        let mut first_tag: BTreeMap<String, usize> = BTreeMap::new();

        while let Some((line, content)) = lines.next() {
            let start = content.trim_start();
            if start.is_empty() || start.starts_with('#') {
                continue;
            }
            if !lines.entry(line, "entries") {
                break;
            }
            if let Some(directive) = start.strip_prefix(":::") {
                let name = directive.split(':').next().unwrap_or("").trim();
                cltab.warnings.push(Problem::new(
                    file,
                    line,
                    format!("directive ':::{name}' is a Cluster::Init setting that mosha ignores"),
                ));
                continue;
            }

            let mut messages = Vec::new();
            let entry = parse_entry(content, line, &mut first_tag, &mut messages);
            match entry {
                Some(entry) if messages.is_empty() => cltab.entries.push(entry),
                _ => errors.extend(messages.into_iter().map(|m| Problem::new(file, line, m))),
            }
        }

        for (i, e) in cltab.entries.iter().enumerate() {
            cltab.by_group.entry(e.group.clone()).or_default().push(i);
        }
        lines.finish(cltab, errors)
    }

    /// Returns the distinct group names, in order of first appearance.
    pub fn groups(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.entries
            .iter()
            .map(|e| e.group.as_str())
            .filter(|g| seen.insert(*g))
            .collect()
    }

    /// Returns the entries of `group`, in file order.
    pub fn entries_of<'a>(&'a self, group: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        (self.by_group.get(group).into_iter().flatten()).filter_map(|&i| self.entries.get(i))
    }

    /// Returns whether `group` has at least one entry.
    pub fn has_group(&self, group: &str) -> bool {
        self.by_group.contains_key(group)
    }

    /// Returns the names of the groups that have entries, sorted.
    pub fn group_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.by_group.keys().map(String::as_str)
    }

    /// Returns the distinct levels used by the entries of `group`, in order of first appearance.
    pub fn levels_of(&self, group: &str) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.entries_of(group)
            .flat_map(|e| e.levels.iter().map(String::as_str))
            .filter(|l| seen.insert(*l))
            .collect()
    }

    /// Returns the entry named `tag`, if any.
    pub fn entry(&self, tag: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }
}

/// Parses one non-comment, non-directive line, pushing every problem to `messages` and
/// recording a valid tag's first line in `first_tag`. Returns an entry only if all fields are
/// valid (the caller still checks `messages`, which holds the duplicate-tag error).
fn parse_entry(
    content: &str,
    line: usize,
    first_tag: &mut BTreeMap<String, usize>,
    messages: &mut Vec<String>,
) -> Option<Entry> {
    let fields: Vec<&str> = content.splitn(5, ':').collect();
    let [group, tag, levels, mode, command] = fields.as_slice() else {
        messages.push(format!(
            "expected group:tag:levels:mode:command, found {} field(s)",
            fields.len()
        ));
        return None;
    };
    let (group, tag, levels, mode) = (group.trim(), tag.trim(), levels.trim(), mode.trim());
    let command = command.trim();

    let group_ok = keep(check_name("group", group), messages).is_some();
    let tag_ok = keep(check_name("tag", tag), messages).is_some();
    let levels = match parse_levels(levels) {
        Ok(levels) => Some(levels),
        Err(problems) => {
            messages.extend(problems);
            None
        }
    };
    let mode = match modes::parse(mode) {
        Ok(m) => Some(m),
        Err(problems) => {
            messages.extend(problems);
            None
        }
    };
    if command.is_empty() {
        messages.push("empty command".to_string());
    }
    let agent = ["ocf:", "lsb:", "systemd:"]
        .iter()
        .any(|c| command.starts_with(c));
    match mode {
        Some((Mode::Resource, _)) if !agent => messages.push(format!(
            "mode resource runs an agent (ocf:PROVIDER:TYPE, lsb:NAME or systemd:UNIT), not '{}'",
            command.split_whitespace().next().unwrap_or("")
        )),
        Some((m, _)) if agent && !matches!(m, Mode::Resource | Mode::Off) => {
            messages.push(format!(
                "an agent ('{}') runs in mode resource, not {m}",
                command.split_whitespace().next().unwrap_or("")
            ))
        }
        _ => {}
    }
    if let (Some((Mode::Resource, _)), Some(Err(e))) = (
        mode,
        agent.then(|| crate::agent::Agent::parse(command)).flatten(),
    ) {
        messages.push(e);
    }
    if tag_ok {
        match first_tag.entry(tag.to_string()) {
            MapEntry::Occupied(first) => messages.push(format!(
                "duplicate tag '{tag}' (first defined at line {})",
                first.get()
            )),
            MapEntry::Vacant(slot) => {
                slot.insert(line);
            }
        }
    }

    match (group_ok && tag_ok && !command.is_empty(), levels, mode) {
        (true, Some(levels), Some((mode, params))) => Some(Entry {
            group: group.to_string(),
            tag: tag.to_string(),
            levels,
            mode,
            params,
            command: command.to_string(),
            line,
        }),
        _ => None,
    }
}

/// Says that the level `probe` is mosha's.
pub fn reserved_probe() -> String {
    format!(
        "level '{}' is reserved: a group shows it while mosha probes its resources",
        crate::config::modes::PROBE
    )
}

/// Returns the value of `result`, or pushes its error to `messages` and returns `None`.
fn keep<T>(result: Result<T, String>, messages: &mut Vec<String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(message) => {
            messages.push(message);
            None
        }
    }
}

/// Parses a trimmed levels field into distinct level names, in the order written; returns every
/// problem with it otherwise.
fn parse_levels(field: &str) -> Result<Vec<String>, Vec<String>> {
    if field.is_empty() {
        return Err(vec!["empty levels".to_string()]);
    }
    let mut problems = Vec::new();
    let names: Vec<String> = if field.contains(',') {
        let pieces: Vec<&str> = field.split(',').map(str::trim).collect();
        let first = pieces.iter().position(|p| !p.is_empty());
        let last = pieces.iter().rposition(|p| !p.is_empty());
        let inner = match (first, last) {
            (Some(first), Some(last)) => pieces.get(first..=last).unwrap_or(&[]),
            _ => return Err(vec!["no levels".to_string()]),
        };
        if inner.iter().any(|p| p.is_empty()) {
            problems.push("empty level between commas".to_string());
        }
        inner
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| p.to_string())
            .collect()
    } else if field.bytes().all(|b| b.is_ascii_digit()) {
        field.chars().map(String::from).collect()
    } else {
        vec![field.to_string()]
    };

    let mut levels: Vec<String> = Vec::new();
    for name in names {
        if let Err(message) = check_name("level", &name) {
            problems.push(message);
        } else if name == crate::config::modes::PROBE {
            problems.push(reserved_probe());
        } else if !levels.contains(&name) {
            levels.push(name);
        }
    }
    if problems.is_empty() {
        Ok(levels)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Cltab {
        match Cltab::parse("cltab", text) {
            Ok(cltab) => cltab,
            Err(problems) => panic!("unexpected problems: {problems:?}"),
        }
    }

    /// Returns the problems of a text that must fail, printed as `file:line: message`.
    fn errors(text: &str) -> Vec<String> {
        match Cltab::parse("cltab", text) {
            Ok(cltab) => panic!("unexpectedly parsed: {cltab:?}"),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    /// Returns the levels of the single entry of a line with the given levels field.
    fn levels(field: &str) -> Vec<String> {
        let cltab = parse(&format!("g:t:{field}:once:cmd"));
        assert_eq!(cltab.entries.len(), 1);
        cltab.entries[0].levels.clone()
    }

    fn level_errors(field: &str) -> Vec<String> {
        errors(&format!("g:t:{field}:once:cmd"))
    }

    #[test]
    fn mode_round_trips_through_str_and_display() {
        let names = ["wait", "once", "respawn", "test", "off"];
        for (mode, name) in Mode::ALL.into_iter().zip(names) {
            assert_eq!(mode.as_str(), name);
            assert_eq!(mode.to_string(), name);
            assert_eq!(name.parse::<Mode>(), Ok(mode));
        }
        assert_eq!(format!("{:>6}|", Mode::Off), "   off|");
    }

    #[test]
    fn mode_blocks_only_for_wait_and_test() {
        assert!(Mode::Wait.blocks());
        assert!(Mode::Test.blocks());
        assert!(!Mode::Once.blocks());
        assert!(!Mode::Respawn.blocks());
        assert!(!Mode::Off.blocks());
    }

    #[test]
    fn mode_rejects_unknown_upper_case_padded_and_empty_names() {
        let expected = |s: &str| {
            Err(format!(
                "unknown mode '{s}' (expected wait, once, respawn, test, off, monitor/INTERVAL or resource)"
            ))
        };
        for bad in ["Wait", "ONCE", "respawn ", " off", "", "sysinit", "w"] {
            assert_eq!(bad.parse::<Mode>(), expected(bad), "{bad:?}");
        }
    }

    #[test]
    fn parses_every_field_of_an_entry() {
        let cltab = parse("web:apache:1,start:respawn:/usr/sbin/apache2 -DFOREGROUND\n");
        assert_eq!(
            cltab.entries,
            vec![Entry {
                group: "web".into(),
                tag: "apache".into(),
                levels: vec!["1".into(), "start".into()],
                mode: Mode::Respawn,
                params: modes::parse("respawn").unwrap().1,
                command: "/usr/sbin/apache2 -DFOREGROUND".into(),
                line: 1,
            }]
        );
        assert!(cltab.warnings.is_empty());
    }

    #[test]
    fn checks_and_resources_are_validated_with_their_agents() {
        let c = parse("web:vip:start:resource/10s/5s:ocf:heartbeat:IPaddr2 ip=10.0.0.5\nweb:ck:start:monitor/2s:curl -fs http://x/\n");
        assert_eq!(
            c.entries[0].params.interval,
            Some(std::time::Duration::from_secs(10))
        );
        assert_eq!(c.entries[1].mode, Mode::Monitor);
        assert_eq!(
            errors("a:b:start:resource:/bin/true\na:c:start:wait:ocf:heartbeat:Dummy\na:d:start:resource:ocf:heartbeat:\na:e:probe:wait:x"),
            vec![
                "cltab:1: mode resource runs an agent (ocf:PROVIDER:TYPE, lsb:NAME or systemd:UNIT), not '/bin/true'",
                "cltab:2: an agent ('ocf:heartbeat:Dummy') runs in mode resource, not wait",
                "cltab:3: ocf agent 'ocf:heartbeat:' has no type (expected ocf:PROVIDER:TYPE)",
                "cltab:4: level 'probe' is reserved: a group shows it while mosha probes its resources",
            ]
        );
    }

    #[test]
    fn parses_every_mode() {
        let cltab = parse(
            "g:a:1:wait:x\ng:b:1:once:x\ng:c:1:respawn:x\ng:d:1:test:x\ng:e:1:off:x\n\
             g:f:1:monitor/10s:x\ng:g:1:resource:ocf:heartbeat:Dummy",
        );
        let modes: Vec<Mode> = cltab.entries.iter().map(|e| e.mode).collect();
        assert_eq!(modes, Mode::ALL.to_vec());
    }

    #[test]
    fn empty_and_comment_only_files_have_no_entries() {
        for text in ["", "\n", "\n\n\n", "# nothing\n", "  \t \r\n#x\r\n"] {
            assert_eq!(parse(text), Cltab::default(), "{text:?}");
        }
    }

    #[test]
    fn skips_comments_and_blank_lines_and_keeps_line_numbers() {
        let text = "# header\n\n   \n\t# indented comment\n \t \ng:t:1:once:cmd\n#g:u:1:once:cmd\n";
        let cltab = parse(text);
        assert_eq!(cltab.entries.len(), 1);
        assert_eq!(cltab.entries[0].line, 6);
    }

    #[test]
    fn hash_after_the_first_character_belongs_to_the_command() {
        let cltab = parse("g:t:1:once:echo hi # not a comment");
        assert_eq!(cltab.entries[0].command, "echo hi # not a comment");
    }

    #[test]
    fn strips_carriage_returns_of_crlf_files() {
        let cltab = parse("g:a:1:once:first\r\n\r\ng:b:start:wait:second\r\n");
        assert_eq!(cltab.entries[0].command, "first");
        assert_eq!(cltab.entries[1].command, "second");
        assert_eq!(cltab.entries[1].levels, vec!["start".to_string()]);
        assert_eq!(cltab.entries[1].line, 3);
        // Only one carriage return at the very end is stripped: any other is an error.
        assert_eq!(
            errors("g:b:start\r:wait:second\r\n"),
            vec!["cltab:1: control character U+000D in column 10: only TAB is allowed"]
        );
    }

    #[test]
    fn command_may_contain_colons() {
        let cltab = parse("g:t:1:once:ssh host:22 'a:b' ::");
        assert_eq!(cltab.entries[0].command, "ssh host:22 'a:b' ::");
    }

    #[test]
    fn trims_every_field() {
        let cltab = parse("  web \t: apache :  1,2 : respawn :   run it  \t");
        let entry = &cltab.entries[0];
        assert_eq!(entry.group, "web");
        assert_eq!(entry.tag, "apache");
        assert_eq!(entry.levels, vec!["1".to_string(), "2".to_string()]);
        assert_eq!(entry.mode, Mode::Respawn);
        assert_eq!(entry.command, "run it");
    }

    #[test]
    fn directive_is_a_warning_not_an_error() {
        let cltab = parse("g:t:1:once:cmd\n:::socket:/var/run/clinit\n  :::log:/tmp/x\n:::\n");
        assert_eq!(cltab.entries.len(), 1);
        let warnings: Vec<String> = cltab.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            vec![
                "cltab:2: directive ':::socket' is a Cluster::Init setting that mosha ignores",
                "cltab:3: directive ':::log' is a Cluster::Init setting that mosha ignores",
                "cltab:4: directive ':::' is a Cluster::Init setting that mosha ignores",
            ]
        );
    }

    #[test]
    fn warnings_are_dropped_when_there_are_errors() {
        assert_eq!(
            errors(":::socket:/x\ng:t:1:bad:cmd"),
            vec!["cltab:2: unknown mode 'bad' (expected wait, once, respawn, test, off, monitor/INTERVAL or resource)"]
        );
    }

    #[test]
    fn too_few_fields_is_an_error_naming_the_count() {
        for (text, n) in [
            ("web", 1),
            ("web:t", 2),
            ("web:t:1", 3),
            ("web:t:1:once", 4),
        ] {
            assert_eq!(
                errors(text),
                vec![format!(
                    "cltab:1: expected group:tag:levels:mode:command, found {n} field(s)"
                )],
                "{text:?}"
            );
        }
    }

    #[test]
    fn group_must_be_a_valid_name() {
        assert_eq!(errors(":t:1:once:cmd"), vec!["cltab:1: empty group"]);
        assert_eq!(errors("  :t:1:once:cmd"), vec!["cltab:1: empty group"]);
        assert_eq!(
            errors("we b:t:1:once:cmd"),
            vec![format!(
                "cltab:1: {}",
                check_name("group", "we b").unwrap_err()
            )]
        );
        assert_eq!(
            errors("-web:t:1:once:cmd"),
            vec![format!(
                "cltab:1: {}",
                check_name("group", "-web").unwrap_err()
            )]
        );
    }

    #[test]
    fn tag_must_be_a_valid_name() {
        assert_eq!(errors("g::1:once:cmd"), vec!["cltab:1: empty tag"]);
        assert_eq!(
            errors("g:t/x:1:once:cmd"),
            vec![format!(
                "cltab:1: {}",
                check_name("tag", "t/x").unwrap_err()
            )]
        );
        assert_eq!(
            errors("g:.t:1:once:cmd"),
            vec![format!("cltab:1: {}", check_name("tag", ".t").unwrap_err())]
        );
    }

    #[test]
    fn digit_levels_are_one_level_per_digit() {
        assert_eq!(levels("12"), vec!["1", "2"]);
        assert_eq!(levels("0"), vec!["0"]);
        assert_eq!(levels("0123456789").len(), 10);
    }

    #[test]
    fn a_name_without_comma_is_one_level() {
        assert_eq!(levels("start"), vec!["start"]);
        assert_eq!(levels("1a"), vec!["1a"]);
        assert_eq!(levels("long_3.x-y"), vec!["long_3.x-y"]);
    }

    #[test]
    fn comma_lists_are_split_on_commas_only() {
        assert_eq!(levels("long1,long2,5"), vec!["long1", "long2", "5"]);
        assert_eq!(levels("12,3"), vec!["12", "3"]);
        assert_eq!(levels("a , b"), vec!["a", "b"]);
    }

    #[test]
    fn empty_pieces_at_the_ends_of_a_comma_list_are_skipped() {
        assert_eq!(levels("long3,"), vec!["long3"]);
        assert_eq!(levels(",long3"), vec!["long3"]);
        assert_eq!(levels(",,a,b,,"), vec!["a", "b"]);
        assert_eq!(levels(" , a , "), vec!["a"]);
    }

    #[test]
    fn duplicate_levels_are_removed_keeping_the_first() {
        assert_eq!(levels("2112"), vec!["2", "1"]);
        assert_eq!(levels("b,a,b,a"), vec!["b", "a"]);
    }

    #[test]
    fn empty_levels_field_is_an_error() {
        assert_eq!(level_errors(""), vec!["cltab:1: empty levels"]);
        assert_eq!(level_errors(" \t "), vec!["cltab:1: empty levels"]);
    }

    #[test]
    fn comma_list_without_any_level_is_an_error() {
        for field in [",", ",,", " , , "] {
            assert_eq!(level_errors(field), vec!["cltab:1: no levels"], "{field:?}");
        }
    }

    #[test]
    fn empty_level_between_commas_is_an_error() {
        assert_eq!(
            level_errors("a,,b"),
            vec!["cltab:1: empty level between commas"]
        );
        assert_eq!(
            level_errors(",a, ,b,"),
            vec!["cltab:1: empty level between commas"]
        );
    }

    #[test]
    fn every_invalid_level_name_is_reported() {
        assert_eq!(
            level_errors("a b"),
            vec![format!(
                "cltab:1: {}",
                check_name("level", "a b").unwrap_err()
            )]
        );
        assert_eq!(
            level_errors("ok,-x,y*,,z"),
            vec![
                "cltab:1: empty level between commas".to_string(),
                format!("cltab:1: {}", check_name("level", "-x").unwrap_err()),
                format!("cltab:1: {}", check_name("level", "y*").unwrap_err()),
            ]
        );
    }

    #[test]
    fn unknown_mode_is_an_error() {
        assert_eq!(
            errors("g:t:1:sysinit:cmd"),
            vec!["cltab:1: unknown mode 'sysinit' (expected wait, once, respawn, test, off, monitor/INTERVAL or resource)"]
        );
        assert_eq!(
            errors("g:t:1::cmd"),
            vec!["cltab:1: unknown mode '' (expected wait, once, respawn, test, off, monitor/INTERVAL or resource)"]
        );
    }

    #[test]
    fn empty_command_is_an_error() {
        assert_eq!(errors("g:t:1:once:"), vec!["cltab:1: empty command"]);
        assert_eq!(errors("g:t:1:once: \t \r"), vec!["cltab:1: empty command"]);
    }

    #[test]
    fn duplicate_tags_are_errors_across_groups() {
        let text = "a:t:1:once:x\nb:u:1:once:x\nb:t:2:once:y\nc: t :3:once:z\n";
        assert_eq!(
            errors(text),
            vec![
                "cltab:3: duplicate tag 't' (first defined at line 1)",
                "cltab:4: duplicate tag 't' (first defined at line 1)",
            ]
        );
    }

    #[test]
    fn a_tag_counts_as_defined_even_on_a_line_with_other_errors() {
        assert_eq!(
            errors("g:t:1:bogus:x\ng:t:1:once:x"),
            vec![
                "cltab:1: unknown mode 'bogus' (expected wait, once, respawn, test, off, monitor/INTERVAL or resource)",
                "cltab:2: duplicate tag 't' (first defined at line 1)",
            ]
        );
    }

    #[test]
    fn every_error_of_a_line_is_reported() {
        assert_eq!(
            errors("::a,,b:nope:"),
            vec![
                "cltab:1: empty group",
                "cltab:1: empty tag",
                "cltab:1: empty level between commas",
                "cltab:1: unknown mode 'nope' (expected wait, once, respawn, test, off, monitor/INTERVAL or resource)",
                "cltab:1: empty command",
            ]
        );
    }

    #[test]
    fn errors_of_the_whole_file_are_collected_in_line_order() {
        let text = "g:a:1:once:x\nbad line\n# fine\ng:b::once:x\ng:c:1:once:x\ng:a:1:once:x\n";
        assert_eq!(
            errors(text),
            vec![
                "cltab:2: expected group:tag:levels:mode:command, found 1 field(s)",
                "cltab:4: empty levels",
                "cltab:6: duplicate tag 'a' (first defined at line 1)",
            ]
        );
    }

    #[test]
    fn problems_carry_the_given_file_name() {
        let Err(problems) = Cltab::parse("/etc/mosha/cltab", "\nx") else {
            panic!("expected an error");
        };
        assert_eq!(problems[0].file, "/etc/mosha/cltab");
        assert_eq!(problems[0].line, 2);
        assert_eq!(
            problems[0].to_string(),
            "/etc/mosha/cltab:2: expected group:tag:levels:mode:command, found 1 field(s)"
        );
    }

    #[test]
    fn in_level_compares_literally() {
        let cltab = parse("g:t:12,a.b,x-1:once:cmd");
        let entry = &cltab.entries[0];
        assert!(entry.in_level("12"));
        assert!(entry.in_level("a.b"));
        assert!(entry.in_level("x-1"));
        for other in ["1", "2", "a", "a?b", "a*", "*", ".*", "", "x-", "A.B"] {
            assert!(!entry.in_level(other), "{other:?}");
        }
        let digits = parse("g:t:12:once:cmd");
        assert!(digits.entries[0].in_level("1"));
        assert!(digits.entries[0].in_level("2"));
        assert!(!digits.entries[0].in_level("12"));
    }

    #[test]
    fn same_process_ignores_tag_levels_and_line() {
        let cltab = parse(
            "g:a:1:respawn:run\ng:b:2,3:respawn: run \ng:c:1:once:run\nh:d:1:respawn:run\ng:e:1:respawn:run2",
        );
        let e = &cltab.entries;
        assert!(e[0].same_process(&e[1]));
        assert!(e[1].same_process(&e[0]));
        assert!(e[0].same_process(&e[0]));
        assert!(!e[0].same_process(&e[2]), "mode differs");
        assert!(!e[0].same_process(&e[3]), "group differs");
        assert!(!e[0].same_process(&e[4]), "command differs");
    }

    #[test]
    fn group_queries_follow_file_order() {
        let cltab = parse("web:a:1:once:x\ndb:b:2:once:x\nweb:c:3,1:once:x\nmail:d:0:off:x\n");
        assert_eq!(cltab.groups(), vec!["web", "db", "mail"]);
        let web: Vec<&str> = cltab.entries_of("web").map(|e| e.tag.as_str()).collect();
        assert_eq!(web, vec!["a", "c"]);
        assert_eq!(cltab.entries_of("nope").count(), 0);
        assert!(cltab.has_group("db"));
        assert!(!cltab.has_group("DB"));
        assert!(!cltab.has_group(""));
        assert_eq!(cltab.levels_of("web"), vec!["1", "3"]);
        assert!(cltab.levels_of("nope").is_empty());
        assert_eq!(cltab.entry("b").map(|e| e.line), Some(2));
        assert!(cltab.entry("z").is_none());
        assert!(Cltab::default().groups().is_empty());
    }

    #[test]
    fn a_nul_byte_in_a_command_is_refused_with_its_line_and_column() {
        assert_eq!(
            errors("g:a:1:once:x\ng:b:1:once:/bin/echo a\u{0}b\n"),
            vec!["cltab:2: control character U+0000 in column 23: only TAB is allowed"]
        );
        // Other control characters and invalid UTF-8 likewise, comments included.
        assert_eq!(errors("# \u{7}\n").len(), 1);
        let lossy = String::from_utf8_lossy(b"g:a:1:once:\xc3\n").into_owned();
        assert_eq!(
            errors(&lossy),
            vec!["cltab:1: invalid UTF-8 (U+FFFD) in column 12: the file must be UTF-8 text"]
        );
        // TAB is fine.
        assert_eq!(parse("g:a:1:once:echo\ta").entries[0].command, "echo\ta");
    }

    #[test]
    fn files_lines_and_entries_are_bounded() {
        let big = format!("g:a:1:once:x\n{}", "#\n".repeat(text::MAX_FILE_BYTES / 2));
        assert_eq!(
            errors(&big),
            vec![format!(
                "cltab:1: file is {} bytes; replicated files are limited to 1048576",
                big.len()
            )]
        );
        let long = format!("g:a:1:once:{}", "x".repeat(text::MAX_LINE_BYTES));
        assert_eq!(
            errors(&long),
            vec!["cltab:1: line is 4107 bytes long; lines are limited to 4096"]
        );
        let many: String = (0..=text::MAX_ENTRIES)
            .map(|i| format!("g:t{i}:1:once:x\n"))
            .collect();
        assert_eq!(
            errors(&many),
            vec!["cltab:10001: more than 10000 entries; a file holds at most 10000"]
        );
        let most: String = (0..text::MAX_ENTRIES)
            .map(|i| format!("g:t{i}:1:once:x\n"))
            .collect();
        assert_eq!(parse(&most).entries.len(), text::MAX_ENTRIES);
    }

    #[test]
    fn names_are_bounded() {
        let long = "g".repeat(crate::config::MAX_NAME_BYTES + 1);
        assert_eq!(
            errors(&format!("{long}:t:1:once:x")),
            vec!["cltab:1: group is 254 bytes long; names are limited to 253"]
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            ":",
            "::",
            ":::",
            "::::",
            ":::::",
            "::::::",
            "\r",
            "\r\r\n",
            "é:ü:ß:once:x",
            "g:t:١٢:once:x",
            "g:t:\u{0}:once:x",
            "g:t:1:once:\u{feff}",
            "#",
            " # ",
            ",:,:,:,:,",
            "g:t:,\r:once:x",
            "\u{a0}g:t:1:once:x",
            "g:t:1:once:x\n:::\n::::\n",
        ];
        for text in odd {
            let _ = Cltab::parse("cltab", text);
        }
        // Non-ASCII digits are not split into levels; they fail the name check.
        assert_eq!(level_errors("١٢").len(), 1);
    }
}
