//! One member's gossip keys as the node core keeps them ([`KeyMap`]): a map sorted by key,
//! held in one vector, with the beat apart. A member publishes a handful of keys the core
//! reads (its beat, the version keys of replicated files, the claims and records it holds),
//! and every node keeps them for every member: at a thousand members a B-tree node per member
//! (room for eleven entries) was most of a node's memory, and every step reads every
//! member's beat, which is therefore found without comparing keys.

use crate::keys::BEAT;

/// A member's keys, sorted by key (see the module documentation). Lookups search the sorted
/// vector; an insertion or removal shifts what follows, which is cheap for the few keys a
/// member publishes. The beat ([`BEAT`]) has a place of its own, and a short one (a beat is a
/// counter) is kept in place: every step compares every member's beat with the one that
/// arrived, which would otherwise read one more block of memory per member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyMap {
    /// The value of [`BEAT`].
    beat: Option<Value>,
    /// Every other key, sorted.
    rest: Vec<(String, String)>,
}

/// The longest value kept in place.
const SHORT: usize = 22;

/// A value, in place when it is short.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Short { len: u8, bytes: [u8; SHORT] },
    Long(String),
}

impl Value {
    fn new(v: &str) -> Value {
        if v.len() > SHORT {
            return Value::Long(v.to_string());
        }
        let mut bytes = [0; SHORT];
        bytes[..v.len()].copy_from_slice(v.as_bytes());
        Value::Short {
            len: v.len() as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Value::Short { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).expect("made from a str")
            }
            Value::Long(v) => v,
        }
    }

    /// Tells whether it is `v`, without making a string of a short one.
    fn is(&self, v: &str) -> bool {
        match self {
            Value::Short { len, bytes } => &bytes[..*len as usize] == v.as_bytes(),
            Value::Long(s) => s == v,
        }
    }
}

impl KeyMap {
    /// Returns where `key` (not the beat) is, or where it would go.
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.rest.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Returns the value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        if key == BEAT {
            return self.beat.as_ref().map(Value::as_str);
        }
        self.find(key).ok().map(|i| self.rest[i].1.as_str())
    }

    /// Tells whether `key` has the value `value` (`None`: is not there).
    pub fn is(&self, key: &str, value: Option<&str>) -> bool {
        if key == BEAT {
            return match (&self.beat, value) {
                (Some(b), Some(v)) => b.is(v),
                (b, v) => b.is_none() && v.is_none(),
            };
        }
        self.get(key) == value
    }

    /// Tells whether `key` is there.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value` (in place when it is there: a beat changes at every step of
    /// every member).
    pub fn set(&mut self, key: &str, value: &str) {
        if key == BEAT {
            self.beat = Some(Value::new(value));
            return;
        }
        match self.find(key) {
            Ok(i) => {
                let old = &mut self.rest[i].1;
                old.clear();
                old.push_str(value);
            }
            Err(i) => {
                // One more place, not twice as many: most members publish two or three keys.
                self.rest.reserve_exact(1);
                self.rest.insert(i, (key.to_string(), value.to_string()));
            }
        }
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        if key == BEAT {
            return self.beat.take().is_some();
        }
        self.find(key).ok().map(|i| self.rest.remove(i)).is_some()
    }

    /// Returns the keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// Returns the keys and their values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let split = self.rest.partition_point(|(k, _)| k.as_str() < BEAT);
        let (before, after) = self.rest.split_at(split);
        fn pair((k, v): &(String, String)) -> (&str, &str) {
            (k.as_str(), v.as_str())
        }
        let beat = self.beat.as_ref().map(|v| (BEAT, v.as_str()));
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
        let long = "12345678901234567890123456789";
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
            ("b", Some(long)),
            ("b", Some("1234567890123456789012")),
            ("b", None),
            ("b", Some("3")),
        ];
        for (key, v) in ops {
            match v {
                Some(v) => {
                    k.set(key, v);
                    b.insert(key.to_string(), v.to_string());
                }
                None => assert_eq!(k.remove(key), b.remove(key).is_some()),
            }
            assert!(k.iter().eq(b.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
            assert_eq!(k.len(), b.len());
            for key in ["a", "b", "c/web", "zz"] {
                let want = b.get(key).map(String::as_str);
                assert_eq!(k.get(key), want);
                assert!(k.is(key, want));
                assert!(!k.is(key, Some("other")));
            }
        }
        assert_eq!(k.get("b"), Some("3"));
        k.set("a", "second");
        assert_eq!(k.get("a"), Some("second"));
        assert!(k.contains_key("a") && !k.contains_key("c/web") && !k.is_empty());
        assert!(k.keys().eq(b.keys().map(String::as_str)));
    }
}
