//! The timeouts an OCF agent's `meta-data` declares: `<action name="start" timeout="20s"/>`.
//!
//! A small tolerant scanner rather than an XML crate: only two attributes of one element are
//! read, meta-data is written by agents' authors by hand (Debian's 141 heartbeat agents all
//! use this one form), and a document that is not well-formed must still give what can be
//! read. It skips comments and CDATA sections, reads attributes in single or double quotes,
//! and is bounded: [`MAX_META_BYTES`] of input, [`MAX_META_ACTIONS`] action elements.

use std::collections::BTreeMap;
use std::time::Duration;

/// Most bytes of a meta-data document that are read; the rest is ignored.
pub const MAX_META_BYTES: usize = 1 << 20;

/// Most `<action>` elements that are read; the rest are ignored.
pub const MAX_META_ACTIONS: usize = 64;

/// Longest timeout taken from meta-data: one day; a longer one is left out as invalid.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Returns the timeouts an OCF agent's `meta-data` XML declares, by action name
/// (`start` → 20 s); actions without a valid timeout are left out. Never fails: a broken
/// document gives what could be read. An action declared twice (`monitor` for two roles)
/// keeps the longer timeout, since meta-data timeouts are the advised minimums.
pub fn meta_timeouts(xml: &str) -> BTreeMap<String, Duration> {
    let mut end = xml.len().min(MAX_META_BYTES);
    while !xml.is_char_boundary(end) {
        end -= 1;
    }
    let mut rest = &xml[..end];
    let mut found = BTreeMap::new();
    let mut actions = 0;
    while actions < MAX_META_ACTIONS {
        let Some(open) = rest.find('<') else { break };
        rest = &rest[open..];
        if let Some(skipped) = skip_past(rest, "<!--", "-->") {
            rest = skipped;
            continue;
        }
        if let Some(skipped) = skip_past(rest, "<![CDATA[", "]]>") {
            rest = skipped;
            continue;
        }
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[1..close];
        rest = &rest[close + 1..];
        let Some(attrs) = tag.strip_prefix("action") else {
            continue;
        };
        if attrs.starts_with(|c: char| !(c.is_ascii_whitespace() || c == '/')) {
            continue; // <actions>, <actionsfoo>
        }
        actions += 1;
        let attrs = attributes(attrs);
        let name = attrs.iter().find(|(k, _)| *k == "name").map(|(_, v)| *v);
        let timeout = attrs.iter().find(|(k, _)| *k == "timeout").map(|(_, v)| *v);
        if let (Some(name), Some(timeout)) = (name, timeout.and_then(parse_timeout)) {
            let slot = found.entry(name.to_string()).or_insert(timeout);
            *slot = (*slot).max(timeout);
        }
    }
    found
}

/// When `text` starts with `open`, returns what follows the next `close` (an empty text when
/// `close` never comes).
fn skip_past<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let after = text.strip_prefix(open)?;
    Some(
        after
            .find(close)
            .map_or("", |at| &after[at + close.len()..]),
    )
}

/// Returns the `name="value"` (or `'value'`) attributes of a tag's inside, stopping at the
/// first thing that is not one.
fn attributes(mut text: &str) -> Vec<(&str, &str)> {
    let mut attrs = Vec::new();
    loop {
        text = text.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
        let Some((name, after)) = text.split_once('=') else {
            return attrs;
        };
        let name = name.trim_end();
        let after = after.trim_start();
        let Some(quote) = after.chars().next().filter(|q| matches!(q, '"' | '\'')) else {
            return attrs;
        };
        let Some((value, rest)) = after[1..].split_once(quote) else {
            return attrs;
        };
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            return attrs;
        }
        attrs.push((name, value));
        text = rest;
    }
}

/// Parses a timeout as Pacemaker writes them: a whole number and an optional unit, `ms`
/// (`msec`), `us` (`usec`), `s` (`sec`, the default), `m` (`min`) or `h` (`hr`): `20s`,
/// `20`, `2m`, `1min`, `500ms`. Returns `None` for anything else, for 0 and for more than a
/// day.
pub fn parse_timeout(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..digits].parse().ok()?;
    let unit = text[digits..].trim_start().to_ascii_lowercase();
    let d = match unit.as_str() {
        "us" | "usec" => Duration::from_micros(n),
        "ms" | "msec" => Duration::from_millis(n),
        "" | "s" | "sec" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        "h" | "hr" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero() && d <= MAX_TIMEOUT).then_some(d)
}
