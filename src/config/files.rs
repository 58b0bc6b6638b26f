//! The one loading step: every file the flags name is read here, before any parsing, so that
//! [`super::flags::Cli::into_settings`] is a pure function of flags and file contents.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{StartupError, flags::Cli, profiles::ProfilesFile};

/// The contents of every file the configuration names.
#[derive(Debug, Default)]
pub struct Files {
    /// `--auth-tokens-file`, as text.
    pub auth_tokens: Option<String>,
    /// `--tls-cert`, `--tls-key`, `--tls-client-ca`.
    pub tls_cert: Option<Vec<u8>>,
    /// The TLS private key.
    pub tls_key: Option<Vec<u8>>,
    /// The CA for client certificates.
    pub tls_client_ca: Option<Vec<u8>>,
    /// `--profiles-file`, parsed into its shape.
    pub profiles: Option<ProfilesFile>,
    /// The key files the profiles name, by path.
    pub key_files: HashMap<PathBuf, Vec<u8>>,
    /// `--limits-file`, parsed.
    pub limits: Option<super::limits::Quotas>,
}

impl Files {
    /// Reads every file `cli` names; a file that cannot be read is a configuration error naming
    /// its flag and path.
    pub fn read(cli: &Cli) -> Result<Self, StartupError> {
        let optional =
            |path: &Option<PathBuf>, flag: &str| path.as_deref().map(|p| read(p, flag)).transpose();
        let profiles = optional(
            &cli.profiles_file,
            "--profiles-file / GATEWAY_PROFILES_FILE",
        )?
        .map(|bytes| ProfilesFile::parse(&String::from_utf8_lossy(&bytes)))
        .transpose()?;
        let mut key_files = HashMap::new();
        for path in profiles.iter().flat_map(ProfilesFile::key_files) {
            let flag = "--profiles-file: api_key_file";
            key_files.insert(path.to_owned(), read(path, flag)?);
        }
        Ok(Self {
            auth_tokens: optional(
                &cli.auth_tokens_file,
                "--auth-tokens-file / GATEWAY_AUTH_TOKENS_FILE",
            )?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            tls_cert: optional(&cli.tls_cert, "--tls-cert / GATEWAY_TLS_CERT")?,
            tls_key: optional(&cli.tls_key, "--tls-key / GATEWAY_TLS_KEY")?,
            tls_client_ca: optional(
                &cli.tls_client_ca,
                "--tls-client-ca / GATEWAY_TLS_CLIENT_CA",
            )?,
            profiles,
            key_files,
            limits: optional(&cli.limits_file, "--limits-file / GATEWAY_LIMITS_FILE")?
                .map(|bytes| {
                    super::limits::Quotas::parse(
                        &String::from_utf8_lossy(&bytes),
                        "--limits-file / GATEWAY_LIMITS_FILE",
                    )
                })
                .transpose()?,
        })
    }
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, StartupError> {
    std::fs::read(path)
        .map_err(|e| StartupError::config(format!("{flag}: cannot read {}: {e}", path.display())))
}
