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
    /// Gossip is sealed with the cluster keys of DIR/authkey (see --key-file; create it with
    /// `mosha keygen`): the daemon refuses to start without a private, valid key file unless
    /// --insecure.
    ///
    /// Reads DIR/cltab and DIR/hactl, re-reads them every 50 ms and takes an edit once the
    /// file has not changed for 200 ms, and writes DIR/clstat.json. A file with errors is
    /// rejected with every error logged; the daemon keeps running on the last good
    /// configuration. SIGTERM or SIGINT stops every group (running its `stop` level entries)
    /// and exits 0; a second signal kills at once. Exits 2 at once when DIR is in use by
    /// another mosha, read-only or not writable, or an option is out of range.
    Run(Box<RunArgs>),
    /// Validates DIR/cltab, DIR/hactl, DIR/fencetab and DIR/authkey offline; prints every
    /// problem as FILE:LINE: message, and the fingerprints of the keys.
    ///
    /// Exits 0 when every file present is valid (warnings allowed), 1 when not.
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
    /// pulled by hand), like fence_ack_manual; it asks for confirmation unless --yes, and the
    /// daemon refuses it for a node it does not show as lost unless --force. Both wait for the
    /// daemon's answer (10 s at most).
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
        /// Acknowledge even a node the cluster does not show as lost (alive, or never seen
        /// lost): only when you are sure it is off, since its groups then start elsewhere.
        #[arg(long)]
        force: bool,
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
    /// Prints a new random cluster key (256 bits, 64 hex digits) for DIR/authkey.
    ///
    /// `mosha keygen > /etc/mosha/authkey` on one node, then copy the file to every node.
    /// When standard output is a file, keygen makes it readable by its owner only (0600),
    /// as `mosha run` requires. To rotate keys without downtime: add the new key as the second
    /// line of every node's authkey; then move it first everywhere (it now seals); once
    /// `mosha status` shows every member on it, remove the old line everywhere.
    Keygen,
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
}

/// Parses the command line and runs the command; returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Check { dir } => check(&dir),
        Command::Status { dir, json } => status(&dir, json),
        Command::Fence {
            args,
            dir,
            yes,
            force,
        } => fence(&dir, &args, yes, force),
        Command::Keygen => keygen(),
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
    cfg.max_clock_skew = Duration::from_secs(args.max_clock_skew);
    cfg.validate()?;
    Ok(cfg)
}

/// `mosha keygen`: prints a new key; a regular file on standard output is made private.
fn keygen() -> ExitCode {
    use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let key = match crate::daemon::keys::generate() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("mosha keygen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    if let Ok(st) = fstat(stdout.as_raw_fd()) {
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG {
            if let Err(e) = fchmod(stdout.as_raw_fd(), Mode::from_bits_truncate(0o600)) {
                eprintln!("mosha keygen: cannot make the key file private: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut out = stdout.lock();
    if writeln!(out, "{key}").and_then(|()| out.flush()).is_err() {
        eprintln!("mosha keygen: cannot write the key");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// How long a command waits for the daemon's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands a command to the local daemon through `dir/commands/` and returns its answer
/// (`Ok` when it was carried out, `Err` with the reason when refused or unanswered). The
/// command is written whole in `dir` first, then renamed in, so that the daemon never finds
/// half of it.
fn drop_command(dir: &Path, name: &str, text: &str) -> Result<String, String> {
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
        std::thread::sleep(Duration::from_millis(50));
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
fn fence(dir: &Path, args: &[String], yes: bool, force: bool) -> ExitCode {
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
