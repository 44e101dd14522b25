//! The dev issuer's signing key kept in a file (`authgate dev
//! --signing-key`), so that a restart keeps its `kid` and the tokens it
//! issued before stay valid: PKCS#8 in PEM, as `openssl genpkey` writes it,
//! and the owner's alone.

use std::{fmt, io, path::Path, sync::Arc};

use base64::{Engine, engine::general_purpose::STANDARD};

use super::signing::SigningKey;
use crate::keys::Algorithm;

const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const END: &str = "-----END PRIVATE KEY-----";

/// A signing key for a dev issuer that outlives it: read from a file, or
/// made and written there. Give it to
/// [`DevIssuerConfig::signing_key`](super::DevIssuerConfig::signing_key).
#[derive(Clone)]
pub struct DevSigningKey {
    /// PKCS#8 (DER), checked to hold a key for the algorithm it was read for.
    pkcs8: Arc<[u8]>,
}

impl fmt::Debug for DevSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DevSigningKey(<redacted>)")
    }
}

impl DevSigningKey {
    /// The key for `algorithm` in the PEM file at `path`
    /// (`-----BEGIN PRIVATE KEY-----`); when there is none, a new key,
    /// written there with mode 0600. A file that others may read or write is
    /// refused, as ssh refuses such a key: a token signed with it passes.
    pub fn load_or_create(path: &Path, algorithm: Algorithm) -> io::Result<DevSigningKey> {
        match read_private(path) {
            Ok(text) => DevSigningKey::from_pem(&text, algorithm)
                .map_err(|why| invalid(format!("{}: {why}", path.display()))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                match create(path, algorithm) {
                    // Another process made it first: theirs is the key.
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                        DevSigningKey::load_or_create(path, algorithm)
                    }
                    created => created,
                }
            }
            Err(error) => Err(error),
        }
    }

    fn from_pem(text: &str, algorithm: Algorithm) -> Result<DevSigningKey, String> {
        let body = text
            .trim()
            .strip_prefix(BEGIN)
            .and_then(|rest| rest.strip_suffix(END))
            .ok_or_else(|| format!("not a PKCS#8 PEM private key (`{BEGIN}`)"))?;
        let base64: String = body.split_whitespace().collect();
        let der = STANDARD
            .decode(base64)
            .map_err(|_| "the PEM's body is not base64".to_owned())?;
        SigningKey::from_pkcs8(algorithm, &der)?;
        Ok(DevSigningKey { pkcs8: der.into() })
    }

    /// The key as PKCS#8 (DER).
    pub(super) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// The file's text, if only its owner may read or write it.
fn read_private(path: &Path) -> io::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{path} holds a private key but others may read or write it (mode {mode:o}): \
                     chmod 600 {path}",
                    path = path.display()
                ),
            ));
        }
    }
    std::fs::read_to_string(path)
}

/// A new key for `algorithm`, written to a new file at `path` that only its
/// owner may read; never over a file that is there.
fn create(path: &Path, algorithm: Algorithm) -> io::Result<DevSigningKey> {
    let der = SigningKey::generate(algorithm, aws_lc_rs::rsa::KeySize::Rsa2048, None).to_pkcs8();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let written =
        io::Write::write_all(&mut file, pem(&der).as_bytes()).and_then(|()| file.sync_all());
    if let Err(error) = written {
        // Half a key would be refused at every later start: leave none.
        let _ = std::fs::remove_file(path);
        return Err(error);
    }
    Ok(DevSigningKey { pkcs8: der.into() })
}

/// `der` as PEM: base64 in lines of 64 between the `PRIVATE KEY` lines.
fn pem(der: &[u8]) -> String {
    let base64 = STANDARD.encode(der);
    let mut pem = format!("{BEGIN}\n");
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(END);
    pem.push('\n');
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("authgate-key-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn a_key_is_written_private_and_read_back_with_its_kid() {
        for alg in [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ] {
            let path = temp_path(&format!("{alg}.pem"));
            let made = DevSigningKey::load_or_create(&path, alg).unwrap();
            let read = DevSigningKey::load_or_create(&path, alg).unwrap();
            assert_eq!(made.pkcs8(), read.pkcs8(), "{alg}");
            let kid = |key: &DevSigningKey| SigningKey::from_pkcs8(alg, key.pkcs8()).unwrap().kid;
            assert_eq!(kid(&made), kid(&read), "{alg}");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with(BEGIN) && text.trim_end().ends_with(END),
                "{text}"
            );
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{alg}");
            }
            assert_eq!(format!("{made:?}"), "DevSigningKey(<redacted>)");
        }
    }

    #[test]
    fn a_file_that_is_not_the_key_asked_for_is_refused_naming_it() {
        let path = temp_path("rsa.pem");
        DevSigningKey::load_or_create(&path, Algorithm::RS256).unwrap();
        let error = DevSigningKey::load_or_create(&path, Algorithm::ES256).unwrap_err();
        assert!(error.to_string().contains("a P-256 key"), "{error}");
        assert!(error.to_string().contains("rsa.pem"), "{error}");

        let junk = temp_path("junk.pem");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        io::Write::write_all(&mut options.open(&junk).unwrap(), b"hunter2").unwrap();
        let error = DevSigningKey::load_or_create(&junk, Algorithm::RS256).unwrap_err();
        assert!(error.to_string().contains("not a PKCS#8 PEM"), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_path("shared.pem");
        DevSigningKey::load_or_create(&path, Algorithm::ES256).unwrap();
        for mode in [0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = DevSigningKey::load_or_create(&path, Algorithm::ES256).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{mode:o}");
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
    }
}
