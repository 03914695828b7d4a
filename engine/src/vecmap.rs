//! A map from names to values held in one vector sorted by name ([`VecMap`]): a member's
//! claims, by group. It behaves as a `BTreeMap<String, V>` does for what the engine asks of
//! one (lookups, insertions, removals, walks in key order), and takes the room of its
//! entries: a B-tree gives the one claim most members hold a node of eleven slots (about
//! 0.9 kB), and every node keeps every member's claims (at a thousand members a quarter of
//! a simulated cluster's memory, measured). Insertions and removals shift what follows,
//! which costs little for the groups of one member; one that arrives in order is appended.

use std::fmt;

/// A map sorted by key, in one vector (see the module documentation).
#[derive(Clone, PartialEq, Eq)]
pub struct VecMap<V> {
    entries: Vec<(String, V)>,
}

impl<V> Default for VecMap<V> {
    fn default() -> VecMap<V> {
        VecMap::new()
    }
}

impl<V> VecMap<V> {
    /// Returns an empty map.
    pub const fn new() -> VecMap<V> {
        VecMap {
            entries: Vec::new(),
        }
    }

    /// Returns where `key` is, or where it would go.
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Returns the value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// Returns the value of `key`, to change it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// Tells whether `key` is there.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it had.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        // In order (a map built from a sorted walk): no search.
        if self.entries.last().is_none_or(|(k, _)| *k < key) {
            self.entries.push((key, value));
            return None;
        }
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Returns how many entries it has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Tells whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the entries in key order.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter(self.entries.iter())
    }

    /// Returns the entries in key order, their values to change.
    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&String, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// Returns the keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Returns the values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }
}

/// The entries of a [`VecMap`] in key order, as `(&key, &value)`.
#[derive(Clone)]
pub struct Iter<'a, V>(std::slice::Iter<'a, (String, V)>);

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a String, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k, v))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

impl<'a, V> IntoIterator for &'a VecMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

impl<V> IntoIterator for VecMap<V> {
    type Item = (String, V);
    type IntoIter = std::vec::IntoIter<(String, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// Collects entries in any order; of equal keys the last one stays, as in a `BTreeMap`.
impl<V> FromIterator<(String, V)> for VecMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> VecMap<V> {
        let mut m = VecMap::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<V, const N: usize> From<[(String, V); N]> for VecMap<V> {
    fn from(a: [(String, V); N]) -> VecMap<V> {
        a.into_iter().collect()
    }
}

/// `map["web"]`: the value of a key that is there (panics otherwise, as a `BTreeMap` does).
impl<V> std::ops::Index<&str> for VecMap<V> {
    type Output = V;

    fn index(&self, key: &str) -> &V {
        self.get(key).expect("no entry found for key")
    }
}

/// Printed as a map (`{"web": ...}`), as a `BTreeMap` is.
impl<V: fmt::Debug> fmt::Debug for VecMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_as_a_btreemap() {
        let mut v: VecMap<u32> = VecMap::new();
        let mut b: BTreeMap<String, u32> = BTreeMap::new();
        // Keys out of order, repeated, removed, some absent.
        let ops = [
            ("web", 1),
            ("db", 2),
            ("web", 3),
            ("a", 4),
            ("zz", 5),
            ("-db", 0),
            ("m", 6),
            ("-nope", 0),
            ("b", 7),
        ];
        for (k, x) in ops {
            match k.strip_prefix('-') {
                Some(k) => assert_eq!(v.remove(k), b.remove(k)),
                None => assert_eq!(v.insert(k.into(), x), b.insert(k.into(), x)),
            }
            assert!(v.iter().eq(b.iter()));
            assert_eq!(format!("{v:?}"), format!("{b:?}"));
        }
        assert_eq!(v.get("web"), Some(&3));
        assert_eq!(v.get("db"), None);
        assert!(v.contains_key("m") && !v.contains_key("n"));
        *v.get_mut("m").unwrap() = 9;
        assert_eq!(v.values().copied().collect::<Vec<_>>(), vec![4, 7, 9, 3, 5]);
        assert!(v.keys().eq(["a", "b", "m", "web", "zz"]));
        assert_eq!((v.len(), v.is_empty()), (5, false));
        let c: VecMap<u32> = [("b".to_string(), 1), ("a".into(), 2), ("b".into(), 3)].into();
        assert!(c
            .iter()
            .eq([(&"a".to_string(), &2), (&"b".to_string(), &3)]));
        v.clear();
        assert!(v.is_empty());
    }
}
