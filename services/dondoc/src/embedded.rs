//! The embedded default: a private PostgreSQL cluster and development
//! secrets under `.dondoc/`, kept across restarts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dondoc_database::embedded::{ClusterOptions, EmbeddedCluster};
use dondoc_identity::KeyPair;
use serde::{Deserialize, Serialize};

use crate::suite::{RolePasswords, SuiteKeys};

/// Secrets generated on first start and reused afterwards, so that data,
/// credentials and tokens survive a restart.
#[derive(Debug, Serialize, Deserialize)]
pub struct DevSecrets {
    /// The cluster superuser's password.
    pub superuser_password: String,
    /// Service role passwords: directives, assignments, notifications.
    pub role_passwords: [String; 3],
    /// Signing key seeds: gateway, directives, assignments, notifications.
    pub keys: [String; 4],
    /// The development HS256 secret for bearer tokens.
    pub jwt_secret: String,
}

impl DevSecrets {
    fn generate() -> Self {
        let key = || KeyPair::generate().secret_base64();
        Self {
            superuser_password: dondoc_database::generate_password(),
            role_passwords: std::array::from_fn(|_| dondoc_database::generate_password()),
            keys: [key(), key(), key(), key()],
            jwt_secret: dondoc_database::generate_password(),
        }
    }

    /// Reads `path`, or creates it (readable by its owner only).
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            return serde_json::from_str(&text)
                .with_context(|| format!("parse {}", path.display()));
        }
        let secrets = Self::generate();
        std::fs::write(path, serde_json::to_vec_pretty(&secrets)?)
            .with_context(|| format!("write {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(secrets)
    }

    /// The role passwords.
    pub fn passwords(&self) -> RolePasswords {
        RolePasswords {
            directives: self.role_passwords[0].clone(),
            assignments: self.role_passwords[1].clone(),
            notifications: self.role_passwords[2].clone(),
        }
    }

    /// The signing keys.
    pub fn keys(&self) -> anyhow::Result<SuiteKeys> {
        let key = |i: usize| KeyPair::from_base64(&self.keys[i]).map_err(anyhow::Error::msg);
        Ok(SuiteKeys {
            gateway: key(0)?,
            directives: key(1)?,
            assignments: key(2)?,
            notifications: key(3)?,
        })
    }
}

/// The `.dondoc/` folder.
#[derive(Debug, Clone)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// Creates the folder if needed.
    pub fn open(path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let path: PathBuf = path.into();
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        let path = path.canonicalize()?;
        Ok(Self(path))
    }

    /// Starts (initialising on first use) the private cluster.
    pub fn start_cluster(&self, secrets: &DevSecrets) -> anyhow::Result<EmbeddedCluster> {
        // Unix socket paths are limited to about 100 bytes: fall back to a
        // short private folder when the project lives deep in the tree.
        let mut socket_dir = self.0.join("run");
        if socket_dir.as_os_str().len() > 80 {
            socket_dir = std::env::temp_dir().join(format!("dondoc-{}", std::process::id()));
        }
        EmbeddedCluster::start(ClusterOptions {
            data_dir: self.0.join("pgdata"),
            socket_dir,
            superuser_password: secrets.superuser_password.clone(),
            ephemeral: false,
        })
        .context("start the private PostgreSQL cluster")
    }

    /// Where the secrets live.
    pub fn secrets_path(&self) -> PathBuf {
        self.0.join("secrets.json")
    }
}
