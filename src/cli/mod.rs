//! The `mosha` command line: the [`Cli`] and its commands, one file each as mini-redis's
//! `cmd/` does: [`run`] (the daemon), [`check`] (offline validation), [`fence`] (fence or
//! acknowledge by hand), [`moving`] (`mosha move`), [`admin`] (standby, drain, freeze,
//! maintenance), [`status`], [`log`] (a group's log on this node), [`keygen`]; `demo` is
//! [`crate::demo`].

mod admin;
mod agents;
mod check;
mod cleanup;
mod fence;
mod keygen;
mod log;
mod moving;
mod run;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mosha: a leaderless high-availability layer for Linux clusters.
///
/// Every node runs the same daemon; there is no head node. Each supervises the processes of
/// the resource groups defined in `cltab` (group:tag:levels:mode:command), places each group
/// that `hactl` wants (group level) on exactly one node through plan, test and start, fences
/// a lost peer (DIR/fencetab) before its groups start elsewhere, and stops its groups when it
/// loses quorum. `cltab`, `hactl` and `fencetab` may be edited on any node: the newest valid
/// edit spreads to every node. Operators move groups (`move`), take nodes out of service
/// (`standby`, `drain`), freeze groups (`freeze`, `maintenance`) and clear failures
/// (`cleanup`) from any node too; the standing orders are kept in the replicated `admin`
/// file. `status` says why a wanted group runs nowhere; `log` prints a group's recent output.
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
    /// Reads DIR/cltab, DIR/hactl, DIR/fencetab and DIR/admin, re-reads them every 50 ms and takes an
    /// edit once the file has not changed for 200 ms; the newest valid edit made on any node
    /// spreads to every node. Writes this node's status to DIR/clstat.json and the cluster's
    /// to DIR/hastat.json (see `mosha status`). A file with errors is rejected with every
    /// error logged; the daemon keeps running on the last good configuration. SIGTERM or SIGINT stops every group (running its `stop` level entries)
    /// and exits 0; a second signal kills at once. Exits 2 at once when DIR is in use by
    /// another mosha, read-only or not writable, or an option is out of range.
    Run(Box<run::RunArgs>),
    /// Validates DIR/cltab, DIR/hactl, DIR/fencetab, DIR/admin and DIR/authkey offline; prints every
    /// problem as FILE:LINE: message, and the fingerprints of the keys.
    ///
    /// Resource agents named in cltab (ocf:PROVIDER:TYPE, lsb:NAME, systemd:UNIT) are checked
    /// on this node: a command that does not parse is an error, an agent that is not installed
    /// a warning, and an installed OCF agent runs its validate-all with the entry's parameters
    /// (killed at its meta-data timeout, else 20 s): a failure is an error with the agent's
    /// exit reason.
    ///
    /// Exits 0 when every file present is valid (warnings allowed), 1 when not.
    Check {
        /// The node directory holding cltab, hactl, fencetab, admin and authkey.
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
        /// OCF_ROOT: OCF agents are OCF_ROOT/resource.d/PROVIDER/TYPE.
        #[arg(long, default_value = crate::agent::DEFAULT_OCF_ROOT)]
        ocf_root: PathBuf,
        /// The directory of LSB init scripts (lsb:NAME).
        #[arg(long, default_value = crate::agent::DEFAULT_LSB_DIR)]
        lsb_dir: PathBuf,
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
    /// Moves GROUP from the node running it to NODE (or to the best-ranked node that can take
    /// it), like `clusvcadm -r`.
    ///
    /// The node running GROUP stops it (its stop entries run) and hands it to NODE, which
    /// plans, tests and starts it; no other node starts it meanwhile. Nothing stays behind once
    /// it is done. If NODE cannot run it (its test fails), it is placed as usual: back where it
    /// was, or on the next node. Refused when GROUP is not running settled on one node, or
    /// NODE is not alive or in cooldown for it. Works from any node; the local daemon answers
    /// within 10 s.
    Move {
        /// The group to move.
        group: String,
        /// Where to (default: the best-ranked node that can take it).
        node: Option<String>,
        /// The node directory (the daemon watches DIR/commands).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
        /// Waits until GROUP runs on NODE (60 s at most) and prints the time it took; exits 1
        /// if it runs elsewhere instead.
        #[arg(long)]
        wait: bool,
    },
    /// Clears GROUP's failures, like `pcs resource cleanup`: the cooldowns of the nodes
    /// where it failed (a test, or its restarts used up) and its restart counts, on NODE or
    /// on every node.
    ///
    /// The group is then placed as usual (a group that no node could take starts again).
    /// Nothing stays behind: the request lasts 10 s in gossip, and each node applies it
    /// once. Works from any node; the local daemon answers within 10 s.
    Cleanup {
        /// The group whose failures are cleared.
        group: String,
        /// The node whose failures are cleared (default: every node).
        node: Option<String>,
        /// The node directory (the daemon watches DIR/commands).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
        /// Waits until GROUP runs (60 s at most) and prints where; exits 1 with the reason
        /// it does not.
        #[arg(long)]
        wait: bool,
    },
    /// Puts NODE in standby, like `pcs node standby`: it keeps its vote and its daemon but
    /// runs no group.
    ///
    /// Every group NODE runs moves to another node (in group-name order, at most 4 at once,
    /// each stopped on NODE and handed to the best-ranked node that can take it), and none is
    /// placed on it. A group that no other node may run is stopped. The order is kept in the
    /// replicated DIR/admin file: it spreads to every node and survives restarts, until
    /// `mosha unstandby NODE`. Works from any node.
    Standby {
        /// The node to put in standby.
        node: String,
        /// The node directory (the daemon watches DIR/commands).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
        /// Waits until NODE runs no group (120 s at most) and prints the time it took.
        #[arg(long)]
        wait: bool,
    },
    /// Ends the standby of NODE: groups may be placed on it again (none moves back by
    /// itself, unless its hactl line says failback=).
    Unstandby {
        /// The node to take out of standby.
        node: String,
        /// The node directory (the daemon watches DIR/commands).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
    },
    /// Moves every group NODE runs to OTHER and puts NODE in standby (xCAT's snmove): a
    /// group OTHER cannot take goes to the best-ranked node that can.
    ///
    /// NODE stays in standby until `mosha unstandby NODE`.
    Drain {
        /// The node to empty.
        node: String,
        /// Where its groups go.
        #[arg(long, value_name = "OTHER")]
        to: String,
        /// The node directory (the daemon watches DIR/commands).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
        /// Waits until NODE runs no group (120 s at most) and prints the time it took.
        #[arg(long)]
        wait: bool,
    },
    /// Freezes GROUP, like `clusvcadm -Z`: mosha leaves its processes as they are.
    ///
    /// No respawn, no stop, no test, no failover, no move, not even the stop when its node
    /// loses quorum, until `mosha unfreeze GROUP`; `mosha status` shows it FROZEN. Kept in
    /// DIR/admin (replicated, survives restarts). Stopping the daemon still stops it.
    Freeze {
        /// The group to freeze.
        group: String,
        /// The node directory (the daemon watches DIR/commands).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
    },
    /// Unfreezes GROUP: the entries that exited while it was frozen start again where it
    /// runs, and mosha manages it again (a group running nowhere is placed as usual).
    Unfreeze {
        /// The group to unfreeze.
        group: String,
        /// The node directory (the daemon watches DIR/commands).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
    },
    /// `on` freezes every group of the cluster (Pacemaker's maintenance-mode); `off` ends it.
    ///
    /// The daemons keep gossiping, and lost nodes are still fenced; no group is started,
    /// stopped or moved until `mosha maintenance off`.
    Maintenance {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
        /// The node directory (the daemon watches DIR/commands).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
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
        /// Prints generations in full (the tables show their last 6 digits).
        #[arg(long, short)]
        verbose: bool,
    },
    /// Prints the recent output and events of GROUP's entries on this node, oldest first,
    /// from DIR/log/GROUP.log.1 and DIR/log/GROUP.log.
    ///
    /// The daemon keeps, for each group, every line its entries print (with the entry's tag
    /// and stream) and its events about the group (started, test failed, level reached,
    /// handed off...) from INFO up, whatever `mosha run --log` says: a ring of two files of at
    /// most 128 KiB each. Each node keeps its own groups' logs only (gossip carries no
    /// output): run it on the node `mosha status` shows the group on, or failed on, e.g.
    /// `ssh n2 mosha log web`. Exits 1 when no entry of GROUP ran on this node, 2 when GROUP
    /// is not a valid group name.
    Log {
        /// The group whose log to print.
        group: String,
        /// The node directory (the logs are in DIR/log).
        #[arg(long, default_value = "/etc/mosha")]
        dir: PathBuf,
        /// How many of the last lines to print.
        #[arg(
            short = 'n',
            long = "lines",
            value_name = "LINES",
            default_value_t = 50
        )]
        lines: usize,
        /// Keeps printing new lines as they are written, across rotations (like `tail -F`),
        /// until interrupted.
        #[arg(short, long)]
        follow: bool,
    },
    /// Shows mosha at work: three nodes on loopback in a temporary directory, running
    /// cltab-examples/cluster: where each group is placed, the node running `web` powered off
    /// and its groups failing over (fenced first through fence_dummy when it is installed),
    /// and the node back. Cleans up on exit.
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

/// Parses the command line and runs the command; returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Check {
            dir,
            ocf_root,
            lsb_dir,
        } => check::check(&dir, &agents::Dirs { ocf_root, lsb_dir }),
        Command::Status { dir, json, verbose } => status::status(&dir, json, verbose),
        Command::Fence {
            args,
            dir,
            yes,
            force,
        } => fence::fence(&dir, &args, yes, force),
        Command::Move {
            group,
            node,
            dir,
            wait,
        } => moving::move_group(&dir, &group, node.as_deref(), wait),
        Command::Cleanup {
            group,
            node,
            dir,
            wait,
        } => cleanup::cleanup(&dir, &group, node.as_deref(), wait),
        Command::Standby { node, dir, wait } => {
            let verb = admin::Verb::Standby {
                node: &node,
                to: None,
            };
            admin::order(&dir, &verb, wait)
        }
        Command::Drain {
            node,
            to,
            dir,
            wait,
        } => {
            let verb = admin::Verb::Standby {
                node: &node,
                to: Some(&to),
            };
            admin::order(&dir, &verb, wait)
        }
        Command::Unstandby { node, dir } => {
            admin::order(&dir, &admin::Verb::Unstandby { node: &node }, false)
        }
        Command::Freeze { group, dir } => {
            admin::order(&dir, &admin::Verb::Freeze { group: &group }, false)
        }
        Command::Unfreeze { group, dir } => {
            admin::order(&dir, &admin::Verb::Unfreeze { group: &group }, false)
        }
        Command::Maintenance { state, dir } => {
            let on = state == "on";
            admin::order(&dir, &admin::Verb::Maintenance { on }, false)
        }
        Command::Log {
            group,
            dir,
            lines,
            follow,
        } => log::log(&dir, &group, lines, follow),
        Command::Keygen => keygen::keygen(),
        Command::Demo => match crate::demo::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mosha demo: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
