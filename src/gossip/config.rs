//! The gossip layer's configuration: every knob of membership and failure detection, with LAN
//! defaults, and its validation. It does not start anything (see [`super::Gossip::start`]).

use std::net::SocketAddr;
use std::time::Duration;

use super::seal::Keys;

/// Configuration of one node's gossip: identity, addresses, and the timing of failure detection.
///
/// Failure detection works like this: every `gossip_interval` the node exchanges state with up to
/// three peers; each exchange carries every node's heartbeat counter. For each peer the node keeps
/// the mean interval between heartbeat advances (smoothed towards `initial_interval` while few
/// samples exist) and declares the peer dead once the time since its last advance exceeds
/// `phi_threshold` times that mean. Liveness is recomputed once per `gossip_interval`, so
/// detection times are multiples of it.
#[derive(Debug, Clone, PartialEq)]
pub struct GossipConfig {
    /// Name of this node, unique in the cluster; the member's key in every
    /// [`super::ClusterView`].
    pub node: String,
    /// Name of the cluster. Nodes configured with another cluster id are refused, so that two
    /// clusters sharing a network never merge. Defaults to `"mosha"`.
    pub cluster_id: String,
    /// UDP address the node binds to.
    pub listen: SocketAddr,
    /// UDP address peers use to reach this node (and under which they know it). Defaults to
    /// `listen`; set it when `listen` is a wildcard or behind NAT. It must not be unspecified
    /// (`0.0.0.0`).
    pub advertise: SocketAddr,
    /// Addresses (`IP:PORT`, or `host:port`, resolved again every minute) of nodes to contact
    /// while this node knows no live peer. Listing every node of a small cluster is fine; this
    /// node's own address is ignored.
    pub seeds: Vec<String>,
    /// Time between gossip rounds. Lower values spread updates and detect failures faster, at a
    /// bandwidth cost proportional to `1 / gossip_interval` and to the cluster size. Default
    /// 100 ms (about 10 exchanges per second per node).
    pub gossip_interval: Duration,
    /// Multiple of a peer's mean heartbeat interval after which it is declared dead. Higher
    /// values mean fewer false detections under load or packet loss, and slower detection.
    /// Default 8.0 (with 100 ms heartbeats: dead after about 0.8 s of silence).
    pub phi_threshold: f64,
    /// Heartbeat interval assumed for a peer before enough samples exist, with the weight of five
    /// samples. Keep it close to `gossip_interval`: a large value (chitchat's default is 5 s)
    /// dominates detection for a long time after every start. Default 100 ms.
    pub initial_interval: Duration,
    /// Longest heartbeat interval taken as a sample; longer gaps (a peer that was away) are not
    /// averaged in, so one outage does not make detection lenient afterwards. Default 2 s.
    pub max_interval: Duration,
    /// Time a dead member is kept. Its last known keys stay in the view, and in every gossip
    /// digest, for half this time, then the member is dropped from both; its state is
    /// forgotten after the full time. Default 10 min: a restart leaves its old generation
    /// behind as a dead member, and with 1 h the digests of a cluster whose daemons restarted
    /// often grew without need (found by the chaos run: gossip per node rose from 12 to 209
    /// KB/s over 300 faults, 150 restarts). A lost node's groups do not depend on it: the
    /// engine keeps each loss until the node is fenced, and a member that is expected but
    /// unknown is fenced before anything it may hold is recovered.
    pub dead_node_grace: Duration,
    /// Time a deleted key's tombstone is kept so that peers learn of the deletion. A peer away
    /// for longer receives this node's whole state again instead. Default 1 h.
    pub tombstone_grace: Duration,
    /// Generation of this node's previous run, if the caller kept it (0 if not). The new
    /// generation is nanoseconds since the epoch, raised above this value if the wall clock
    /// stepped back, because peers take the highest generation of a name for the current one.
    pub last_generation: u64,
    /// Compresses the membership digest each round carries (chitchat protocol V1), which saves
    /// bandwidth in larger clusters. Every node must run a mosha built on chitchat 0.13 or later.
    /// Default true.
    pub compress_digest: bool,
    /// The cluster keys every datagram is sealed and opened with (the first seals); `None`
    /// sends and accepts plain, unauthenticated datagrams (`--insecure`). Default `None`: the
    /// daemon always sets it unless told `--insecure`.
    pub keys: Option<Keys>,
    /// Largest difference between a datagram's send time and this node's clock: older (or
    /// newer) datagrams are refused, which bounds how long a recorded datagram could be
    /// replayed to a node that restarted. Zero turns the check off. Default 60 s.
    pub max_clock_skew: Duration,
    /// How many live peers each round opens an exchange with. `None` (the default) adapts it
    /// to the cluster's size: chitchat's three up to 10 members, two up to 40, then one, so
    /// that a node's gossip bytes and CPU grow with N rather than 3 × N while every heartbeat
    /// still reaches every node about once a round (see the `fanout` module).
    pub fanout: Option<usize>,
}

impl GossipConfig {
    /// Returns the configuration of node `node` listening (and advertised) on `listen`, with LAN
    /// defaults: 100 ms gossip, phi 8, 100 ms initial interval, 2 s max interval, a 10 min
    /// dead-node grace, a 1 h tombstone grace.
    pub fn new(node: impl Into<String>, listen: SocketAddr) -> GossipConfig {
        GossipConfig {
            node: node.into(),
            cluster_id: "mosha".to_string(),
            listen,
            advertise: listen,
            seeds: Vec::new(),
            gossip_interval: Duration::from_millis(100),
            phi_threshold: 8.0,
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(2),
            dead_node_grace: Duration::from_secs(600),
            tombstone_grace: Duration::from_secs(3600),
            last_generation: 0,
            compress_digest: true,
            keys: None,
            max_clock_skew: Duration::from_secs(60),
            fanout: None,
        }
    }

    /// Checks the configuration, reporting every problem at once.
    ///
    /// # Errors
    /// Fails, with one message per problem joined by `"; "`, when the node name or cluster id is
    /// empty or too long, the advertised address is unspecified, or a duration or threshold is
    /// zero or out of range.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        if self.node.is_empty() || self.node.len() > MAX_NAME_BYTES {
            errors.push(format!(
                "node name {:?} must have 1 to {MAX_NAME_BYTES} bytes",
                self.node
            ));
        }
        if self.cluster_id.is_empty() || self.cluster_id.len() > MAX_NAME_BYTES {
            errors.push(format!(
                "cluster id {:?} must have 1 to {MAX_NAME_BYTES} bytes",
                self.cluster_id
            ));
        }
        if self.advertise.ip().is_unspecified() || self.advertise.port() == 0 {
            errors.push(format!(
                "advertised address {} is not one peers can reach: set an IP and a port",
                self.advertise
            ));
        }
        if self.gossip_interval < Duration::from_millis(1) {
            errors.push("gossip interval must be at least 1 ms".to_string());
        }
        if !(self.phi_threshold.is_finite() && self.phi_threshold > 0.0) {
            errors.push(format!(
                "phi threshold {} must be a positive number",
                self.phi_threshold
            ));
        }
        if self.initial_interval.is_zero() {
            errors.push("initial interval must be positive".to_string());
        }
        if self.max_interval < self.gossip_interval {
            errors.push(format!(
                "max interval {:?} must be at least the gossip interval {:?}",
                self.max_interval, self.gossip_interval
            ));
        }
        if self.dead_node_grace.is_zero() {
            errors.push("dead node grace must be positive".to_string());
        }
        if self.fanout.is_some_and(|k| !(1..=3).contains(&k)) {
            errors.push(format!(
                "fan-out {:?} must be 1, 2 or 3 (chitchat opens at most three exchanges a round)",
                self.fanout
            ));
        }
        if self.max_clock_skew > Duration::from_secs(24 * 3600) {
            errors.push(format!(
                "max clock skew {:?} must be at most a day",
                self.max_clock_skew
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Longest node name or cluster id, in bytes (a DNS name's limit); both travel in every round.
const MAX_NAME_BYTES: usize = 253;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_lan_settings() {
        let cfg = GossipConfig::new("a", "127.0.0.1:7946".parse().unwrap());
        assert_eq!(cfg.advertise, cfg.listen);
        assert_eq!(cfg.cluster_id, "mosha");
        assert_eq!(cfg.gossip_interval, Duration::from_millis(100));
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut cfg = GossipConfig::new("", "0.0.0.0:7946".parse().unwrap());
        cfg.gossip_interval = Duration::ZERO;
        cfg.phi_threshold = f64::NAN;
        let err = cfg.validate().unwrap_err();
        assert!(err.contains("node name"), "{err}");
        assert!(err.contains("advertised address 0.0.0.0:7946"), "{err}");
        assert!(err.contains("gossip interval"), "{err}");
        assert!(err.contains("phi threshold"), "{err}");
        assert_eq!(err.split("; ").count(), 4, "{err}");
    }
}
