//! The `mosha` command line: `run` (the daemon), `check` (offline validation) and `demo`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{self, Cltab, Hactl};
use crate::daemon::{self, DaemonOptions};
use crate::supervisor::Options;

/// mosha: a leaderless high-availability layer for Linux clusters.
///
/// Every node runs the same daemon. It supervises the processes of the resource groups defined
/// in `cltab` (group:tag:levels:mode:command) at the level `hactl` asks for (group level).
#[derive(Debug, Parser)]
#[command(name = "mosha", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the node daemon in the foreground (logs go to stderr).
    ///
    /// Reads DIR/cltab and DIR/hactl, re-reads them every 50 ms and takes an edit once the
    /// file has not changed for 200 ms, and writes DIR/clstat.json. A file with errors is
    /// rejected with every error logged; the daemon keeps running on the last good
    /// configuration. SIGTERM or SIGINT stops every group (running its `stop` level entries)
    /// and exits 0; a second signal kills at once. Exits 2 at once when DIR is in use by
    /// another mosha, read-only or not writable, or an option is out of range.
    Run(Box<RunArgs>),
    /// Validates DIR/cltab, DIR/hactl and DIR/fencetab offline; prints every problem as
    /// FILE:LINE: message.
    ///
    /// Exits 0 when both files are valid (warnings allowed), 1 when not.
    Check {
        /// The node directory holding cltab and hactl.
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
    },
    /// Fences NODE by hand through its fencetab levels, or acknowledges that it is off.
    ///
    /// `mosha fence NODE` runs the fence agents configured for NODE in DIR/fencetab and, on
    /// success, tells the local daemon, which spreads the record: NODE's groups may then be
    /// recovered. `mosha fence ack NODE` records that an operator made sure NODE is off (power
    /// pulled by hand), like fence_ack_manual; it asks for confirmation unless --yes.
    Fence {
        /// `NODE`, or `ack NODE`.
        #[arg(required = true, num_args = 1..=2, value_name = "[ack] NODE")]
        args: Vec<String>,
        /// The node directory (fencetab is read from it; the daemon watches DIR/commands).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
        /// Do not ask for confirmation (ack only).
        #[arg(long)]
        yes: bool,
    },
    /// Shows the cluster as this node sees it (members, quorum, where each group runs),
    /// read from DIR/hastat.json, and how old that is.
    ///
    /// Exits 1 when the document is stale (not rewritten for 5 s: no daemon runs on DIR, or
    /// the one that holds it is hung), missing or unreadable.
    Status {
        /// The node directory.
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
        /// Prints the hastat document as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows mosha at work: one node on cltab-examples/basic in a temporary directory, a
    /// service killed and respawned, the group taken down through hactl. Cleans up on exit.
    Demo,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// This node's name (default: the host name).
    #[arg(long)]
    node: Option<String>,
    /// The node directory: cltab and hactl are read from it, clstat.json is written to it.
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
    /// Log filter (error, warn, info, debug, trace, or a tracing directive); RUST_LOG overrides.
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
    /// Milliseconds between two candidates' turns to plan a group: at least the p99 time for
    /// a gossip update to reach every node. Default: 150 + 5 x (expected cluster size). At
    /// least 151 (the news timeout, 500 + slot, plus a 50 ms tick must be shorter than the
    /// plan window, 2 x slot + 400) and --gossip-interval + 50; at most 10000.
    #[arg(long, value_name = "MS")]
    slot: Option<u64>,
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
}

/// Parses the command line and runs the command; returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Check { dir } => check(&dir),
        Command::Status { dir, json } => status(&dir, json),
        Command::Fence { args, dir, yes } => fence(&dir, &args, yes),
        Command::Demo => match crate::demo::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mosha demo: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

fn run(args: RunArgs) -> ExitCode {
    // chitchat logs transient send errors through anyhow; with RUST_BACKTRACE=1 in the
    // environment each would carry a full backtrace. Keep panics' backtraces, not those.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY of set_var: no other thread exists yet.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let node = args.node.clone().unwrap_or_else(hostname);
    if let Err(e) = config::check_name("node name", &node) {
        eprintln!("mosha: {e}");
        return ExitCode::from(2);
    }
    let mut sup = Options::new(&node);
    sup.grace = args.grace;
    sup.throttle.window = args.respawn_window;
    sup.throttle.burst = args.respawn_burst;
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
    let gossip = match gossip_config(&node, &args) {
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
    let mut engine = match args.slot {
        Some(slot) => crate::engine::Config::with_slot(slot),
        None => crate::engine::Config::for_cluster_size(size),
    };
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
    let opts = DaemonOptions {
        dir,
        supervisor: sup,
        gossip,
        engine,
        alert: args.alert.clone(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mosha: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
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
    cfg.validate()?;
    Ok(cfg)
}

/// Writes a command file for the local daemon into `dir/commands/`. It is written whole in
/// `dir` first, then renamed in: the daemon takes (and removes) every file it finds in
/// `commands/`, a temporary one too.
fn drop_command(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    let cmds = dir.join("commands");
    std::fs::create_dir_all(&cmds).map_err(|e| format!("{}: {e}", cmds.display()))?;
    let staged = dir.join(format!(".command-{name}.{}", std::process::id()));
    crate::files::write_atomic(&staged, text.as_bytes())
        .and_then(|()| std::fs::rename(&staged, cmds.join(name)))
        .map_err(|e| format!("{}: {e}", cmds.display()))
}

/// `mosha fence NODE` and `mosha fence ack NODE`.
fn fence(dir: &Path, args: &[String], yes: bool) -> ExitCode {
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
        return match drop_command(dir, &format!("ack-{node}"), "acknowledged by an operator") {
            Ok(()) => {
                println!(
                    "{node}: acknowledgement handed to the daemon in {}",
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mosha fence: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let path = dir.join("fencetab");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
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
        if let Err(e) = drop_command(
            dir,
            &format!("fenced-{node}"),
            &format!("by hand: {}", r.detail),
        ) {
            eprintln!("mosha fence: fenced, but cannot tell the daemon: {e}");
        }
        ExitCode::SUCCESS
    } else {
        eprintln!("{node}: fencing failed: {}", r.detail);
        ExitCode::FAILURE
    }
}

/// Prints the cluster status from `dir/hastat.json`.
fn status(dir: &Path, json: bool) -> ExitCode {
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

/// Validates the files of `dir`; prints problems to stderr and a summary to stdout.
fn check(dir: &Path) -> ExitCode {
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
