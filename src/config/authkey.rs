//! The `authkey` file: the cluster's gossip keys, one per line as 64 hexadecimal digits
//! (256 bits), written by `mosha keygen`.
//!
//! ```text
//! # the first key encrypts; every key listed is accepted
//! 5c1f0e4d9a3b...  (64 hex digits)
//! 0a7e33c2f1d8...  (the previous key, during a rotation)
//! ```
//!
//! - Blank lines and lines whose first non-blank character is `#` are skipped.
//! - The first key is the *primary*: this node seals what it sends with it. Every listed key
//!   opens what peers send, so a rolling rotation works without downtime (add the new key
//!   second everywhere, move it first everywhere, remove the old one).
//! - At most [`MAX_KEYS`] keys; a key may not be listed twice.
//!
//! This module owns the syntax only. Whether the file is private to its owner is checked by
//! the daemon, which reads it; the cipher is [`crate::gossip`]'s.

use crate::config::{text, Problem};

/// Bytes in one key (256 bits).
pub const KEY_BYTES: usize = 32;

/// Most keys one file may list: a rotation needs two, and every listed key is tried on
/// every datagram whose key hint it shares.
pub const MAX_KEYS: usize = 8;

/// Largest key file read, in bytes: far more than [`MAX_KEYS`] keys and their comments.
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// Parses the text of a key file; `file` is the name printed in problems.
///
/// Returns the keys in file order (the first one is the primary).
///
/// # Errors
/// Returns every problem of the file, sorted by line: a line that is not 64 hexadecimal
/// digits, a duplicate key, more than [`MAX_KEYS`] keys, or no key at all.
pub fn parse(file: &str, text: &str) -> Result<Vec<[u8; KEY_BYTES]>, Vec<Problem>> {
    let mut keys: Vec<[u8; KEY_BYTES]> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    let mut errors = Vec::new();
    if text.len() > MAX_FILE_BYTES {
        errors.push(Problem::new(
            file,
            1,
            format!(
                "file is {} bytes; a key file is at most {MAX_FILE_BYTES}",
                text.len()
            ),
        ));
        return Err(errors);
    }
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Err(message) = text::check_line(raw) {
            errors.push(Problem::new(file, line, message));
            continue;
        }
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let key = match decode_hex(content) {
            Ok(key) => key,
            Err(message) => {
                errors.push(Problem::new(file, line, message));
                continue;
            }
        };
        if let Some(first) = keys.iter().position(|k| *k == key) {
            errors.push(Problem::new(
                file,
                line,
                format!("duplicate key (first listed at line {})", lines[first]),
            ));
            continue;
        }
        if keys.len() == MAX_KEYS {
            errors.push(Problem::new(
                file,
                line,
                format!("more than {MAX_KEYS} keys (remove the ones no node uses any more)"),
            ));
            continue;
        }
        keys.push(key);
        lines.push(line);
    }
    let mut errors = match text::finish((), errors) {
        Ok(()) => Vec::new(),
        Err(errors) => errors,
    };
    if keys.is_empty() && errors.is_empty() {
        errors.push(Problem::new(
            file,
            1,
            "no key (write one with `mosha keygen`)",
        ));
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors)
    }
}

/// Formats `key` as the 64 lowercase hexadecimal digits a key file holds.
pub fn encode_hex(key: &[u8; KEY_BYTES]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes one key line. The message never quotes the line: it may be a key.
fn decode_hex(text: &str) -> Result<[u8; KEY_BYTES], String> {
    let shape = || {
        format!(
            "a key is {} hexadecimal digits (256 bits); this line has {} characters",
            2 * KEY_BYTES,
            text.chars().count()
        )
    };
    if text.len() != 2 * KEY_BYTES {
        return Err(shape());
    }
    let mut key = [0u8; KEY_BYTES];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => key[i] = (hi * 16 + lo) as u8,
            _ => {
                return Err(format!(
                    "a key is {} hexadecimal digits (0-9, a-f); character {} is not one",
                    2 * KEY_BYTES,
                    2 * i + if digit(pair[0]).is_none() { 1 } else { 2 }
                ))
            }
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        encode_hex(&[byte; KEY_BYTES])
    }

    fn errors(text: &str) -> Vec<String> {
        parse("authkey", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn keys_come_in_file_order_with_comments_skipped() {
        let text = format!("# ring\n\n{}\n  {}  \n# old\n", key(1), key(2));
        assert_eq!(
            parse("authkey", &text),
            Ok(vec![[1; KEY_BYTES], [2; KEY_BYTES]])
        );
        assert_eq!(encode_hex(&[0xab; KEY_BYTES]).len(), 64);
        assert_eq!(
            parse("authkey", &key(0xab).to_uppercase()),
            Ok(vec![[0xab; KEY_BYTES]])
        );
    }

    #[test]
    fn bad_lines_are_reported_without_quoting_them() {
        let secret = "deadbeef";
        let bad_digit = format!("{}g", &key(3)[..63]);
        let e = errors(&format!("{secret}\n{}\n{bad_digit}\n{}\n", key(1), key(1)));
        assert_eq!(
            e,
            vec![
                "authkey:1: a key is 64 hexadecimal digits (256 bits); this line has 8 characters",
                "authkey:3: a key is 64 hexadecimal digits (0-9, a-f); character 64 is not one",
                "authkey:4: duplicate key (first listed at line 2)",
            ]
        );
        assert!(e.iter().all(|l| !l.contains(secret)));
    }

    #[test]
    fn empty_and_oversized_rings_are_refused() {
        assert_eq!(
            errors("# nothing\n"),
            vec!["authkey:1: no key (write one with `mosha keygen`)"]
        );
        let nine: String = (1..=9).map(|b| key(b) + "\n").collect();
        assert_eq!(
            errors(&nine),
            vec!["authkey:9: more than 8 keys (remove the ones no node uses any more)"]
        );
        assert_eq!(errors(&"#".repeat(MAX_FILE_BYTES + 1)).len(), 1);
        assert_eq!(
            errors(&format!("{}\n{}\u{0}\n", key(1), &key(2)[..63])),
            vec!["authkey:2: control character U+0000 in column 64: only TAB is allowed"]
        );
    }

    #[test]
    fn multibyte_characters_do_not_panic() {
        let text = "é".repeat(32);
        assert_eq!(text.len(), 64);
        assert_eq!(errors(&text).len(), 1);
    }
}
