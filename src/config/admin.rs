//! The `admin` file: the operators' standing orders, replicated like `hactl`. The verbs
//! `mosha standby`, `unstandby`, `drain`, `freeze`, `unfreeze` and `maintenance` write it
//! (through the local daemon); it may also be edited by hand.
//!
//! ```text
//! # mosha's standing orders (rewritten by the verbs)
//! standby n3
//! standby n2 to=n4
//! freeze web
//! maintenance
//! ```
//!
//! - `standby NODE [to=OTHER]`: NODE runs no group; what it runs moves away, to OTHER when
//!   OTHER can take it (`mosha drain NODE --to OTHER`), else to the next ranked node.
//! - `freeze GROUP`: mosha leaves GROUP's processes as they are (no respawn, stop, failover).
//! - `maintenance`: every group is frozen.
//!
//! Lines are split as in `hactl` (blank lines and `#` comments skipped; the limits of
//! [`crate::config::text`] apply). A node or group named twice is an error. Whether the names
//! exist is not checked here: a standby node may not have joined yet, a frozen group may
//! not be in cltab yet.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{check_name, text, Problem};
use crate::engine::Admin;

/// The first line of the file the verbs write.
const HEADER: &str = "# mosha's standing orders: rewritten by mosha standby, unstandby, drain, \
                      freeze, unfreeze and maintenance (see mosha --help)";

/// Parses the text of an `admin` file; `file` is the name printed in problems.
///
/// # Errors
/// Returns every error of the file, sorted by line.
pub fn parse(file: &str, text: &str) -> Result<Admin, Vec<Problem>> {
    let mut lines = text::Lines::new(file, text, "replicated files")?;
    let mut admin = Admin::default();
    let mut errors = Vec::new();
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    while let Some((line, content)) = lines.next() {
        let fields: Vec<&str> = content.split_ascii_whitespace().collect();
        let Some(&order) = fields.first() else {
            continue;
        };
        if order.starts_with('#') {
            continue;
        }
        if !lines.entry(line, "orders") {
            break;
        }
        let mut problem = |m: String| errors.push(Problem::new(file, line, m));
        let mut once = |what: &str, name: &str, problem: &mut dyn FnMut(String)| {
            let key = format!("{what} {name}");
            match first.get(&key) {
                Some(at) => {
                    problem(format!(
                        "{what} '{name}' is named twice (first at line {at})"
                    ));
                    false
                }
                None => {
                    first.insert(key, line);
                    true
                }
            }
        };
        match (order, &fields[1..]) {
            ("standby", [node, rest @ ..]) => {
                let mut ok = check_name("node", node).map_err(&mut problem).is_ok();
                let mut to = None;
                for f in rest {
                    match f.strip_prefix("to=") {
                        Some(t) if to.is_none() => match check_name("node", t) {
                            Ok(()) if t == *node => {
                                problem(format!("standby '{node}' cannot drain to itself"));
                                ok = false;
                            }
                            Ok(()) => to = Some(t.to_string()),
                            Err(m) => {
                                problem(format!("option 'to': {m}"));
                                ok = false;
                            }
                        },
                        Some(_) => {
                            problem("duplicate option 'to'".into());
                            ok = false;
                        }
                        None => {
                            problem(format!("unexpected field '{f}' (standby NODE [to=OTHER])"));
                            ok = false;
                        }
                    }
                }
                if ok && once("node", node, &mut problem) {
                    admin.standby.insert(node.to_string(), to);
                }
            }
            ("freeze", [group]) => {
                if check_name("group", group).map_err(&mut problem).is_ok()
                    && once("group", group, &mut problem)
                {
                    admin.frozen.insert(group.to_string());
                }
            }
            ("maintenance", []) => {
                if once("order", "maintenance", &mut problem) {
                    admin.maintenance = true;
                }
            }
            ("standby" | "freeze" | "maintenance", _) => problem(format!(
                "wrong fields for '{order}' (standby NODE [to=OTHER], freeze GROUP, maintenance)"
            )),
            _ => problem(format!(
                "unknown order '{order}' (standby NODE [to=OTHER], freeze GROUP, maintenance)"
            )),
        }
    }
    lines.finish(admin, errors)
}

/// Returns the text of `admin` as the verbs write it: the header, then one order per line,
/// sorted.
pub fn render(admin: &Admin) -> String {
    let mut out = format!("{HEADER}\n");
    for (node, to) in &admin.standby {
        match to {
            Some(to) => out.push_str(&format!("standby {node} to={to}\n")),
            None => out.push_str(&format!("standby {node}\n")),
        }
    }
    for group in &admin.frozen {
        out.push_str(&format!("freeze {group}\n"));
    }
    if admin.maintenance {
        out.push_str("maintenance\n");
    }
    out
}

/// An operator's verb, as the daemon applies it to the orders in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// `mosha standby NODE` (`to`: `mosha drain NODE --to OTHER`).
    Standby { node: String, to: Option<String> },
    /// `mosha unstandby NODE`.
    Unstandby { node: String },
    /// `mosha freeze GROUP`.
    Freeze { group: String },
    /// `mosha unfreeze GROUP`.
    Unfreeze { group: String },
    /// `mosha maintenance on|off`.
    Maintenance(bool),
}

impl Order {
    /// Applies the order to `admin`; returns whether that changed it.
    pub fn apply(&self, admin: &mut Admin) -> bool {
        match self {
            Order::Standby { node, to } => {
                admin.standby.insert(node.clone(), to.clone()).as_ref() != Some(to)
            }
            Order::Unstandby { node } => admin.standby.remove(node).is_some(),
            Order::Freeze { group } => admin.frozen.insert(group.clone()),
            Order::Unfreeze { group } => admin.frozen.remove(group),
            Order::Maintenance(on) => std::mem::replace(&mut admin.maintenance, *on) != *on,
        }
    }

    /// Tells whether `admin` already says what the order says.
    pub fn holds(&self, admin: &Admin) -> bool {
        !self.apply(&mut admin.clone())
    }
}

/// Returns the nodes named in `admin` (in standby, or as drain targets).
pub fn nodes(admin: &Admin) -> BTreeSet<&str> {
    let targets = admin.standby.values().flatten().map(String::as_str);
    admin
        .standby
        .keys()
        .map(String::as_str)
        .chain(targets)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse("admin", text) {
            Ok(a) => panic!("accepted: {a:?}"),
            Err(p) => p.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn orders_parse_and_render_back() {
        let text = "# hand-written\nstandby n3\n\nstandby n2 to=n4\nfreeze web\nmaintenance\n";
        let a = parse("admin", text).unwrap();
        assert_eq!(a.standby["n3"], None);
        assert_eq!(a.standby["n2"].as_deref(), Some("n4"));
        assert!(a.frozen.contains("web") && a.maintenance);
        let again = parse("admin", &render(&a)).unwrap();
        assert_eq!(again, a);
        assert_eq!(parse("admin", "").unwrap(), Admin::default());
        assert_eq!(
            nodes(&a).into_iter().collect::<Vec<_>>(),
            ["n2", "n3", "n4"]
        );
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let text = "standby\nstandby n1 to=n1\nstandby n2 x\nfreeze\nfreeze a b\nreboot n1\n\
                    standby n3\nstandby n3\nmaintenance now\nstandby n4 to=n5 to=n6\nfreeze -x\n";
        assert_eq!(
            errors(text),
            [
                "admin:1: wrong fields for 'standby' (standby NODE [to=OTHER], freeze GROUP, maintenance)",
                "admin:2: standby 'n1' cannot drain to itself",
                "admin:3: unexpected field 'x' (standby NODE [to=OTHER])",
                "admin:4: wrong fields for 'freeze' (standby NODE [to=OTHER], freeze GROUP, maintenance)",
                "admin:5: wrong fields for 'freeze' (standby NODE [to=OTHER], freeze GROUP, maintenance)",
                "admin:6: unknown order 'reboot' (standby NODE [to=OTHER], freeze GROUP, maintenance)",
                "admin:8: node 'n3' is named twice (first at line 7)",
                "admin:9: wrong fields for 'maintenance' (standby NODE [to=OTHER], freeze GROUP, maintenance)",
                "admin:10: duplicate option 'to'",
                "admin:11: group \"-x\" must not start with '-' or '.'",
            ]
        );
    }

    #[test]
    fn orders_apply_once() {
        let mut a = Admin::default();
        let standby = Order::Standby {
            node: "n1".into(),
            to: None,
        };
        assert!(!standby.holds(&a));
        assert!(standby.apply(&mut a));
        assert!(standby.holds(&a) && !standby.apply(&mut a));
        let drain = Order::Standby {
            node: "n1".into(),
            to: Some("n2".into()),
        };
        assert!(drain.apply(&mut a), "a drain target replaces none");
        assert!(Order::Unstandby { node: "n1".into() }.apply(&mut a));
        assert!(Order::Maintenance(true).apply(&mut a));
        assert!(!Order::Maintenance(true).apply(&mut a));
        assert!(Order::Freeze {
            group: "web".into()
        }
        .apply(&mut a));
        assert!(Order::Unfreeze {
            group: "web".into()
        }
        .apply(&mut a));
        assert_eq!(a.standby.len() + a.frozen.len(), 0);
    }
}
