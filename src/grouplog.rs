//! The groups' logs on this node: `DIR/log/GROUP.log`, one line per record of the group's
//! entries (their output, a line each, and the supervisor's and the engine's events about
//! the group), as `mosha log GROUP` prints them.
//!
//! Each group's log is a ring of two files: when `GROUP.log` would pass [`FILE_LIMIT`] it
//! becomes `GROUP.log.1` (replacing the old one) and a new `GROUP.log` starts, so a group
//! never holds more than twice that on disk, however much its children print. Lines are
//! capped at [`LINE_LIMIT`] bytes and hold no control character but TAB.
//!
//! Records come from the daemon's tracing events: [`GroupLog`] is a tracing layer that keeps
//! every event of level INFO or above that has a `group` field ([`wanted`]), whatever the
//! `--log` filter lets through to stderr. Each node keeps only its own groups' logs: gossip
//! carries small state, not output, so `mosha log` shows what ran here.
//!
//! A write that fails (a full disk, a read-only remount) never stops the daemon: the records
//! are counted as lost, the ring tries again [`RETRY_AFTER`] later, and says so on stderr (not
//! through tracing: the ring is itself a layer) at most once a [`SAY_EVERY`]. This module
//! owns those files and nothing else; reading them is `mosha log`'s (`src/cli/log.rs`).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{FilterFn, LevelFilter};
use tracing_subscriber::layer::{Context, Layer};

mod queue;
use queue::Queue;

/// The directory under DIR that holds the groups' logs.
pub const LOG_DIR: &str = "log";

/// The size a group's current log file never passes, in bytes: a line that would take it
/// past this starts a new file. A group holds at most twice this on disk (`.log` and `.log.1`).
pub const FILE_LIMIT: u64 = 128 * 1024;

/// The longest line written, in bytes, without its newline; a longer record is cut and ends
/// with `…`.
pub const LINE_LIMIT: usize = 1024;

/// The most log files kept open at once; when one more is needed, all are closed.
pub const MAX_OPEN: usize = 64;

/// How long an open file is written before it is opened again by name, so that a file an
/// operator removed or moved is replaced soon.
pub const REOPEN_EVERY: Duration = Duration::from_secs(30);

/// How long after a failed write the ring tries again; records meanwhile are lost (counted).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The shortest time between two stderr lines about failing writes.
pub const SAY_EVERY: Duration = Duration::from_secs(60);

/// The mode of `DIR/log/` and of the files in it: the children's output may hold anything,
/// so only the daemon's user (and group) read it.
const DIR_MODE: u32 = 0o750;
const FILE_MODE: u32 = 0o640;

/// The longest group name that fits a file name (`NAME.log.1` within 255 bytes).
pub const MAX_FILE_GROUP_BYTES: usize = 255 - ".log.1".len();

/// Returns the path of `group`'s current log in node directory `dir` (`DIR/log/GROUP.log`),
/// or `None` when `group` is not a valid group name or too long for a file name: the name is
/// checked here again, since it becomes a path.
pub fn log_path(dir: &Path, group: &str) -> Option<PathBuf> {
    if crate::config::check_name("group", group).is_err() || group.len() > MAX_FILE_GROUP_BYTES {
        return None;
    }
    Some(dir.join(LOG_DIR).join(format!("{group}.log")))
}

/// Returns the path a log is rotated to: `GROUP.log.1` beside `GROUP.log`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Formats `t` as RFC 3339 in UTC with milliseconds (`2024-02-29T12:00:00.123Z`); a time
/// before 1970 is shown as 1970.
pub fn rfc3339_ms(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Returns the (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days that are not negative).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Returns `text` with every control character but TAB replaced by U+FFFD, so that a line
/// read back can neither break the one-record-a-line shape nor drive a terminal.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Cuts `line` to at most [`LINE_LIMIT`] bytes, on a character boundary, ending it with `…`
/// when something was cut.
fn cap(line: &mut String) {
    if line.len() <= LINE_LIMIT {
        return;
    }
    let mut end = LINE_LIMIT - '…'.len_utf8();
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line.truncate(end);
    line.push('…');
}

/// One record of a group's log, before it is formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When it happened.
    pub at: SystemTime,
    /// Its level (INFO, WARN or ERROR, as the daemon logged it).
    pub level: Level,
    /// The entry it is about, if any.
    pub tag: Option<String>,
    /// `stdout` or `stderr` for a child's output.
    pub stream: Option<String>,
    /// What happened, or the line the child printed, with the event's other fields after it
    /// (`level reached level=start state=FAILED`).
    pub message: String,
}

impl Record {
    /// Formats the record as one line of the log, without its newline:
    /// `TIME LEVEL [TAG STREAM] MESSAGE`, cleaned and capped at [`LINE_LIMIT`].
    pub fn line(&self) -> String {
        let mut line = format!("{} {:<5} ", rfc3339_ms(self.at), self.level);
        match (&self.tag, &self.stream) {
            (Some(t), Some(s)) => {
                let _ = write!(line, "[{t} {s}] ");
            }
            (Some(t), None) => {
                let _ = write!(line, "[{t}] ");
            }
            (None, Some(s)) => {
                let _ = write!(line, "[{s}] ");
            }
            (None, None) => {}
        }
        line.push_str(&self.message);
        let mut line = clean(&line);
        cap(&mut line);
        line
    }
}

/// An open log file and how many bytes it holds.
#[derive(Debug)]
struct Open {
    file: File,
    size: u64,
}

/// The state of failing writes: how many records were lost, and whether the operator was
/// told (then the recovery is told too).
#[derive(Debug, Default)]
struct Failing {
    lost: u64,
    said: bool,
}

/// The groups' logs of one node directory: the files open for writing, and the bookkeeping
/// of failed writes.
#[derive(Debug)]
pub struct Ring {
    /// `DIR/log`.
    dir: PathBuf,
    /// The open files, by group name (at most [`MAX_OPEN`]).
    open: BTreeMap<String, Open>,
    /// When the open files were last all closed (see [`REOPEN_EVERY`]).
    opened_at: Instant,
    /// Set while writes fail: no write is tried before `retry_at`.
    failing: Option<Failing>,
    retry_at: Option<Instant>,
    /// When a line about failing writes was last said on stderr.
    said_at: Option<Instant>,
    /// Failed writes since the start.
    errors: u64,
    /// Records dropped since the start (see [`queue`]).
    dropped: u64,
}

impl Ring {
    /// Creates the ring of node directory `dir` (its files go to `DIR/log`, created when
    /// first needed); `now` starts its clock.
    pub fn new(dir: &Path, now: Instant) -> Ring {
        Ring {
            dir: dir.join(LOG_DIR),
            open: BTreeMap::new(),
            opened_at: now,
            failing: None,
            retry_at: None,
            said_at: None,
            errors: 0,
            dropped: 0,
        }
    }

    /// Returns how many writes failed since the start.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Appends `rec` to `group`'s log, rotating it first when the line would take it past
    /// [`FILE_LIMIT`]. Never fails: a failed write is counted and said (see the module's
    /// doc); a group whose name is not valid for a file is skipped.
    pub fn append(&mut self, group: &str, rec: &Record, now: Instant) {
        if self.retry_at.is_some_and(|t| now < t) {
            if let Some(f) = &mut self.failing {
                f.lost += 1;
            }
            return;
        }
        if now.saturating_duration_since(self.opened_at) >= REOPEN_EVERY {
            self.open.clear();
            self.opened_at = now;
        }
        let mut line = rec.line();
        if let Some(f) = &self.failing {
            let note = Record {
                at: rec.at,
                level: Level::WARN,
                tag: None,
                stream: None,
                message: format!(
                    "{} record(s) of this node's group logs lost: writing failed",
                    f.lost
                ),
            };
            line = format!("{}\n{line}", note.line());
        }
        match self.write(group, &line) {
            Ok(()) => {
                self.retry_at = None;
                if let Some(f) = self.failing.take() {
                    if f.said {
                        self.say(
                            now,
                            &format!("group logs written again ({} record(s) lost)", f.lost),
                        );
                    }
                }
            }
            Err(e) => {
                self.errors += 1;
                self.open.remove(group);
                self.retry_at = Some(now + RETRY_AFTER);
                let quiet = self
                    .said_at
                    .is_some_and(|t| now.saturating_duration_since(t) < SAY_EVERY);
                let f = self.failing.get_or_insert_with(Failing::default);
                f.lost += 1;
                if !quiet {
                    f.said = true;
                    let lost = f.lost;
                    self.say(now, &format!(
                        "cannot write {}: {e}; group logs are not kept while this lasts \
                         ({lost} record(s) lost so far; retried every {} s, said at most once a minute)",
                        self.dir.join(format!("{group}.log")).display(),
                        RETRY_AFTER.as_secs()
                    ));
                }
            }
        }
    }

    /// Writes `line` and its newline to `group`'s current file, opening or rotating it first
    /// as needed.
    fn write(&mut self, group: &str, line: &str) -> io::Result<()> {
        let Some(path) = self.path(group) else {
            return Ok(());
        };
        if !self.open.contains_key(group) {
            if self.open.len() >= MAX_OPEN {
                self.open.clear();
            }
            let open = self.open_file(&path)?;
            self.open.insert(group.to_string(), open);
        }
        let bytes = line.len() as u64 + 1;
        let mut open = self.open.remove(group).expect("opened above");
        if open.size > 0 && open.size + bytes > FILE_LIMIT {
            drop(open);
            std::fs::rename(&path, rotated_path(&path))?;
            open = self.open_file(&path)?;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        // On a failure the file is dropped: it is opened again, and measured, on the retry.
        open.file.write_all(&buf)?;
        open.size += bytes;
        self.open.insert(group.to_string(), open);
        Ok(())
    }

    /// Returns `DIR/log/GROUP.log`, or `None` for a name that is not valid for a file.
    fn path(&self, group: &str) -> Option<PathBuf> {
        log_path(self.dir.parent().unwrap_or(&self.dir), group)
    }

    /// Opens `path` for appending (creating it and `DIR/log` as needed). A file that does not
    /// end with a newline (a write cut by a full disk) gets one, so the next line starts
    /// clean.
    fn open_file(&self, path: &Path) -> io::Result<Open> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.dir.display())))?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(path)?;
        let mut size = file.metadata()?.len();
        if size > 0 {
            let mut last = [0u8];
            file.read_exact_at(&mut last, size - 1)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                size += 1;
            }
        }
        Ok(Open { file, size })
    }

    /// Says `text` on stderr, in the shape of the daemon's log lines, and notes when. A
    /// stderr that cannot be written (a full disk) loses the line: `eprintln!` would panic,
    /// and did (found by the chaos run: a full DIR held both the ring and the daemon's
    /// stderr).
    fn say(&mut self, now: Instant, text: &str) {
        self.said_at = Some(now);
        let line = format!(
            "{}  WARN mosha::grouplog: {text}\n",
            rfc3339_ms(SystemTime::now())
        );
        let _ = io::Write::write_all(&mut io::stderr(), line.as_bytes());
    }
}

/// The tracing layer that writes the groups' logs; clones share one [`Ring`]. It writes
/// nothing until [`GroupLog::start`] names the node directory (after the daemon locked it).
/// Install it with [`wanted`] as its filter. Events are queued and written by a thread of
/// its own (see [`queue`]); [`GroupLog::flush`] waits until they are.
#[derive(Debug, Clone, Default)]
pub struct GroupLog {
    ring: Arc<Mutex<Option<Ring>>>,
    queue: Arc<Queue>,
}

impl GroupLog {
    /// Starts writing the logs of node directory `dir`, from a thread of its own. Started
    /// before the daemon takes its real-time priority (which is per thread), that thread
    /// keeps the normal policy: writing logs never competes with the loop.
    pub fn start(&self, dir: &Path) {
        *self.lock() = Some(Ring::new(dir, Instant::now()));
        let (ring, queue) = (self.ring.clone(), self.queue.clone());
        let spawned = std::thread::Builder::new()
            .name("group-logs".to_string())
            .spawn(move || loop {
                let (batch, dropped) = queue.take();
                let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
                let Some(ring) = ring.as_mut() else { continue };
                let now = Instant::now();
                if dropped > 0 {
                    ring.dropped += dropped;
                    let quiet = (ring.said_at)
                        .is_some_and(|t| now.saturating_duration_since(t) < SAY_EVERY);
                    if !quiet {
                        let text = format!(
                            "{} record(s) of the group logs dropped so far: written slower \
                             than they came (said at most once a minute)",
                            ring.dropped
                        );
                        ring.say(now, &text);
                    }
                }
                for (group, rec) in batch {
                    ring.append(&group, &rec, now);
                }
            });
        match spawned {
            Ok(_) => self.queue.open(),
            Err(e) => {
                let line = format!("mosha: cannot start the group logs' writer: {e}\n");
                let _ = io::Write::write_all(&mut io::stderr(), line.as_bytes());
            }
        }
    }

    /// Waits until every event logged so far is written (or given up), at most `limit`;
    /// returns whether it was.
    pub fn flush(&self, limit: Duration) -> bool {
        self.queue.flush(limit)
    }

    /// Returns how many writes failed since the start.
    pub fn errors(&self) -> u64 {
        self.lock().as_ref().map_or(0, Ring::errors)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Ring>> {
        // A panic while writing a log line leaves nothing half-done that matters.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Returns the filter of the [`GroupLog`] layer: events (not spans) of level INFO or above
/// that have a `group` field. It is decided once per call site, and does not depend on the
/// `--log` filter, which applies to stderr only.
pub fn wanted() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    let f: fn(&Metadata<'_>) -> bool =
        |m| m.is_event() && *m.level() <= Level::INFO && m.fields().field("group").is_some();
    FilterFn::new(f).with_max_level_hint(LevelFilter::INFO)
}

impl<S: Subscriber> Layer<S> for GroupLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(group) = fields.group else {
            return;
        };
        let message = match (fields.message.text.is_empty(), fields.rest.text.is_empty()) {
            (_, true) => fields.message.text,
            (true, false) => fields.rest.text.trim_start().to_string(),
            (false, false) => fields.message.text + &fields.rest.text,
        };
        let rec = Record {
            at: SystemTime::now(),
            level: *event.metadata().level(),
            tag: fields.tag,
            stream: fields.stream,
            message,
        };
        // A child's output may wait for the writer; the daemon's own events never do.
        let wait = rec.stream.is_some();
        self.queue.push(group, rec, wait);
    }
}

/// Text gathered from an event's fields, at most a little more than a line's worth.
#[derive(Debug, Default)]
struct Capped {
    text: String,
}

impl fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep a few bytes beyond the limit so that `cap` sees the line was longer.
        let room = (LINE_LIMIT + 8).saturating_sub(self.text.len());
        let mut end = s.len().min(room);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        Ok(())
    }
}

/// An event's fields as the ring shows them: `group`, `tag` and `stream` apart, the message,
/// and the other fields as ` key=value`.
#[derive(Debug, Default)]
struct Fields {
    group: Option<String>,
    tag: Option<String>,
    stream: Option<String>,
    message: Capped,
    rest: Capped,
}

impl Fields {
    fn short(value: &dyn fmt::Display) -> String {
        let mut c = Capped::default();
        let _ = write!(c, "{value}");
        c.text
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "group" => self.group = Some(Fields::short(&value)),
            "tag" => self.tag = Some(Fields::short(&value)),
            "stream" => self.stream = Some(Fields::short(&value)),
            "message" => {
                let _ = self.message.write_str(value);
            }
            name if value.is_empty() || value.contains(char::is_whitespace) => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "group" | "tag" | "stream" => {
                let mut c = Capped::default();
                let _ = write!(c, "{value:?}");
                self.record_str(field, &c.text);
            }
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn rec(message: &str) -> Record {
        Record {
            at: at(1_709_164_800_123),
            level: Level::INFO,
            tag: Some("srv".to_string()),
            stream: Some("stdout".to_string()),
            message: message.to_string(),
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(at(951_782_399_999)), "2000-02-28T23:59:59.999Z");
        assert_eq!(
            rfc3339_ms(at(1_709_164_800_123)),
            "2024-02-29T00:00:00.123Z"
        );
        assert_eq!(
            rfc3339_ms(at(4_102_444_800_000)),
            "2100-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn a_record_is_one_line_with_its_tag_and_stream() {
        assert_eq!(
            rec("hello").line(),
            "2024-02-29T00:00:00.123Z INFO  [srv stdout] hello"
        );
        let mut r = rec("test failed: exit status 3");
        r.level = Level::WARN;
        r.stream = None;
        assert_eq!(
            r.line(),
            "2024-02-29T00:00:00.123Z WARN  [srv] test failed: exit status 3"
        );
        r.tag = None;
        r.level = Level::ERROR;
        assert_eq!(
            r.line(),
            "2024-02-29T00:00:00.123Z ERROR test failed: exit status 3"
        );
    }

    #[test]
    fn control_characters_but_tab_are_replaced() {
        let line = rec("a\u{1b}[31mb\tc\r\nd\u{7f}\u{85}").line();
        assert!(
            line.ends_with("] a\u{FFFD}[31mb\tc\u{FFFD}\u{FFFD}d\u{FFFD}\u{FFFD}"),
            "{line}"
        );
        assert_eq!(clean("x\u{0}y"), "x\u{FFFD}y");
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary_and_marked() {
        for filler in ["x", "é", "€", "😀"] {
            let line = rec(&filler.repeat(5000)).line();
            assert!(line.len() <= LINE_LIMIT, "{}", line.len());
            assert!(line.len() > LINE_LIMIT - 8, "{}", line.len());
            assert!(line.ends_with('…'), "{line}");
        }
        let short = rec(&"x".repeat(100)).line();
        assert!(!short.contains('…'));
    }

    #[test]
    fn a_full_log_is_rotated_and_a_group_never_holds_more_than_two_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ring = Ring::new(tmp.path(), Instant::now());
        let now = Instant::now();
        for i in 0..2000 {
            ring.append(
                "web",
                &rec(&format!("line {i:05} {}", "y".repeat(200))),
                now,
            );
        }
        let log = log_path(tmp.path(), "web").unwrap();
        let old = rotated_path(&log);
        assert_eq!(old, tmp.path().join("log/web.log.1"));
        let (cur, prev) = (read(&log), read(&old));
        assert!(cur.len() as u64 <= FILE_LIMIT, "{}", cur.len());
        assert!(prev.len() as u64 <= FILE_LIMIT, "{}", prev.len());
        assert!(prev.len() as u64 > FILE_LIMIT - 300, "{}", prev.len());
        assert!(cur.lines().last().unwrap().contains("line 01999 "));
        // The two files follow each other: the old one ends where the new one starts.
        let number = |l: &str| -> u32 { l.split(' ').nth(6).unwrap().parse().unwrap() };
        let first = number(cur.lines().next().unwrap());
        let last = number(prev.lines().last().unwrap());
        assert_eq!(first, last + 1);
        assert!(prev.ends_with('\n') && cur.ends_with('\n'));
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("log"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(ring.errors(), 0);
    }

    #[test]
    fn a_restarted_ring_rotates_a_full_file_and_ends_a_cut_line() {
        let tmp = tempfile::tempdir().unwrap();
        let log = log_path(tmp.path(), "db").unwrap();
        std::fs::create_dir(log.parent().unwrap()).unwrap();
        std::fs::write(&log, "half a li").unwrap();
        let mut ring = Ring::new(tmp.path(), Instant::now());
        ring.append("db", &rec("next"), Instant::now());
        let text = read(&log);
        assert!(text.starts_with("half a li\n2024"), "{text:?}");
        drop(ring);
        std::fs::write(&log, "z".repeat(FILE_LIMIT as usize - 10) + "\n").unwrap();
        let mut ring = Ring::new(tmp.path(), Instant::now());
        ring.append("db", &rec("after"), Instant::now());
        assert_eq!(read(&rotated_path(&log)).len() as u64, FILE_LIMIT - 9);
        assert!(read(&log).ends_with("] after\n"));
    }

    #[test]
    fn names_that_are_not_valid_group_names_are_never_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ring = Ring::new(&tmp.path().join("node"), Instant::now());
        let long = "g".repeat(MAX_FILE_GROUP_BYTES + 1);
        for bad in ["", "../x", ".hidden", "-x", "a/b", "a b", long.as_str()] {
            assert_eq!(log_path(tmp.path(), bad), None, "{bad:?}");
            ring.append(bad, &rec("x"), Instant::now());
        }
        assert!(!tmp.path().join("node").exists());
        assert!(!tmp.path().join("x.log").exists());
        assert_eq!(ring.errors(), 0);
        assert!(log_path(tmp.path(), &"g".repeat(MAX_FILE_GROUP_BYTES)).is_some());
    }

    #[test]
    fn at_most_max_open_files_are_kept_open() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ring = Ring::new(tmp.path(), Instant::now());
        for g in 0..MAX_OPEN + 6 {
            ring.append(&format!("g{g}"), &rec("x"), Instant::now());
            assert!(ring.open.len() <= MAX_OPEN);
        }
        assert_eq!(ring.open.len(), 6);
        assert!(read(&tmp.path().join("log/g0.log")).ends_with("] x\n"));
    }

    #[test]
    fn a_failed_write_is_counted_retried_later_and_its_loss_noted() {
        let tmp = tempfile::tempdir().unwrap();
        // A file where the directory should be: every open fails.
        std::fs::write(tmp.path().join(LOG_DIR), "").unwrap();
        let t0 = Instant::now();
        let mut ring = Ring::new(tmp.path(), t0);
        ring.append("web", &rec("one"), t0);
        ring.append("web", &rec("two"), t0 + Duration::from_millis(500));
        assert_eq!(ring.errors(), 1, "no retry within RETRY_AFTER");
        ring.append("web", &rec("three"), t0 + RETRY_AFTER);
        assert_eq!(ring.errors(), 2);
        std::fs::remove_file(tmp.path().join(LOG_DIR)).unwrap();
        ring.append("web", &rec("four"), t0 + RETRY_AFTER * 3);
        let text = read(&tmp.path().join("log/web.log"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("WARN  3 record(s)"), "{text}");
        assert!(lines[1].ends_with("] four"), "{text}");
        assert_eq!(ring.errors(), 2);
        assert!(ring.failing.is_none());
    }

    #[test]
    fn the_layer_keeps_info_events_with_a_group_and_nothing_else() {
        use tracing_subscriber::layer::SubscriberExt;
        let tmp = tempfile::tempdir().unwrap();
        let log = GroupLog::default();
        let sub = tracing_subscriber::registry().with(log.clone().with_filter(wanted()));
        tracing::subscriber::with_default(sub, || {
            tracing::info!(group = "web", "before start: not kept");
            log.start(tmp.path());
            let (group, tag) = ("web", "t");
            tracing::info!(target: "mosha::child", %group, %tag, stream = "stderr", "oops");
            tracing::warn!(group = %group, tag = %tag, "test failed: exit status 3");
            tracing::info!(group = %group, level = "start", state = "FAILED", "level reached");
            tracing::error!(group = %group, from = %"n2", "not fenced");
            tracing::debug!(group = %group, "debug: not kept");
            tracing::info!("no group: not kept");
            tracing::info!(group = %"../etc", "bad name: not kept");
        });
        assert!(log.flush(std::time::Duration::from_secs(10)));
        let text = read(&tmp.path().join("log/web.log"));
        let tails: Vec<&str> = text.lines().map(|l| &l[25..]).collect();
        assert_eq!(
            tails,
            [
                "INFO  [t stderr] oops",
                "WARN  [t] test failed: exit status 3",
                "INFO  level reached level=start state=FAILED",
                "ERROR not fenced from=n2",
            ],
            "{text}"
        );
        assert_eq!(
            std::fs::read_dir(tmp.path().join("log")).unwrap().count(),
            1
        );
        assert_eq!(log.errors(), 0);
    }
}
