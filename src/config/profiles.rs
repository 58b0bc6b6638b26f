//! Credential profiles (`--profiles-file`): one key, organization, project and base URL per
//! environment (for example Editor, Staging, Production). A caller picks one with the
//! `x-openai-profile` metadata key. Parsing here is pure: the key files a profile names are read
//! beforehand by [`super::files::Files::read`].

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::{Path, PathBuf},
};

use super::{NamedProfiles, StartupError};
use crate::openai::{ApiKey, DEFAULT_BASE_URL, KeyOwner, UpstreamConfig};

/// Named credential profiles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profiles {
    /// The profile used when a call names none.
    pub default: String,
    /// The profiles by name. Empty: the single profile `default` is [`super::Config::upstream`].
    pub named: NamedProfiles,
    /// Whether callers may bring their own OpenAI key in `x-openai-api-key` metadata.
    pub allow_caller_keys: bool,
}

/// One credential profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Where and as whom to call OpenAI.
    pub upstream: UpstreamConfig,
    /// When set, only callers whose token has one of these names may use the profile.
    pub callers: Option<Vec<String>>,
}

/// The profiles file as written, JSON:
/// `{"default": "production", "profiles": {"production": {"api_key_file": "...",
/// "organization": "org-...", "project": "proj_...", "base_url": "...", "callers": ["billing"]}}}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesFile {
    default: String,
    profiles: BTreeMap<String, ProfileEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEntry {
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    api_key_file: Option<PathBuf>,
    #[serde(default)]
    api_keys: Vec<String>,
    #[serde(default)]
    api_key_files: Vec<PathBuf>,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    callers: Option<Vec<String>>,
}

impl fmt::Debug for ProfileEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileEntry")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_file", &self.api_key_file)
            .field(
                "api_keys",
                &format_args!("{} redacted", self.api_keys.len()),
            )
            .field("api_key_files", &self.api_key_files)
            .finish_non_exhaustive()
    }
}

/// The flag every profiles-file message names.
const FLAG: &str = "--profiles-file";

impl ProfilesFile {
    /// Parses the file's text (its shape only; keys and references are checked by
    /// [`Profiles::build`]).
    pub fn parse(text: &str) -> Result<Self, StartupError> {
        serde_json::from_str(text).map_err(|e| StartupError::config(format!("{FLAG}: {e}")))
    }

    /// The key files the profiles name, to be read before [`Profiles::build`].
    pub fn key_files(&self) -> impl Iterator<Item = &Path> {
        self.profiles.values().flat_map(|p| {
            p.api_key_file
                .iter()
                .chain(&p.api_key_files)
                .map(PathBuf::as_path)
        })
    }
}

impl Profiles {
    /// Builds the profiles from a parsed file and the contents of the key files it names. Every
    /// profile needs a key unless `demo` is set.
    pub fn build(
        file: ProfilesFile,
        key_files: &HashMap<PathBuf, Vec<u8>>,
        demo: bool,
    ) -> Result<Self, StartupError> {
        if !file.profiles.contains_key(&file.default) {
            return Err(StartupError::config(format!(
                "{FLAG}: the default profile {:?} is not defined",
                file.default
            )));
        }
        let mut named = NamedProfiles::new();
        for (name, entry) in file.profiles {
            let at = |what: &dyn fmt::Display| {
                StartupError::config(format!("{FLAG}: profile {name:?}: {what}"))
            };
            let mut upstream =
                UpstreamConfig::new(entry.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))
                    .map_err(|e| at(&format_args!("base_url {e}")))?;
            let read = |path: &PathBuf| {
                let bytes = key_files
                    .get(path)
                    .ok_or_else(|| at(&format_args!("{} was not read", path.display())))?;
                String::from_utf8(bytes.clone())
                    .map_err(|_| at(&format_args!("{} is not UTF-8", path.display())))
            };
            if entry.api_key.is_some() && entry.api_key_file.is_some() {
                return Err(at(&"give api_key or api_key_file, not both"));
            }
            // The pool, in order: api_key or api_key_file, then api_keys, then api_key_files.
            let mut keys: Vec<String> = entry.api_key.into_iter().collect();
            if let Some(path) = &entry.api_key_file {
                keys.push(read(path)?);
            }
            keys.extend(entry.api_keys);
            for path in &entry.api_key_files {
                keys.push(read(path)?);
            }
            if keys.is_empty() && !demo {
                return Err(at(
                    &"needs api_key, api_key_file, api_keys or api_key_files",
                ));
            }
            let mut keys = keys
                .into_iter()
                .map(ApiKey::new)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| at(&e))?
                .into_iter();
            upstream.api_key = keys.next();
            upstream.extra_keys = keys.collect();
            upstream.key_owner = KeyOwner::Profile(name.clone());
            upstream.organization = super::flags::non_empty(entry.organization);
            upstream.project = super::flags::non_empty(entry.project);
            named.insert(
                name,
                Profile {
                    upstream,
                    callers: entry.callers,
                },
            );
        }
        Ok(Self {
            default: file.default,
            named,
            allow_caller_keys: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str, demo: bool) -> Result<Profiles, StartupError> {
        Profiles::build(ProfilesFile::parse(text)?, &HashMap::new(), demo)
    }

    fn message(e: StartupError) -> String {
        e.to_string()
    }

    #[test]
    fn profiles_file_parses_and_redacts() {
        let p = build(
            r#"{"default":"production","profiles":{
                "production":{"api_key":"sk-prod","organization":"org-p","callers":["billing"]},
                "staging":{"api_key":"sk-stage","base_url":"http://127.0.0.1:9/v1","project":"proj_s"}}}"#,
            false,
        )
        .unwrap();
        assert_eq!(p.default, "production");
        assert_eq!(
            p.named["staging"].upstream.base_url.as_str(),
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(
            p.named["staging"].upstream.key_owner,
            KeyOwner::Profile("staging".into())
        );
        assert_eq!(
            p.named["production"].callers.as_deref(),
            Some(&["billing".to_owned()][..])
        );
        assert!(!format!("{p:?}").contains("sk-prod"));
        let missing = build(r#"{"default":"x","profiles":{"y":{"api_key":"k"}}}"#, false);
        assert!(message(missing.unwrap_err()).contains("default profile"));
        let keyless = build(r#"{"default":"y","profiles":{"y":{}}}"#, false);
        let pool = build(
            r#"{"default":"p","profiles":{"p":{"api_key":"sk-a","api_keys":["sk-b","sk-c"]}}}"#,
            false,
        )
        .unwrap();
        let upstream = &pool.named["p"].upstream;
        assert_eq!(upstream.api_key.as_ref().unwrap().expose(), "sk-a");
        let extra: Vec<&str> = upstream.extra_keys.iter().map(ApiKey::expose).collect();
        assert_eq!(extra, ["sk-b", "sk-c"]);
        assert!(message(keyless.unwrap_err()).contains("api_key"));
        let typo = build(r#"{"default":"y","profiles":{"y":{"apikey":"k"}}}"#, false);
        assert!(typo.is_err());
    }

    #[test]
    fn key_files_come_from_what_was_read() {
        let file = ProfilesFile::parse(
            r#"{"default":"p","profiles":{"p":{"api_key_file":"/run/secrets/k"}}}"#,
        )
        .unwrap();
        assert_eq!(
            file.key_files().collect::<Vec<_>>(),
            [Path::new("/run/secrets/k")]
        );
        let read = HashMap::from([(PathBuf::from("/run/secrets/k"), b"sk-file\n".to_vec())]);
        let p = Profiles::build(file, &read, false).unwrap();
        assert_eq!(
            p.named["p"].upstream.api_key.as_ref().unwrap().expose(),
            "sk-file"
        );
    }
}
