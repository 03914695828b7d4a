//! `mosha check`: validates the files of a node directory offline.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Cltab, Hactl};

/// Validates the files of `dir`; prints problems to stderr and a summary to stdout.
pub(super) fn check(dir: &Path) -> ExitCode {
    let mut bad = false;
    let cltab_path = dir.join("cltab");
    let hactl_path = dir.join("hactl");
    let read = |p: &Path| match crate::files::read_bounded(p, crate::files::MAX_READ_BYTES) {
        crate::files::Content::Text(t) => Ok(Some(t)),
        crate::files::Content::Missing => Ok(None),
        crate::files::Content::TooLarge(n) => Err(config::text::too_large(
            &p.display().to_string(),
            n,
            "replicated files",
            crate::files::MAX_READ_BYTES,
        )
        .to_string()),
        crate::files::Content::Unreadable(e) => Err(format!("{}: cannot read: {e}", p.display())),
    };
    let cltab = match read(&cltab_path) {
        Ok(Some(text)) => match Cltab::parse(&cltab_path.display().to_string(), &text) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("{w} (warning)");
                }
                println!(
                    "{}: ok ({} groups, {} entries)",
                    cltab_path.display(),
                    c.groups().len(),
                    c.entries.len()
                );
                Some(c)
            }
            Err(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
                bad = true;
                None
            }
        },
        Ok(None) => {
            eprintln!("{}: file not found", cltab_path.display());
            bad = true;
            None
        }
        Err(e) => {
            eprintln!("{e}");
            bad = true;
            None
        }
    };
    let hactl = match read(&hactl_path) {
        Ok(Some(text)) => match Hactl::parse(&hactl_path.display().to_string(), &text) {
            Ok(h) => {
                println!("{}: ok ({} groups)", hactl_path.display(), h.groups.len());
                Some(h)
            }
            Err(problems) => {
                for p in problems {
                    eprintln!("{p}");
                }
                bad = true;
                None
            }
        },
        Ok(None) => {
            println!(
                "{}: not found (every group stays stopped)",
                hactl_path.display()
            );
            Some(Hactl::default())
        }
        Err(e) => {
            eprintln!("{e}");
            bad = true;
            None
        }
    };
    let fencetab_path = dir.join("fencetab");
    match read(&fencetab_path) {
        Ok(Some(text)) => {
            match crate::config::Fencetab::parse(&fencetab_path.display().to_string(), &text) {
                Ok(f) => {
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
                Err(problems) => {
                    for p in problems {
                        eprintln!("{p}");
                    }
                    bad = true;
                }
            }
        }
        Ok(None) => println!(
            "{}: not found (no fencing: a lost node's groups wait for `mosha fence ack NODE`)",
            fencetab_path.display()
        ),
        Err(e) => {
            eprintln!("{e}");
            bad = true;
        }
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
