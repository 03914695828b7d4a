//! The parameters of cltab's checking modes, written after the mode name with `/`:
//!
//! ```text
//! web:check:start:monitor/10s/5s/fall=3:curl -fs http://localhost/health
//! web:vip:start:resource/10s/20s:ocf:heartbeat:IPaddr2 ip=10.0.0.5 cidr_netmask=24
//! ```
//!
//! - `monitor/INTERVAL[/TIMEOUT][/fall=K][/rise=K]`: a recurring health check of the level,
//!   run every INTERVAL once the level is reached (the next run waits for the last), killed
//!   after TIMEOUT (default [`DEFAULT_TIMEOUT_S`] s); it fails after `fall` failures in a
//!   row (keepalived's `fall`, default 1), and counts as passing again after `rise` passes
//!   in a row (default 1).
//! - `resource[/INTERVAL[/TIMEOUT]][/fall=K][/rise=K][/start=D][/stop=D]`: an agent (OCF,
//!   LSB, systemd) started when the level is entered and stopped when it is left, and
//!   monitored every INTERVAL when one is given; its action timeouts are the agent's
//!   meta-data's unless given here.
//!
//! Why `/` inside the mode field: the mode is the one field that says how an entry runs, the
//! field separator `:` belongs to commands (`ocf:heartbeat:IPaddr2`), and `,` to levels;
//! `/` is neither, and reads as "monitor every 10 s, within 5 s".
//!
//! Durations: a number of seconds (`10`), or with a unit `ms`, `s`, `m` or `h` (`500ms`,
//! `10s`, `5m`), from [`MIN_INTERVAL_MS`] ms to a day.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Tells how the command of an entry is run when its group enters one of the entry's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Runs the command once and waits for it to exit before going on.
    Wait,
    /// Runs the command once without waiting for it.
    Once,
    /// Runs the command and restarts it whenever it exits.
    Respawn,
    /// Runs the command once and waits for it; its exit status is the test's result.
    Test,
    /// Runs nothing: the entry is written down but disabled.
    Off,
    /// Runs the command every interval once the level is reached: a health check whose
    /// failures restart the group here, or move it (see [`crate::config::modes`]).
    Monitor,
    /// Starts an agent (OCF, LSB, systemd) when the level is entered and stops it when the
    /// level is left, monitoring it at an interval if one is given.
    Resource,
}

impl Mode {
    /// Lists every mode, in the order the file format documents them.
    pub const ALL: [Mode; 7] = [
        Mode::Wait,
        Mode::Once,
        Mode::Respawn,
        Mode::Test,
        Mode::Off,
        Mode::Monitor,
        Mode::Resource,
    ];

    /// Returns the mode's name as written in `cltab` (`"wait"`, `"once"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Wait => "wait",
            Mode::Once => "once",
            Mode::Respawn => "respawn",
            Mode::Test => "test",
            Mode::Off => "off",
            Mode::Monitor => "monitor",
            Mode::Resource => "resource",
        }
    }

    /// Returns whether the command must exit before later entries of the level start
    /// (true for [`Mode::Wait`] and [`Mode::Test`], and for a [`Mode::Resource`]'s start).
    pub fn blocks(self) -> bool {
        matches!(self, Mode::Wait | Mode::Test | Mode::Resource)
    }
}

impl FromStr for Mode {
    type Err = String;

    /// Parses an exact, lower-case mode name; the error lists the valid modes.
    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| {
                format!("unknown mode '{s}' (expected wait, once, respawn, test, off, monitor/INTERVAL or resource)")
            })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The level a group shows while its resources are probed: it holds the group (nobody else
/// starts it before the probes tell whether it already runs here); no cltab or hactl line
/// may use it.
pub const PROBE: &str = "probe";

/// The timeout of an action when neither cltab nor the agent's meta-data give one, in
/// seconds (Pacemaker's default operation timeout).
pub const DEFAULT_TIMEOUT_S: u64 = 20;

/// The shortest interval or timeout accepted, in ms.
pub const MIN_INTERVAL_MS: u64 = 100;

/// The longest interval or timeout accepted, in ms (a day).
pub const MAX_INTERVAL_MS: u64 = 86_400_000;

/// The largest `fall=` or `rise=` count accepted.
pub const MAX_COUNT: u32 = 100;

/// The parameters written after a checking mode's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params {
    /// How often the check runs (required for `monitor`; a `resource` without one is not
    /// monitored).
    pub interval: Option<Duration>,
    /// The check's timeout (`None`: the agent's meta-data, else [`DEFAULT_TIMEOUT_S`]).
    pub timeout: Option<Duration>,
    /// Failures in a row before the check fails (at least 1).
    pub fall: u32,
    /// Passes in a row before a check that failed counts as passing again (at least 1).
    pub rise: u32,
    /// A resource's start timeout (`None`: the meta-data's, else the default).
    pub start: Option<Duration>,
    /// A resource's stop timeout (`None`: the meta-data's, else the default).
    pub stop: Option<Duration>,
}

impl Params {
    /// Returns the check's timeout: the one written, else `meta` (the agent's), else the
    /// default.
    pub fn timeout_or(&self, meta: Option<Duration>) -> Duration {
        (self.timeout.or(meta)).unwrap_or(Duration::from_secs(DEFAULT_TIMEOUT_S))
    }
}

/// Parses a trimmed mode field (`respawn`, `monitor/10s/5s`, `resource/10s/fall=2`...);
/// returns the mode and its parameters, or every problem with the field.
pub fn parse(field: &str) -> Result<(Mode, Params), Vec<String>> {
    let mut parts = field.split('/');
    let name = parts.next().unwrap_or("");
    let mode = name.parse::<Mode>().map_err(|e| vec![e])?;
    let rest: Vec<&str> = parts.collect();
    let mut p = Params {
        fall: 1,
        rise: 1,
        ..Params::default()
    };
    if !matches!(mode, Mode::Monitor | Mode::Resource) {
        return if rest.is_empty() {
            Ok((mode, p))
        } else {
            Err(vec![format!(
                "mode '{name}' takes no parameters (only monitor and resource do)"
            )])
        };
    }
    let mut problems = Vec::new();
    let mut positional = 0;
    let mut seen: Vec<&str> = Vec::new();
    for part in rest {
        if let Some((key, value)) = part.split_once('=') {
            if seen.contains(&key) {
                problems.push(format!("mode parameter '{key}' is given twice"));
                continue;
            }
            seen.push(key);
            match key {
                "fall" | "rise" => match count(value) {
                    Some(n) if key == "fall" => p.fall = n,
                    Some(n) => p.rise = n,
                    None => problems.push(format!(
                        "mode parameter '{key}': '{value}' is not a count from 1 to {MAX_COUNT}"
                    )),
                },
                "start" | "stop" if mode == Mode::Resource => match duration(value) {
                    Some(d) if key == "start" => p.start = Some(d),
                    Some(d) => p.stop = Some(d),
                    None => problems.push(bad_duration(key, value)),
                },
                _ => problems.push(format!("unknown mode parameter '{key}' for {name}")),
            }
            continue;
        }
        let what = ["interval", "timeout"].get(positional).copied();
        positional += 1;
        match (what, duration(part)) {
            (None, _) => problems.push(format!(
                "too many values after '{name}/': at most an interval and a timeout"
            )),
            (Some(what), None) => problems.push(bad_duration(what, part)),
            (Some("interval"), Some(d)) => p.interval = Some(d),
            (Some(_), Some(d)) => p.timeout = Some(d),
        }
    }
    if mode == Mode::Monitor && p.interval.is_none() && problems.is_empty() {
        problems.push(
            "mode monitor needs an interval: monitor/10s (and a timeout: monitor/10s/5s)".into(),
        );
    }
    if problems.is_empty() {
        Ok((mode, p))
    } else {
        Err(problems)
    }
}

/// Says that `value` is no duration for `what`.
fn bad_duration(what: &str, value: &str) -> String {
    format!("{what} '{value}' is not a duration from 100ms to 24h (like 500ms, 10s, 5m)")
}

/// Parses a count from 1 to [`MAX_COUNT`].
fn count(v: &str) -> Option<u32> {
    v.parse::<u32>()
        .ok()
        .filter(|n| v.bytes().all(|b| b.is_ascii_digit()) && (1..=MAX_COUNT).contains(n))
}

/// Parses a duration (`10`, `500ms`, `10s`, `5m`, `1h`) within the accepted bounds.
pub fn duration(v: &str) -> Option<Duration> {
    let (digits, unit_ms) = if let Some(d) = v.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = v.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = v.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = v.strip_suffix('h') {
        (d, 3_600_000)
    } else {
        (v, 1000)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = digits.parse::<u64>().ok()?.checked_mul(unit_ms)?;
    (MIN_INTERVAL_MS..=MAX_INTERVAL_MS)
        .contains(&ms)
        .then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(field: &str) -> (Mode, Params) {
        parse(field).unwrap_or_else(|e| panic!("{field}: {e:?}"))
    }

    #[test]
    fn plain_modes_take_no_parameters() {
        assert_eq!(ok("respawn").0, Mode::Respawn);
        assert_eq!(
            parse("respawn/10s"),
            Err(vec![
                "mode 'respawn' takes no parameters (only monitor and resource do)".into()
            ])
        );
    }

    #[test]
    fn monitors_have_an_interval_a_timeout_and_counts() {
        let (m, p) = ok("monitor/10s/5s/fall=3/rise=2");
        assert_eq!(m, Mode::Monitor);
        assert_eq!(p.interval, Some(Duration::from_secs(10)));
        assert_eq!(p.timeout, Some(Duration::from_secs(5)));
        assert_eq!((p.fall, p.rise), (3, 2));
        let (_, p) = ok("monitor/500ms");
        assert_eq!(
            (p.interval, p.timeout, p.fall, p.rise),
            (Some(Duration::from_millis(500)), None, 1, 1)
        );
        assert_eq!(p.timeout_or(None), Duration::from_secs(20));
        assert_eq!(
            p.timeout_or(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn resources_may_have_no_interval_and_their_own_action_timeouts() {
        let (m, p) = ok("resource");
        assert_eq!((m, p.interval), (Mode::Resource, None));
        let (_, p) = ok("resource/10s/start=60s/stop=2m");
        assert_eq!(p.interval, Some(Duration::from_secs(10)));
        assert_eq!(p.start, Some(Duration::from_secs(60)));
        assert_eq!(p.stop, Some(Duration::from_secs(120)));
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        assert_eq!(
            parse("monitor"),
            Err(vec![
                "mode monitor needs an interval: monitor/10s (and a timeout: monitor/10s/5s)"
                    .into()
            ])
        );
        assert_eq!(
            parse("monitor/10x/0/1s/fall=0/fall=2/start=5s/bogus=1"),
            Err(vec![
                "interval '10x' is not a duration from 100ms to 24h (like 500ms, 10s, 5m)".into(),
                "timeout '0' is not a duration from 100ms to 24h (like 500ms, 10s, 5m)".into(),
                "too many values after 'monitor/': at most an interval and a timeout".into(),
                "mode parameter 'fall': '0' is not a count from 1 to 100".into(),
                "mode parameter 'fall' is given twice".into(),
                "unknown mode parameter 'start' for monitor".into(),
                "unknown mode parameter 'bogus' for monitor".into(),
            ])
        );
        for bad in [
            "",
            "s",
            "-1s",
            "25h",
            "50ms",
            "99999999999999999999h",
            "1.5s",
        ] {
            assert_eq!(duration(bad), None, "{bad:?}");
        }
    }
}
