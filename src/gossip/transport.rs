//! Traffic accounting: a wrapper around chitchat's UDP transport that counts the datagrams and
//! bytes gossip sends and receives. It does not change what is sent (no authentication yet).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};
use chitchat::ChitchatEnvelope;

/// Gossip traffic of one node since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Time since the node started gossiping, to turn the counters into rates.
    pub elapsed: Duration,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Payload bytes sent (UDP payload, without IP and UDP headers).
    pub bytes_sent: u64,
    /// Well-formed datagrams received (malformed ones are dropped uncounted).
    pub datagrams_received: u64,
    /// Payload bytes of the well-formed datagrams received.
    pub bytes_received: u64,
}

/// Counters shared between the socket (which bumps them) and the gossip handle (which reads).
#[derive(Debug, Default)]
pub(super) struct Counters {
    datagrams_sent: AtomicU64,
    bytes_sent: AtomicU64,
    datagrams_received: AtomicU64,
    bytes_received: AtomicU64,
}

impl Counters {
    /// Returns the counters now, with `elapsed` filled in by the caller.
    pub(super) fn snapshot(&self, elapsed: Duration) -> GossipStats {
        GossipStats {
            elapsed,
            datagrams_sent: self.datagrams_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            datagrams_received: self.datagrams_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
        }
    }
}

/// Chitchat's UDP transport, with every datagram counted in `counters`.
pub(super) struct CountingTransport {
    pub(super) counters: Arc<Counters>,
}

#[async_trait]
impl Transport for CountingTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inner = UdpTransport.open(listen_addr).await?;
        Ok(Box::new(CountingSocket {
            inner,
            counters: self.counters.clone(),
        }))
    }
}

/// A UDP socket that counts what passes through it.
struct CountingSocket {
    inner: Box<dyn Socket>,
    counters: Arc<Counters>,
}

#[async_trait]
impl Socket for CountingSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let outcome = self.inner.send(to, envelope).await?;
        self.counters.datagrams_sent.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_sent
            .fetch_add(outcome.num_bytes_sent as u64, Ordering::Relaxed);
        Ok(outcome)
    }

    // Cancel-safe as chitchat requires: counting happens in the same poll that completes the
    // inner receive.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        let outcome = self.inner.recv().await?;
        self.counters
            .datagrams_received
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_received
            .fetch_add(outcome.num_bytes_received as u64, Ordering::Relaxed);
        Ok(outcome)
    }
}
