//! `mosha status`: the cluster as this node sees it, from `DIR/hastat.json`, and how old that
//! is.

use std::path::Path;
use std::process::ExitCode;

use crate::daemon;

/// Prints the cluster status from `dir/hastat.json`.
pub(super) fn status(dir: &Path, json: bool) -> ExitCode {
    let path = dir.join("hastat.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "mosha status: {}: {e} (is mosha running on this directory?)",
                path.display()
            );
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
        print!("{}\n {}: {age}\n", h.render(), path.display());
    }
    if stale {
        eprintln!("mosha status: {}: {age}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
