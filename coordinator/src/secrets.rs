//! The coordinator's secrets, created at its first start in its data directory, each in a
//! file of mode 0600: the API token (for `bramble`), the join token (boards' MQTT password)
//! and the coordinator's own MQTT password.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: empty; delete it to have a new one made")]
    Empty { path: PathBuf },
}

pub const API_TOKEN_FILE: &str = "api-token";
pub const JOIN_TOKEN_FILE: &str = "join-token";
pub const MQTT_PASSWORD_FILE: &str = "mqtt-password";

#[derive(Debug, Clone)]
pub struct Tokens {
    pub api: String,
    pub join: String,
    pub mqtt_password: String,
    /// Which files were made now (their tokens are printed once).
    pub created: Vec<PathBuf>,
}

/// Reads the tokens of `data_dir`, making those that are missing.
pub fn load_or_create(data_dir: &Path) -> Result<Tokens, SecretError> {
    let mut created = Vec::new();
    let mut one = |name: &str| -> Result<String, SecretError> {
        let path = data_dir.join(name);
        let io = |source| SecretError::Io { path: path.clone(), source };
        match fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Err(SecretError::Empty { path }),
            Ok(text) => Ok(text.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = random_token();
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(format!("{token}\n").as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                created.push(path.clone());
                Ok(token)
            }
            Err(e) => Err(io(e)),
        }
    };
    let api = one(API_TOKEN_FILE)?;
    let join = one(JOIN_TOKEN_FILE)?;
    let mqtt_password = one(MQTT_PASSWORD_FILE)?;
    Ok(Tokens { api, join, mqtt_password, created })
}

/// 32 random bytes (rand's thread generator: ChaCha seeded by the kernel), as 64 hex digits.
fn random_token() -> String {
    use rand::Rng;
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_made_once_private_and_then_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create(dir.path()).expect("made");
        assert_eq!(first.created.len(), 3);
        assert_eq!(first.api.len(), 64);
        assert_ne!(first.api, first.join);
        let mode = fs::metadata(dir.path().join(API_TOKEN_FILE)).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(dir.path()).expect("read");
        assert!(again.created.is_empty());
        assert_eq!((again.api, again.join), (first.api, first.join));
    }

    #[test]
    fn an_emptied_token_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(JOIN_TOKEN_FILE), "\n").expect("write");
        let error = load_or_create(dir.path()).expect_err("refused");
        assert!(error.to_string().contains("join-token"), "{error}");
    }
}
