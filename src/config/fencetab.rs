//! The `fencetab` file: how each node is fenced (powered off or reset by a ClusterLabs fence
//! agent) before its groups may run elsewhere, one fence method per line.
//!
//! ```text
//! # node  agent          options (key=value, passed to the agent on stdin)
//! node1   fence_ipmilan  ipaddr=10.0.0.11 login=admin passwd="s3cret pass" lanplus=1
//! node1   fence_sbd      devices=/dev/disk/by-id/sbd action=off timeout=90
//! *       fence_dummy    type=file status_file=/run/fence.status timeout=2.5
//! lab3    none
//! ```
//!
//! - Lines are split on `\n` and lose a trailing `\r`; blank lines and lines whose first
//!   non-blank character is `#` are skipped. A `#` later in a line is part of a field.
//! - Fields are separated by ASCII whitespace. Double quotes keep whitespace inside a field
//!   and are removed (`passwd="a b"` is `passwd` = `a b`; quotes may appear anywhere in a
//!   field); inside quotes `\"` is a quote and `\\` a backslash, any other `\` is kept as is.
//! - The first field is a node name, or `*` for the default of every node without lines of its
//!   own. The second is the agent: a program name (the daemon looks it up) or an absolute path.
//!   The rest are options written `key=value`; keys are letters, digits, `_` and `-`, kept as
//!   written, but compared with `-` and `_` alike because fence agents read them so.
//! - Several lines for one node are levels, tried in file order until one succeeds.
//! - The agent `none`, alone on its line, turns fencing off for the node (or, with `*`, for
//!   every node without lines of its own). It cannot be mixed with fence methods for the same
//!   node. Running without fencing is unsafe; the daemon says so loudly.
//! - mosha reads two options itself: `action=` (`reboot`, the default, or `off`) and
//!   `timeout=` (seconds, fractions allowed, from 0.001 to 3600; 60 by default), the limit for
//!   one run of the agent.
//!   It sets `nodename=` itself, so a line must not; `option=` (an old name of `action=` that
//!   current agents ignore) is refused. Every other option goes to the agent unchanged.
//! - Values may be empty but must not contain control characters, which could smuggle extra
//!   lines into the agent's stdin. The limits of [`crate::config::text`] apply to the whole
//!   file (size, line length, control characters, at most 10,000 lines).
//! - Messages never quote an option's value (it may be a password), nor a field that may be
//!   one: key names, field numbers and lines only.
//!
//! This module owns the syntax and the checks that need only the file itself; it reads no
//! files, finds no programs and runs nothing.

use std::collections::btree_map::Entry as MapEntry;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{check_name, text, Problem};

/// Names the action a method performs when its line has no `action=` option.
pub const DEFAULT_ACTION: &str = "reboot";

/// Limits one run of an agent when its line has no `timeout=` option.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The shortest `timeout=` accepted.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// The longest `timeout=` accepted: an hour (a fence agent that needs longer is broken).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Names the node field of the lines that apply to every node without lines of its own.
pub const ANY_NODE: &str = "*";

/// Names the agent that turns fencing off for a node.
pub const NONE: &str = "none";

/// Lists the values accepted for `action=`.
const ACTIONS: &[&str] = &["reboot", "off"];

/// Describes the usage printed when a line has no agent or a misplaced option.
const USAGE: &str = "expected: node agent [key=value ...]";

/// Describes one fence method (one level) of a node: an agent and what to tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// The agent: a program name looked up by the daemon (`PATH`, `/usr/sbin`, `/sbin`) or an
    /// absolute path.
    pub agent: String,
    /// The action that fences the node: `"reboot"` (the default) or `"off"`.
    pub action: String,
    /// The overall limit for one run of the agent (`timeout=`, 60 s by default).
    pub timeout: Duration,
    /// Every other `key=value` of the line, as written, sent to the agent on stdin.
    pub options: BTreeMap<String, String>,
    /// The 1-based line the method is on.
    pub line: usize,
}

impl Method {
    /// Returns the `key=value` lines sent on the agent's stdin for running `action` against
    /// `target`: `action=`, `nodename=<target>`, `plug=<target>` unless the options give `plug`
    /// or `port`, then every option in key order, each line ending in `\n`.
    ///
    /// A value that fence agents would alter (one ending in whitespace, or wrapped in double
    /// quotes) is sent wrapped in double quotes, which the agents strip. `target` must be a
    /// valid node name: it is written as is.
    pub fn stdin_for(&self, target: &str, action: &str) -> String {
        let mut text = String::new();
        push_option(&mut text, "action", action);
        push_option(&mut text, "nodename", target);
        if !self.options.contains_key("plug") && !self.options.contains_key("port") {
            push_option(&mut text, "plug", target);
        }
        for (key, value) in &self.options {
            push_option(&mut text, key, value);
        }
        text
    }
}

/// Appends the line `key=value` to `text`, quoting a value that fence agents would alter: they
/// strip whitespace at the end of a line and one pair of surrounding double quotes.
fn push_option(text: &mut String, key: &str, value: &str) {
    let altered = value.ends_with(char::is_whitespace)
        || (value.len() >= 2 && value.starts_with('"') && value.ends_with('"'));
    text.push_str(key);
    text.push('=');
    if altered {
        text.push('"');
        text.push_str(value);
        text.push('"');
    } else {
        text.push_str(value);
    }
    text.push('\n');
}

/// Tells how a node is fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fencing<'a> {
    /// Tries these methods (levels) in order until one succeeds; never empty.
    Methods(&'a [Method]),
    /// Fences nothing: a `none` line turned fencing off for the node.
    Disabled,
    /// Has no line for the node and no `*` line.
    Unconfigured,
}

/// Holds a parsed `fencetab` file: the fence methods and the `none` lines, by node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fencetab {
    /// The methods of each node with method lines, and of `*`, in file order; never empty.
    pub methods: BTreeMap<String, Vec<Method>>,
    /// The nodes, and `*`, that a `none` line turns fencing off for, with that line.
    pub off: BTreeMap<String, usize>,
}

impl Fencetab {
    /// Parses the text of a `fencetab` file; `file` is the name printed in problems.
    ///
    /// Returns every error of the file otherwise, sorted by line (several per line are
    /// possible; at most [`text::MAX_PROBLEMS`] and a count of the rest).
    pub fn parse(file: &str, text: &str) -> Result<Fencetab, Vec<Problem>> {
        let mut lines = text::Lines::new(file, text, "replicated files")?;
        let mut fencetab = Fencetab::default();
        let mut errors = Vec::new();
        let mut seen: BTreeMap<String, Seen> = BTreeMap::new();

        while let Some((line, content)) = lines.next() {
            let start = content.trim_start_matches(|c: char| c.is_ascii_whitespace());
            if start.is_empty() || start.starts_with('#') {
                continue;
            }
            if !lines.entry(line, "lines") {
                break;
            }

            let mut messages = Vec::new();
            match parse_line(content, line, &mut seen, &mut messages) {
                Some((node, Kind::Off)) if messages.is_empty() => {
                    fencetab.off.insert(node, line);
                }
                Some((node, Kind::Method(method))) if messages.is_empty() => {
                    fencetab.methods.entry(node).or_default().push(method);
                }
                _ => errors.extend(messages.into_iter().map(|m| Problem::new(file, line, m))),
            }
        }

        lines.finish(fencetab, errors)
    }

    /// Returns how `node` is fenced: its own lines, else the `*` lines, else
    /// [`Fencing::Unconfigured`].
    ///
    /// Methods win over a `none` for the same name (a file cannot hold both; a hand-built
    /// table might).
    pub fn for_node(&self, node: &str) -> Fencing<'_> {
        self.own(node)
            .or_else(|| self.own(ANY_NODE))
            .unwrap_or(Fencing::Unconfigured)
    }

    /// Tells whether any line turns fencing off (for loud warnings).
    pub fn any_disabled(&self) -> bool {
        !self.off.is_empty()
    }

    /// Returns the nodes (and `*`) fencing is turned off for, sorted (`*` first).
    pub fn disabled(&self) -> Vec<&str> {
        self.off.keys().map(String::as_str).collect()
    }

    /// Returns how the lines of `key` (a node or `*`) fence, or `None` without such lines.
    fn own(&self, key: &str) -> Option<Fencing<'_>> {
        match self.methods.get(key) {
            Some(methods) if !methods.is_empty() => Some(Fencing::Methods(methods)),
            _ => self.off.contains_key(key).then_some(Fencing::Disabled),
        }
    }
}

/// Records the first `none` line and the first method line seen for a node, to report mixes.
#[derive(Debug, Default)]
struct Seen {
    none: Option<usize>,
    method: Option<usize>,
}

/// Tells what a valid line says about its node.
enum Kind {
    Off,
    Method(Method),
}

/// Parses one non-comment line, pushing every problem to `messages` and recording in `seen`
/// what the line says about its node even if other fields are bad. Returns the node and what
/// the line says only if its node and agent are valid (the caller still checks `messages`).
fn parse_line(
    content: &str,
    line: usize,
    seen: &mut BTreeMap<String, Seen>,
    messages: &mut Vec<String>,
) -> Option<(String, Kind)> {
    let (fields, broken) = split_fields(content);
    let usable = |i: usize| broken != Some(i);

    let node = fields.first().map_or("", String::as_str);
    let node_ok = usable(0) && (node == ANY_NODE || keep(check_name("node", node), messages));
    let agent = match fields.get(1) {
        None if broken.is_none() => {
            messages.push(format!("missing agent for node '{node}' ({USAGE})"));
            None
        }
        Some(agent) if usable(1) && keep(check_agent(agent), messages) => Some(agent.as_str()),
        _ => None,
    };

    let mut action = None;
    let mut timeout = None;
    let mut options = BTreeMap::new();
    if agent == Some(NONE) && fields.len() > 2 {
        messages.push(format!(
            "'{NONE}' takes no options (it turns fencing off for the node)"
        ));
    } else {
        let mut keys: BTreeMap<String, &str> = BTreeMap::new();
        for (i, field) in fields
            .iter()
            .enumerate()
            .skip(2)
            .filter(|(i, _)| usable(*i))
        {
            let Some((key, value)) = parse_option(i + 1, field, &mut keys, messages) else {
                continue;
            };
            match key {
                "action" if ACTIONS.contains(&value) => action = Some(value),
                "action" => {
                    messages.push(format!("unknown action '{value}' (expected reboot or off)"))
                }
                "timeout" => timeout = keep_value(parse_timeout(value), messages),
                "nodename" => {
                    messages.push("nodename is set by mosha (to the node being fenced)".to_string())
                }
                "option" => messages.push(
                    "option= is an old name of action= that fence agents ignore; write action="
                        .to_string(),
                ),
                _ => {
                    options.insert(key.to_string(), value.to_string());
                }
            }
        }
    }
    if let Some(i) = broken {
        messages.push(unterminated(i, &fields[i]));
    }

    let agent = agent?;
    if !node_ok {
        return None;
    }
    let record = seen.entry(node.to_string()).or_default();
    if agent == NONE {
        if let Some(first) = record.method {
            messages.push(format!(
                "'{NONE}' for node '{node}' cannot be mixed with its fence method at line {first}"
            ));
        } else if let Some(first) = record.none {
            messages.push(format!(
                "duplicate '{NONE}' for node '{node}' (first at line {first})"
            ));
        }
        record.none.get_or_insert(line);
    } else {
        if let Some(first) = record.none {
            messages.push(format!(
                "fence method for node '{node}' cannot be mixed with its '{NONE}' at line {first}"
            ));
        }
        record.method.get_or_insert(line);
    }

    let kind = if agent == NONE {
        Kind::Off
    } else {
        Kind::Method(Method {
            agent: agent.to_string(),
            action: action.unwrap_or(DEFAULT_ACTION).to_string(),
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
            options,
            line,
        })
    };
    Some((node.to_string(), kind))
}

/// Splits a line into fields at ASCII whitespace, removing double quotes and the escapes
/// inside them. Returns the fields and, if the line ends inside quotes, the index of the last
/// field, which then holds only what was read of it.
fn split_fields(content: &str) -> (Vec<String>, Option<usize>) {
    let mut fields = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = content.chars();
    while let Some(c) = chars.next() {
        if c.is_ascii_whitespace() {
            fields.extend(current.take());
            continue;
        }
        let field = current.get_or_insert_with(String::new);
        if c != '"' {
            field.push(c);
            continue;
        }
        let mut closed = false;
        loop {
            match chars.next() {
                Some('"') => {
                    closed = true;
                    break;
                }
                Some('\\') => match chars.next() {
                    Some(c @ ('"' | '\\')) => field.push(c),
                    Some(c) => {
                        field.push('\\');
                        field.push(c);
                    }
                    None => break,
                },
                Some(c) => field.push(c),
                None => break,
            }
        }
        if !closed {
            fields.extend(current.take());
            let last = fields.len() - 1;
            return (fields, Some(last));
        }
    }
    fields.extend(current);
    (fields, None)
}

/// Returns the message for a line that ends inside quotes, naming the field `index` (holding
/// `partial`, what was read of it) without printing a value, which may be a password.
fn unterminated(index: usize, partial: &str) -> String {
    let key = partial.split_once('=').map(|(key, _)| key);
    match (index, key) {
        (0, _) => "unterminated quote in the node field".to_string(),
        (1, _) => "unterminated quote in the agent field".to_string(),
        (_, Some(key)) if !key.is_empty() && check_key(key).is_ok() => {
            format!("unterminated quote in option '{key}'")
        }
        _ => "unterminated quote".to_string(),
    }
}

/// Checks an agent field: a program name or an absolute path, without `=` or control
/// characters.
fn check_agent(agent: &str) -> Result<(), String> {
    if agent.is_empty() {
        Err("empty agent".to_string())
    } else if agent.contains('=') {
        // Not quoted: an option written where the agent belongs may hold a password.
        Err(format!(
            "the agent field holds '=': is the agent missing? ({USAGE})"
        ))
    } else if agent.contains(char::is_control) {
        Err("control character in the agent field".to_string())
    } else if agent.contains('/') && !agent.starts_with('/') {
        Err(format!(
            "agent '{agent}' must be a program name or an absolute path"
        ))
    } else {
        Ok(())
    }
}

/// Checks that `key` holds only letters, digits, `_` and `-`.
fn check_key(key: &str) -> Result<(), String> {
    match key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        Some(bad) => Err(format!(
            "invalid character {bad:?} in option name {key:?} (allowed: letters, digits, '_', '-')"
        )),
        None => Ok(()),
    }
}

/// Splits an option field (the line's field `number`, 1-based) into key and value, pushing a
/// message to `messages` and returning `None` if it is malformed, a duplicate of a key in
/// `keys` (with `-` and `_` alike) or has a control character in its value. Records a
/// well-formed key in `keys`. A field without `=` is named by its number, never quoted: it may
/// be the second word of an unquoted password.
fn parse_option<'a>(
    number: usize,
    field: &'a str,
    keys: &mut BTreeMap<String, &'a str>,
    messages: &mut Vec<String>,
) -> Option<(&'a str, &'a str)> {
    let Some((key, value)) = field.split_once('=') else {
        messages.push(format!(
            "field {number} has no '=' (options are key=value, and a value with spaces must be \
             quoted; {USAGE})"
        ));
        return None;
    };
    if key.is_empty() {
        messages.push("empty option name before '='".to_string());
        return None;
    }
    if !keep(check_key(key), messages) {
        return None;
    }
    match keys.entry(key.replace('-', "_")) {
        MapEntry::Occupied(first) if *first.get() == key => {
            messages.push(format!("duplicate option '{key}'"));
            return None;
        }
        MapEntry::Occupied(first) => {
            messages.push(format!(
                "duplicate option '{key}' (same as '{}': fence agents read '-' and '_' alike)",
                first.get()
            ));
            return None;
        }
        MapEntry::Vacant(slot) => {
            slot.insert(key);
        }
    }
    if value.contains(char::is_control) {
        messages.push(format!("control character in the value of option '{key}'"));
        return None;
    }
    Some((key, value))
}

/// Parses `timeout=`: a positive number of seconds written with digits and at most one `.`,
/// from [`MIN_TIMEOUT`] to [`MAX_TIMEOUT`] (a deadline computed from a larger one could
/// overflow).
fn parse_timeout(value: &str) -> Result<Duration, String> {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let dots = value.chars().filter(|c| *c == '.').count();
    let secs = Some(value)
        .filter(|_| digits > 0 && dots <= 1 && digits + dots == value.chars().count())
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|secs| *secs > 0.0)
        .ok_or_else(|| format!("timeout '{value}' is not a positive number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|t| (MIN_TIMEOUT..=MAX_TIMEOUT).contains(t))
        .ok_or_else(|| {
            format!(
                "timeout '{value}' is out of range: from {} to {} seconds",
                MIN_TIMEOUT.as_secs_f64(),
                MAX_TIMEOUT.as_secs()
            )
        })
}

/// Returns whether `result` is `Ok`, pushing its error to `messages` otherwise.
fn keep(result: Result<(), String>, messages: &mut Vec<String>) -> bool {
    keep_value(result, messages).is_some()
}

/// Returns the value of `result`, or pushes its error to `messages` and returns `None`.
fn keep_value<T>(result: Result<T, String>, messages: &mut Vec<String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(message) => {
            messages.push(message);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Fencetab {
        match Fencetab::parse("fencetab", text) {
            Ok(fencetab) => fencetab,
            Err(problems) => panic!("unexpected problems: {problems:?}"),
        }
    }

    /// Returns the problems of a text that must fail, printed as `file:line: message`.
    fn errors(text: &str) -> Vec<String> {
        match Fencetab::parse("fencetab", text) {
            Ok(fencetab) => panic!("unexpectedly parsed: {fencetab:?}"),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    /// Returns the single method of a one-line file.
    fn method(text: &str) -> Method {
        let fencetab = parse(text);
        assert!(fencetab.off.is_empty());
        let methods: Vec<&Method> = fencetab.methods.values().flatten().collect();
        assert_eq!(methods.len(), 1, "{text:?}");
        methods[0].clone()
    }

    /// Returns the options of the single method of `node a key=value ...` lines.
    fn options(fields: &str) -> BTreeMap<String, String> {
        method(&format!("n1 fence_x {fields}")).options
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Returns the agents and lines of the methods `node` is fenced with, or panics.
    fn levels(fencetab: &Fencetab, node: &str) -> Vec<(String, usize)> {
        match fencetab.for_node(node) {
            Fencing::Methods(methods) => {
                methods.iter().map(|m| (m.agent.clone(), m.line)).collect()
            }
            other => panic!("{node}: expected methods, got {other:?}"),
        }
    }

    fn level(agent: &str, line: usize) -> (String, usize) {
        (agent.to_string(), line)
    }

    #[test]
    fn parses_every_field_of_a_method() {
        let text =
            "node1 fence_ipmilan ipaddr=10.0.0.11 login=admin action=off timeout=2.5 lanplus=1";
        assert_eq!(
            method(text),
            Method {
                agent: "fence_ipmilan".into(),
                action: "off".into(),
                timeout: Duration::from_millis(2500),
                options: map(&[
                    ("ipaddr", "10.0.0.11"),
                    ("login", "admin"),
                    ("lanplus", "1")
                ]),
                line: 1,
            }
        );
    }

    #[test]
    fn action_and_timeout_have_defaults() {
        let m = method("n1 fence_dummy");
        assert_eq!(m.action, DEFAULT_ACTION);
        assert_eq!(m.action, "reboot");
        assert_eq!(m.timeout, DEFAULT_TIMEOUT);
        assert_eq!(m.timeout, Duration::from_secs(60));
        assert!(m.options.is_empty());
        assert_eq!(method("n1 f action=reboot").action, "reboot");
    }

    #[test]
    fn timeout_accepts_whole_and_fractional_seconds() {
        for (value, millis) in [
            ("1", 1000),
            ("90", 90_000),
            ("0.5", 500),
            (".25", 250),
            ("3.", 3000),
            ("007", 7000),
            ("0.001", 1),
        ] {
            let m = method(&format!("n1 f timeout={value}"));
            assert_eq!(m.timeout, Duration::from_millis(millis), "{value:?}");
            assert!(m.options.is_empty());
        }
    }

    #[test]
    fn agent_may_be_a_program_name_or_an_absolute_path() {
        assert_eq!(method("n1 fence_dummy").agent, "fence_dummy");
        assert_eq!(
            method("n1 /usr/sbin/fence_dummy").agent,
            "/usr/sbin/fence_dummy"
        );
        assert_eq!(
            method("n1 \"/opt/my fence/agent\"").agent,
            "/opt/my fence/agent"
        );
        assert_eq!(method("n1 fence.v2-x_y").agent, "fence.v2-x_y");
    }

    #[test]
    fn lines_of_one_node_are_levels_in_file_order() {
        let text = "n1 fence_a\nn2 fence_x\n# c\nn1 fence_b\n\nn1 fence_c\n";
        let fencetab = parse(text);
        assert_eq!(
            levels(&fencetab, "n1"),
            vec![
                level("fence_a", 1),
                level("fence_b", 4),
                level("fence_c", 6)
            ]
        );
        assert_eq!(levels(&fencetab, "n2"), vec![level("fence_x", 2)]);
        assert!(!fencetab.any_disabled());
        assert!(fencetab.disabled().is_empty());
    }

    #[test]
    fn star_lines_are_the_default_for_nodes_without_lines() {
        let fencetab = parse("* fence_a\nn1 fence_b\n* fence_c\n");
        assert_eq!(
            levels(&fencetab, "n2"),
            vec![level("fence_a", 1), level("fence_c", 3)]
        );
        assert_eq!(levels(&fencetab, "anything"), levels(&fencetab, "n3"));
        assert_eq!(levels(&fencetab, "*"), levels(&fencetab, "n2"));
    }

    #[test]
    fn own_lines_override_the_default() {
        let fencetab = parse("* fence_a\n* fence_c\nn1 fence_b\n");
        assert_eq!(levels(&fencetab, "n1"), vec![level("fence_b", 3)]);
    }

    #[test]
    fn nodes_without_lines_or_default_are_unconfigured() {
        let fencetab = parse("n1 fence_a\n");
        assert_eq!(fencetab.for_node("n2"), Fencing::Unconfigured);
        assert_eq!(fencetab.for_node("*"), Fencing::Unconfigured);
        assert_eq!(fencetab.for_node("N1"), Fencing::Unconfigured);
        assert_eq!(Fencetab::default().for_node("n1"), Fencing::Unconfigured);
        assert!(!Fencetab::default().any_disabled());
    }

    #[test]
    fn star_none_turns_fencing_off_for_nodes_without_lines() {
        let fencetab = parse("# unsafe\n* none\nn1 fence_a\n");
        assert_eq!(fencetab.for_node("n2"), Fencing::Disabled);
        assert_eq!(levels(&fencetab, "n1"), vec![level("fence_a", 3)]);
        assert!(fencetab.any_disabled());
        assert_eq!(fencetab.disabled(), vec!["*"]);
        assert_eq!(fencetab.off["*"], 2);
    }

    #[test]
    fn node_none_turns_fencing_off_for_that_node_only() {
        let fencetab = parse("* fence_a\nlab3 none\nlab1 none\n");
        assert_eq!(fencetab.for_node("lab3"), Fencing::Disabled);
        assert_eq!(fencetab.for_node("lab1"), Fencing::Disabled);
        assert_eq!(levels(&fencetab, "n1"), vec![level("fence_a", 1)]);
        assert!(fencetab.any_disabled());
        assert_eq!(fencetab.disabled(), vec!["lab1", "lab3"]);
        assert_eq!(fencetab.off["lab3"], 2);
        // Without a default, other nodes stay unconfigured.
        let fencetab = parse("lab3 none\n");
        assert_eq!(fencetab.for_node("n1"), Fencing::Unconfigured);
        assert!(fencetab.methods.is_empty());
    }

    #[test]
    fn disabled_lists_star_first() {
        let fencetab = parse("zz none\n* none\nA none\n0 none\n");
        assert_eq!(fencetab.disabled(), vec!["*", "0", "A", "zz"]);
    }

    #[test]
    fn methods_win_over_none_in_a_hand_built_table() {
        let mut fencetab = parse("n1 fence_a\n");
        fencetab.off.insert("n1".into(), 9);
        assert_eq!(levels(&fencetab, "n1"), vec![level("fence_a", 1)]);
        fencetab.methods.insert("n2".into(), Vec::new());
        fencetab.off.insert("*".into(), 9);
        assert_eq!(fencetab.for_node("n2"), Fencing::Disabled);
    }

    #[test]
    fn empty_and_comment_only_files_have_no_methods() {
        for text in ["", "\n", "   \n\t\n", "# nothing", " \t# indented\r\n\r\n"] {
            assert_eq!(parse(text), Fencetab::default(), "{text:?}");
        }
    }

    #[test]
    fn skips_comments_and_blank_lines_and_keeps_line_numbers() {
        let fencetab = parse("# header\n\n  # n1 fence_a\n\t\nn1 fence_b\n#n1 none\n");
        assert_eq!(levels(&fencetab, "n1"), vec![level("fence_b", 5)]);
    }

    #[test]
    fn hash_after_the_first_field_is_part_of_a_field() {
        assert_eq!(
            options("passwd=#x# tag=a#b"),
            map(&[("passwd", "#x#"), ("tag", "a#b")])
        );
    }

    #[test]
    fn accepts_any_ascii_whitespace_between_fields() {
        let m = method("  n1\t\tfence_a  plug=3\t \r\n");
        assert_eq!(m.agent, "fence_a");
        assert_eq!(m.options, map(&[("plug", "3")]));
        // A form feed is a control character, not a separator.
        assert_eq!(
            errors("n1 fence_a \x0c plug=3"),
            vec!["fencetab:1: control character U+000C in column 12: only TAB is allowed"]
        );
    }

    #[test]
    fn strips_carriage_returns_of_crlf_files() {
        let fencetab = parse("n1 fence_a plug=1\r\n\r\nn2 none\r\n");
        assert_eq!(fencetab.methods["n1"][0].options["plug"], "1");
        assert_eq!(fencetab.off["n2"], 3);
    }

    #[test]
    fn double_quotes_keep_whitespace_in_a_value() {
        assert_eq!(
            options("passwd=\"a b\" login=\"\" x=\"  y \""),
            map(&[("passwd", "a b"), ("login", ""), ("x", "  y ")])
        );
    }

    #[test]
    fn escapes_inside_quotes() {
        assert_eq!(options(r#"a="say \"hi\"""#)["a"], r#"say "hi""#);
        assert_eq!(options(r#"a="c:\\dir\\""#)["a"], r"c:\dir\");
        assert_eq!(options(r#"a="\n\t\x""#)["a"], r"\n\t\x");
        // Outside quotes a backslash is an ordinary character.
        assert_eq!(options(r"a=x\y\\")["a"], r"x\y\\");
    }

    #[test]
    fn quotes_may_appear_anywhere_in_a_field() {
        assert_eq!(options(r#"a=x"y z"w"#)["a"], "xy zw");
        assert_eq!(options(r#""passwd=a b""#)["passwd"], "a b");
        assert_eq!(options(r#"pa"ss"wd=1"#)["passwd"], "1");
        assert_eq!(options(r#"a="""#)["a"], "");
        assert_eq!(options(r#"a=""b"""#)["a"], "b");
        let fencetab = parse("\"*\" \"none\"\n");
        assert_eq!(fencetab.disabled(), vec!["*"]);
    }

    #[test]
    fn values_may_be_empty_or_contain_equals_signs() {
        assert_eq!(
            options("passwd= k=a=b=="),
            map(&[("passwd", ""), ("k", "a=b==")])
        );
    }

    #[test]
    fn option_keys_are_kept_as_written() {
        assert_eq!(
            options("status-file=/a power_timeout=5 Lan-Plus_2=1"),
            map(&[
                ("status-file", "/a"),
                ("power_timeout", "5"),
                ("Lan-Plus_2", "1")
            ])
        );
    }

    #[test]
    fn stdin_for_defaults_plug_to_the_target() {
        let m = method("* fence_dummy type=file status_file=/run/n2.status action=off");
        assert_eq!(
            m.stdin_for("n2", &m.action),
            "action=off\nnodename=n2\nplug=n2\nstatus_file=/run/n2.status\ntype=file\n"
        );
        assert_eq!(
            method("n1 fence_a").stdin_for("n1", "status"),
            "action=status\nnodename=n1\nplug=n1\n"
        );
    }

    #[test]
    fn stdin_for_keeps_a_given_plug_or_port() {
        let m = method("n1 fence_apc ipaddr=pdu1 plug=7 login=x");
        assert_eq!(
            m.stdin_for("n1", "reboot"),
            "action=reboot\nnodename=n1\nipaddr=pdu1\nlogin=x\nplug=7\n"
        );
        let m = method("n1 fence_apc port=3");
        assert_eq!(
            m.stdin_for("n1", "off"),
            "action=off\nnodename=n1\nport=3\n"
        );
        let m = method("n1 fence_apc port=3 plug=4");
        assert_eq!(
            m.stdin_for("n1", "on"),
            "action=on\nnodename=n1\nplug=4\nport=3\n"
        );
    }

    #[test]
    fn stdin_for_sends_options_in_key_order_without_mosha_keys() {
        let m = method("n1 f z=1 b=2 timeout=5 action=off A=3 b-c=4 b_a=5");
        assert_eq!(
            m.stdin_for("n1", "off"),
            "action=off\nnodename=n1\nplug=n1\nA=3\nb=2\nb-c=4\nb_a=5\nz=1\n"
        );
    }

    #[test]
    fn stdin_for_quotes_values_agents_would_alter() {
        let m = method(r#"n1 f a="x " b=" y" c="\"q\"" d="\"" e="" f="\"x" "#);
        assert_eq!(
            m.stdin_for("n1", "off"),
            concat!(
                "action=off\nnodename=n1\nplug=n1\n",
                "a=\"x \"\n",
                "b= y\n",
                "c=\"\"q\"\"\n",
                "d=\"\n",
                "e=\n",
                "f=\"x\n",
            )
        );
    }

    #[test]
    fn node_must_be_a_valid_name_or_star() {
        for node in ["n/1", "-n1", ".n1", "**", "*n", "né", "\u{a0}n1"] {
            assert_eq!(
                errors(&format!("{node} fence_a")),
                vec![format!(
                    "fencetab:1: {}",
                    check_name("node", node).unwrap_err()
                )],
                "{node:?}"
            );
        }
        assert_eq!(errors("\"\" fence_a"), vec!["fencetab:1: empty node"]);
    }

    #[test]
    fn missing_agent_is_an_error() {
        assert_eq!(
            errors("n1"),
            vec!["fencetab:1: missing agent for node 'n1' (expected: node agent [key=value ...])"]
        );
        assert_eq!(
            errors("  * \t\r"),
            vec!["fencetab:1: missing agent for node '*' (expected: node agent [key=value ...])"]
        );
    }

    #[test]
    fn agent_must_not_contain_equals() {
        assert_eq!(
            errors("n1 plug=3"),
            vec!["fencetab:1: the agent field holds '=': is the agent missing? (expected: node agent [key=value ...])"]
        );
    }

    #[test]
    fn agent_given_as_a_path_must_be_absolute() {
        for agent in ["./fence_a", "bin/fence_a", "../x/", "sbin/"] {
            assert_eq!(
                errors(&format!("n1 {agent}")),
                vec![format!(
                    "fencetab:1: agent '{agent}' must be a program name or an absolute path"
                )],
                "{agent:?}"
            );
        }
    }

    #[test]
    fn agent_must_not_be_empty_or_hold_control_characters() {
        assert_eq!(errors("n1 \"\""), vec!["fencetab:1: empty agent"]);
        assert_eq!(
            errors("n1 fence\u{1}a"),
            vec!["fencetab:1: control character U+0001 in column 9: only TAB is allowed"]
        );
        assert_eq!(
            errors("n1 fence\u{85}a"),
            vec!["fencetab:1: control character in the agent field"]
        );
    }

    #[test]
    fn none_takes_no_options() {
        let expected = "fencetab:1: 'none' takes no options (it turns fencing off for the node)";
        assert_eq!(errors("n1 none plug=1"), vec![expected]);
        assert_eq!(errors("* none really"), vec![expected]);
        assert_eq!(errors("n1 none a=1 b=2 =bad"), vec![expected]);
    }

    #[test]
    fn none_cannot_follow_a_method_of_the_same_node() {
        assert_eq!(
            errors("n1 fence_a\nn2 none\nn1 fence_b\nn1 none\n"),
            vec![
                "fencetab:4: 'none' for node 'n1' cannot be mixed with its fence method at line 1"
            ]
        );
    }

    #[test]
    fn a_method_cannot_follow_none_of_the_same_node() {
        assert_eq!(
            errors("* none\nn1 fence_a\n* fence_b\n* fence_c\n"),
            vec![
                "fencetab:3: fence method for node '*' cannot be mixed with its 'none' at line 1",
                "fencetab:4: fence method for node '*' cannot be mixed with its 'none' at line 1",
            ]
        );
    }

    #[test]
    fn duplicate_none_names_the_first_line() {
        assert_eq!(
            errors("n1 none\n\nn1 none\n"),
            vec!["fencetab:3: duplicate 'none' for node 'n1' (first at line 1)"]
        );
    }

    #[test]
    fn a_line_counts_for_mixes_even_with_other_errors() {
        assert_eq!(
            errors("n1 fence_a bad\nn1 none\n"),
            vec![
                "fencetab:1: field 3 has no '=' (options are key=value, and a value with spaces must be quoted; expected: node agent [key=value ...])",
                "fencetab:2: 'none' for node 'n1' cannot be mixed with its fence method at line 1",
            ]
        );
        assert_eq!(
            errors("n1 none x=1\nn1 fence_a\n"),
            vec![
                "fencetab:1: 'none' takes no options (it turns fencing off for the node)",
                "fencetab:2: fence method for node 'n1' cannot be mixed with its 'none' at line 1",
            ]
        );
    }

    #[test]
    fn field_without_equals_is_an_error() {
        assert_eq!(
            errors("n1 fence_a node1 plug=1 # comment"),
            vec![
                "fencetab:1: field 3 has no '=' (options are key=value, and a value with spaces must be quoted; expected: node agent [key=value ...])",
                "fencetab:1: field 5 has no '=' (options are key=value, and a value with spaces must be quoted; expected: node agent [key=value ...])",
                "fencetab:1: field 6 has no '=' (options are key=value, and a value with spaces must be quoted; expected: node agent [key=value ...])",
            ]
        );
    }

    #[test]
    fn option_name_must_not_be_empty() {
        for field in ["=x", "=", "\"\"=x", "==x"] {
            assert_eq!(
                errors(&format!("n1 fence_a {field}")),
                vec!["fencetab:1: empty option name before '='"],
                "{field:?}"
            );
        }
    }

    #[test]
    fn option_name_allows_letters_digits_underscore_and_dash() {
        assert_eq!(
            errors("n1 fence_a a.b=1 \"a b\"=2 é=3"),
            vec![
                "fencetab:1: invalid character '.' in option name \"a.b\" (allowed: letters, digits, '_', '-')",
                "fencetab:1: invalid character ' ' in option name \"a b\" (allowed: letters, digits, '_', '-')",
                "fencetab:1: invalid character 'é' in option name \"é\" (allowed: letters, digits, '_', '-')",
            ]
        );
    }

    #[test]
    fn duplicate_option_on_one_line_is_an_error() {
        assert_eq!(
            errors("n1 fence_a plug=1 plug=2\nn1 fence_b timeout=1 timeout=1"),
            vec![
                "fencetab:1: duplicate option 'plug'",
                "fencetab:2: duplicate option 'timeout'",
            ]
        );
        // The same key on different lines is fine.
        assert_eq!(parse("n1 a plug=1\nn1 b plug=1").methods["n1"].len(), 2);
    }

    #[test]
    fn dash_and_underscore_spellings_of_a_key_are_duplicates() {
        assert_eq!(
            errors("n1 fence_a status_file=/a status-file=/b power-timeout=1 power_timeout=2"),
            vec![
                "fencetab:1: duplicate option 'status-file' (same as 'status_file': fence agents read '-' and '_' alike)",
                "fencetab:1: duplicate option 'power_timeout' (same as 'power-timeout': fence agents read '-' and '_' alike)",
            ]
        );
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert_eq!(
            errors("n1 fence_a passwd=\"secret pass"),
            vec!["fencetab:1: unterminated quote in option 'passwd'"]
        );
        assert_eq!(
            errors(r#"n1 fence_a passwd="ends in backslash\""#),
            vec!["fencetab:1: unterminated quote in option 'passwd'"]
        );
        assert_eq!(
            errors(r#"n1 fence_a a="x\"#),
            vec!["fencetab:1: unterminated quote in option 'a'"]
        );
        assert_eq!(
            errors("n1 fence_a \"passwd=x"),
            vec!["fencetab:1: unterminated quote in option 'passwd'"]
        );
        assert_eq!(
            errors("n1 fence_a x\"y"),
            vec!["fencetab:1: unterminated quote"]
        );
        assert_eq!(
            errors("n1 fence_a \"a b=x"),
            vec!["fencetab:1: unterminated quote"]
        );
        assert_eq!(
            errors("n1 \"/opt/my agent"),
            vec!["fencetab:1: unterminated quote in the agent field"]
        );
        assert_eq!(
            errors("\"n1 fence_a"),
            vec!["fencetab:1: unterminated quote in the node field"]
        );
    }

    #[test]
    fn fields_before_an_unterminated_quote_are_still_checked() {
        assert_eq!(
            errors("n/1 fence_a k=1 k=2 bad \"x y"),
            vec![
                format!("fencetab:1: {}", check_name("node", "n/1").unwrap_err()),
                "fencetab:1: duplicate option 'k'".to_string(),
                "fencetab:1: field 5 has no '=' (options are key=value, and a value with spaces must be quoted; expected: node agent [key=value ...])".to_string(),
                "fencetab:1: unterminated quote".to_string(),
            ]
        );
    }

    #[test]
    fn action_must_be_reboot_or_off() {
        for value in ["on", "status", "Reboot", "OFF", "", "off ", "monitor"] {
            assert_eq!(
                errors(&format!("n1 fence_a \"action={value}\"")),
                vec![format!(
                    "fencetab:1: unknown action '{value}' (expected reboot or off)"
                )],
                "{value:?}"
            );
        }
    }

    #[test]
    fn timeout_must_be_a_positive_number() {
        for value in [
            "0", "0.0", "00", "-1", "+1", "", ".", "1.2.3", "1e3", "inf", "NaN", "5s", " 5", "1,5",
            "١",
        ] {
            assert_eq!(
                errors(&format!("n1 fence_a \"timeout={value}\"")),
                vec![format!(
                    "fencetab:1: timeout '{value}' is not a positive number of seconds"
                )],
                "{value:?}"
            );
        }
        for huge in [
            "9".repeat(400),
            "9999999999999999999".to_string(),
            "3600.001".into(),
        ] {
            assert_eq!(
                errors(&format!("n1 fence_a timeout={huge}")),
                vec![format!(
                    "fencetab:1: timeout '{huge}' is out of range: from 0.001 to 3600 seconds"
                )]
            );
        }
        for tiny in ["0.0009", "0.0000000001"] {
            assert_eq!(
                errors(&format!("n1 fence_a timeout={tiny}")),
                vec![format!(
                    "fencetab:1: timeout '{tiny}' is out of range: from 0.001 to 3600 seconds"
                )]
            );
        }
        assert_eq!(method("n1 f timeout=3600").timeout, MAX_TIMEOUT);
    }

    #[test]
    fn messages_never_quote_what_may_be_a_password() {
        let secret = "s3cretXYZ";
        for text in [
            format!("n1 fence_ipmilan password=a {secret}"),
            format!("n1 password={secret}"),
            format!("n1 fence_a passwd=\"{secret}"),
            format!("n1 fence_a passwd={secret}\u{0}"),
            format!("n1 fence_a passwd=\"{secret}\u{85}\""),
        ] {
            for e in errors(&text) {
                assert!(!e.contains(secret), "{e}");
            }
        }
    }

    #[test]
    fn nodename_is_set_by_mosha() {
        assert_eq!(
            errors("n1 fence_a nodename=n2"),
            vec!["fencetab:1: nodename is set by mosha (to the node being fenced)"]
        );
    }

    #[test]
    fn option_is_refused_in_favour_of_action() {
        assert_eq!(
            errors("n1 fence_a option=off"),
            vec!["fencetab:1: option= is an old name of action= that fence agents ignore; write action="]
        );
    }

    #[test]
    fn values_must_not_hold_control_characters() {
        // TAB passes the file's own check, and C1 controls are not C0 ones.
        for value in ["\u{85}", "\t"] {
            assert_eq!(
                errors(&format!("n1 fence_a \"passwd={value}\"")),
                vec!["fencetab:1: control character in the value of option 'passwd'"],
                "{value:?}"
            );
        }
        // Any other control character fails the whole line, without quoting the value.
        for (value, code) in [
            ("a\rb", "000D"),
            ("\u{0}", "0000"),
            ("x\u{b}", "000B"),
            ("\u{7f}", "007F"),
        ] {
            let got = errors(&format!("n1 fence_a \"passwd={value}\""));
            assert_eq!(got.len(), 1, "{value:?}");
            assert!(
                got[0].starts_with(&format!("fencetab:1: control character U+{code} in column")),
                "{got:?}"
            );
        }
    }

    #[test]
    fn every_error_of_a_line_is_reported() {
        assert_eq!(
            errors("-n bin/x a =b c=1 c=2 action=on timeout=0 nodename=x"),
            vec![
                format!("fencetab:1: {}", check_name("node", "-n").unwrap_err()),
                "fencetab:1: agent 'bin/x' must be a program name or an absolute path".to_string(),
                "fencetab:1: field 3 has no '=' (options are key=value, and a value with spaces must be quoted; expected: node agent [key=value ...])".to_string(),
                "fencetab:1: empty option name before '='".to_string(),
                "fencetab:1: duplicate option 'c'".to_string(),
                "fencetab:1: unknown action 'on' (expected reboot or off)".to_string(),
                "fencetab:1: timeout '0' is not a positive number of seconds".to_string(),
                "fencetab:1: nodename is set by mosha (to the node being fenced)".to_string(),
            ]
        );
    }

    #[test]
    fn errors_of_the_whole_file_are_collected_in_line_order() {
        assert_eq!(
            errors("n1 fence_a\nn2\n# ok\nn3 fence_b action=on\nn1 none\nn4 fence_c \"x\n"),
            vec![
                "fencetab:2: missing agent for node 'n2' (expected: node agent [key=value ...])",
                "fencetab:4: unknown action 'on' (expected reboot or off)",
                "fencetab:5: 'none' for node 'n1' cannot be mixed with its fence method at line 1",
                "fencetab:6: unterminated quote",
            ]
        );
    }

    #[test]
    fn problems_carry_the_given_file_name() {
        let Err(problems) = Fencetab::parse("/etc/mosha/fencetab", "\n\nn1") else {
            panic!("expected an error");
        };
        assert_eq!(problems[0].file, "/etc/mosha/fencetab");
        assert_eq!(problems[0].line, 3);
        assert_eq!(
            problems[0].to_string(),
            "/etc/mosha/fencetab:3: missing agent for node 'n1' (expected: node agent [key=value ...])"
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            "\"",
            "\"\"",
            "\" \"",
            "\\",
            "\"\\",
            "\"\\\"",
            "n1 \"",
            "n1 f \"",
            "n1 f \"\\",
            "n1 f a=\"\\\\\\\"",
            "= =",
            "* = =",
            "\r",
            "\r\r\n",
            "é ü",
            "n1 f ==",
            "n1 f a==",
            "\u{0} \u{0}",
            "#",
            "n1\u{feff} f",
            "* none none none",
            "* * * *",
            "none none",
            "n1 f timeout=. timeout=",
            "n1 f timeout=99999999999999999999.9999999999",
            "n1 f timeout=18446744073709551616",
            "\u{b}n1 f",
        ];
        for text in odd {
            let _ = Fencetab::parse("fencetab", text);
        }
        let m = method("n1 f");
        assert_eq!(m.stdin_for("", ""), "action=\nnodename=\nplug=\n");
    }
}
