//! The operators' standing orders as the daemon takes them: `mosha standby`, `unstandby`,
//! `drain`, `freeze`, `unfreeze` and `maintenance` leave a command in `DIR/commands/`
//! (`standby-NODE` with `to=OTHER` or nothing, `unstandby-NODE`, `freeze-GROUP`,
//! `unfreeze-GROUP`, `maintenance` with `on` or `off`); [`parse`] checks it against the
//! cluster as this node sees it, and [`Pending`] writes it into the replicated `admin` file
//! as a local edit, which spreads to every node like an edit of hactl.
//!
//! Two operators who give orders on two nodes within one gossip round both edit the file,
//! and the newer version wins whole: the other order would be lost. So each order stays
//! pending here until the file in force says it (or [`ORDER_TTL`] passes), and is written
//! again onto the newer version while it does not, at most [`MAX_ATTEMPTS`] times.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::admin::{self, Order};
use crate::engine::node::Node;
use crate::engine::Admin;

/// How long an order waits to be in force before it is given up.
pub const ORDER_TTL: Duration = Duration::from_secs(10);

/// How many times an order is written at most (the first time included).
pub const MAX_ATTEMPTS: u32 = 4;

/// The least time between two writes of the same order: a gossip round or two, so that a
/// newer version from elsewhere has arrived before it is written over.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Parses and checks the command file `name` (with `text`) as a standing order, against
/// what `core` knows. Returns `None` when `name` is no order's command; else the order and
/// what the reply says, or why it is refused.
pub fn parse(core: &Node, name: &str, text: &str) -> Option<Result<(Order, String), String>> {
    let view = core.view();
    let known = |n: &str| -> Result<(), String> {
        crate::config::check_name("node", n)?;
        let member = view.members.contains_key(n) || core.engine().expected().contains(n);
        member
            .then_some(())
            .ok_or_else(|| format!("no node {n:?} is known (see mosha status)"))
    };
    let group = |g: &str| -> Result<(), String> {
        crate::config::check_name("group", g)?;
        (view.want.contains_key(g))
            .then_some(())
            .ok_or_else(|| format!("no group {g:?} in cltab"))
    };
    let text = text.trim();
    let order = if let Some(node) = name.strip_prefix("standby-") {
        let to = match text.strip_prefix("to=") {
            None if text.is_empty() => None,
            Some(to) if !to.is_empty() => Some(to.to_string()),
            _ => return Some(Err(format!("unexpected {text:?} (to=NODE or nothing)"))),
        };
        let checked = known(node).and_then(|()| match &to {
            Some(to) if to == node => Err(format!("{node} cannot be drained to itself")),
            Some(to) if view.admin.standby.contains_key(to) => Err(format!(
                "{to} is in standby itself: it cannot take {node}'s groups"
            )),
            Some(to) => known(to),
            None => Ok(()),
        });
        checked.map(|()| Order::Standby {
            node: node.to_string(),
            to,
        })
    } else if let Some(node) = name.strip_prefix("unstandby-") {
        known(node).map(|()| Order::Unstandby {
            node: node.to_string(),
        })
    } else if let Some(g) = name.strip_prefix("freeze-") {
        group(g).map(|()| Order::Freeze {
            group: g.to_string(),
        })
    } else if let Some(g) = name.strip_prefix("unfreeze-") {
        // A group that left cltab may still be frozen: let it be unfrozen.
        let frozen = view.admin.frozen.contains(g);
        (if frozen { Ok(()) } else { group(g) }).map(|()| Order::Unfreeze {
            group: g.to_string(),
        })
    } else if name == "maintenance" {
        match text {
            "on" => Ok(Order::Maintenance(true)),
            "off" => Ok(Order::Maintenance(false)),
            _ => Err(format!("unexpected {text:?} (on or off)")),
        }
    } else {
        return None;
    };
    Some(order.map(|o| {
        let said = describe(&o, &view.admin);
        (o, said)
    }))
}

/// Says what an order does, given the orders in force.
fn describe(o: &Order, admin: &Admin) -> String {
    let already = if o.holds(admin) { " (already so)" } else { "" };
    let what = match o {
        Order::Standby { node, to: None } => {
            format!("{node} in standby: its groups move to other nodes, none is placed on it")
        }
        Order::Standby { node, to: Some(to) } => {
            format!("{node} in standby, its groups drained to {to}")
        }
        Order::Unstandby { node } => {
            format!("{node} out of standby: it may run groups again (none moves back by itself)")
        }
        Order::Freeze { group } => format!(
            "{group} frozen: mosha leaves its processes as they are (no respawn, stop or failover)"
        ),
        Order::Unfreeze { group } => format!("{group} unfrozen: mosha manages it again"),
        Order::Maintenance(true) => {
            "maintenance on: every group frozen, mosha leaves every process as it is".to_string()
        }
        Order::Maintenance(false) => "maintenance off: mosha manages every group again".into(),
    };
    format!("{what}{already}")
}

/// One order waiting to be in force.
#[derive(Debug)]
struct Waiting {
    order: Order,
    since: Instant,
    written: Option<Instant>,
    attempts: u32,
}

/// The orders given on this node that the `admin` file in force does not say yet.
#[derive(Debug, Default)]
pub struct Pending {
    orders: Vec<Waiting>,
}

impl Pending {
    /// Takes a new order.
    pub fn push(&mut self, order: Order, now: Instant) {
        warn!(order = ?order, "operator: standing order");
        self.orders.push(Waiting {
            order,
            since: now,
            written: None,
            attempts: 0,
        });
    }

    /// Returns the text of the `admin` file to write at `now`, if an order is not in force
    /// in `admin` (the orders in force) and it is time to write it; orders in force, and
    /// those that waited too long, are dropped.
    pub fn due(&mut self, admin: &Admin, now: Instant) -> Option<String> {
        self.orders.retain(|w| {
            if w.order.holds(admin) {
                if w.attempts > 1 {
                    info!(order = ?w.order, "standing order in force after {} writes", w.attempts);
                }
                return false;
            }
            let expired = now.duration_since(w.since) >= ORDER_TTL || w.attempts >= MAX_ATTEMPTS;
            if expired && w.written.is_none_or(|t| now.duration_since(t) >= RETRY_AFTER) {
                warn!(order = ?w.order, "standing order not in force after {} writes: another edit of the admin file replaced it; give it again", w.attempts);
                return false;
            }
            true
        });
        let mut next = admin.clone();
        let mut changed = false;
        for w in &mut self.orders {
            if w.written
                .is_none_or(|t| now.duration_since(t) >= RETRY_AFTER)
            {
                changed |= w.order.apply(&mut next);
                w.written = Some(now);
                w.attempts += 1;
            }
        }
        changed.then(|| admin::render(&next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_written_until_it_is_in_force_and_then_dropped() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        let standby = Order::Standby {
            node: "n1".into(),
            to: None,
        };
        p.push(standby.clone(), t0);
        let text = p.due(&Admin::default(), t0).expect("written at once");
        let mut wanted = Admin::default();
        standby.apply(&mut wanted);
        assert_eq!(admin::parse("admin", &text).unwrap(), wanted);
        // Another edit replaced it: not written again at once, but after a round.
        assert_eq!(p.due(&Admin::default(), t0), None);
        let later = t0 + RETRY_AFTER;
        assert!(p.due(&Admin::default(), later).is_some());
        // In force: dropped.
        assert_eq!(p.due(&wanted, later + RETRY_AFTER), None);
        assert!(p.orders.is_empty());
    }

    #[test]
    fn an_order_that_never_holds_is_given_up() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        p.push(Order::Maintenance(true), t0);
        let mut t = t0;
        let mut writes = 0;
        while !p.orders.is_empty() {
            writes += u32::from(p.due(&Admin::default(), t).is_some());
            t += RETRY_AFTER;
            assert!(t < t0 + ORDER_TTL * 2, "given up in time");
        }
        assert_eq!(writes, MAX_ATTEMPTS);
    }
}
