//! mosha: a leaderless high-availability layer for Linux clusters.
//!
//! Map of the crate:
//! - [`agent`]: what a cltab command naming an OCF agent, an LSB script or a systemd unit
//!   means: invocations, exit codes, meta-data timeouts;
//! - [`config`]: parsers for `cltab`, `hactl`, `fencetab`, `members` and `authkey` that
//!   collect every error with its line, under shared limits (size, lines, control characters);
//! - [`supervisor`]: runs the processes of resource groups at a level: process groups,
//!   SIGTERM-then-SIGKILL, reaping, respawn with back-off;
//! - [`engine`]: the pure decision engine (placement, quorum, fencing) and the node core
//!   around it ([`engine::node`]: gossip keys in, one `Ready` out), its own crate;
//! - [`fence`]: runs fence agents;
//! - [`gossip`]: membership and key-value gossip over chitchat, every datagram sealed with
//!   the cluster key and checked before chitchat decodes it;
//! - [`replica`]: file versions and their chunks in gossip (the engine crate's);
//! - [`clstat`], [`hastat`]: the node's and the cluster's status documents;
//! - [`grouplog`]: each group's recent output and events on this node, in a bounded ring of
//!   files under `DIR/log` (a tracing layer; `mosha log` reads it);
//! - [`files`]: atomic writes, bounded reads, change detection by content, the directory lock;
//! - [`deadline`]: deadlines that cannot overflow; [`exit`]: how a child process ended;
//! - [`daemon`]: the one event loop that drives the node core and carries out its decisions
//!   (`mosha run`), the replicated files, the key file,
//!   one daemon per node name, operator commands;
//! - [`demo`]: `mosha demo`, a guided run for a first look;
//! - [`cli`]: the `mosha` command line.

pub mod agent;
pub mod cli;
pub mod clstat;
pub mod config;
pub mod daemon;
pub mod deadline;
pub mod demo;
pub mod exit;
pub use mosha_engine as engine;
pub mod fence;
pub mod files;
pub mod gossip;
pub mod grouplog;
pub mod hastat;
pub use mosha_engine::replica;
pub mod supervisor;
