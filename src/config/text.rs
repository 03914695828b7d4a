//! What every parsed file must be before its syntax is looked at, shared by every parser
//! (`cltab`, `hactl`, `fencetab`, `members`): no larger than a replicated file may be, lines
//! of bounded length, no control characters (a NUL byte in a cltab command would be accepted,
//! spread, and fail at exec on every node in turn) and no U+FFFD (what invalid UTF-8 becomes
//! once decoded), a bounded number of entries, and a bounded number of problems reported.
//!
//! This module owns those limits and their messages; the syntax of each file is its parser's.

use crate::config::Problem;

/// Largest file any parser accepts, in bytes: the limit of replicated files
/// ([`crate::replica::MAX_FILE_BYTES`], 1 MiB), which every node must be able to hold.
pub const MAX_FILE_BYTES: usize = crate::replica::MAX_FILE_BYTES;

/// Longest line, in bytes (POSIX's `LINE_MAX` is at least 2048): a cltab command longer than
/// this belongs in a script.
pub const MAX_LINE_BYTES: usize = 4096;

/// Most entries (lines that say something: not blank, not comments) one file may hold.
pub const MAX_ENTRIES: usize = 10_000;

/// Most problems a parser reports for one file; the rest are summed up in one last problem,
/// so that a damaged file never floods the log or the status documents.
pub const MAX_PROBLEMS: usize = 100;

/// Returns the problem of a file of `bytes` bytes, more than `limit`: `kind` names the files
/// the limit is for ("replicated files").
pub fn too_large(file: &str, bytes: u64, kind: &str, limit: usize) -> Problem {
    Problem::new(
        file,
        1,
        format!("file is {bytes} bytes; {kind} are limited to {limit}"),
    )
}

/// The lines of a file that pass the shared checks, as a parser walks them: an iterator of
/// `(line number, content)`, 1-based, each line split on `\n` and without one trailing `\r`.
/// A line that fails [`check_line`] (comments too: a control character anywhere means the file
/// is damaged) is not yielded; its problem is kept for [`Lines::finish`]. The parser calls
/// [`Lines::entry`] for each line that says something, which bounds their number.
pub struct Lines<'a> {
    file: &'a str,
    rest: std::iter::Enumerate<std::str::Split<'a, char>>,
    problems: Vec<Problem>,
    entries: usize,
    /// The entries went over the limit: nothing more is read.
    ended: bool,
}

impl<'a> Lines<'a> {
    /// Starts on `text`, the file `file` names in problems, refusing a text larger than
    /// [`MAX_FILE_BYTES`] before any of it is parsed (`kind` names the files the limit is for,
    /// see [`too_large`]).
    ///
    /// # Errors
    /// Returns that one problem when `text` is too large.
    pub fn new(file: &'a str, text: &'a str, kind: &str) -> Result<Lines<'a>, Vec<Problem>> {
        if text.len() > MAX_FILE_BYTES {
            let bytes = text.len() as u64;
            return Err(vec![too_large(file, bytes, kind, MAX_FILE_BYTES)]);
        }
        Ok(Lines {
            file,
            rest: text.split('\n').enumerate(),
            problems: Vec::new(),
            entries: 0,
            ended: false,
        })
    }

    /// Counts line `line` as an entry (a line that says something); returns false, with a
    /// problem, for the first one beyond [`MAX_ENTRIES`] (`what` names them: "entries"), and
    /// the iteration then ends.
    pub fn entry(&mut self, line: usize, what: &str) -> bool {
        self.entries += 1;
        if self.entries <= MAX_ENTRIES {
            return true;
        }
        self.problems.push(Problem::new(
            self.file,
            line,
            format!("more than {MAX_ENTRIES} {what}; a file holds at most {MAX_ENTRIES}"),
        ));
        self.ended = true;
        false
    }

    /// Returns `value`, or the parser's `errors` with the problems of the lines (see
    /// [`finish`]).
    ///
    /// # Errors
    /// Returns every problem, bounded, when there are any.
    pub fn finish<T>(self, value: T, mut errors: Vec<Problem>) -> Result<T, Vec<Problem>> {
        errors.extend(self.problems);
        finish(value, errors)
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        if self.ended {
            return None;
        }
        for (index, raw) in self.rest.by_ref() {
            let content = raw.strip_suffix('\r').unwrap_or(raw);
            match check_line(content) {
                Ok(()) => return Some((index + 1, content)),
                Err(message) => self
                    .problems
                    .push(Problem::new(self.file, index + 1, message)),
            }
        }
        None
    }
}

/// Checks one line (without its `\n` and trailing `\r`): at most [`MAX_LINE_BYTES`] bytes, and
/// no C0 control character other than TAB, no DEL, no U+FFFD. The message names the first bad
/// character by code point and 1-based column, never by quoting the line (which may hold a
/// password).
///
/// # Errors
/// Returns what is wrong with the line.
pub fn check_line(content: &str) -> Result<(), String> {
    if content.len() > MAX_LINE_BYTES {
        return Err(format!(
            "line is {} bytes long; lines are limited to {MAX_LINE_BYTES}",
            content.len()
        ));
    }
    let bad = content
        .chars()
        .enumerate()
        .find(|(_, c)| (c.is_ascii_control() && *c != '\t') || *c == char::REPLACEMENT_CHARACTER);
    match bad {
        None => Ok(()),
        Some((i, char::REPLACEMENT_CHARACTER)) => Err(format!(
            "invalid UTF-8 (U+FFFD) in column {}: the file must be UTF-8 text",
            i + 1
        )),
        Some((i, c)) => Err(format!(
            "control character U+{:04X} in column {}: only TAB is allowed",
            u32::from(c),
            i + 1
        )),
    }
}

/// Returns `value` if `errors` is empty; otherwise the errors sorted by line (stable: the
/// problems of one line keep their order), at most [`MAX_PROBLEMS`] of them followed by one
/// that counts the others.
///
/// # Errors
/// Returns the (bounded) problems when there are any.
pub fn finish<T>(value: T, mut errors: Vec<Problem>) -> Result<T, Vec<Problem>> {
    if errors.is_empty() {
        return Ok(value);
    }
    errors.sort_by_key(|p| p.line);
    if errors.len() > MAX_PROBLEMS {
        let rest = errors.len() - MAX_PROBLEMS;
        let first = &errors[MAX_PROBLEMS];
        let more = Problem::new(
            &first.file,
            first.line,
            format!("{rest} more problem(s) from this line on are not shown"),
        );
        errors.truncate(MAX_PROBLEMS);
        errors.push(more);
    }
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_errors(text: &str) -> Vec<(usize, String)> {
        let mut lines = Lines::new("f", text, "files").unwrap();
        lines.by_ref().for_each(drop);
        match lines.finish((), Vec::new()) {
            Ok(()) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| (p.line, p.message)).collect(),
        }
    }

    #[test]
    fn clean_lines_pass_with_their_numbers_and_lose_one_carriage_return() {
        let got: Vec<(usize, &str)> = Lines::new("f", "a\tb\r\n\nc\r\r\n", "files")
            .unwrap()
            .collect();
        // "c\r\r": one \r is stripped, the other is a control character.
        assert_eq!(got, vec![(1, "a\tb"), (2, ""), (4, "")]);
        assert_eq!(line_errors("a\nc\r\r\n")[0].0, 2);
    }

    #[test]
    fn entries_are_bounded_and_the_walk_ends_there() {
        let text = "x\n".repeat(MAX_ENTRIES + 5);
        let mut lines = Lines::new("f", &text, "files").unwrap();
        let mut walked = 0;
        while let Some((line, _)) = lines.next() {
            walked += 1;
            if !lines.entry(line, "things") {
                break;
            }
        }
        assert_eq!(walked, MAX_ENTRIES + 1);
        assert_eq!(lines.next(), None);
        let problems = lines.finish((), Vec::new()).unwrap_err();
        assert_eq!(
            problems[0].to_string(),
            "f:10001: more than 10000 things; a file holds at most 10000"
        );
    }

    #[test]
    fn control_characters_are_named_with_their_column() {
        assert_eq!(
            line_errors("ok\nweb:a:1:once:echo \u{0}x\n"),
            vec![(
                2,
                "control character U+0000 in column 19: only TAB is allowed".to_string()
            )]
        );
        for (c, name) in [
            ('\u{1}', "U+0001"),
            ('\u{1b}', "U+001B"),
            ('\u{7f}', "U+007F"),
            ('\r', "U+000D"),
            ('\u{b}', "U+000B"),
        ] {
            let errors = line_errors(&format!("#{c}comment"));
            assert_eq!(errors.len(), 1, "{name}");
            assert!(errors[0].1.contains(name), "{errors:?}");
            assert!(errors[0].1.contains("column 2"), "{errors:?}");
        }
    }

    #[test]
    fn replacement_character_means_invalid_utf8() {
        let text = String::from_utf8_lossy(b"web:a:1:once:\xff\n").into_owned();
        assert_eq!(
            line_errors(&text),
            vec![(
                1,
                "invalid UTF-8 (U+FFFD) in column 14: the file must be UTF-8 text".to_string()
            )]
        );
    }

    #[test]
    fn other_unicode_is_fine() {
        assert!(line_errors("é ü 😀 \u{a0} \u{feff}").is_empty());
    }

    #[test]
    fn long_lines_are_refused_without_quoting_them() {
        let ok = "x".repeat(MAX_LINE_BYTES);
        assert!(line_errors(&ok).is_empty());
        let long = "x".repeat(MAX_LINE_BYTES + 1);
        let errors = line_errors(&format!("a\n{long}"));
        assert_eq!(
            errors,
            vec![(
                2,
                "line is 4097 bytes long; lines are limited to 4096".into()
            )]
        );
    }

    #[test]
    fn size_is_checked_before_anything_else() {
        let big = "#".repeat(MAX_FILE_BYTES + 1);
        let Err(err) = Lines::new("cltab", &big, "replicated files") else {
            panic!("a file too large must be refused");
        };
        assert_eq!(
            err[0].to_string(),
            "cltab:1: file is 1048577 bytes; replicated files are limited to 1048576"
        );
        assert!(Lines::new("cltab", &big[1..], "replicated files").is_ok());
    }

    #[test]
    fn finish_sorts_and_bounds_the_problems() {
        assert_eq!(finish(7, Vec::new()), Ok(7));
        let errors: Vec<Problem> = (1..=250)
            .rev()
            .map(|l| Problem::new("f", l, "bad"))
            .collect();
        let got = finish((), errors).unwrap_err();
        assert_eq!(got.len(), MAX_PROBLEMS + 1);
        assert_eq!(got[0].line, 1);
        assert_eq!(got[MAX_PROBLEMS - 1].line, 100);
        assert_eq!(
            got[MAX_PROBLEMS].to_string(),
            "f:101: 150 more problem(s) from this line on are not shown"
        );
        let few = vec![Problem::new("f", 2, "b"), Problem::new("f", 1, "a")];
        assert_eq!(finish((), few).unwrap_err()[0].message, "a");
    }
}
