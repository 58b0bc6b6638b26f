//! Per-caller quotas (`--limits-file`), JSON:
//! `{"default": {...}, "callers": {"NAME": {...}}, "profiles": {"NAME": {...}}}`, each with any of
//! `requests_per_minute`, `tokens_per_minute` and `concurrent_streams`.
//!
//! A call is checked against two subjects: its caller (the caller token's name, or `anonymous`
//! without caller authentication), under that caller's own entry or else `default`; and its
//! credential profile, under the profile's entry if it has one. Parsing is pure; a bad file is a
//! configuration error naming the JSON path at fault.

use std::collections::BTreeMap;

use super::StartupError;

/// The limits of one subject; an absent limit is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests started per minute (a continuously refilling allowance).
    pub requests_per_minute: Option<u64>,
    /// Input plus output tokens per minute, counted from each response's usage when it ends.
    pub tokens_per_minute: Option<u64>,
    /// Streaming calls in flight at once.
    pub concurrent_streams: Option<u64>,
}

impl Limit {
    /// Whether the entry limits anything.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The parsed limits file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// The limits of a caller without an entry of its own.
    #[serde(default)]
    pub default: Limit,
    /// Limits by caller token name (`anonymous` without caller authentication).
    #[serde(default)]
    pub callers: BTreeMap<String, Limit>,
    /// Limits by credential profile name (shared by every caller of the profile).
    #[serde(default)]
    pub profiles: BTreeMap<String, Limit>,
}

impl Quotas {
    /// Parses the limits file's text; every problem names its JSON path.
    pub fn parse(text: &str, flag: &str) -> Result<Self, StartupError> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let quotas: Self = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            StartupError::config(format!("{flag}: at {path}: {}", e.inner()))
        })?;
        let entries = std::iter::once(("default".to_owned(), &quotas.default))
            .chain(
                quotas
                    .callers
                    .iter()
                    .map(|(n, l)| (format!("callers.{n}"), l)),
            )
            .chain(
                quotas
                    .profiles
                    .iter()
                    .map(|(n, l)| (format!("profiles.{n}"), l)),
            );
        for (at, limit) in entries {
            for (name, value) in [
                ("requests_per_minute", limit.requests_per_minute),
                ("tokens_per_minute", limit.tokens_per_minute),
                ("concurrent_streams", limit.concurrent_streams),
            ] {
                if value == Some(0) {
                    return Err(StartupError::config(format!(
                        "{flag}: at {at}.{name}: must be at least 1 (leave it out for no limit)"
                    )));
                }
            }
        }
        Ok(quotas)
    }

    /// The limits of `caller`: its own entry, else `default`.
    pub fn of_caller(&self, caller: &str) -> Limit {
        self.callers.get(caller).copied().unwrap_or(self.default)
    }

    /// The limits of `profile`, if it has an entry.
    pub fn of_profile(&self, profile: &str) -> Limit {
        self.profiles.get(profile).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_picks_the_callers_entry_or_the_default() {
        let q = Quotas::parse(
            r#"{"default":{"requests_per_minute":60},
                "callers":{"billing":{"requests_per_minute":10,"tokens_per_minute":1000}},
                "profiles":{"staging":{"concurrent_streams":2}}}"#,
            "--limits-file",
        )
        .unwrap();
        assert_eq!(q.of_caller("billing").requests_per_minute, Some(10));
        assert_eq!(q.of_caller("someone").requests_per_minute, Some(60));
        assert_eq!(q.of_profile("staging").concurrent_streams, Some(2));
        assert!(q.of_profile("production").is_empty());
    }

    #[test]
    fn errors_name_the_path() {
        for (text, path) in [
            (r#"{"callers":{"a":{"requests_per_minut":1}}}"#, "callers.a"),
            (
                r#"{"callers":{"a":{"requests_per_minute":-1}}}"#,
                "callers.a.requests_per_minute",
            ),
            (
                r#"{"profiles":{"p":{"concurrent_streams":0}}}"#,
                "profiles.p.concurrent_streams",
            ),
            (r#"{"defaults":{}}"#, "defaults"),
        ] {
            let e = Quotas::parse(text, "--limits-file")
                .unwrap_err()
                .to_string();
            assert!(e.contains(path), "{text}: {e}");
        }
    }
}
