//! The per-user token cache file: `$XDG_CACHE_HOME/authgate/` or
//! `~/.cache/authgate/`, one file per token endpoint, client, audience and
//! scope, mode 0600, holding the token and its expiry but never the secret.

use std::{
    path::PathBuf,
    time::{Duration, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::{AccessToken, TokenEndpoint, TokenSourceConfig};

/// The default directory, if the environment names a home.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) fn default_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|base| base.join("authgate"))
}

#[derive(Serialize, Deserialize)]
struct Entry {
    token_endpoint: String,
    client_id: String,
    audience: Option<String>,
    scope: Option<String>,
    /// Which secret got the token: another secret must not reuse it (a
    /// wrong secret would otherwise "work" until the token expired).
    #[serde(default)]
    secret_fingerprint: String,
    access_token: String,
    expires_at: u64,
}

fn endpoint_key(config: &TokenSourceConfig) -> String {
    match &config.endpoint {
        TokenEndpoint::Url(url) => url.to_string(),
        TokenEndpoint::Issuer(url) => format!("issuer:{url}"),
    }
}

fn hex_sha256(parts: &[&str]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.join("\0").as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A one-way fingerprint of the client secret: it tells two secrets apart
/// without the cache file ever holding the secret.
fn secret_fingerprint(config: &TokenSourceConfig) -> String {
    hex_sha256(&[
        "authgate token cache: client secret",
        config.client_secret.expose(),
    ])
}

/// The cache file for this config: one per token endpoint, client,
/// audience, scope and client secret.
pub(crate) fn path(dir: &std::path::Path, config: &TokenSourceConfig) -> PathBuf {
    let name = hex_sha256(&[
        endpoint_key(config).as_str(),
        &config.client_id,
        config.audience.as_deref().unwrap_or(""),
        config.scope.as_deref().unwrap_or(""),
        &secret_fingerprint(config),
    ]);
    dir.join(format!("token-{}.json", &name[..32]))
}

/// Refuses a cache path that someone else owns or could read or write.
fn private(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)?;
        // SAFETY: geteuid(2) cannot fail and touches no memory of ours.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me || meta.mode() & 0o777 != mode || meta.file_type().is_symlink() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not private (owner {}, mode {:o})",
                    path.display(),
                    meta.uid(),
                    meta.mode() & 0o777
                ),
            ));
        }
    }
    let _ = (path, mode);
    Ok(())
}

pub(super) fn load(dir: &std::path::Path, config: &TokenSourceConfig) -> Option<AccessToken> {
    let file = path(dir, config);
    if let Err(error) = private(dir, 0o700).and_then(|()| private(&file, 0o600)) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%error, "not using the token cache");
        }
        return None;
    }
    let text = std::fs::read(file).ok()?;
    let entry: Entry = serde_json::from_slice(&text).ok()?;
    // The name is a hash: check that the entry really is ours.
    if entry.token_endpoint != endpoint_key(config)
        || entry.client_id != config.client_id
        || entry.audience != config.audience
        || entry.scope != config.scope
        || entry.secret_fingerprint != secret_fingerprint(config)
    {
        return None;
    }
    let expires_at = UNIX_EPOCH + Duration::from_secs(entry.expires_at);
    let token = AccessToken::new(entry.access_token, expires_at, config.refresh_margin).ok()?;
    token.is_fresh().then_some(token)
}

pub(super) fn store(dir: &std::path::Path, config: &TokenSourceConfig, token: &AccessToken) {
    if let Err(error) = try_store(dir, config, token) {
        tracing::warn!(dir = %dir.display(), %error, "cannot write the token cache");
    }
}

fn try_store(
    dir: &std::path::Path,
    config: &TokenSourceConfig,
    token: &AccessToken,
) -> std::io::Result<()> {
    let entry = Entry {
        token_endpoint: endpoint_key(config),
        client_id: config.client_id.clone(),
        audience: config.audience.clone(),
        scope: config.scope.clone(),
        secret_fingerprint: secret_fingerprint(config),
        access_token: token.secret().to_owned(),
        expires_at: token
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    private(dir, 0o700)?;
    let target = path(dir, config);
    let mut nonce = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut nonce);
    let temp = target.with_extension(format!("tmp-{}", u64::from_le_bytes(nonce)));
    let mut options = std::fs::OpenOptions::new();
    // A new file, never one someone placed there, never through a link.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(&temp)?;
    std::io::Write::write_all(&mut file, &serde_json::to_vec(&entry)?)?;
    file.sync_all()?;
    // Rename: a concurrent reader sees the old file or the new, never half.
    std::fs::rename(&temp, &target)
}
