//! `mosha fence NODE` and `mosha fence ack NODE`: fence a node by hand through its fencetab
//! levels, or acknowledge that it is off; both hand the record to the local daemon through
//! `DIR/commands/` and wait for its answer.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config;

/// How long a command waits for the daemon's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands a command to the local daemon through `dir/commands/` and returns its answer
/// (`Ok` when it was carried out, `Err` with the reason when refused or unanswered). The
/// command is written whole in `dir` first, then renamed in, so that the daemon never finds
/// half of it.
pub(super) fn drop_command(dir: &Path, name: &str, text: &str) -> Result<String, String> {
    let cmds = dir.join("commands");
    std::fs::create_dir_all(&cmds).map_err(|e| format!("{}: {e}", cmds.display()))?;
    let reply = crate::daemon::commands::reply_path(&cmds, name);
    let _ = std::fs::remove_file(&reply);
    let path = cmds.join(name);
    let staged = dir.join(format!(".command-{name}.{}", std::process::id()));
    crate::files::write_atomic(&staged, text.as_bytes())
        .and_then(|()| std::fs::rename(&staged, &path))
        .map_err(|e| format!("{}: {e}", cmds.display()))?;
    let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
    while std::time::Instant::now() < deadline {
        if let Ok(answer) = std::fs::read_to_string(&reply) {
            let _ = std::fs::remove_file(&reply);
            let answer = answer.trim();
            return match answer.strip_prefix("ok: ") {
                Some(done) => Ok(done.to_string()),
                None => Err(answer
                    .strip_prefix("refused: ")
                    .unwrap_or(answer)
                    .to_string()),
            };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Not taken: withdraw it, so that it is not carried out by a daemon started later.
    let withdrawn = std::fs::remove_file(&path).is_ok();
    Err(format!(
        "no answer from a daemon on {} within {} s (is mosha running there?){}",
        dir.display(),
        ANSWER_TIMEOUT.as_secs(),
        if withdrawn { "; request withdrawn" } else { "" }
    ))
}

/// `mosha fence NODE` and `mosha fence ack NODE`.
pub(super) fn fence(dir: &Path, args: &[String], yes: bool, force: bool) -> ExitCode {
    let (ack, node) = match args {
        [a, n] if a == "ack" => (true, n.as_str()),
        [n] => (false, n.as_str()),
        _ => {
            eprintln!("mosha fence: usage: mosha fence [ack] NODE");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = config::check_name("node name", node) {
        eprintln!("mosha fence: {e}");
        return ExitCode::from(2);
    }
    if ack {
        if !yes {
            println!(
                "Acknowledging that {node} is OFF: its groups will be started elsewhere.\n\
                 If {node} is still running them, they will run twice and data may be corrupted.\n\
                 Make sure {node} is powered off or cut off from shared resources.\n\
                 Type 'yes' to continue:"
            );
            let mut answer = String::new();
            if std::io::stdin().read_line(&mut answer).is_err() || answer.trim() != "yes" {
                eprintln!("mosha fence: not acknowledged");
                return ExitCode::FAILURE;
            }
        }
        let text = if force {
            format!(
                "{}\nacknowledged by an operator (forced)",
                crate::daemon::commands::FORCE
            )
        } else {
            "acknowledged by an operator".to_string()
        };
        return match drop_command(dir, &format!("ack-{node}"), &text) {
            Ok(done) => {
                println!("{node}: acknowledged: {done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mosha fence ack: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if force {
        eprintln!("mosha fence: --force goes with `ack` only");
        return ExitCode::from(2);
    }
    let path = dir.join("fencetab");
    let text = match crate::files::read_bounded(&path, crate::files::MAX_READ_BYTES) {
        crate::files::Content::Text(t) => t,
        crate::files::Content::Missing => String::new(),
        crate::files::Content::TooLarge(n) => {
            eprintln!(
                "{}: {n} bytes; replicated files are limited to {}",
                path.display(),
                crate::files::MAX_READ_BYTES
            );
            return ExitCode::FAILURE;
        }
        crate::files::Content::Unreadable(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let tab = match crate::config::Fencetab::parse(&path.display().to_string(), &text) {
        Ok(t) => t,
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            return ExitCode::FAILURE;
        }
    };
    let methods = match tab.for_node(node) {
        crate::config::Fencing::Methods(m) => m.to_vec(),
        crate::config::Fencing::Disabled => {
            eprintln!(
                "mosha fence: fencing is off (none) for {node} in {}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        crate::config::Fencing::Unconfigured => {
            eprintln!(
                "mosha fence: no fence method for {node} in {}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let r = crate::fence::fence_blocking(node, &methods);
    if r.ok {
        println!("{node} fenced: {}", r.detail);
        match drop_command(
            dir,
            &format!("fenced-{node}"),
            &format!("by hand: {}", r.detail),
        ) {
            Ok(done) => {
                println!("{node}: {done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mosha fence: fenced, but the daemon did not record it: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        eprintln!("{node}: fencing failed: {}", r.detail);
        ExitCode::FAILURE
    }
}
