//! mosha: a leaderless high-availability layer for Linux clusters.
//!
//! Map of the crate:
//! - [`config`]: parsers for `cltab`, `hactl`, `fencetab` and `members` that collect every
//!   error with its line, under shared limits (size, lines, control characters);
//! - [`supervisor`]: runs the processes of resource groups at a level: process groups,
//!   SIGTERM-then-SIGKILL, reaping, respawn with back-off;
//! - [`clstat`]: the node's status document;
//! - [`files`]: atomic writes, bounded reads, change detection by content, the directory lock;
//! - [`deadline`]: deadlines that cannot overflow;
//! - [`daemon`]: the one event loop that ties them together (`mosha run`);
//! - [`demo`]: `mosha demo`, a guided run for a first look;
//! - [`cli`]: the `mosha` command line.

pub mod cli;
pub mod clstat;
pub mod config;
pub mod daemon;
pub mod deadline;
pub mod demo;
pub mod engine;
pub mod fence;
pub mod files;
pub mod gossip;
pub mod hastat;
pub mod replica;
pub mod supervisor;
