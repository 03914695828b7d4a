//! The modelled gossip: what a node publishes reaches every node that hears it after a
//! dissemination delay, in order per (publisher, observer), relayed onward once it reached
//! anyone; a node that was cut off resynchronises with what its peers know; a clogged node
//! gets heartbeats but no state (see `net::Links`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use mosha::engine::{Claim, Member};

use crate::world::{merge_record, newer_wants, Kind2, Sent, Upd, World};

impl World {
    /// Publishes an update of node `x` to every node that hears it.
    pub fn publish(&mut self, x: usize, upd: Upd) {
        self.stats.publishes += 1;
        self.nodes[x].pub_ver += 1;
        let ver = self.nodes[x].pub_ver;
        self.apply_own(x, &upd);
        let upd = Rc::new(Sent {
            upd,
            reached: RefCell::new(Vec::new()),
        });
        let mut buckets: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for y in 0..self.nodes.len() {
            // A clogged node gets no state (see `clog`).
            if y == x || !self.links.heard(y, x) || self.links.clog_out[y] {
                continue;
            }
            let t = (self.now + self.timing.dissem(&mut self.rng)).max(self.last[y][x]);
            self.last[y][x] = t;
            buckets.entry(t.div_ceil(10) * 10).or_default().push(y);
        }
        let generation = self.nodes[x].generation;
        for (t, to) in buckets {
            self.push(
                t,
                Kind2::Deliver {
                    from: x,
                    generation,
                    ver,
                    upd: upd.clone(),
                    to,
                },
            );
        }
    }

    fn apply_own(&mut self, x: usize, upd: &Upd) {
        let n = &mut self.nodes[x];
        match upd {
            Upd::Cooldown(g, on) => {
                if *on {
                    n.cooldown_pub.insert(g.clone());
                } else {
                    n.cooldown_pub.remove(g);
                }
                let me = n.name.clone();
                if let Some(m) = n.view.members.get_mut(&me) {
                    m.cooldown = n.cooldown_pub.clone();
                }
            }
            Upd::Record(v, r) => {
                n.records_pub.insert(v.clone(), r.clone());
                merge_record(&mut n.view.records, v, r);
            }
            Upd::Want(g, l, ver) => {
                n.view.want.insert(g.clone(), l.clone());
                n.want_ver.insert(g.clone(), *ver);
            }
            Upd::Claim(..) => {}
        }
    }

    pub(crate) fn deliver(
        &mut self,
        y: usize,
        from: usize,
        (generation, ver): (u64, u64),
        sent: &Sent,
    ) {
        let relayed = || {
            sent.reached
                .borrow()
                .iter()
                .any(|r| self.nodes[*r].ok() && self.links.heard(y, *r))
        };
        if !self.nodes[y].ok()
            || self.links.clog_out[y]
            || self.nodes[from].generation != generation
            || !(self.links.heard(y, from) || relayed())
        {
            return;
        }
        sent.reached.borrow_mut().push(y);
        let upd = &sent.upd;
        if let Upd::Claim(g, c) = upd {
            let past = c.as_ref().is_some_and(crate::node::past_plan);
            self.nodes[from].got_out(g, ver, past);
        }
        let fname = self.nodes[from].name.clone();
        let node = &mut self.nodes[y];
        match upd {
            Upd::Record(v, r) => merge_record(&mut node.view.records, v, r),
            Upd::Want(g, l, ver) => {
                if node.want_ver.get(g).is_none_or(|old| ver > old) {
                    node.want_ver.insert(g.clone(), *ver);
                    node.view.want.insert(g.clone(), l.clone());
                }
            }
            _ => {
                let Some(m) = node.view.members.get_mut(&fname) else {
                    return;
                };
                if m.generation != generation {
                    return; // a resync brings the new generation
                }
                node.seen_ver.insert(fname, ver);
                match upd {
                    Upd::Claim(g, c) => {
                        // Another node's claim matters to the engine only through whether it
                        // holds, leaves, and its phase: a state change alone (STARTING to
                        // DONE) decides nothing, so it needs no step.
                        let sig =
                            |c: Option<&Claim>| c.map(|c| (c.holds(), c.leaving(), c.phase()));
                        let same = sig(m.claims.get(g)) == sig(c.as_ref());
                        match c {
                            Some(c) => m.claims.insert(g.clone(), c.clone()),
                            None => m.claims.remove(g),
                        };
                        if same {
                            return;
                        }
                    }
                    Upd::Cooldown(g, true) => {
                        m.cooldown.insert(g.clone());
                    }
                    Upd::Cooldown(g, false) => {
                        m.cooldown.remove(g);
                    }
                    _ => {}
                }
            }
        }
        self.dirty(y);
    }

    /// Copies `about`'s whole published state into `obs`'s view.
    pub(crate) fn resync(&mut self, obs: usize, about: usize) {
        if !self.nodes[obs].ok() || !self.nodes[about].ok() {
            return;
        }
        let n = self.nodes.len();
        // Both nodes at once, without copying `about`'s state first: at a thousand nodes a
        // cold start is a million resyncs (relink never pairs a node with itself).
        let (a, o) = if about < obs {
            let (l, r) = self.nodes.split_at_mut(obs);
            (&l[about], &mut r[0])
        } else {
            let (l, r) = self.nodes.split_at_mut(about);
            (&r[0], &mut l[obs])
        };
        let member = Member {
            alive: true,
            generation: a.generation,
            claims: a.claims.clone(),
            cooldown: a.cooldown_pub.clone(),
            left: false,
            quiet_since: None,
            blank: false,
        };
        // Gossip also relays the last known state of members (chitchat keeps dead ones until
        // the dead-node grace period), a newer version replacing an older one: `obs` learns
        // what `about` knows of those it does not hear (the others' state comes to it
        // directly). Unknown members only after the cold start (nobody is dead before).
        let unknown_ok = self.now > 1000;
        let links = &self.links;
        let mut relayed: Vec<(String, Member, u64)> = Vec::new();
        for z in (0..n).filter(|z| *z != obs && *z != about && !links.heard(obs, *z)) {
            let name = format!("n{z}");
            let Some(m) = a.view.members.get(&name) else {
                continue;
            };
            let theirs = (m.generation, a.seen_ver.get(&name).copied().unwrap_or(0));
            let relay = match o.view.members.get(&name) {
                // A member it does not hear at all (it hung before this daemon started, say):
                // known from others, dead to it.
                None => unknown_ok,
                Some(k) => (k.generation, o.seen_ver.get(&name).copied().unwrap_or(0)) < theirs,
            };
            if relay {
                // Its state travels; its liveness is `obs`'s own detector's business.
                let (alive, quiet_since) = o
                    .view
                    .members
                    .get(&name)
                    .filter(|k| k.generation == m.generation)
                    .map_or((false, None), |k| (k.alive, k.quiet_since));
                let copy = Member {
                    alive,
                    quiet_since,
                    ..m.clone()
                };
                relayed.push((name, copy, theirs.1));
            }
        }
        let version = a.pub_ver;
        // Everything `about` holds or dropped now got out.
        let got_out: Vec<(String, bool)> = a
            .out_claims
            .keys()
            .chain(a.claims.keys())
            .map(|g| {
                (
                    g.clone(),
                    a.claims.get(g).is_some_and(crate::node::past_plan),
                )
            })
            .collect();
        for (name, m, v) in relayed {
            o.seen_ver.insert(name.clone(), v);
            o.view.members.insert(name, m);
        }
        o.seen_ver.insert(a.name.clone(), version);
        match o.view.members.get_mut(&a.name) {
            Some(m) => *m = member,
            None => {
                o.view.members.insert(a.name.clone(), member);
                if o.view.members.len() == n {
                    o.compact_view();
                }
            }
        }
        for (v, r) in &a.view.records {
            merge_record(&mut o.view.records, v, r);
        }
        // Nothing is newer than what `obs` has when it has every level in force.
        if !o.want_synced {
            newer_wants(a, o);
        }
        for (g, past) in got_out {
            self.nodes[about].got_out(&g, version, past);
        }
        self.dirty(obs);
    }

    /// `obs`, whose gossip is clogged, hears `about` again: its failure detector takes it as
    /// alive from the heartbeats in peers' digests, but no state comes with them (a new
    /// generation is known with no keys at all).
    pub(crate) fn heartbeats_only(&mut self, obs: usize, about: usize) {
        if !self.nodes[obs].ok() || !self.nodes[about].ok() {
            return;
        }
        let (name, generation) = (self.nodes[about].name.clone(), self.nodes[about].generation);
        let local = self.nodes[obs].local(self.now);
        let o = &mut self.nodes[obs];
        let m = o.view.members.entry(name.clone()).or_default();
        if m.generation != generation {
            o.seen_ver.insert(name, 0);
            *m = Member {
                generation,
                blank: true,
                ..Member::default()
            };
        }
        m.alive = true;
        m.quiet_since.get_or_insert(local);
        self.dirty(obs);
    }
}
