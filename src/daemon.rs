//! `mosha run`: the one event loop of a node. It watches `cltab` and `hactl`, hands the
//! supervisor reaped exits, ticks and configuration, writes clstat, and on SIGTERM/SIGINT
//! stops every group and exits leaving no process behind.
//!
//! For now each group is told the level hactl asks for directly; the cluster lifecycle
//! (plan → test → start, on one node) replaces that with the engine's decisions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep_until, Instant};
use tracing::{error, info, warn};

use crate::clstat::{Clstat, ConfigStatus};
use crate::config::{self, Cltab, Hactl, Problem};
use crate::files::{self, Content, Watched};
use crate::supervisor::process::{self, OsProcesses};
use crate::supervisor::{leftovers, Options, Supervisor};

/// How often cltab and hactl are checked for edits.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The level a group is told at shutdown after `stop`: no entry can be in it, so it stops
/// whatever the `stop` level itself left running.
const HALT: &str = "";

/// Everything `mosha run` needs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The node's directory: `cltab` and `hactl` are read from it, `clstat.json` written to it.
    pub dir: PathBuf,
    /// Supervisor tunables (node name, grace period, respawn throttle).
    pub supervisor: Options,
}

/// The configuration in force and what is wrong with the files on disk, if anything.
struct Config {
    cltab: Cltab,
    hactl: Hactl,
    cltab_errors: Vec<String>,
    hactl_errors: Vec<String>,
}

impl Config {
    fn status(&self) -> ConfigStatus {
        let errors: Vec<String> = self
            .cltab_errors
            .iter()
            .chain(&self.hactl_errors)
            .cloned()
            .collect();
        ConfigStatus {
            ok: errors.is_empty(),
            errors,
        }
    }
}

/// Returns the name under which problems in `path` are reported.
fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Parses a changed file; on success returns the new value, on failure logs every problem and
/// returns them as strings (the caller keeps the last good value).
fn reload<T>(
    path: &Path,
    content: Content,
    parse: impl Fn(&str, &str) -> Result<T, Vec<Problem>>,
) -> Result<T, Vec<String>> {
    let text = match content {
        Content::Missing => {
            warn!(file = %path.display(), "file missing; treating it as empty");
            String::new()
        }
        Content::Text(t) => t,
    };
    parse(&shown(path), &text).map_err(|problems| {
        error!(file = %path.display(), errors = problems.len(), "file rejected; keeping the last good configuration");
        problems
            .iter()
            .map(|p| {
                error!("{p}");
                p.to_string()
            })
            .collect()
    })
}

/// Runs the daemon until SIGTERM or SIGINT; returns once every process it started is gone.
///
/// # Errors
/// Fails when the directory is unusable or signal handlers cannot be installed.
pub async fn run(opts: DaemonOptions) -> anyhow::Result<()> {
    let dir = &opts.dir;
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    // Handlers first, so that no SIGCHLD or SIGTERM is lost.
    let mut sigchld = signal(SignalKind::child()).context("installing the SIGCHLD handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    if let Err(e) = process::become_subreaper() {
        warn!("cannot become a child subreaper ({e}); processes that escape their group may be missed");
    }
    info!(node = %opts.supervisor.node, dir = %dir.display(), "mosha starting");
    let grace = opts.supervisor.grace;
    let record = dir.join("mosha.pgids");
    leftovers::stop_leftovers(&record, grace);

    let clstat_path = dir.join("clstat.json");
    let mut cltab_file = Watched::new(dir.join("cltab"));
    let mut hactl_file = Watched::new(dir.join("hactl"));
    let mut cfg = Config {
        cltab: Cltab::default(),
        hactl: Hactl::default(),
        cltab_errors: Vec::new(),
        hactl_errors: Vec::new(),
    };
    let mut os = OsProcesses { dir: dir.clone() };
    let mut sup = Supervisor::new(opts.supervisor.clone());
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown: Option<&str> = None;
    let mut last_doc = String::new();
    let mut last_pgids: Option<Vec<u32>> = None;

    loop {
        let deadline = sup.next_deadline().map(Instant::from_std);
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = sigterm.recv() => shutdown = Some(begin_shutdown(shutdown, "SIGTERM", &mut sup, &mut os)),
            _ = sigint.recv() => shutdown = Some(begin_shutdown(shutdown, "SIGINT", &mut sup, &mut os)),
            _ = poll.tick() => {
                if shutdown.is_none() {
                    poll_files(&mut cfg, &mut cltab_file, &mut hactl_file, &mut sup, &mut os);
                }
            }
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
        }
        let now = std::time::Instant::now();
        for (pid, exit) in process::reap() {
            sup.child_exited(now, &mut os, pid, exit);
        }
        sup.tick(now, &mut os);
        sup.forget_stopped(&cfg.cltab);

        if shutdown.is_some() {
            if sup.all_stopped() && sup.pgids().is_empty() {
                break;
            }
            // `stop` reached everywhere but its own entries still run: halt them.
            let settled = sup
                .groups()
                .values()
                .all(|g| g.target != config::hactl::STOP || g.state.settled());
            if settled {
                for name in sup.groups().keys().cloned().collect::<Vec<_>>() {
                    sup.tell(now, &mut os, &name, HALT);
                }
            }
            if sup
                .groups()
                .values()
                .all(|g| g.target == HALT && g.state.settled() && !g.has_processes())
            {
                break;
            }
        }

        let pgids = sup.pgids();
        if last_pgids.as_ref() != Some(&pgids) {
            if let Err(e) = leftovers::record(&record, &pgids) {
                warn!(file = %record.display(), "cannot record running process groups: {e}");
            }
            last_pgids = Some(pgids);
        }
        let doc = Clstat {
            node: opts.supervisor.node.clone(),
            pid: std::process::id(),
            shutting_down: shutdown.is_some(),
            config: cfg.status(),
            groups: sup.status(),
        }
        .to_json();
        if doc != last_doc {
            if let Err(e) = files::write_atomic(&clstat_path, doc.as_bytes()) {
                warn!(file = %clstat_path.display(), "cannot write clstat: {e}");
            }
            last_doc = doc;
        }
    }

    stop_strays(grace).await;
    let _ = std::fs::remove_file(&clstat_path);
    let _ = std::fs::remove_file(&record);
    info!("every group stopped; mosha exits");
    Ok(())
}

/// Starts (or, on a second signal, hurries) the shutdown: every group is told `stop`.
fn begin_shutdown(
    already: Option<&'static str>,
    why: &'static str,
    sup: &mut Supervisor,
    os: &mut OsProcesses,
) -> &'static str {
    let now = std::time::Instant::now();
    if already.is_some() {
        warn!("{why} again: killing every process group now");
        for pgid in sup.pgids() {
            crate::supervisor::Os::signal_group(os, pgid, crate::supervisor::Signal::Kill);
        }
        return why;
    }
    info!("{why} received: stopping every group");
    for name in sup.groups().keys().cloned().collect::<Vec<_>>() {
        sup.tell(now, os, &name, config::hactl::STOP);
    }
    why
}

/// Reads edited files and applies them: a valid cltab reconfigures the supervisor, and every
/// group is told its hactl level. An invalid file changes nothing.
fn poll_files(
    cfg: &mut Config,
    cltab_file: &mut Watched,
    hactl_file: &mut Watched,
    sup: &mut Supervisor,
    os: &mut OsProcesses,
) {
    let cltab_new = cltab_file.poll();
    let hactl_new = hactl_file.poll();
    if cltab_new.is_none() && hactl_new.is_none() {
        return;
    }
    let now = std::time::Instant::now();
    let mut cltab_changed = false;
    if let Some(content) = cltab_new {
        match reload(cltab_file.path(), content, Cltab::parse) {
            Ok(c) => {
                for w in &c.warnings {
                    warn!("{w}");
                }
                info!(file = %cltab_file.path().display(), groups = c.groups().len(), entries = c.entries.len(), "cltab loaded");
                cfg.cltab = c;
                cfg.cltab_errors.clear();
                cltab_changed = true;
            }
            Err(errors) => cfg.cltab_errors = errors,
        }
    }
    if let Some(content) = hactl_new {
        match reload(hactl_file.path(), content, Hactl::parse) {
            Ok(h) => {
                info!(file = %hactl_file.path().display(), groups = h.groups.len(), "hactl loaded");
                cfg.hactl = h;
                cfg.hactl_errors.clear();
            }
            Err(errors) => cfg.hactl_errors = errors,
        }
    }
    for w in config::cross_check(&cfg.cltab, &cfg.hactl, &shown(hactl_file.path())) {
        warn!("{w}");
    }
    if cltab_changed {
        sup.configure(now, os, &cfg.cltab);
        sup.retell_all(now, os);
    }
    for name in cfg.cltab.groups() {
        sup.tell(now, os, name, cfg.hactl.level_of(name));
    }
}

/// Stops processes that escaped their process group and were re-parented to us: SIGTERM,
/// then SIGKILL after `grace`, reaping as they go.
async fn stop_strays(grace: Duration) {
    let children = || -> Vec<i32> {
        // /proc/self, not /proc/PID: right even when /proc belongs to another PID namespace.
        let mut out = Vec::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for t in tasks.flatten() {
                if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                    out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
                }
            }
        }
        out
    };
    let strays = children();
    if strays.is_empty() {
        return;
    }
    warn!(
        count = strays.len(),
        "processes outside any entry's group are still running; stopping them"
    );
    let send = |sig| {
        for pid in children() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    };
    send(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while !children().is_empty() && Instant::now() < deadline {
        process::reap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send(nix::sys::signal::Signal::SIGKILL);
    while !children().is_empty() {
        process::reap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
