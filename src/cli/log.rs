//! `mosha log GROUP [-n LINES] [--follow]`: prints the end of a group's log on this node
//! (`DIR/log/GROUP.log.1`, then `GROUP.log`; see [`crate::grouplog`], which writes them),
//! oldest first, and with `--follow` what is appended afterwards, across rotations, like
//! `tail -F`. Each node keeps only its own groups' logs: `mosha status` tells which node to
//! ask. Lines are printed cleaned of control characters, whoever wrote the files.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config;
use crate::grouplog::{self, FILE_LIMIT};

/// The most read from the end of each file: the ring keeps them under [`FILE_LIMIT`], but a
/// file put there by hand could be anything.
const MAX_READ: u64 = 8 * FILE_LIMIT;

/// How often `--follow` looks for new lines.
const POLL: Duration = Duration::from_millis(200);

/// `mosha log GROUP`.
pub(super) fn log(dir: &Path, group: &str, lines: usize, follow: bool) -> ExitCode {
    if let Err(e) = config::check_name("group", group) {
        eprintln!("mosha log: {e}");
        return ExitCode::from(2);
    }
    let Some(path) = grouplog::log_path(dir, group) else {
        eprintln!(
            "mosha log: a group name longer than {} bytes has no log file",
            grouplog::MAX_FILE_GROUP_BYTES
        );
        return ExitCode::from(2);
    };
    let (cur, old) = match open_both(&path) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("mosha log: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if cur.is_none() && old.is_none() {
        eprintln!(
            "mosha log: no entry of {group} ran on this node (there is no {}); \
             `mosha status` shows the node it runs on, and `mosha log` there shows its log",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    match print(&path, cur, old, lines, follow) {
        Ok(()) => ExitCode::SUCCESS,
        // stdout closed (`mosha log web | head`): nothing more to say.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mosha log: {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Opens `GROUP.log` and `GROUP.log.1` (each `None` when missing), the current one first; if
/// the log was rotated in between (the old one is the file just opened as current), again
/// (three tries: the files may also be links to one file, made by hand).
fn open_both(path: &Path) -> io::Result<(Option<File>, Option<File>)> {
    let rotated = grouplog::rotated_path(path);
    let mut tries = 0;
    loop {
        let cur = open_if_there(path)?;
        let old = open_if_there(&rotated)?;
        tries += 1;
        if let (Some(c), Some(o)) = (&cur, &old) {
            if tries < 3 && c.metadata()?.ino() == o.metadata()?.ino() {
                continue;
            }
        }
        return Ok((cur, old));
    }
}

fn open_if_there(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Prints the last `lines` lines of `old` then `cur`, then follows `path` if asked.
fn print(
    path: &Path,
    cur: Option<File>,
    old: Option<File>,
    lines: usize,
    follow: bool,
) -> io::Result<()> {
    let mut last: VecDeque<String> = VecDeque::with_capacity(lines.min(4096));
    let mut keep = |text: &[u8]| {
        for line in String::from_utf8_lossy(text).lines() {
            if last.len() == lines {
                last.pop_front();
            }
            if lines > 0 {
                last.push_back(grouplog::clean(line));
            }
        }
    };
    if let Some(mut f) = old {
        keep(&read_end(&mut f)?);
    }
    let mut cur = cur;
    if let Some(f) = &mut cur {
        let text = read_end(f)?;
        // A line being written as we read it is printed whole by --follow, not here.
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        keep(&text[..whole]);
        if follow {
            f.seek(SeekFrom::Current(-((text.len() - whole) as i64)))?;
        }
    }
    let mut out = io::stdout().lock();
    for line in &last {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if follow {
        Follow::new(path, cur)?.run(&mut out)?;
    }
    Ok(())
}

/// Reads `f` to its end, from at most [`MAX_READ`] bytes before it (then from the first whole
/// line).
fn read_end(f: &mut File) -> io::Result<Vec<u8>> {
    let size = f.metadata()?.len();
    let start = size.saturating_sub(MAX_READ);
    f.seek(SeekFrom::Start(start))?;
    let mut text = Vec::new();
    f.take(MAX_READ).read_to_end(&mut text)?;
    if start > 0 {
        let first = text.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        text.drain(..first);
    }
    Ok(text)
}

/// `--follow`: the current file and where its unread part starts, watched by name.
struct Follow<'a> {
    path: &'a Path,
    file: Option<File>,
    /// The inode the name pointed to when `file` was opened.
    ino: u64,
    /// The bytes of a line not yet ended (bounded: a longer one is printed as it is).
    partial: Vec<u8>,
}

impl<'a> Follow<'a> {
    fn new(path: &'a Path, file: Option<File>) -> io::Result<Follow<'a>> {
        let ino = match &file {
            Some(f) => f.metadata()?.ino(),
            None => 0,
        };
        Ok(Follow {
            path,
            file,
            ino,
            partial: Vec::new(),
        })
    }

    /// Prints what is appended to the log, until interrupted or stdout closes.
    fn run(&mut self, out: &mut impl Write) -> io::Result<()> {
        loop {
            self.drain(out)?;
            match std::fs::metadata(self.path) {
                // Rotated (or replaced): finish the old file, then start the new one.
                Ok(m) if self.file.is_none() || m.ino() != self.ino => {
                    self.drain(out)?;
                    flush(&mut self.partial, out)?;
                    self.file = open_if_there(self.path)?;
                    self.ino = match &self.file {
                        Some(f) => f.metadata()?.ino(),
                        None => 0,
                    };
                    continue;
                }
                // Truncated by hand: start again from its beginning.
                Ok(m) => {
                    if let Some(f) = &mut self.file {
                        if m.len() < f.stream_position()? {
                            f.seek(SeekFrom::Start(0))?;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            out.flush()?;
            std::thread::sleep(POLL);
        }
    }

    /// Prints the whole lines appended to the open file since the last call.
    fn drain(&mut self, out: &mut impl Write) -> io::Result<()> {
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = f.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            self.partial.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
                let rest = self.partial.split_off(end + 1);
                for line in String::from_utf8_lossy(&self.partial).lines() {
                    writeln!(out, "{}", grouplog::clean(line))?;
                }
                self.partial = rest;
            }
            if self.partial.len() > grouplog::LINE_LIMIT * 4 {
                flush(&mut self.partial, out)?;
            }
        }
    }
}

/// Prints the unended line kept so far, if any, and forgets it.
fn flush(partial: &mut Vec<u8>, out: &mut impl Write) -> io::Result<()> {
    if !partial.is_empty() {
        let line = grouplog::clean(&String::from_utf8_lossy(partial));
        writeln!(out, "{line}")?;
        partial.clear();
    }
    Ok(())
}
