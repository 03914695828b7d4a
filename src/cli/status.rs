//! `mosha status`: the cluster as this node sees it, from `DIR/hastat.json`, and how old that
//! is.

use std::path::Path;
use std::process::ExitCode;

use crate::daemon;

/// Prints the cluster status from `dir/hastat.json`.
pub(super) fn status(dir: &Path, json: bool, verbose: bool) -> ExitCode {
    let path = dir.join("hastat.json");
    // hastat grows with the cluster (about 1 KB per member and per group): 64 MiB is far
    // more than any real one, and bounds what a damaged file can make us read.
    let text = match crate::files::read_bounded(&path, 64 << 20) {
        crate::files::Content::Text(t) => t,
        crate::files::Content::Missing => {
            eprintln!(
                "mosha status: {}: not found (is mosha running on this directory?)",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        crate::files::Content::TooLarge(n) => {
            eprintln!(
                "mosha status: {}: {n} bytes is not a hastat",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        crate::files::Content::Unreadable(e) => {
            eprintln!("mosha status: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let h = match serde_json::from_str::<crate::hastat::Hastat>(&text) {
        Ok(h) => h,
        Err(e) => {
            if json {
                print!("{text}");
            }
            eprintln!("mosha status: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    // Stale: the daemon is gone (no lock) or hung (it holds the lock but writes nothing).
    let (age, stale) = h.age(daemon::wall_ms(), dir, || {
        crate::files::DirLock::holder(dir)
    });
    if json {
        print!("{text}");
    } else {
        print!("{}\n {}: {age}\n", h.render_with(verbose), path.display());
    }
    if stale {
        eprintln!("mosha status: {}: {age}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
