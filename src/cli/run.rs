//! `mosha run`: checks the command line, the directory and its files, then runs the daemon
//! ([`crate::daemon::run`]) on a two-worker runtime (see `daemon::sched` for its priority).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::config;
use crate::daemon::{self, DaemonOptions};
use crate::grouplog::{self, GroupLog};
use crate::supervisor::Options;

#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// This node's name (default: the host name).
    #[arg(long)]
    node: Option<String>,
    /// The node directory: cltab, hactl, fencetab, admin (replicated), members and authkey are
    /// read from it; clstat.json, hastat.json, mosha.pgids and .mosha-versions.json are
    /// written to it; commands/ takes the requests of `mosha fence`, `move`, `standby`,
    /// `drain`, `freeze` and `maintenance`; log/ keeps each group's recent output and events
    /// (`mosha log`); .mosha.lock makes it this daemon's.
    #[arg(long, default_value = "/etc/mosha")]
    dir: PathBuf,
    /// Seconds between SIGTERM and SIGKILL when stopping an entry's process group (0 to 3600).
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = seconds)]
    grace: Duration,
    /// A respawn entry that exits more than this many times within --respawn-window backs off
    /// (1 s, doubling, capped at 60 s) until one run lasts 10 s (0 to 10000).
    #[arg(long, default_value_t = 5, value_name = "COUNT",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10_000))]
    respawn_burst: usize,
    /// The window over which respawn exits are counted (0 to 3600 seconds).
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = seconds)]
    respawn_window: Duration,
    /// Log filter for stderr (error, warn, info, debug, trace, or a tracing directive);
    /// RUST_LOG overrides. The group logs in DIR/log keep INFO and up whatever it says.
    #[arg(long, default_value = "info")]
    log: String,
    /// UDP address to gossip on. Port 0 picks a free port (tests only: peers need a fixed one).
    #[arg(long, default_value = "127.0.0.1:7946", value_name = "IP:PORT")]
    listen: String,
    /// The address peers reach this node at (default: --listen).
    #[arg(long, value_name = "IP:PORT")]
    advertise: Option<String>,
    /// A peer to join through; repeat for several. No seed: a one-node cluster that others
    /// can still join.
    #[arg(long = "seed", value_name = "IP:PORT")]
    seeds: Vec<String>,
    /// Nodes gossip only with nodes of the same cluster id.
    #[arg(long, default_value = "mosha")]
    cluster_id: String,
    /// Milliseconds between gossip rounds (10 to 2000). Dead-node detection takes about 5
    /// rounds on a quiet LAN; traffic grows with 1/interval.
    #[arg(long, default_value_t = 100, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(10..=2000))]
    gossip_interval: u64,
    /// Live peers each gossip round opens an exchange with (1 to 3). Default: 3 up to 10
    /// members, 2 up to 40, then 1, so that gossip traffic grows with N, not 3 x N; every
    /// heartbeat still reaches every node about once a round.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=3))]
    gossip_fanout: Option<u64>,
    /// Milliseconds between two candidates' turns to plan a group: at least the p99 time for
    /// a gossip update to reach every node. Default: 150 + 5 x (expected cluster size). At
    /// least 151 (the news timeout, 2 beats + slot, plus a 50 ms tick must be shorter than
    /// the plan window, 2 x slot + 2 beats - 100) and --gossip-interval + 50; at most 10000.
    #[arg(long, value_name = "MS")]
    slot: Option<u64>,
    /// Milliseconds between two beats (the gossip key that shows this node's news still gets
    /// out). The news timeout is 2 beats + slot and the plan window 2 x slot + 2 beats - 100,
    /// so 100 makes failover 300 ms faster for a few KB/s more gossip per node: for small
    /// clusters (the simulator validated 100 at 3 and 5 nodes). Set it alike on every node.
    #[arg(long, default_value_t = crate::engine::BEAT, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(50..=1000))]
    beat: u64,
    /// Two-node mode: with exactly two expected members, the survivor of a failure stays
    /// quorate and recovers the other's groups. Only safe with fencing; one of the two
    /// (always the same) waits --two-node-fence-delay before fencing the other.
    #[arg(long)]
    two_node: bool,
    /// In two-node mode, how long the second of the two waits before fencing (0 to 3600).
    #[arg(long, default_value = "5", value_name = "SECONDS", value_parser = seconds)]
    two_node_fence_delay: Duration,
    /// A command (run by /bin/sh) on node-lost, fence-ok, fence-failed, group-started and
    /// group-stopped, with MOSHA_ALERT_KIND, MOSHA_ALERT_NODE, MOSHA_ALERT_GROUP,
    /// MOSHA_ALERT_DETAIL and MOSHA_NODE in its environment.
    #[arg(long, value_name = "COMMAND")]
    alert: Option<String>,
    /// The cluster key file (default DIR/authkey): every gossip datagram is sealed with its
    /// first key (XChaCha20-Poly1305) and opened with any of its keys. It must be private
    /// (mode 0600) and the same on every node; edits are taken without restart. Create it with
    /// `mosha keygen`.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Gossip without authentication or encryption. Anyone who can send UDP to --listen can
    /// then join the cluster and run commands on its nodes: for throw-away tests only.
    #[arg(long, conflicts_with = "key_file")]
    insecure: bool,
    /// Datagrams whose send time is further than this from this node's clock are refused
    /// (they bound how long a recorded datagram could be replayed); 0 turns the check off.
    /// Keep node clocks in sync (NTP).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    max_clock_skew: u64,
    /// Where OCF resource agents live (OCF_ROOT): `ocf:PROVIDER:TYPE` runs
    /// OCF_ROOT/resource.d/PROVIDER/TYPE.
    #[arg(long, default_value = crate::agent::DEFAULT_OCF_ROOT, value_name = "DIR")]
    ocf_root: PathBuf,
    /// Where LSB init scripts live: `lsb:NAME` runs DIR/NAME.
    #[arg(long, default_value = crate::agent::DEFAULT_LSB_DIR, value_name = "DIR")]
    lsb_dir: PathBuf,
    /// Where resource agents keep state that a reboot must wipe (HA_RSCTMP); created if
    /// missing.
    #[arg(long, default_value = crate::agent::DEFAULT_RSC_TMP, value_name = "DIR")]
    ha_rsctmp: PathBuf,
    /// Run the daemon's threads at normal priority. By default they run under SCHED_RR
    /// (priority 10, not inherited by the services it starts), as corosync does, so that
    /// services saturating the CPU do not delay the beats that keep this node in the quorum.
    #[arg(long)]
    no_realtime: bool,
}

/// Parses SECONDS (fractions allowed) from 0 to 3600: no value can overflow a deadline.
fn seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| (0.0..=3600.0).contains(secs))
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds from 0 to 3600"))
}

/// Returns this host's name (`localhost` when it cannot be read).
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

pub(super) fn run(args: RunArgs) -> ExitCode {
    // chitchat logs transient send errors through anyhow; with RUST_BACKTRACE=1 in the
    // environment each would carry a full backtrace. Keep panics' backtraces, not those.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY of set_var: no other thread exists yet.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let group_log = init_logging(&args.log);
    let node = args.node.clone().unwrap_or_else(hostname);
    if let Err(e) = config::check_name("node name", &node) {
        eprintln!("mosha: {e}");
        return ExitCode::from(2);
    }
    let mut sup = Options::new(&node);
    sup.grace = args.grace;
    sup.throttle.window = args.respawn_window;
    sup.throttle.burst = args.respawn_burst;
    sup.agents = crate::supervisor::AgentDirs {
        ocf_root: args.ocf_root.clone(),
        lsb_dir: args.lsb_dir.clone(),
        rsc_tmp: args.ha_rsctmp.clone(),
    };
    let dir = match args.dir.canonicalize() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mosha: {}: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    };
    // First, before anything touches DIR: a second daemon would kill the first one's services.
    let _lock = match crate::files::DirLock::acquire(&dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("mosha: {e}");
            return ExitCode::from(2);
        }
    };
    group_log.start(&dir);
    if let Err(e) = std::fs::create_dir_all(&args.ha_rsctmp) {
        eprintln!(
            "mosha: {}: cannot create it ({e}); resource agents keep their state there (--ha-rsctmp)",
            args.ha_rsctmp.display()
        );
        return ExitCode::from(2);
    }
    let mut gossip = match gossip_config(&node, &args) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("mosha: {e}");
            return ExitCode::from(2);
        }
    };
    let expected = match crate::daemon::cluster::read_members(&dir.join("members")) {
        Ok(m) => m,
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            eprintln!("mosha: the members file is refused whole (quorum is counted from it): fix or remove the bad lines");
            return ExitCode::from(2);
        }
    };
    let size = expected.len().max(args.seeds.len() + 1);
    let slot = args
        .slot
        .unwrap_or_else(|| crate::engine::Config::for_cluster_size(size).slot);
    let mut engine = crate::engine::Config::with_timing(slot, args.beat);
    engine.two_node = args.two_node;
    engine.two_node_fence_delay =
        u64::try_from(args.two_node_fence_delay.as_millis()).unwrap_or(u64::MAX);
    if let Err(errors) = engine.validate(args.gossip_interval) {
        for e in errors {
            eprintln!("mosha: {e}");
        }
        if args.slot.is_none() {
            eprintln!("mosha: (that slot is the default for {size} nodes; set one with --slot MS)");
        }
        return ExitCode::from(2);
    }
    let key_file = if args.insecure {
        None
    } else {
        let path = args
            .key_file
            .clone()
            .unwrap_or_else(|| dir.join(crate::daemon::keys::KEY_FILE));
        match crate::daemon::keys::load(&path) {
            Ok(keys) => gossip.keys = Some(keys),
            Err(e) => {
                eprintln!("mosha: {e}");
                return ExitCode::from(2);
            }
        }
        Some(path)
    };
    let opts = DaemonOptions {
        dir,
        supervisor: sup,
        gossip,
        engine,
        alert: args.alert.clone(),
        key_file,
    };
    // Two workers: gossip (chitchat's loop, which answers peers and carries heartbeats) must
    // not wait while the daemon's loop is busy with a large turn (thousands of groups).
    // Real-time priority for the loop (this thread) and every runtime thread (see
    // daemon::sched); the services started get the normal policy back.
    let realtime = !args.no_realtime;
    if realtime {
        match daemon::sched::realtime() {
            Ok(()) => tracing::info!(
                priority = daemon::sched::PRIORITY,
                "the daemon's threads run under SCHED_RR (--no-realtime to turn it off)"
            ),
            Err(e) => {
                tracing::info!("no real-time priority ({e}): the daemon runs at normal priority")
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            if realtime {
                let _ = daemon::sched::realtime();
            }
        })
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mosha: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(daemon::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    };
    // The groups' logs are written by a thread of their own: what is queued goes out before
    // the process does (a disk that hangs does not hold the exit up for long).
    group_log.flush(Duration::from_secs(2));
    code
}

/// Sends the daemon's events to stderr through the `--log` filter (`RUST_LOG` overrides it),
/// and those about a group, from INFO up, to the group's log whatever that filter says: each
/// layer has its own filter. Returns the group log, to be started once DIR is locked.
fn init_logging(log: &str) -> GroupLog {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A stderr that cannot be written (on a full disk, say) loses lines; the daemon goes on.
    // tracing-subscriber would report its own failure with `eprintln!`, which panics when
    // stderr fails (found by the chaos run).
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let group_log = GroupLog::default();
    tracing_subscriber::registry()
        .with(stderr)
        .with(group_log.clone().with_filter(grouplog::wanted()))
        .init();
    group_log
}

/// Builds the gossip settings from the command line; port 0 picks a free port now.
fn gossip_config(node: &str, args: &RunArgs) -> Result<crate::gossip::GossipConfig, String> {
    let parse = |what: &str, s: &str| -> Result<std::net::SocketAddr, String> {
        s.parse()
            .map_err(|_| format!("--{what} {s:?} is not an IP:PORT address"))
    };
    let mut listen = parse("listen", &args.listen)?;
    if listen.port() == 0 {
        let sock =
            std::net::UdpSocket::bind(listen).map_err(|e| format!("--listen {listen}: {e}"))?;
        listen = sock.local_addr().map_err(|e| e.to_string())?;
    }
    let mut cfg = crate::gossip::GossipConfig::new(node, listen);
    if let Some(a) = &args.advertise {
        cfg.advertise = parse("advertise", a)?;
    }
    for s in &args.seeds {
        parse("seed", s)?;
    }
    cfg.seeds = args.seeds.clone();
    cfg.cluster_id = args.cluster_id.clone();
    cfg.gossip_interval = Duration::from_millis(args.gossip_interval);
    cfg.fanout = args.gossip_fanout.map(|k| k as usize);
    cfg.max_clock_skew = Duration::from_secs(args.max_clock_skew);
    cfg.validate()?;
    Ok(cfg)
}
