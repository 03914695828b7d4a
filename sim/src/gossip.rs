//! The modelled gossip: what a node publishes reaches every node that hears it after a
//! dissemination delay, in order per (publisher, observer), relayed onward once it reached
//! anyone; a node that was cut off resynchronises with what its peers know; a clogged node
//! gets heartbeats but no state (see `net::Links`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use mosha::engine::keys::{BEAT, CLAIM_PREFIX};
use mosha::engine::node::Input;
use mosha::engine::Claim;

use crate::world::{Delivery, Kind2, NodeSet, Sent, Upd, World};

impl World {
    /// Publishes an update of node `x` to every node that hears it.
    pub fn publish(&mut self, x: usize, upd: Upd) {
        self.stats.publishes += 1;
        self.nodes[x].pub_ver += 1;
        let ver = self.nodes[x].pub_ver;
        let times = &mut self.nodes[x].pub_times;
        times.push_back((ver, self.now));
        if times.len() > crate::node::PUB_TIMES {
            times.pop_front();
        }
        self.apply_own(x, &upd);
        let upd = Rc::new(Sent {
            upd,
            reached: RefCell::new(NodeSet::default()),
        });
        // Observers in index order, so each instant's batch is delivered in that order.
        let mut buckets: BTreeMap<u64, NodeSet> = BTreeMap::new();
        for y in 0..self.nodes.len() {
            // A clogged node gets no state (see `clog`).
            if y == x || !self.links.heard(y, x) || self.links.clog_out[y] {
                continue;
            }
            let t = (self.now + self.timing.dissem(&mut self.rng)).max(self.last[y][x]);
            self.last[y][x] = t;
            buckets.entry(t.div_ceil(10) * 10).or_default().insert(y);
        }
        let generation = self.nodes[x].generation;
        for (t, to) in buckets {
            self.push(
                t,
                Kind2::Deliver(Box::new(Delivery {
                    from: x,
                    generation,
                    ver,
                    upd: upd.clone(),
                    to,
                })),
            );
        }
    }

    /// Keeps node `x`'s own update in its gossip state (what a resync copies).
    fn apply_own(&mut self, x: usize, upd: &Upd) {
        let n = &mut self.nodes[x];
        let Upd::Keys(changes) = upd;
        for (k, v) in changes {
            match v {
                Some(v) => n.published.insert(k.clone(), v.clone()),
                None => n.published.remove(k),
            };
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
                .any(|r| self.nodes[r].ok() && self.links.heard(y, r))
        };
        if !self.nodes[y].ok()
            || self.links.clog_out[y]
            || self.nodes[from].generation != generation
            || !(self.links.heard(y, from) || relayed())
        {
            return;
        }
        sent.reached.borrow_mut().insert(y);
        let matters = match &sent.upd {
            Upd::Keys(changes) => {
                for (k, v) in changes {
                    if let Some(g) = k.strip_prefix(CLAIM_PREFIX) {
                        let past = v
                            .as_deref()
                            .and_then(Claim::decode)
                            .is_some_and(|c| crate::node::past_plan(&c));
                        self.nodes[from].got_out(g, ver, past);
                    }
                }
                let fname = self.nodes[from].name.clone();
                // The observer now has everything `from` published: its beats reach it
                // again from here (see `feed_beats`), news the daemon's 50 ms loop would
                // see at its next tick. A node whose peers all fell quiet has no wake-up of
                // its own, so it is stepped now (found by the simulator: a node that had
                // lost quorum for no news stayed out of it long after the news came back).
                let caught_up = ver == self.nodes[from].pub_ver;
                let node = &mut self.nodes[y];
                let known = node.core.view().members.get(&fname).map(|m| m.generation);
                if known != Some(generation) {
                    return; // a resync brings the new generation
                }
                // Gossip never applies a version older than one it has: a resync (which
                // brings everything) may overtake an update still in flight (found by the
                // simulator: a stale claim came back after a resync and held a group at
                // `plan` for good).
                if node.seen_ver[from].is_some_and(|seen| seen >= ver) {
                    return;
                }
                node.seen_ver[from] = Some(ver);
                let changed = node.core.observe(Input::Keys {
                    name: fname,
                    generation,
                    changes: changes.clone(),
                });
                changed || caught_up
            }
        };
        if matters {
            self.dirty(y);
        }
    }

    /// Copies `about`'s whole published state into `obs`'s view, with what `about` knows of
    /// the members `obs` does not hear.
    pub(crate) fn resync(&mut self, obs: usize, about: usize) {
        if !self.nodes[obs].ok() || !self.nodes[about].ok() {
            return;
        }
        let n = self.nodes.len();
        let beat = self.beat_value();
        // Both nodes at once, without copying `about`'s state first: at a thousand nodes a
        // cold start is a million resyncs (relink never pairs a node with itself).
        let (a, o) = if about < obs {
            let (l, r) = self.nodes.split_at_mut(obs);
            (&l[about], &mut r[0])
        } else {
            let (l, r) = self.nodes.split_at_mut(about);
            (&r[0], &mut l[obs])
        };
        let mut state = a.published.clone();
        state.insert(BEAT.to_string(), beat);
        // Gossip also relays the last known state of members (chitchat keeps dead ones until
        // the dead-node grace period), a newer version replacing an older one: `obs` learns
        // what `about` knows of those it does not hear (the others' state comes to it
        // directly). Unknown members only after the cold start (nobody is dead before).
        let unknown_ok = self.now > 1000;
        let (links, names) = (&self.links, &self.node_names);
        let mut relayed: Vec<Input> = Vec::new();
        for z in (0..n).filter(|z| *z != obs && *z != about && !links.heard(obs, *z)) {
            let name = &names[z];
            let known = o.core.view().members.get(name);
            if known.is_none() && !unknown_ok {
                continue; // the cold start: a million resyncs, each with most nodes unheard
            }
            let Some((generation, keys)) = a.core.observed().keys_of(name) else {
                continue;
            };
            let theirs = (generation, a.seen_ver[z].unwrap_or(0));
            let relay = match known {
                // A member it does not hear at all (it hung before this daemon started, say):
                // known from others, dead to it.
                None => unknown_ok,
                Some(k) => (k.generation, o.seen_ver[z].unwrap_or(0)) < theirs,
            };
            if relay {
                // Its state travels; its liveness is `obs`'s own detector's business.
                let alive = known.is_some_and(|k| k.generation == generation && k.alive);
                o.seen_ver[z] = Some(theirs.1);
                let keys = keys
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                relayed.push(Input::Member {
                    name: name.clone(),
                    generation,
                    alive,
                    keys: Some(keys),
                });
            }
        }
        for i in relayed {
            o.core.observe(i);
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
        o.seen_ver[about] = Some(version);
        o.core.observe(Input::Member {
            name: a.name.clone(),
            generation: a.generation,
            alive: true,
            keys: Some(state),
        });
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
        let o = &mut self.nodes[obs];
        if (o.core.view().members.get(&name)).is_none_or(|m| m.generation != generation) {
            // None of the new generation's state has reached it (see `feed_beats`).
            o.seen_ver[about] = None;
        }
        self.nodes[obs].core.observe(Input::Member {
            name,
            generation,
            alive: true,
            keys: None,
        });
        self.dirty(obs);
    }

    /// Returns the beat every live daemon has published by now: beats are not sent as
    /// events (a thousand nodes beating four times a second would be most of a run); a
    /// node's state that reaches an observer carries its latest beat (see `feed_beats`).
    pub(crate) fn beat_value(&self) -> String {
        (self.now / self.cfg.beat).to_string()
    }

    /// Hands node `x`'s core the latest beat of every member whose state reaches it now
    /// (alive, heard, `x`'s own gossip gets out, without which no state comes back, and every
    /// earlier update of it arrived): the news its daemon would have seen arrive by this
    /// tick. All at once, in name order (see `Node::observe_beats`): at a thousand nodes this
    /// is most of a step.
    pub(crate) fn feed_beats(&mut self, x: usize) {
        if self.links.clog_out[x] {
            return;
        }
        let beat = self.beat_value();
        let every = self.cfg.beat;
        let links = &self.links;
        let (before, rest) = self.nodes.split_at_mut(x);
        let (me, after) = rest.split_first_mut().expect("node x");
        let other = |z: usize| if z < x { &before[z] } else { &after[z - x - 1] };
        // A beat arrives with the state before it (chitchat sends a node's keys in version
        // order): an observer that has everything `z` published has its latest beat; one
        // still missing updates has the last beat `z` published before the first of them.
        let value = |z: usize| -> Option<Option<String>> {
            if z == x {
                return None;
            }
            let o = other(z);
            if !o.ok() || !links.heard(x, z) {
                return None;
            }
            match me.seen_ver[z] {
                Some(s) if s == o.pub_ver => Some(None),
                Some(s) => (o.pub_times.iter())
                    .find(|(v, _)| *v == s + 1)
                    .map(|(_, t)| Some((t.saturating_sub(1) / every).to_string())),
                None => None,
            }
        };
        let values: Vec<(usize, Option<String>)> = (self.by_name.iter())
            .filter_map(|&z| Some((z, value(z)?)))
            .collect();
        // Ignored unless `x` knows the generation of each (a resync brings a new one).
        let beats = values.iter().map(|(z, v)| {
            let o = other(*z);
            let v = v.as_deref().unwrap_or(beat.as_str());
            (o.name.as_str(), o.generation, v)
        });
        me.core.observe_beats(beats);
    }
}
