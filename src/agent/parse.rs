//! The syntax of a cltab command that names an agent: `ocf:PROVIDER:TYPE [name=value ...]`,
//! `lsb:SCRIPT`, `systemd:UNIT`. Provider, type and script become paths and a unit becomes an
//! argument of `systemctl`, so their characters are restricted; parameter names become
//! `OCF_RESKEY_<name>`. Every error says what is wrong in words an operator can act on.

use super::{Class, MAX_PARAMS};

/// The unit types systemd knows: a unit name ending in one of them (after a `.`) is taken
/// as written; any other gets `.service`, as `systemctl` does (`php7.4-fpm` is
/// `php7.4-fpm.service`).
const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// Longest systemd unit name (systemd's `UNIT_NAME_MAX`).
const MAX_UNIT_BYTES: usize = 255;

/// Prefix of the parameters mosha sets itself (`OCF_RESKEY_CRM_meta_timeout`, ...): a
/// cltab parameter may not start with it.
const RESERVED_PREFIX: &str = "CRM_meta_";

/// Parses the `PROVIDER:TYPE` of `spec` (`ocf:PROVIDER:TYPE`).
pub(super) fn parse_ocf(spec: &str, body: &str) -> Result<Class, String> {
    let mut parts = body.split(':');
    let provider = parts.next().unwrap_or_default();
    let kind = parts.next();
    if parts.next().is_some() {
        return Err(format!(
            "ocf agent '{spec}' has too many ':' (expected ocf:PROVIDER:TYPE)"
        ));
    }
    if provider.is_empty() {
        return Err(format!(
            "ocf agent '{spec}' has no provider (expected ocf:PROVIDER:TYPE)"
        ));
    }
    let kind = match kind {
        Some(k) if !k.is_empty() => k,
        _ => {
            return Err(format!(
                "ocf agent '{spec}' has no type (expected ocf:PROVIDER:TYPE)"
            ))
        }
    };
    crate::config::check_name("ocf provider", provider)?;
    crate::config::check_name("ocf type", kind)?;
    Ok(Class::Ocf {
        provider: provider.to_string(),
        kind: kind.to_string(),
    })
}

/// Parses the script name of `spec` (`lsb:SCRIPT`): a file in the LSB directory.
pub(super) fn parse_lsb(spec: &str, script: &str) -> Result<Class, String> {
    if script.is_empty() {
        return Err(format!("lsb agent '{spec}' has no script name"));
    }
    crate::config::check_name("lsb script", script)?;
    Ok(Class::Lsb {
        script: script.to_string(),
    })
}

/// Parses the unit name of `spec` (`systemd:UNIT`): systemd's characters (letters, digits,
/// `:`, `-`, `_`, `.`, `\`, `@`), never starting with `-` (it would be an option of
/// `systemctl`) nor `.`.
pub(super) fn parse_unit(spec: &str, unit: &str) -> Result<Class, String> {
    if unit.is_empty() {
        return Err(format!("systemd agent '{spec}' has no unit name"));
    }
    if unit.len() > MAX_UNIT_BYTES {
        return Err(format!(
            "systemd unit name is {} bytes long; systemd allows {MAX_UNIT_BYTES}",
            unit.len()
        ));
    }
    if let Some(bad) = unit
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@')))
    {
        return Err(format!(
            "invalid character {bad:?} in systemd unit {unit:?} (allowed: letters, digits, \
             ':', '-', '_', '.', '\\', '@')"
        ));
    }
    if unit.starts_with(['-', '.']) {
        return Err(format!(
            "systemd unit {unit:?} must not start with '-' or '.'"
        ));
    }
    Ok(Class::Systemd {
        unit: unit.to_string(),
    })
}

/// Returns `unit` with `.service` added when it does not end in a unit type.
pub(super) fn full_unit(unit: &str) -> String {
    match unit.rsplit_once('.') {
        Some((_, suffix)) if UNIT_TYPES.contains(&suffix) => unit.to_string(),
        _ => format!("{unit}.service"),
    }
}

/// Parses `name=value` parameters separated by ASCII whitespace; a value may be enclosed
/// whole in double quotes.
pub(super) fn parse_params(text: &str) -> Result<Vec<(String, String)>, String> {
    let bytes = text.as_bytes();
    let space = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_whitespace);
    let mut params: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    loop {
        while space(i) {
            i += 1;
        }
        if i == bytes.len() {
            return Ok(params);
        }
        // Every delimiter is ASCII, so every index below is a character boundary.
        let start = i;
        while i < bytes.len() && !space(i) && bytes[i] != b'=' {
            i += 1;
        }
        let name = &text[start..i];
        if bytes.get(i) != Some(&b'=') {
            return Err(format!("parameter '{name}' is not name=value"));
        }
        check_param_name(name)?;
        i += 1;
        let value = if bytes.get(i) == Some(&b'"') {
            let open = i + 1;
            let Some(len) = text[open..].find('"') else {
                return Err(format!(
                    "parameter '{name}' opens a double quote and does not close it"
                ));
            };
            i = open + len + 1;
            if i < bytes.len() && !space(i) {
                return Err(format!(
                    "parameter '{name}': the closing double quote must end the value"
                ));
            }
            &text[open..open + len]
        } else {
            let from = i;
            while i < bytes.len() && !space(i) {
                i += 1;
            }
            let value = &text[from..i];
            if value.contains('"') {
                return Err(format!(
                    "parameter '{name}': a double quote may only enclose the whole value \
                     ({name}=\"a b\")"
                ));
            }
            value
        };
        if value.is_empty() {
            return Err(format!("parameter '{name}' has an empty value"));
        }
        if params.iter().any(|(n, _)| n == name) {
            return Err(format!("parameter '{name}' is given twice"));
        }
        if params.len() == MAX_PARAMS {
            return Err(format!("more than {MAX_PARAMS} parameters"));
        }
        params.push((name.to_string(), value.to_string()));
    }
}

/// Checks a parameter name: it becomes `OCF_RESKEY_<name>`, so `[A-Za-z_][A-Za-z0-9_]*`,
/// and it may not be one of those mosha sets (`CRM_meta_*`).
fn check_param_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a parameter has no name before '='".to_string());
    }
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "parameter name '{name}' is not a letter or '_' followed by letters, digits and \
             '_' (it becomes OCF_RESKEY_{name})"
        ));
    }
    if name.len() > crate::config::MAX_NAME_BYTES {
        return Err(format!(
            "parameter name '{name}' is longer than {} bytes",
            crate::config::MAX_NAME_BYTES
        ));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "parameter '{name}' is reserved: mosha sets OCF_RESKEY_{RESERVED_PREFIX}* itself"
        ));
    }
    Ok(())
}
