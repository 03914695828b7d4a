//! The running gossip node: starts chitchat over the sealed UDP transport, applies this node's
//! key changes, and reads the cluster into a [`ClusterView`]. It holds the chitchat handle; the
//! view's choices live in [`super::view`], the configuration in [`super::config`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chitchat::{
    spawn_chitchat, Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig,
    ProtocolVersion,
};
use tokio::sync::watch;

use super::config::GossipConfig;
use super::seal::{Keyring, Keys};
use super::transport::{GossipStats, SealedTransport, Shared};
use super::view::{self, Beat, ClusterView, Entry, HeartbeatTracker};
use super::{GossipError, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// Heartbeat intervals the failure detector averages over, per peer.
const SAMPLING_WINDOW: usize = 1000;

/// A running gossip node: this node's keys go out, every member's keys and liveness come in.
///
/// Dropping it stops gossip like [`Gossip::shutdown`] does, without waiting. Peers are not told
/// either way: they detect the silence.
pub struct Gossip {
    handle: ChitchatHandle,
    id: ChitchatId,
    shared: Arc<Shared>,
    started: Instant,
    tracker: Arc<Mutex<HeartbeatTracker>>,
    /// Each node state's keys as last read, with the version they were read at: read again
    /// only when chitchat's `max_version` for the state moves.
    key_cache: Mutex<KeyCache>,
    /// `Some` once chitchat's gossip loop has ended: `Ok` on shutdown, `Err(reason)` on failure.
    ended_rx: watch::Receiver<Option<Result<(), String>>>,
}

impl Gossip {
    /// Starts gossiping with a fresh generation (nanoseconds since the epoch, so a restarted node is never ignored).
    ///
    /// `initial` holds this node's first keys, published with the first round.
    ///
    /// # Errors
    /// Fails when the configuration is invalid, an initial key or value exceeds its size limit,
    /// or the listen address cannot be bound.
    pub async fn start(
        cfg: GossipConfig,
        initial: BTreeMap<String, String>,
    ) -> anyhow::Result<Gossip> {
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("invalid gossip configuration: {e}"))?;
        for (key, value) in &initial {
            check_sizes(key, Some(value))?;
        }
        let generation = fresh_generation(cfg.last_generation);
        let id = ChitchatId::new(cfg.node.as_str(), generation, cfg.advertise);
        let config = ChitchatConfig {
            chitchat_id: id.clone(),
            cluster_id: cfg.cluster_id.clone(),
            gossip_interval: cfg.gossip_interval,
            listen_addr: cfg.listen,
            seed_nodes: cfg.seeds.clone(),
            failure_detector_config: FailureDetectorConfig::new(
                cfg.phi_threshold,
                SAMPLING_WINDOW,
                cfg.max_interval,
                cfg.initial_interval,
                cfg.dead_node_grace,
            ),
            marked_for_deletion_grace_period: cfg.tombstone_grace,
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: if cfg.compress_digest {
                ProtocolVersion::V1
            } else {
                ProtocolVersion::V0
            },
        };
        let shared = Arc::new(Shared::new(cfg.keys.as_ref().map(Keyring::new)));
        let transport = SealedTransport {
            shared: shared.clone(),
            cluster_id: cfg.cluster_id.clone(),
            max_skew_s: cfg.max_clock_skew.as_secs(),
            interval: cfg.gossip_interval,
            fanout: cfg.fanout,
        };
        let handle = spawn_chitchat(config, initial.into_iter().collect(), &transport)
            .await
            .with_context(|| format!("cannot start gossip on {}", cfg.listen))?;
        let (ended_tx, ended_rx) = watch::channel(None);
        let terminated = handle.termination_watcher();
        tokio::spawn(async move {
            let outcome = terminated.await.map_err(|e| format!("{e:#}"));
            if let Err(reason) = &outcome {
                tracing::error!(%reason, "gossip loop ended");
            }
            let _ = ended_tx.send(Some(outcome));
        });
        let tracker = Arc::new(Mutex::new(HeartbeatTracker::default()));
        tokio::spawn(sample_heartbeats(
            handle.chitchat(),
            tracker.clone(),
            shared.clone(),
            cfg.gossip_interval,
            ended_rx.clone(),
        ));
        Ok(Gossip {
            handle,
            id,
            shared,
            started: Instant::now(),
            tracker,
            key_cache: Mutex::new(KeyCache::default()),
            ended_rx,
        })
    }

    /// Returns this node's generation, which peers see in [`super::MemberView::generation`].
    pub fn generation(&self) -> u64 {
        self.id.generation_id
    }

    /// Returns this node's name.
    pub fn node(&self) -> &str {
        &self.id.node_id
    }

    /// Applies `changes` to this node's own keys in order (Some = set, None = delete).
    ///
    /// Peers receive the changes in this order, so a key set here before another is never seen
    /// after it. Setting a key to its current value, or deleting an absent key, changes nothing.
    ///
    /// # Errors
    /// Refuses the whole batch, applying nothing, when a key is longer than [`MAX_KEY_BYTES`] or
    /// a value longer than [`MAX_VALUE_BYTES`], or when the gossip loop has ended.
    pub async fn publish(&self, changes: &[(String, Option<String>)]) -> Result<(), GossipError> {
        if let Some(outcome) = self.ended_rx.borrow().as_ref() {
            return Err(stopped(outcome));
        }
        for (key, value) in changes {
            check_sizes(key, value.as_deref())?;
        }
        let chitchat = self.handle.chitchat();
        let mut chitchat = chitchat.lock().await;
        let own = chitchat.self_node_state();
        for (key, value) in changes {
            match value {
                Some(value) => own.set(key, value),
                None => {
                    if own.get(key).is_some() {
                        own.delete(key);
                    }
                }
            }
        }
        Ok(())
    }

    /// Returns what this node knows of the cluster now.
    pub async fn view(&self) -> ClusterView {
        let entries = {
            let chitchat = self.handle.chitchat();
            let chitchat = chitchat.lock().await;
            let mut cache = self
                .key_cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            read_entries(&chitchat, &mut cache)
        };
        let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
        view::build(self.node(), entries, &mut tracker, Instant::now())
    }

    /// The members chitchat schedules for deletion (left out of its digests), for tests.
    #[cfg(test)]
    pub(super) async fn doomed(&self) -> Vec<(String, u64)> {
        let chitchat = self.handle.chitchat();
        let chitchat = chitchat.lock().await;
        (chitchat.scheduled_for_deletion_nodes())
            .map(|id| (id.node_id.to_string(), id.generation_id))
            .collect()
    }

    /// Returns the datagrams and bytes sent and received since start, and what was refused.
    pub fn stats(&self) -> GossipStats {
        self.shared.snapshot(self.started.elapsed())
    }

    /// Replaces the keys datagrams are sealed and opened with (a rotation step). A node
    /// started without keys (`--insecure`) cannot be given some: restart it.
    ///
    /// # Errors
    /// Fails when this node runs without keys.
    pub fn set_keys(&self, keys: &Keys) -> Result<(), String> {
        if self.shared_insecure() {
            return Err("this node runs --insecure: restart it to use keys".to_string());
        }
        self.shared.set_keys(Keyring::new(keys));
        Ok(())
    }

    /// Tells whether this node sends and accepts unauthenticated datagrams (`--insecure`).
    pub fn insecure(&self) -> bool {
        self.shared_insecure()
    }

    fn shared_insecure(&self) -> bool {
        self.shared.primary().is_none()
    }

    /// Stops gossiping and waits until the socket is released. Peers are not told: they see
    /// this node die after their detection timeout.
    pub async fn shutdown(self) {
        if let Err(e) = self.handle.shutdown().await {
            tracing::warn!(error = %format!("{e:#}"), "gossip ended with an error");
        }
    }

    /// Resolves when chitchat's gossip loop ends on its own (it can on some recv errors) — the daemon must treat this as fatal.
    ///
    /// The future does not borrow `self`. It yields `Ok(())` after [`Gossip::shutdown`] (or a
    /// drop), and [`GossipError::Stopped`] when the loop failed.
    pub fn termination(&self) -> impl Future<Output = Result<(), GossipError>> + Send + 'static {
        let mut ended_rx = self.ended_rx.clone();
        async move {
            match ended_rx.wait_for(Option::is_some).await {
                Ok(outcome) => match outcome.as_ref() {
                    Some(outcome) => outcome
                        .clone()
                        .map_err(|reason| GossipError::Stopped { reason }),
                    None => Ok(()),
                },
                Err(_) => Err(GossipError::Stopped {
                    reason: "gossip watcher vanished".to_string(),
                }),
            }
        }
    }
}

/// Returns the error for a gossip loop that has ended with `outcome`.
fn stopped(outcome: &Result<(), String>) -> GossipError {
    GossipError::Stopped {
        reason: match outcome {
            Ok(()) => "gossip was shut down".to_string(),
            Err(reason) => reason.clone(),
        },
    }
}

/// Refuses keys and values that could not travel in one datagram with room to spare.
fn check_sizes(key: &str, value: Option<&str>) -> Result<(), GossipError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(GossipError::KeyTooLarge {
            key: key.chars().take(64).collect(),
            bytes: key.len(),
        });
    }
    match value {
        Some(value) if value.len() > MAX_VALUE_BYTES => Err(GossipError::ValueTooLarge {
            key: key.to_string(),
            bytes: value.len(),
        }),
        _ => Ok(()),
    }
}

/// Returns nanoseconds since the epoch, or `last + 1` if the clock is not past `last`.
fn fresh_generation(last: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    now.max(last.saturating_add(1))
}

/// Records every member's heartbeat in `tracker` each `interval`, until the gossip loop ends, so
/// that `last_heard` does not depend on how often the caller asks for a view.
async fn sample_heartbeats(
    chitchat: Arc<tokio::sync::Mutex<Chitchat>>,
    tracker: Arc<Mutex<HeartbeatTracker>>,
    shared: Arc<Shared>,
    interval: Duration,
    mut ended_rx: watch::Receiver<Option<Result<(), String>>>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = ended_rx.wait_for(Option::is_some) => return,
        }
        let beats = read_beats(&*chitchat.lock().await);
        shared.set_live(beats.iter().filter(|b| b.alive).map(|b| b.addr).collect());
        let mut tracker = tracker.lock().unwrap_or_else(PoisonError::into_inner);
        tracker.record(&beats, Instant::now());
    }
}

/// Copies the heartbeats of chitchat's node states, other than this node's (under its lock).
fn read_beats(chitchat: &Chitchat) -> Vec<Beat> {
    let me = chitchat.self_chitchat_id();
    let live: BTreeSet<&ChitchatId> = chitchat.live_nodes().collect();
    chitchat
        .node_states()
        .iter()
        .filter(|(id, _)| *id != me)
        .map(|(id, state)| Beat {
            node: id.node_id.to_string(),
            generation: id.generation_id,
            addr: id.gossip_advertise_addr,
            alive: live.contains(id),
            heartbeat: u64::from(state.heartbeat()),
        })
        .collect()
}

/// Copies chitchat's node states into [`Entry`] rows (under its lock: keep it short).
/// Node state → (the `max_version` its keys were read at, the keys).
type KeyCache = BTreeMap<ChitchatId, (u64, Arc<BTreeMap<String, String>>)>;

fn read_entries(chitchat: &Chitchat, cache: &mut KeyCache) -> Vec<Entry> {
    let me = chitchat.self_chitchat_id();
    let live: BTreeSet<&ChitchatId> = chitchat.live_nodes().collect();
    let doomed: BTreeSet<&ChitchatId> = chitchat.scheduled_for_deletion_nodes().collect();
    let states = chitchat.node_states();
    // Forget the states chitchat forgot (bounded by what chitchat holds).
    cache.retain(|id, _| states.contains_key(id));
    states
        .iter()
        .map(|(id, state)| {
            let version = state.max_version();
            let keys = match cache.get(id) {
                Some((v, keys)) if *v == version => keys.clone(),
                _ => {
                    let keys: Arc<BTreeMap<String, String>> = Arc::new(
                        (state.key_values())
                            .map(|(key, value)| (key.to_string(), value.to_string()))
                            .collect(),
                    );
                    cache.insert(id.clone(), (version, keys.clone()));
                    keys
                }
            };
            Entry {
                node: id.node_id.to_string(),
                generation: id.generation_id,
                addr: id.gossip_advertise_addr,
                is_self: id == me,
                alive: live.contains(id),
                scheduled_for_deletion: doomed.contains(id),
                heartbeat: u64::from(state.heartbeat()),
                keys,
                version,
                detection_timeout: chitchat.failure_detection_timeout(id),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_nanoseconds_and_passes_the_last_one() {
        let now = fresh_generation(0);
        assert!(now > 1_600_000_000_000_000_000, "{now}");
        let far = u64::MAX - 5;
        assert_eq!(fresh_generation(far), far + 1);
        assert_eq!(fresh_generation(u64::MAX), u64::MAX);
    }

    #[test]
    fn sizes_are_checked() {
        assert_eq!(check_sizes("k", Some(&"x".repeat(MAX_VALUE_BYTES))), Ok(()));
        assert_eq!(
            check_sizes("k", Some(&"x".repeat(MAX_VALUE_BYTES + 1))),
            Err(GossipError::ValueTooLarge {
                key: "k".to_string(),
                bytes: MAX_VALUE_BYTES + 1
            })
        );
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(
            check_sizes(&long, None),
            Err(GossipError::KeyTooLarge { bytes, .. }) if bytes == MAX_KEY_BYTES + 1
        ));
    }
}
