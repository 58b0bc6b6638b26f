//! Which upstream a call uses: the credential profile named in `x-openai-profile` metadata (or
//! the default), checked against the caller's identity, optionally with the caller's own key
//! from `x-openai-api-key` when the configuration allows it.

use std::{collections::BTreeMap, sync::Arc};

use tonic::{Request, Status};

use crate::{
    auth::Caller,
    config::{Config, Profile, StartupError},
    error,
    openai::{ApiKey, Observer, OpenAiClient, UpstreamConfig},
    telemetry::Metrics,
};

/// Counts one profile's upstream responses and retries.
#[derive(Debug)]
struct ProfileObserver {
    metrics: Metrics,
    profile: String,
}

impl Observer for ProfileObserver {
    fn response(&self, status: Option<u16>) {
        self.metrics.upstream_response(&self.profile, status);
    }

    fn retry(&self) {
        self.metrics.upstream_retry(&self.profile);
    }

    fn key_cooled(&self, key: &str, reason: crate::openai::keys::Reason) {
        self.metrics.key_cooled(key, reason.as_str());
    }
}

/// Metadata key naming the profile of a call.
pub const PROFILE_HEADER: &str = "x-openai-profile";
/// Metadata key carrying a caller-supplied OpenAI key.
pub const CALLER_KEY_HEADER: &str = "x-openai-api-key";

#[derive(Debug)]
struct Entry {
    /// The profile's client, with its key, organization and project.
    client: OpenAiClient,
    /// The same base URL without credentials or scoping headers, for caller-supplied keys.
    bare: OpenAiClient,
    /// Caller token names allowed to use the profile; `None` allows every caller.
    callers: Option<Vec<String>>,
}

/// The upstream clients of every profile. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Upstreams {
    profiles: Arc<BTreeMap<String, Entry>>,
    default: Arc<str>,
    allow_caller_keys: bool,
}

/// The upstream chosen for one call.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The client to call.
    pub client: OpenAiClient,
    /// The profile's name (for logs and metrics).
    pub profile: String,
}

impl Upstreams {
    /// One client per profile (one pooled HTTP client each), built from the configuration,
    /// reporting upstream statuses and retries to `metrics` under the profile's name.
    pub fn new(config: &Config, metrics: &Metrics) -> Result<Self, StartupError> {
        let single;
        let (default, profiles) = if config.profiles.named.is_empty() {
            single = BTreeMap::from([(
                "default".to_owned(),
                Profile {
                    upstream: config.upstream.clone(),
                    callers: None,
                },
            )]);
            ("default", &single)
        } else {
            (config.profiles.default.as_str(), &config.profiles.named)
        };
        let mut entries = BTreeMap::new();
        for (name, profile) in profiles {
            let observer: Arc<dyn Observer> = Arc::new(ProfileObserver {
                metrics: metrics.clone(),
                profile: name.clone(),
            });
            let build = |u: &UpstreamConfig| {
                OpenAiClient::new(u, &config.retry, &config.timeouts)
                    .map(|c| c.observed(observer.clone()))
                    .map_err(|e| StartupError::config(format!("profile {name:?}: {e}")))
            };
            let bare = UpstreamConfig {
                api_key: None,
                organization: None,
                project: None,
                ..profile.upstream.clone()
            };
            entries.insert(
                name.clone(),
                Entry {
                    client: build(&profile.upstream)?,
                    bare: build(&bare)?,
                    callers: profile.callers.clone(),
                },
            );
        }
        Ok(Self {
            profiles: Arc::new(entries),
            default: default.into(),
            allow_caller_keys: config.profiles.allow_caller_keys,
        })
    }

    /// Shares every profile's key cooldowns with other replicas through `store`.
    pub fn share_cooldowns(&self, store: Arc<dyn crate::openai::keys::SharedCooldowns>) {
        for entry in self.profiles.values() {
            entry.client.share_cooldowns(store.clone());
        }
    }

    /// Chooses the upstream for `request` (its `x-openai-profile`, else the default), or
    /// refuses it before any upstream call.
    pub fn select<T>(&self, request: &Request<T>) -> Result<Selected, Status> {
        let name = match request.metadata().get(PROFILE_HEADER) {
            Some(v) => v.to_str().unwrap_or("").trim().to_owned(),
            None => self.default.to_string(),
        };
        self.select_named(name, request)
    }

    /// The upstream of profile `name` for `request` (the profile's caller rules and the caller's
    /// own key apply as in [`Self::select`]).
    pub fn select_named<T>(&self, name: String, request: &Request<T>) -> Result<Selected, Status> {
        let metadata = request.metadata();
        let Some(entry) = self.profiles.get(&name) else {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            return Err(error::unknown_profile(PROFILE_HEADER, &name, &known));
        };
        if let Some(allowed) = &entry.callers {
            let caller = request.extensions().get::<Caller>();
            if !caller.is_some_and(|c| allowed.contains(&c.0)) {
                return Err(error::profile_not_allowed(&name));
            }
        }
        let client = match metadata.get(CALLER_KEY_HEADER) {
            None => entry.client.clone(),
            Some(_) if !self.allow_caller_keys => {
                return Err(error::caller_keys_disabled(CALLER_KEY_HEADER));
            }
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|k| ApiKey::new(k).ok())
                .and_then(|key| entry.bare.with_caller_key(&key))
                .ok_or_else(|| error::invalid_caller_key(CALLER_KEY_HEADER))?,
        };
        Ok(Selected {
            client,
            profile: name,
        })
    }
}
