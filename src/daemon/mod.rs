//! `mosha run`: the one event loop of a node. It feeds the node core
//! ([`crate::engine::node`]) gossip (membership, peers' claims, file versions), local edits of the replicated files
//! (validated), the supervisor's state and ticks; carries out the core's decisions on the
//! supervisor, gossip, fence agents and `DIR/members`; writes clstat and hastat; and on
//! SIGTERM/SIGINT stops every group and exits leaving no process behind.
//!
//! Layout: [`cluster`] (the cluster step, driving the core), [`replicated`] (the local side of cltab, hactl and fencetab over
//! gossip), [`members`] (the expected membership's file), [`notices`] (repeated errors said
//! once), [`commands`] (operator commands), [`keys`] (the gossip key file), [`identity`] (one
//! daemon per node name), [`events`] (event logs, alerts), `report` (hastat).
//! The caller holds the directory's lock ([`crate::files::DirLock`]) before calling [`run`].

pub mod cluster;
pub mod commands;
pub mod diagnose;
pub mod events;
pub mod health;
pub mod identity;
mod inputs;
pub mod keys;
pub mod members;
pub mod notices;
pub mod orders;
pub mod replicated;
pub mod report;
pub mod sched;
mod tells;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rand::SeedableRng;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep_until, Instant};
use tracing::{error, info, warn};

use crate::clstat::{Clstat, ConfigStatus};
use crate::engine;
use crate::gossip::{Gossip, GossipConfig};
use crate::supervisor::process::{self, OsProcesses};
use crate::supervisor::{leftovers, Options, Supervisor};
use cluster::Cluster;
use identity::{IdentityGuard, Verdict};

/// How often the cluster step runs (gossip view, files, engine): the engine's timing rules
/// count on it ([`engine::TICK`]).
pub const TICK: Duration = Duration::from_millis(engine::TICK);

/// The shortest time between two steps when one is brought forward (see the loop).
const HURRY: Duration = Duration::from_millis(10);

/// How often hastat is rewritten when only heartbeat ages and traffic changed.
const HASTAT_REFRESH: Duration = Duration::from_secs(1);

/// The level a group is told at shutdown after `stop`: no entry can be in it, so it stops
/// whatever the `stop` level itself left running.
const HALT: &str = "";

/// Everything `mosha run` needs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The node's directory: `cltab`, `hactl`, `members` are read from it; `clstat.json`,
    /// `hastat.json` written to it.
    pub dir: PathBuf,
    /// Supervisor tunables (node name, grace period, respawn throttle).
    pub supervisor: Options,
    /// Gossip settings (listen address, seeds, intervals).
    pub gossip: GossipConfig,
    /// Engine tunables.
    pub engine: engine::Config,
    /// A command run on node-lost, fence-ok, fence-failed, group-started and group-stopped
    /// events, with the details in its environment.
    pub alert: Option<String>,
    /// The key file the gossip keys (in `gossip.keys`) were read from, watched for
    /// rotations; `None` with `--insecure`.
    pub key_file: Option<PathBuf>,
}

/// Returns the wall clock in unix milliseconds (0 if it is before 1970).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the daemon until SIGTERM or SIGINT; returns once every process it started is gone.
///
/// # Errors
/// Fails when the directory is unusable, signal handlers cannot be installed, or gossip
/// cannot start (e.g. the listen address is taken) or stops on its own.
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
    let me = opts.supervisor.node.clone();
    info!(node = %me, dir = %dir.display(), listen = %opts.gossip.listen, seeds = ?opts.gossip.seeds, "mosha starting");
    let grace = opts.supervisor.grace;
    let record = dir.join("mosha.pgids");
    leftovers::stop_leftovers(&record, grace);
    let mut recorder = leftovers::recorder(record.clone()).context("starting the pgid record")?;

    let gossip = Gossip::start(opts.gossip.clone(), Default::default())
        .await
        .context("starting gossip")?;
    let generation = gossip.generation();
    let mut keywatch = match (&opts.key_file, &opts.gossip.keys) {
        (Some(path), Some(k)) => Some(keys::KeyWatch::new(
            path.clone(),
            k.clone(),
            std::time::Instant::now(),
        )),
        _ => {
            error!(
                "gossip is NOT authenticated (--insecure): anyone who can send UDP to {} can \
                 join this cluster and run commands on its nodes",
                opts.gossip.listen
            );
            None
        }
    };
    let mut identity = IdentityGuard::new(&me, generation);
    let mut fatal: Option<String> = None;
    let mut gossip_done: std::pin::Pin<Box<dyn std::future::Future<Output = _>>> =
        Box::pin(gossip.termination());
    let rng =
        rand_chacha::ChaCha12Rng::seed_from_u64(generation ^ engine::rank::weight(&me, "seed"));
    let mut cluster = Cluster::open(
        dir,
        &me,
        generation,
        opts.engine.clone(),
        rng,
        opts.alert.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let mut os = OsProcesses::new(dir.clone());
    let mut sup = Supervisor::new(opts.supervisor.clone());
    let t0 = Instant::now();
    sup.configure(t0.into_std(), &mut os, &cluster.cltab);
    info!(generation, cltab = %cluster.version("cltab"), hactl = %cluster.version("hactl"), "gossip started");

    let clstat_path = dir.join("clstat.json");
    let hastat_path = dir.join("hastat.json");
    let mut clstat_writer =
        report::status_writer(clstat_path.clone(), "write-clstat").context("starting a writer")?;
    let mut hastat_writer =
        report::status_writer(hastat_path.clone(), "write-hastat").context("starting a writer")?;
    let mut tick = tokio::time::interval(TICK);
    let mut last_step = Instant::now();
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown: Option<&str> = None;
    let mut last_doc: Option<Clstat> = None;
    let mut last_hastat: Option<(crate::hastat::Hastat, Instant)> = None;
    let mut last_pgids: Option<Vec<u32>> = None;
    let mut loop_watch = report::LoopWatch::default();
    let (mut clstat_pace, mut hastat_pace) = (report::Pace::new(10), report::Pace::new(10));

    loop {
        let waiting = cluster.orders_waiting().then(std::time::Instant::now);
        let deadline = [sup.next_deadline(), cluster.runner.next_deadline(), waiting]
            .into_iter()
            .flatten()
            .min()
            .map(Instant::from_std);
        let mut ticked = false;
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = sigterm.recv() => shutdown = Some(begin_shutdown(shutdown, "SIGTERM", &mut sup, &mut os)),
            _ = sigint.recv() => shutdown = Some(begin_shutdown(shutdown, "SIGINT", &mut sup, &mut os)),
            _ = tick.tick() => ticked = true,
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
            r = &mut gossip_done => {
                error!("gossip stopped on its own: {r:?}; stopping every group");
                shutdown = Some(begin_shutdown(shutdown, "gossip failure", &mut sup, &mut os));
                gossip_done = Box::pin(std::future::pending());
            }
        }
        let now = Instant::now();
        let now_std = now.into_std();
        cluster.notices.at(now_std, wall_ms());
        // A test that passed, a plan entry that finished, or a fencing pass that ended is
        // acted on at a step soon (HURRY after the last one) rather than at the next tick:
        // each saves up to a tick on a failover's way.
        let mut hurry = false;
        for (pid, exit) in process::reap() {
            if !cluster
                .runner
                .child_exited(now_std, &mut cluster.agents, pid, exit)
            {
                hurry |= sup.child_exited(now_std, &mut os, pid, exit);
            }
        }
        if !ticked && (hurry || cluster.runner.has_results()) {
            tick.reset_at(last_step + HURRY);
        }
        sup.tick(now_std, &mut os);
        cluster.runner.tick(now_std, &mut cluster.agents);
        sup.forget_stopped(&cluster.cltab);
        if shutdown.is_some() {
            cluster.forget_orders();
        } else if !ticked {
            cluster.carry_waiting(&mut sup, &mut os, now_std);
        }

        // The key file, like the replicated ones, is looked at once a step.
        if let Some(k) = (keywatch.as_mut().filter(|_| ticked)).and_then(|k| k.poll(now_std)) {
            if let Err(e) = gossip.set_keys(&k) {
                error!("{e}");
            }
        }
        let mut marks = [std::time::Instant::now(); 5];
        let mut publish = Vec::new();
        if shutdown.is_none() && ticked {
            last_step = now;
            let view = gossip.view().await;
            marks[1] = std::time::Instant::now();
            let now_ms = now.duration_since(t0).as_millis() as u64;
            match identity.check(&view, now_std) {
                Verdict::Run => {
                    publish = cluster.step(view, &mut sup, &mut os, now_std, now_ms, wall_ms());
                }
                Verdict::Hold => cluster.hold(view, now_ms),
                Verdict::Exit(why) => {
                    error!("{why}");
                    fatal = Some(why);
                    shutdown = Some(begin_shutdown(
                        shutdown,
                        "identity conflict",
                        &mut sup,
                        &mut os,
                    ));
                }
            }
        } else {
            publish.extend(cluster.claim_changes(&sup));
            if shutdown.is_some() {
                // A clean shutdown: once this node holds nothing, peers need not fence it.
                publish.push(cluster.core().bye());
            }
        }
        marks[2] = std::time::Instant::now();
        if !publish.is_empty() {
            if let Err(e) = gossip.publish(&publish).await {
                error!("cannot publish to gossip: {e}");
            }
        }

        if shutdown.is_some() && shutdown_done(&mut sup, &mut os, now_std) {
            break;
        }

        // The record is written by its own thread (see leftovers::recorder); a failed write
        // is retried with the next turn's list.
        if report::failed(&recorder, &mut cluster.notices, "write mosha.pgids") {
            last_pgids = None;
        }
        let pgids = sup.pgids();
        if last_pgids.as_ref() != Some(&pgids) {
            recorder.hand(pgids.clone());
            last_pgids = Some(pgids);
        }
        marks[3] = std::time::Instant::now();
        // Status documents are rebuilt at the tick, each in at most a tenth of the loop's time
        // and written at most 2 MB/s: with thousands of groups one costs tens of ms and half
        // a MB (see report::Pace). Threads of their own write them (report::status_writer);
        // a failed clstat is written again at its next turn.
        if report::failed(&clstat_writer, &mut cluster.notices, "write clstat.json") {
            last_doc = None;
        }
        report::failed(&hastat_writer, &mut cluster.notices, "write hastat.json");
        if (ticked && clstat_pace.due(now_std)) || shutdown.is_some() {
            let mut written = 0;
            let errors = cluster.config_errors();
            let doc = Clstat {
                schema: crate::hastat::SCHEMA,
                written_at_ms: 0,
                node: me.clone(),
                pid: std::process::id(),
                shutting_down: shutdown.is_some(),
                config: ConfigStatus {
                    ok: errors.is_empty(),
                    errors,
                },
                groups: sup.status(),
            };
            if last_doc.as_ref() != Some(&doc) {
                let text = Clstat {
                    written_at_ms: wall_ms(),
                    ..doc.clone()
                }
                .to_json();
                written = text.len();
                clstat_writer.hand(text);
                last_doc = Some(doc);
            }
            clstat_pace.done(marks[3], std::time::Instant::now(), written);
        }
        marks[4] = std::time::Instant::now();
        if ticked && hastat_pace.due(now_std) {
            let security = crate::hastat::SecurityStat {
                insecure: gossip.insecure(),
                keys: keywatch
                    .as_ref()
                    .map(|k| {
                        k.keys()
                            .fingerprints()
                            .iter()
                            .map(ToString::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                key_error: keywatch
                    .as_ref()
                    .and_then(|k| k.error().map(str::to_string)),
            };
            let mut h = cluster.hastat(generation, &gossip.stats(), &security);
            h.event_loop = loop_watch.stat();
            let mut written = 0;
            let due = match &last_hastat {
                None => true,
                Some((old, at)) => {
                    !old.same_structure(&h) || now.duration_since(*at) >= HASTAT_REFRESH
                }
            };
            if due {
                let text = crate::hastat::Hastat {
                    problems: cluster.notices.problems(),
                    written_at_ms: wall_ms(),
                    ..h.clone()
                }
                .to_json();
                written = text.len();
                hastat_writer.hand(text);
                last_hastat = Some((h, now));
            }
            hastat_pace.done(marks[4], std::time::Instant::now(), written);
        }
        let orders = cluster.take_orders_time();
        loop_watch.turn(now.into_std(), &marks, orders, std::time::Instant::now());
    }

    // Let peers hear that every group here is stopped before we go silent.
    let last = cluster.claim_changes(&sup);
    if !last.is_empty() {
        let _ = gossip.publish(&last).await;
    }
    tokio::time::sleep(opts.gossip.gossip_interval * 3).await;
    gossip.shutdown().await;
    stop_strays(grace).await;
    for w in [&mut clstat_writer, &mut hastat_writer] {
        w.stop(Duration::from_secs(2));
    }
    recorder.stop(Duration::from_secs(2));
    let _ = std::fs::remove_file(&clstat_path);
    let _ = std::fs::remove_file(&hastat_path);
    let _ = std::fs::remove_file(&record);
    if let Some(why) = fatal {
        anyhow::bail!("every group stopped; mosha exits because {why}");
    }
    info!("every group stopped; mosha exits");
    Ok(())
}

/// Moves the shutdown along: once every group reached `stop`, halts what `stop` left
/// running. Returns true when nothing is left.
fn shutdown_done(sup: &mut Supervisor, os: &mut OsProcesses, now: std::time::Instant) -> bool {
    if sup.all_stopped() && sup.pgids().is_empty() {
        return true;
    }
    let settled = sup
        .groups()
        .values()
        .all(|g| g.target != engine::STOP || g.state.settled());
    if settled {
        for name in sup.groups().keys().cloned().collect::<Vec<_>>() {
            sup.tell(now, os, &name, HALT);
        }
    }
    sup.groups()
        .values()
        .all(|g| g.target == HALT && g.state.settled() && !g.has_processes())
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
    info!("{why}: stopping every group");
    for name in sup.groups().keys().cloned().collect::<Vec<_>>() {
        sup.tell(now, os, &name, engine::STOP);
    }
    why
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
    let deadline = Instant::from_std(crate::deadline::after(Instant::now().into_std(), grace));
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
