//! One member's gossip keys as the node core keeps them ([`KeyMap`]): a map sorted by key,
//! held in one vector, with the beat apart. A member publishes a handful of keys the core
//! reads (its beat, the version keys of replicated files, the claims and records it holds),
//! and every node keeps them for every member: at a thousand members a B-tree node per member
//! (room for eleven entries) was most of a node's memory, and every step reads every
//! member's beat, which is therefore found without comparing keys.

use crate::keys::BEAT;

/// A member's keys, sorted by key (see the module documentation). Lookups search the sorted
/// vector; an insertion or removal shifts what follows, which is cheap for the few keys a
/// member publishes. The beat ([`BEAT`]) has a place of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyMap {
    /// The value of [`BEAT`].
    beat: Option<String>,
    /// Every other key, sorted.
    rest: Vec<(String, String)>,
}

impl KeyMap {
    /// Returns where `key` (not the beat) is, or where it would go.
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.rest.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Returns the value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        if key == BEAT {
            return self.beat.as_ref();
        }
        self.find(key).ok().map(|i| &self.rest[i].1)
    }

    /// Returns the value of `key`, to change in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut String> {
        if key == BEAT {
            return self.beat.as_mut();
        }
        self.find(key).ok().map(|i| &mut self.rest[i].1)
    }

    /// Tells whether `key` is there.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        if key == BEAT {
            return self.beat.replace(value);
        }
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.rest[i].1, value)),
            Err(i) => {
                // One more place, not twice as many: most members publish two or three keys.
                self.rest.reserve_exact(1);
                self.rest.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        if key == BEAT {
            return self.beat.take();
        }
        self.find(key).ok().map(|i| self.rest.remove(i).1)
    }

    /// Returns the keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// Returns the keys and their values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &String)> {
        let split = self.rest.partition_point(|(k, _)| k.as_str() < BEAT);
        let (before, after) = self.rest.split_at(split);
        fn pair((k, v): &(String, String)) -> (&str, &String) {
            (k.as_str(), v)
        }
        let beat = self.beat.as_ref().map(|v| (BEAT, v));
        before
            .iter()
            .map(pair)
            .chain(beat)
            .chain(after.iter().map(pair))
    }

    /// Returns how many keys there are.
    pub fn len(&self) -> usize {
        self.rest.len() + usize::from(self.beat.is_some())
    }

    /// Tells whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The same operations on a key map and on a B-tree map leave the same contents.
    #[test]
    fn a_key_map_is_a_sorted_map() {
        let mut k = KeyMap::default();
        let mut b = BTreeMap::new();
        let ops = [
            ("c/web", Some("plan")),
            ("b", Some("1")),
            ("f/hactl/v", Some("v")),
            ("b", Some("2")),
            ("c/db", Some("test")),
            ("c/web", None),
            ("x/n3", Some("r")),
            ("zz", None),
            ("a", Some("first")),
        ];
        for (key, v) in ops {
            match v {
                Some(v) => assert_eq!(
                    k.insert(key.into(), v.into()),
                    b.insert(key.to_string(), v.to_string())
                ),
                None => assert_eq!(k.remove(key), b.remove(key)),
            }
            assert!(k.iter().eq(b.iter().map(|(k, v)| (k.as_str(), v))));
            assert_eq!(k.len(), b.len());
        }
        assert_eq!(k.get("b").map(String::as_str), Some("2"));
        *k.get_mut("b").unwrap() = "3".into();
        assert_eq!(k.get("b").map(String::as_str), Some("3"));
        assert!(k.contains_key("a") && !k.contains_key("c/web") && !k.is_empty());
        assert!(k.keys().eq(b.keys().map(String::as_str)));
    }
}
