//! Membership and key-value gossip between mosha nodes, built on chitchat (scuttlebutt
//! reconciliation over UDP with a phi-style failure detector).
//!
//! This is the only code in the crate that names chitchat types: the rest of mosha sees
//! [`GossipConfig`], [`Gossip`], [`ClusterView`] / [`MemberView`] / [`Shadow`],
//! [`GossipStats`], [`Keys`] and [`GossipError`]. Each node owns a set of string keys that
//! every peer eventually sees; each member is alive or dead according to the failure detector.
//!
//! Every datagram is sealed with the cluster keys ([`seal`]) and checked ([`wire`]) before
//! chitchat decodes it ([`transport`]); one generation is shown per name ([`view`]).
//!
//! Rules this module enforces so that chitchat's pitfalls cannot bite:
//! - every value is at most [`MAX_VALUE_BYTES`] and every key at most [`MAX_KEY_BYTES`], far
//!   below the 65,507-byte datagram ceiling: an oversized value would block all of a node's later
//!   updates forever, so it is refused before it enters chitchat (large files go through
//!   [`crate::replica`]'s chunks);
//! - every start uses a new generation, so a restarted node is never ignored;
//! - a name present with several generations (a restart) appears once, with its newest one.
//!
//! It does not decide anything from membership (that is the engine's job), nor interpret keys.

mod config;
mod fanout;
mod node;
pub mod seal;
mod transport;
mod view;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_sealed;

use std::fmt;

pub use config::GossipConfig;
pub use node::Gossip;
pub use seal::{fingerprint, Fingerprint, Keys, Rejection};
pub use transport::{GossipStats, RejectingSource};
pub use view::{ClusterView, MemberView, Shadow};

/// Largest value, in bytes, a node may publish: far below the 65,507-byte datagram ceiling, so
/// one value always fits a delta with its key and the membership digest.
pub const MAX_VALUE_BYTES: usize = crate::engine::keys::MAX_VALUE_BYTES;

/// Largest key, in bytes, a node may publish.
pub const MAX_KEY_BYTES: usize = 256;

/// Why gossip refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipError {
    /// A value exceeds [`MAX_VALUE_BYTES`]; nothing of the batch was applied.
    ValueTooLarge {
        /// The key the value was for.
        key: String,
        /// The value's size in bytes.
        bytes: usize,
    },
    /// A key exceeds [`MAX_KEY_BYTES`]; nothing of the batch was applied.
    KeyTooLarge {
        /// The key's first 64 characters.
        key: String,
        /// The key's size in bytes.
        bytes: usize,
    },
    /// The gossip loop has ended (shut down, or failed on a socket error): nothing is sent any
    /// more.
    Stopped {
        /// What ended it.
        reason: String,
    },
}

impl fmt::Display for GossipError {
    /// Formats the error for an operator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GossipError::ValueTooLarge { key, bytes } => write!(
                f,
                "value of gossip key {key:?} is {bytes} bytes, more than the {MAX_VALUE_BYTES}-byte limit"
            ),
            GossipError::KeyTooLarge { key, bytes } => write!(
                f,
                "gossip key {key:?}… is {bytes} bytes, more than the {MAX_KEY_BYTES}-byte limit"
            ),
            GossipError::Stopped { reason } => write!(f, "gossip has stopped: {reason}"),
        }
    }
}

impl std::error::Error for GossipError {}
