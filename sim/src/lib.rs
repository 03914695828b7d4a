//! `sim`: a deterministic, single-threaded, virtual-time simulator of a mosha cluster. It
//! drives the real decision engine (`mosha::engine`) of N nodes over a modelled gossip
//! layer and modelled supervisors and fence agents, injects faults drawn from one seed, and
//! checks safety and liveness invariants against the simulator's truth. The same faults are
//! also run against a model of OpenMosix::HA 0.555 for comparison.

pub mod alloc;
pub mod faults;
pub mod files;
pub mod gossip;
pub mod invariants;
pub mod lifecycle;
pub mod memory;
pub mod net;
pub mod node;
pub mod openmosix;
pub mod report;
pub mod run;
pub mod sup;
pub mod world;
