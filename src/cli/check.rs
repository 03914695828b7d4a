//! `mosha check`: validates the files of a node directory offline, and runs `validate-all`
//! of the OCF agents cltab names (through [`super::agents`]).

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Cltab, Fencetab, Hactl, Problem};

/// Reads `p` (bounded): `Some(None)` when it is missing; `None`, with the error printed and
/// `bad` set, when it is too large or unreadable.
fn read(p: &Path, bad: &mut bool) -> Option<Option<String>> {
    let error = match crate::files::read_bounded(p, crate::files::MAX_READ_BYTES) {
        crate::files::Content::Text(t) => return Some(Some(t)),
        crate::files::Content::Missing => return Some(None),
        crate::files::Content::TooLarge(n) => config::text::too_large(
            &p.display().to_string(),
            n,
            "replicated files",
            crate::files::MAX_READ_BYTES,
        )
        .to_string(),
        crate::files::Content::Unreadable(e) => format!("{}: cannot read: {e}", p.display()),
    };
    eprintln!("{error}");
    *bad = true;
    None
}

/// Returns what a parse gave, or prints every problem, sets `bad` and returns `None`.
fn parsed<T>(result: Result<T, Vec<Problem>>, bad: &mut bool) -> Option<T> {
    result
        .map_err(|problems| {
            for p in problems {
                eprintln!("{p}");
            }
            *bad = true;
        })
        .ok()
}

/// Validates the files of `dir`, and the resource agents cltab names as they are installed
/// in `agents` (see [`super::agents`]); prints problems to stderr and a summary to stdout.
pub(super) fn check(dir: &Path, agents: &super::agents::Dirs) -> ExitCode {
    let mut bad = false;
    let cltab_path = dir.join("cltab");
    let hactl_path = dir.join("hactl");
    let fencetab_path = dir.join("fencetab");
    let name = |p: &Path| p.display().to_string();
    let cltab = match read(&cltab_path, &mut bad) {
        Some(Some(text)) => {
            parsed(Cltab::parse(&name(&cltab_path), &text), &mut bad).inspect(|c| {
                for w in &c.warnings {
                    eprintln!("{w} (warning)");
                }
                if super::agents::check(&name(&cltab_path), c, agents, &super::run::hostname()) {
                    bad = true;
                    return;
                }
                println!(
                    "{}: ok ({} groups, {} entries)",
                    cltab_path.display(),
                    c.groups().len(),
                    c.entries.len()
                );
            })
        }
        Some(None) => {
            eprintln!("{}: file not found", cltab_path.display());
            bad = true;
            None
        }
        None => None,
    };
    let hactl = match read(&hactl_path, &mut bad) {
        Some(Some(text)) => {
            parsed(Hactl::parse(&name(&hactl_path), &text), &mut bad).inspect(|h| {
                println!("{}: ok ({} groups)", hactl_path.display(), h.groups.len());
            })
        }
        Some(None) => {
            println!(
                "{}: not found (every group stays stopped)",
                hactl_path.display()
            );
            Some(Hactl::default())
        }
        None => None,
    };
    match read(&fencetab_path, &mut bad) {
        Some(Some(text)) => {
            if let Some(f) = parsed(Fencetab::parse(&name(&fencetab_path), &text), &mut bad) {
                println!("{}: ok", fencetab_path.display());
                let off = f.disabled();
                if !off.is_empty() {
                    eprintln!(
                        "{}: warning: fencing is OFF for {} (none): a lost node's groups are recovered without fencing",
                        fencetab_path.display(),
                        off.join(", ")
                    );
                }
            }
        }
        Some(None) => println!(
            "{}: not found (no fencing: a lost node's groups wait for `mosha fence ack NODE`)",
            fencetab_path.display()
        ),
        None => {}
    }
    let admin_path = dir.join("admin");
    match read(&admin_path, &mut bad) {
        Some(Some(text)) => {
            if let Some(a) = parsed(config::admin::parse(&name(&admin_path), &text), &mut bad) {
                println!(
                    "{}: ok ({} node(s) in standby, {} group(s) frozen{})",
                    admin_path.display(),
                    a.standby.len(),
                    a.frozen.len(),
                    if a.maintenance { ", MAINTENANCE" } else { "" }
                );
            }
        }
        Some(None) => println!("{}: not found (no standing orders)", admin_path.display()),
        None => {}
    }
    let key_path = dir.join(crate::daemon::keys::KEY_FILE);
    if key_path.exists() {
        match crate::daemon::keys::load(&key_path) {
            Ok(keys) => {
                let f = keys.fingerprints();
                let others: Vec<String> = f[1..].iter().map(ToString::to_string).collect();
                println!(
                    "{}: ok ({} key{}: {} seals{})",
                    key_path.display(),
                    f.len(),
                    if f.len() == 1 { "" } else { "s" },
                    f[0],
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!(", {} also open", others.join(", "))
                    }
                );
            }
            Err(e) => {
                eprintln!("{e}");
                bad = true;
            }
        }
    } else {
        println!(
            "{}: not found (`mosha run` refuses to start without a key file unless --key-file \
             or --insecure; create it with `mosha keygen`)",
            key_path.display()
        );
    }
    if let (Some(c), Some(h)) = (&cltab, &hactl) {
        for w in config::cross_check(c, h, &hactl_path.display().to_string()) {
            eprintln!("{w} (warning)");
        }
    }
    if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
