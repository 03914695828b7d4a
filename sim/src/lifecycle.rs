//! Node lifecycle and fault injection: crashes, hangs, daemon restarts with a new
//! generation, power-offs by fence agents, partitions, clogging, hactl edits, operator moves,
//! and the final heal.

use rand::RngExt;

use crate::faults::Fault;
use crate::world::{Kind2, World};

impl World {
    /// An operator on node `x` asks to move `group` to node `to`, naming the holder `x` sees
    /// (as `mosha move` does; with no single holder in sight, or the target holding it, the
    /// daemon refuses and nothing is asked). Whether `to` can take it is left to the holder:
    /// the asker's view may be stale anyway.
    pub fn ask_move(&mut self, x: usize, group: &str, to: usize) {
        let view = self.nodes[x].core.view();
        let holders: Vec<&String> = (view.members.iter())
            .filter(|(_, m)| m.alive && m.claims.get(group).is_some_and(|c| c.holds()))
            .map(|(n, _)| n)
            .collect();
        let to = format!("n{to}");
        let [from] = holders.as_slice() else {
            return;
        };
        if **from == to {
            return;
        }
        let from = from.to_string();
        self.log(|| format!("operator on n{x}: move {group} from {from} to {to}"));
        let input = mosha::engine::node::Input::Move {
            group: group.to_string(),
            to,
            from,
        };
        self.nodes[x].core.observe(input);
        self.dirty(x);
    }

    /// An operator's new standing orders `a`: they reach each node after a propagation delay,
    /// as an edit of the replicated admin file does (a node that is down finds them on its
    /// disk when it starts).
    fn give_orders(&mut self, a: mosha::engine::Admin) {
        self.admin.0 += 1;
        self.admin.1 = a;
        let (seq, admin) = (self.admin.0, std::rc::Rc::new(self.admin.1.clone()));
        for node in 0..self.nodes.len() {
            let t = self.now + self.timing.dissem(&mut self.rng);
            let admin = admin.clone();
            self.push(t, Kind2::Admin(Box::new((node, seq, admin))));
        }
    }

    /// Standing orders number `seq` reach node `x` (older ones than it has are ignored).
    pub(crate) fn admin_arrives(&mut self, x: usize, seq: u64, a: &mosha::engine::Admin) {
        if seq <= self.nodes[x].admin.0 {
            return;
        }
        self.nodes[x].admin = (seq, a.clone());
        if self.nodes[x].ok() && self.nodes[x].om.is_none() {
            self.nodes[x]
                .core
                .observe(mosha::engine::node::Input::Admin(a.clone()));
            self.dirty(x);
        }
    }

    /// New placement options of `group` (an hactl edit): they reach each node after a
    /// propagation delay (a node that is down finds them on its disk when it starts).
    fn edit_options(&mut self, group: &str, p: mosha::engine::Placement) {
        let mut all = (*self.placement.1).clone();
        all.insert(group.to_string(), p);
        self.placement.0 += 1;
        self.placement.1 = std::rc::Rc::new(all);
        let seq = self.placement.0;
        for node in 0..self.nodes.len() {
            let t = self.now + self.timing.dissem(&mut self.rng);
            let placement = self.placement.1.clone();
            self.push(t, Kind2::Placement(Box::new((node, seq, placement))));
        }
    }

    /// Placement options number `seq` reach node `x` (older ones than it has are ignored).
    pub(crate) fn placement_arrives(
        &mut self,
        x: usize,
        seq: u64,
        p: std::rc::Rc<std::collections::BTreeMap<String, mosha::engine::Placement>>,
    ) {
        if seq <= self.nodes[x].placement.0 {
            return;
        }
        self.nodes[x].placement = (seq, p.clone());
        if self.nodes[x].ok() && self.nodes[x].om.is_none() {
            let input = mosha::engine::node::Input::Placement((*p).clone());
            self.nodes[x].core.observe(input);
            self.dirty(x);
        }
    }

    /// Kills every process of node `x` (machine off or daemon restart).
    pub fn kill_processes(&mut self, x: usize) {
        let groups: Vec<String> = self.nodes[x].claims.keys().cloned().collect();
        for g in groups {
            self.set_claim(x, &g, None, false);
        }
    }

    /// Powers node `v` off (a fence agent's work); it reboots 10–30 s later.
    pub fn power_off(&mut self, v: usize) {
        self.last_power_off = self.now;
        self.nodes[v].held_at_down.clear();
        self.nodes[v].fenced_off = true;
        if !self.nodes[v].up {
            return;
        }
        self.log(|| format!("n{v} powered off"));
        self.note_failover(v);
        self.kill_processes(v);
        self.nodes[v].up = false;
        self.nodes[v].hung = false;
        self.nodes[v].boot += 1;
        self.relink(Some(v));
        let t = self.now + self.rng.random_range(10_000..30_000u64);
        let boot = self.nodes[v].boot;
        self.push(t, Kind2::Reboot(v, boot));
    }

    /// Starts node `x`'s daemon again with a new generation.
    pub fn restart(&mut self, x: usize) {
        if self.nodes[x].up {
            self.note_failover(x);
            self.kill_processes(x);
        }
        self.nodes[x].held_at_down.clear();
        self.gen_counter += 1;
        let (kind, seed, cfg) = (
            self.p.kind,
            self.p.seed ^ (x as u64) << 20,
            self.cfg.clone(),
        );
        let generation = self.gen_counter;
        // A fresh daemon starts from the hactl on its disk (it learns newer ones by gossip).
        let names = self.names.clone();
        self.nodes[x].reset(kind, generation, seed, &cfg, &names);
        self.nodes[x].boot += 1;
        self.nodes[x].nonquorate_since = None;
        // A new daemon: everybody learns its new generation, it learns everybody, afresh.
        for y in 0..self.nodes.len() {
            if y != x {
                self.links.set(x, y, false);
                self.links.set(y, x, false);
            }
        }
        self.log(|| format!("n{x} starts, generation {generation}"));
        self.relink(Some(x));
        let t = self.now;
        self.schedule_step(x, t);
    }

    /// Records failover starts for the groups node `x` runs at their run level.
    pub fn note_failover(&mut self, x: usize) {
        let gs: Vec<String> = self.nodes[x]
            .claims
            .iter()
            .filter(|(_, c)| c.level == "start")
            .map(|(g, _)| g.clone())
            .collect();
        for g in gs {
            self.pending_failover.entry(g).or_insert(self.now);
        }
    }

    pub(crate) fn fault(&mut self, f: Fault) {
        self.log(|| format!("FAULT {f:?}"));
        match f {
            Fault::Crash(x) => {
                if self.nodes[x].up {
                    self.note_failover(x);
                    let held = self.nodes[x].out_held();
                    self.nodes[x].held_at_down.extend(held);
                    self.kill_processes(x);
                    self.nodes[x].up = false;
                    self.nodes[x].hung = false;
                    self.nodes[x].boot += 1;
                    self.relink(Some(x));
                }
            }
            Fault::Restart(x) => self.restart(x),
            Fault::Hang(x) => {
                if self.nodes[x].ok() {
                    self.note_failover(x);
                    // Its loop ran up to this instant.
                    let local = self.nodes[x].local(self.now);
                    (self.nodes[x].core).observe(mosha::engine::node::Input::Awake { now: local });
                    self.nodes[x].hung = true;
                    self.relink(Some(x));
                }
            }
            Fault::Unhang(x) => self.unhang(x),
            Fault::Partition(side) => {
                for s in side {
                    self.links.side[s] = 1;
                }
                self.relink(None);
            }
            Fault::Heal => {
                self.links.side.iter_mut().for_each(|s| *s = 0);
                self.relink(None);
            }
            Fault::Clog(x) => self.clog(x),
            Fault::Unclog(x) => self.unclog(x),
            Fault::Hactl { node, group, level } => {
                if self.nodes[node].ok() {
                    let g = self.gnames[group].clone();
                    self.edit_hactl(node, &g, &level);
                }
            }
            Fault::Move { node, group, to } => {
                if self.nodes[node].ok() {
                    let g = self.gnames[group].clone();
                    self.ask_move(node, &g, to);
                }
            }
            Fault::Standby { node, to } => {
                let (name, to) = (format!("n{node}"), to.map(|t| format!("n{t}")));
                self.log(|| format!("operator: standby {name} to {to:?}"));
                let mut a = self.admin.1.clone();
                a.standby.insert(name, to);
                self.give_orders(a);
            }
            Fault::StopFails { node, group } => {
                let group = self.gnames[group].clone();
                self.log(|| format!("the next stop of {group} on n{node} fails"));
                self.nodes[node].stop_fails.insert(group);
            }
            Fault::Options { group, placement } => {
                let group = self.gnames[group].clone();
                self.log(|| format!("operator: options of {group}: {placement:?}"));
                self.edit_options(&group, placement);
            }
            Fault::Cleanup { node, group, on } => {
                if self.nodes[node].ok() {
                    let group = self.gnames[group].clone();
                    let on = on.map(|o| format!("n{o}"));
                    self.log(|| format!("operator on n{node}: cleanup {group} on {on:?}"));
                    let input = mosha::engine::node::Input::Cleanup { group, node: on };
                    self.nodes[node].core.observe(input);
                    self.dirty(node);
                }
            }
            Fault::Unstandby(node) => {
                let mut a = self.admin.1.clone();
                a.standby.remove(&format!("n{node}"));
                self.log(|| format!("operator: unstandby n{node}"));
                self.give_orders(a);
            }
            Fault::AtHolder { group, slot, fault } => {
                let g = self.gnames[group].clone();
                let holder = (0..self.nodes.len())
                    .find(|x| self.nodes[*x].ok() && self.nodes[*x].runs_past_plan(&g));
                let f = match holder {
                    Some(x) => fault.at(x),
                    None => *fault,
                };
                if let Some(x) = holder {
                    self.log(|| format!("the fault hits n{x}, which runs {g}"));
                    self.hit.insert(slot, x);
                }
                self.fault(f);
            }
            Fault::AtSlot { slot, fault } => {
                let f = match self.hit.remove(&slot) {
                    Some(x) => fault.at(x),
                    None => *fault,
                };
                self.fault(f);
            }
            Fault::HealAll => {
                self.healed = true;
                self.links.side.iter_mut().for_each(|s| *s = 0);
                for x in 0..self.nodes.len() {
                    self.unclog(x);
                }
                for x in 0..self.nodes.len() {
                    if self.nodes[x].hung {
                        self.unhang(x);
                    } else if !self.nodes[x].up {
                        self.restart(x);
                    }
                }
                self.relink(None);
            }
        }
    }

    /// Clogs node `x`'s outgoing gossip: nobody hears it any more. It still hears everyone's
    /// heartbeats (peers' SYN digests carry them), but no new state reaches it, since gossip
    /// sends state only in answer to its messages: its view freezes, and the beats of every
    /// peer stop changing (`World::feed_beats` feeds it none).
    pub(crate) fn clog(&mut self, x: usize) {
        if self.links.clog_out[x] {
            return;
        }
        self.links.clog_out[x] = true;
        self.relink(Some(x));
        self.dirty(x);
    }

    /// Unclogs node `x`'s outgoing gossip: others hear it again and it catches up with
    /// everyone's state.
    pub(crate) fn unclog(&mut self, x: usize) {
        if !self.links.clog_out[x] {
            return;
        }
        self.links.clog_out[x] = false;
        // It gets everyone's state anew, and with it the newest state its peers have of
        // members it no longer hears (relayed beats are news to its core, as to the
        // daemon's): invariant (d) counts the failure timeout from here, as from a peer
        // heard anew (see `relink`). Found by running the node core, whose relayed news the
        // old model of the glue did not have (seed 4715).
        if self.nodes[x].nonquorate_since.is_some() {
            self.nodes[x].nonquorate_since = Some(self.now);
        }
        self.relink(Some(x));
        for about in 0..self.nodes.len() {
            if about != x && self.links.heard(x, about) {
                let t = self.now + self.timing.dissem(&mut self.rng);
                let t = t.max(self.last_delivery(x, about));
                self.push(t, Kind2::Resync { obs: x, about });
            }
        }
    }

    pub(crate) fn unhang(&mut self, x: usize) {
        if !self.nodes[x].up || !self.nodes[x].hung {
            return;
        }
        self.nodes[x].hung = false;
        // The core sees the gap at its next step, as the daemon's does.
        self.nodes[x].resuming = true;
        // Orders and options that reached its disk while it hung: the daemon reads the
        // replicated files it missed once it runs again (found when the placement profile
        // came: a node that hung through its own unstandby stayed in standby for ever).
        if self.nodes[x].om.is_none() {
            let admin = self.nodes[x].admin.1.clone();
            let placement = (*self.nodes[x].placement.1).clone();
            let core = &mut self.nodes[x].core;
            core.observe(mosha::engine::node::Input::Admin(admin));
            core.observe(mosha::engine::node::Input::Placement(placement));
        }
        // Invariant (d) counts from the moment the daemon can act again.
        self.nodes[x].nonquorate_since = None;
        self.relink(Some(x));
        // Peers it stopped hearing while hung: its detector drops them at its next tick.
        for about in 0..self.nodes.len() {
            if about != x && !self.links.heard(x, about) {
                self.push(self.now + 100, Kind2::Down { obs: x, about });
            }
        }
        let t = self.now + 1;
        self.schedule_step(x, t);
    }
}

#[cfg(test)]
mod tests {
    //! Regression tests for simulator bugs found while bringing it up.

    use crate::faults::{Fault, Profile};
    use crate::node::Kind;
    use crate::world::{Params, World};

    fn world(kind: Kind) -> World {
        World::new(
            Params {
                nodes: 5,
                groups: 4,
                duration: 60_000,
                seed: 7,
                profile: Profile::named("none").unwrap(),
                kind,
                trace: false,
            },
            crate::invariants::CHECKS,
        )
    }

    /// A daemon restarted in place (links never went down) must be seen with its new
    /// generation, and must itself learn everybody again (it once saw only itself, found
    /// itself quorate and started every group a second time).
    #[test]
    fn a_daemon_restarted_in_place_is_resynchronised_both_ways() {
        let mut w = world(Kind::Ours);
        w.run_until(10_000);
        w.fault(Fault::Restart(1));
        w.run_until(12_000);
        let g = w.nodes[1].generation;
        for (i, n) in w.nodes.iter().enumerate() {
            let m = &n.core.view().members["n1"];
            assert!(
                m.alive && m.generation == g,
                "n{i} sees n1 at {}",
                m.generation
            );
        }
        assert_eq!(w.nodes[1].core.view().members.len(), 5);
        assert!(w.stats.violations.is_empty(), "{:?}", w.stats.violations);
    }

    /// An OpenMosix::HA monitor must resume its cycle after its daemon hung (it once never
    /// stepped again), and (d) must count from the end of the hang.
    #[test]
    fn a_hung_monitor_resumes_after_the_hang() {
        let mut w = world(Kind::OpenMosix);
        w.run_until(5_000);
        w.fault(Fault::Hang(2));
        w.run_until(20_000);
        w.unhang(2);
        w.run_until(20_001);
        assert!(w.nodes[2].next_step.is_some());
        assert!(w.nodes[2].nonquorate_since.is_none());
    }
}
