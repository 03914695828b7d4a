//! The simulated disks of the replicated hactl: the text of every version ever made (a
//! version names one text for ever, so this stands for the chunks that travel with its
//! version key), each node's copy, and the operator's edits. Which version is in force and
//! which to adopt is the production node core's (`engine::node::Files`); this file does what
//! the daemon's driver does around it: edit, validate with the daemon's own parser, write,
//! report back.

use std::collections::BTreeMap;

use mosha::config::Hactl;
use mosha::engine::node::{Adopt, Input};

use crate::node::HACTL;
use crate::world::World;

/// Returns the level hactl `text` wants for each of `groups` (absent: `stop`), or `None` if
/// the daemon's parser refuses it.
pub fn levels(text: &str, groups: &[String]) -> Option<BTreeMap<String, String>> {
    let hactl = Hactl::parse(HACTL, text).ok()?;
    Some(
        (groups.iter())
            .map(|g| (g.clone(), hactl.level_of(g).to_string()))
            .collect(),
    )
}

impl World {
    /// Returns the hactl text that wants each group of `want` at its level.
    pub fn hactl_text(want: &BTreeMap<String, String>) -> String {
        want.iter().map(|(g, l)| format!("{g} {l}\n")).collect()
    }

    /// Returns the hactl levels of the newest version on the disk of a node that is up: the
    /// truth that the up nodes converge to once the faults heal. An edit made on a node
    /// that went down before it spread is in force nowhere until that node is back, as with
    /// the daemon (found by the simulator: a node edited hactl while cut off, and was
    /// powered off by a late fencing right after the heal).
    pub fn truth(&self) -> BTreeMap<String, String> {
        let newest = (self.nodes.iter().filter(|n| n.ok()))
            .map(|n| &n.disk)
            .max_by(|a, b| a.0.cmp(&b.0));
        let text = match newest {
            Some((_, text)) => text,
            None => self.hactl.last_key_value().expect("the first hactl").1,
        };
        levels(text, &self.gnames).expect("every version made is valid")
    }

    /// An operator sets `group` to `level` in node `x`'s hactl (its copy, however stale),
    /// and the daemon hands the edit to its core.
    pub fn edit_hactl(&mut self, x: usize, group: &str, level: &str) {
        let local = self.nodes[x].local(self.now);
        let node = &mut self.nodes[x];
        let mut want = node.want.clone();
        want.insert(group.to_string(), level.to_string());
        let text = World::hactl_text(&want);
        node.core.observe(Input::FileEdited {
            file: HACTL.to_string(),
            text,
            wall_ms: local,
        });
        self.hactl_in_force(x);
    }

    /// Carries out node `x`'s core's offers to adopt a newer hactl: the text is validated by
    /// the daemon's parser and written to the node's disk.
    pub fn adopt(&mut self, x: usize, offers: &[Adopt]) {
        for offer in offers.iter().filter(|o| o.file == HACTL) {
            let Some(text) = self.hactl.get(&offer.version) else {
                continue;
            };
            let outcome = match levels(text, &self.gnames) {
                Some(_) => Input::FileAdopted {
                    file: HACTL.to_string(),
                    version: offer.version.clone(),
                    text: text.clone(),
                    from: offer.from.first().cloned().unwrap_or_default(),
                },
                None => Input::FileRefused {
                    file: HACTL.to_string(),
                    version: offer.version.clone(),
                },
            };
            self.nodes[x].core.observe(outcome);
            self.hactl_in_force(x);
        }
    }

    /// After node `x`'s core changed its hactl in force: the text is on its disk (and in the
    /// record of every text made), and its levels are what the core wants.
    fn hactl_in_force(&mut self, x: usize) {
        let node = &mut self.nodes[x];
        let Some((version, text)) = node.core.file(HACTL) else {
            return;
        };
        if node.disk.0 == *version {
            return;
        }
        let want = levels(text, &self.gnames).expect("the core holds a valid text");
        node.disk = (version.clone(), text.to_string());
        self.hactl
            .entry(version.clone())
            .or_insert_with(|| text.to_string());
        node.want = want;
        node.core.observe(Input::Wanted(node.want.clone()));
        self.dirty(x);
    }

    /// OpenMosix::HA's `getlatest`: the newest hactl among the up nodes that node `x` hears
    /// is copied over its own (its monitor reads it at the next cycle).
    pub fn get_latest(&mut self, x: usize) {
        let newest = (0..self.nodes.len())
            .filter(|y| *y != x && self.nodes[*y].ok() && self.links.heard(x, *y))
            .map(|y| &self.nodes[y].disk)
            .max_by(|a, b| a.0.cmp(&b.0))
            .filter(|(v, _)| *v > self.nodes[x].disk.0)
            .cloned();
        if let Some((version, text)) = newest {
            let from = version.node.clone();
            self.nodes[x].core.observe(Input::FileAdopted {
                file: HACTL.to_string(),
                version,
                text,
                from,
            });
            self.hactl_in_force(x);
        }
    }
}
