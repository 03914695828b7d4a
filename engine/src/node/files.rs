//! The node core's replicated files (`cltab`, `hactl`, `fencetab`): which version of each is
//! in force here, which version a peer announces that this node should adopt, which it
//! refused, the hybrid logical clock that versions local edits, and the gossip keys that
//! publish the version in force ([`crate::replica`] encodes them).
//!
//! The newest valid version wins everywhere. The driver reads and validates files and
//! writes adopted ones: it tells the core of a valid local edit ([`super::Input::FileEdited`]),
//! takes the core's offers to adopt ([`super::Ready::adopt`]), and reports back whether the
//! offered text was valid and written ([`super::Input::FileAdopted`]) or invalid
//! ([`super::Input::FileRefused`]). Peers' announcements are followed as gossip delivers
//! their `f/<file>/v` keys ([`Announced`]), so finding the newest is not a walk over the
//! cluster.

use std::collections::{BTreeMap, BTreeSet};

use crate::replica::{self, Hlc, Version};
use crate::Event;

/// The most refused versions remembered per file (the oldest are forgotten first; a
/// forgotten one that is still the newest is validated, and refused, again).
pub const MAX_REFUSED: usize = 64;

/// A file version as it is made durable (`DIR/.mosha-versions.json`): the version and the
/// hash of the text it names, so that a file edited while the daemon was down is told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    /// The version in force.
    pub version: Version,
    /// [`replica::content_hash`] of its text.
    pub hash: u64,
}

/// An offer to adopt: the members `from` announce `version` of `file`, newer than the one in
/// force here and not refused. The driver reads the text from the gossip keys of the first of
/// them that publishes it whole ([`replica::read_published`]); a text not all there yet is
/// simply not reported (the offer stands at the next step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopt {
    /// The file's name.
    pub file: String,
    /// The version to adopt.
    pub version: Version,
    /// Members that announce it (at most [`MAX_SOURCES`], by name).
    pub from: Vec<String>,
}

/// The most members an [`Adopt`] names.
pub const MAX_SOURCES: usize = 8;

/// The version every member announces of every file, indexed both ways.
#[derive(Debug, Clone, Default)]
pub struct Announced {
    /// Per file, the members announcing each version.
    by_version: BTreeMap<String, BTreeMap<Version, BTreeSet<String>>>,
    /// Per file, the version each member announces (by file first: one name per member, not
    /// a pair of them, at a thousand members on every node).
    of: BTreeMap<String, BTreeMap<String, Version>>,
}

impl Announced {
    /// Rebuilds its maps by member from their sorted walks, which fills every B-tree leaf
    /// (see `Observed::compact`); what they hold stays the same.
    pub fn compact(&mut self) {
        for of in self.of.values_mut() {
            *of = std::mem::take(of).into_iter().collect();
        }
        for versions in self.by_version.values_mut() {
            for members in versions.values_mut() {
                *members = std::mem::take(members).into_iter().collect();
            }
        }
    }

    /// Notes that `member` announces `version` of `file` (`None`: nothing, or unreadable).
    /// Returns whether that changed anything.
    pub fn set(&mut self, file: &str, member: &str, version: Option<Version>) -> bool {
        let known = self.of.get(file).and_then(|of| of.get(member));
        if known == version.as_ref() {
            return false;
        }
        let old = (self.of.get_mut(file)).and_then(|of| of.remove(member));
        if self.of.get(file).is_some_and(BTreeMap::is_empty) {
            self.of.remove(file);
        }
        if let Some(old) = old {
            let versions = self.by_version.get_mut(file).expect("indexed both ways");
            let members = versions.get_mut(&old).expect("indexed both ways");
            members.remove(member);
            if members.is_empty() {
                versions.remove(&old);
            }
            if versions.is_empty() {
                self.by_version.remove(file);
            }
        }
        if let Some(v) = version {
            let versions = self.by_version.entry(file.to_string()).or_default();
            versions
                .entry(v.clone())
                .or_default()
                .insert(member.to_string());
            let of = self.of.entry(file.to_string()).or_default();
            of.insert(member.to_string(), v);
        }
        true
    }

    /// Returns the newest version of `file` that some member announces, above `floor` and not
    /// in `refused`, with the members announcing it.
    fn newest(
        &self,
        file: &str,
        floor: &Version,
        refused: &BTreeSet<Version>,
    ) -> Option<(&Version, &BTreeSet<String>)> {
        let versions = self.by_version.get(file)?;
        (versions.iter().rev())
            .take_while(|(v, _)| *v > floor)
            .find(|(v, _)| !refused.contains(*v))
    }
}

/// One replicated file as this node has it.
#[derive(Debug, Clone, Default)]
struct Replica {
    /// The version in force (zero: none).
    version: Version,
    /// Its text.
    text: String,
    /// Versions that peers announce and that failed validation here.
    refused: BTreeSet<Version>,
    /// The keys published, and the version they publish (zero: none yet).
    published: BTreeMap<String, String>,
    published_version: Version,
}

/// Every replicated file of this node (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Files {
    hlc: Hlc,
    files: BTreeMap<String, Replica>,
    /// The versions in force changed since they were last made durable.
    unsaved: bool,
    /// The last attempt to make them durable failed (said once).
    save_failed: bool,
}

impl Files {
    /// Returns the version in force of `file` and its text (`None`: the file is not
    /// replicated here, or no valid version of it was ever in force).
    pub fn get(&self, file: &str) -> Option<(&Version, &str)> {
        let r = self.files.get(file)?;
        (!r.version.is_zero()).then_some((&r.version, r.text.as_str()))
    }

    /// Replicates `file`, which holds `text` when the daemon starts (`None`: no valid text,
    /// nothing in force until a peer's version is adopted). Its version is the one recorded
    /// by the last run if the text is unchanged since, else the text counts as an edit made
    /// by `me` at `mtime_ms` (the file's modification time).
    pub fn load(
        &mut self,
        me: &str,
        file: &str,
        text: Option<String>,
        recorded: Option<FileVersion>,
        mtime_ms: u64,
    ) {
        let r = self.files.entry(file.to_string()).or_default();
        let Some(text) = text else { return };
        let hash = replica::content_hash(&text);
        r.version = match recorded.filter(|f| f.hash == hash) {
            Some(f) => f.version,
            None => Version {
                ms: mtime_ms.max(1),
                seq: 0,
                node: me.to_string(),
            },
        };
        r.text = text;
        self.hlc.observe(&r.version);
    }

    /// A valid local edit of `file` to `text` at wall clock `wall_ms`: it gets a new version
    /// and is in force. Returns the event to report, or `None` if it changes nothing.
    pub fn edited(&mut self, me: &str, file: &str, text: String, wall_ms: u64) -> Option<Event> {
        let r = self.files.get_mut(file)?;
        if !r.version.is_zero() && r.text == text {
            return None;
        }
        r.version = self.hlc.tick(wall_ms, me);
        r.text = text;
        self.unsaved = true;
        Some(Event::FileChanged {
            file: file.to_string(),
            version: r.version.to_string(),
            from: None,
        })
    }

    /// The driver validated and wrote `text`, version `version` of `file` from `from`: it is
    /// in force, unless something newer already is.
    pub fn adopted(
        &mut self,
        file: &str,
        version: Version,
        text: String,
        from: &str,
    ) -> Option<Event> {
        let r = self.files.get_mut(file)?;
        if version <= r.version {
            return None;
        }
        self.hlc.observe(&version);
        r.refused.retain(|v| *v > version);
        r.version = version;
        r.text = text;
        self.unsaved = true;
        Some(Event::FileChanged {
            file: file.to_string(),
            version: r.version.to_string(),
            from: Some(from.to_string()),
        })
    }

    /// The text of `version` of `file` failed validation here: it is not offered again.
    pub fn refused(&mut self, file: &str, version: Version) {
        let Some(r) = self.files.get_mut(file) else {
            return;
        };
        self.hlc.observe(&version);
        r.refused.insert(version);
        while r.refused.len() > MAX_REFUSED {
            r.refused.pop_first();
        }
    }

    /// Returns, per file, the newest version that a member announces, newer than the one in
    /// force and not refused (see [`Adopt`]); the clock moves past them.
    pub fn offers(&mut self, announced: &Announced) -> Vec<Adopt> {
        let hlc = &mut self.hlc;
        (self.files.iter())
            .filter_map(|(file, r)| {
                let (v, from) = announced.newest(file, &r.version, &r.refused)?;
                hlc.observe(v);
                Some(Adopt {
                    file: file.clone(),
                    version: v.clone(),
                    from: from.iter().take(MAX_SOURCES).cloned().collect(),
                })
            })
            .collect()
    }

    /// Returns the gossip changes that publish every version in force not yet published
    /// (chunks before the version key; stale chunks deleted).
    pub fn publication(&mut self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for (file, r) in &mut self.files {
            // Every change of the text comes with a new version: an unchanged version needs
            // no new keys (and its text, up to a MiB, is not split again at every step).
            if r.version.is_zero() || r.published_version == r.version {
                continue;
            }
            // The driver refuses a file over the size limit before the core sees it: an
            // error here can only be a file name that cannot be a key, never replicated.
            let Ok(keys) = replica::publish_keys(file, &r.version, &r.text) else {
                continue;
            };
            let wanted: BTreeMap<String, String> = keys.iter().cloned().collect();
            r.published_version = r.version.clone();
            if wanted == r.published {
                continue;
            }
            let nchunks = wanted.len().saturating_sub(1);
            let stale = replica::stale_keys(file, &r.published, nchunks);
            out.extend(
                keys.into_iter()
                    .filter(|(k, v)| r.published.get(k) != Some(v))
                    .map(|(k, v)| (k, Some(v))),
            );
            out.extend(stale.into_iter().map(|k| (k, None)));
            r.published = wanted;
        }
        out
    }

    /// Returns the versions in force to make durable, when they changed since they last were.
    pub fn unsaved(&self) -> Option<BTreeMap<String, FileVersion>> {
        self.unsaved.then(|| {
            (self.files.iter())
                .filter(|(_, r)| !r.version.is_zero())
                .map(|(f, r)| {
                    let hash = replica::content_hash(&r.text);
                    let v = FileVersion {
                        version: r.version.clone(),
                        hash,
                    };
                    (f.clone(), v)
                })
                .collect()
        })
    }

    /// The versions of the last [`Files::unsaved`] were made durable, or why not (the event
    /// to report, once per run of failures).
    pub fn saved(&mut self, result: Result<(), String>) -> Option<Event> {
        match result {
            Ok(()) => {
                self.unsaved = false;
                self.save_failed = false;
                None
            }
            Err(error) if !self.save_failed => {
                self.save_failed = true;
                Some(Event::VersionsNotSaved { error })
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ms: u64, node: &str) -> Version {
        Version {
            ms,
            seq: 0,
            node: node.to_string(),
        }
    }

    #[test]
    fn announced_newest_skips_refused_and_stops_at_the_floor() {
        let mut a = Announced::default();
        a.set("hactl", "n2", Some(v(30, "n2")));
        a.set("hactl", "n3", Some(v(20, "n3")));
        a.set("hactl", "n1", Some(v(10, "n1")));
        a.set("hactl", "n4", Some(v(20, "n3")));
        let none = BTreeSet::new();
        let newest = |a: &Announced, floor, refused| {
            let (v, from) = a.newest("hactl", &floor, refused)?;
            Some((v.clone(), from.iter().cloned().collect::<Vec<_>>()))
        };
        assert_eq!(
            newest(&a, v(5, "x"), &none),
            Some((v(30, "n2"), vec!["n2".into()]))
        );
        let refused: BTreeSet<Version> = [v(30, "n2")].into();
        let both = vec!["n3".to_string(), "n4".to_string()];
        assert_eq!(newest(&a, v(5, "x"), &refused), Some((v(20, "n3"), both)));
        assert_eq!(newest(&a, v(20, "n3"), &refused), None);
        // A member that moves on is re-indexed; one that stops announcing is forgotten.
        a.set("hactl", "n2", Some(v(40, "n2")));
        a.set("hactl", "n3", None);
        a.set("hactl", "n4", None);
        assert_eq!(
            newest(&a, v(30, "n2"), &none),
            Some((v(40, "n2"), vec!["n2".into()]))
        );
        assert_eq!(a.of["hactl"].len(), 2);
        assert_eq!(a.by_version["hactl"].len(), 2);
    }

    #[test]
    fn a_recorded_version_holds_only_for_the_text_it_names() {
        let mut f = Files::default();
        let text = "web start\n".to_string();
        let rec = FileVersion {
            version: v(100, "n2"),
            hash: replica::content_hash(&text),
        };
        f.load("n1", "hactl", Some(text.clone()), Some(rec.clone()), 50);
        assert_eq!(f.get("hactl").unwrap().0, &v(100, "n2"));
        // Edited while the daemon was down: an edit of this node at the file's mtime.
        f.load("n1", "cltab", Some("other".into()), Some(rec), 70);
        assert_eq!(f.get("cltab").unwrap().0, &v(70, "n1"));
        // No valid text: replicated, nothing in force.
        f.load("n1", "fencetab", None, None, 0);
        assert_eq!(f.get("fencetab"), None);
        assert!(f.files.contains_key("fencetab"));
    }

    #[test]
    fn edits_outrank_everything_seen_and_adoption_only_moves_forward() {
        let mut f = Files::default();
        f.load("n1", "hactl", None, None, 0);
        let mut a = Announced::default();
        a.set("hactl", "n2", Some(v(500, "n2")));
        let offers = f.offers(&a);
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].from, ["n2"]);
        f.adopted("hactl", v(500, "n2"), "a".into(), "n2").unwrap();
        assert!(f.offers(&a).is_empty());
        assert_eq!(f.adopted("hactl", v(400, "n3"), "old".into(), "n3"), None);
        // A local edit with a wall clock behind the adopted version still outranks it.
        f.edited("n1", "hactl", "b".into(), 10).unwrap();
        assert!(f.get("hactl").unwrap().0 > &v(500, "n2"));
        assert_eq!(f.edited("n1", "hactl", "b".into(), 20), None);
        assert!(f.unsaved().is_some());
        assert!(f.saved(Err("disk full".into())).is_some());
        assert!(f.saved(Err("disk full".into())).is_none(), "said once");
        assert!(f.saved(Ok(())).is_none());
        assert!(f.unsaved().is_none());
    }

    #[test]
    fn refused_versions_are_not_offered_and_stay_bounded() {
        let mut f = Files::default();
        f.load("n1", "cltab", None, None, 0);
        let mut a = Announced::default();
        for i in 0..(MAX_REFUSED as u64 + 10) {
            a.set("cltab", "n2", Some(v(1000 + i, "n2")));
            f.refused("cltab", v(1000 + i, "n2"));
            assert!(f.offers(&a).is_empty());
        }
        assert_eq!(f.files["cltab"].refused.len(), MAX_REFUSED);
    }

    #[test]
    fn publication_replaces_chunks_and_deletes_stale_ones() {
        let mut f = Files::default();
        let big = "x".repeat(replica::CHUNK_BYTES * 2 + 1);
        f.load("n1", "cltab", Some(big), None, 10);
        let first = f.publication();
        assert_eq!(first.len(), 4, "three chunks and the version key");
        assert!(f.publication().is_empty(), "published once");
        f.edited("n1", "cltab", "small".into(), 20);
        let second = f.publication();
        let deleted: Vec<&str> = (second.iter())
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(deleted, ["f/cltab/1", "f/cltab/2"]);
        assert_eq!(second.last().unwrap().0, "f/cltab/2");
    }
}
