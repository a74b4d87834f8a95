//! A private PostgreSQL cluster started from the machine's server binaries:
//! `dondoc up` keeps one under `.dondoc/`, and every test binary starts a
//! throwaway one on tmpfs.
//!
//! PostgreSQL refuses to run as root, so as root the server binaries run as
//! the unprivileged `postgres` account (created when missing) through
//! `runuser`, and the data and socket folders are handed to that account.
//! The cluster listens on a Unix socket only (`listen_addresses=''`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sqlx::postgres::PgConnectOptions;

/// The account the server runs as when we are root.
const SERVER_ACCOUNT: &str = "postgres";
/// Port number in the socket's file name; no TCP port is opened.
const SOCKET_PORT: u16 = 5432;
/// The cluster's administrator.
pub const SUPERUSER: &str = "postgres";

/// Why the cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No server binaries on this machine.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found. Install them \
         (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; \
         macOS: `brew install postgresql`), or set DONDOC_PG_BINDIR to their folder, or set \
         DATABASE_URL to use an existing server"
    )]
    BinariesMissing,
    /// A command failed.
    #[error("{command} failed: {output}")]
    Command {
        /// What ran.
        command: String,
        /// What it printed.
        output: String,
    },
    /// Filesystem trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Data directory (created and initialised when empty).
    pub data_dir: PathBuf,
    /// Where the Unix socket lives (keep the path short: sockets allow ~100 bytes).
    pub socket_dir: PathBuf,
    /// The superuser's password, set at initdb.
    pub superuser_password: String,
    /// Throwaway: no fsync, no WAL durability. Tests only.
    pub ephemeral: bool,
}

/// A running cluster. Stop it with [`EmbeddedCluster::stop`].
#[derive(Debug, Clone)]
pub struct EmbeddedCluster {
    bindir: PathBuf,
    options: ClusterOptions,
    run_as_server_account: bool,
}

/// Finds the folder holding `initdb`, `pg_ctl` and `postgres`.
pub fn find_binaries() -> Result<PathBuf, EmbeddedError> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Ok(dir) = std::env::var("DONDOC_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return if has_all(&dir) {
            Ok(dir)
        } else {
            Err(EmbeddedError::BinariesMissing)
        };
    }
    // Debian and Ubuntu keep each major version apart; take the newest.
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    candidates.sort();
    if let Some((_, dir)) = candidates.pop() {
        return Ok(dir);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let dir = PathBuf::from(dir);
        if has_all(&dir) {
            return Ok(dir);
        }
    }
    Err(EmbeddedError::BinariesMissing)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(mut command: Command) -> Result<String, EmbeddedError> {
    let description = format!("{command:?}");
    let output = command.stdin(Stdio::null()).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(EmbeddedError::Command {
            command: description,
            output: text,
        })
    }
}

fn ensure_server_account() -> Result<(), EmbeddedError> {
    if Command::new("id")
        .arg(SERVER_ACCOUNT)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success()
    {
        return Ok(());
    }
    let mut add = Command::new("useradd");
    add.args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        SERVER_ACCOUNT,
    ]);
    run(add).map(|_| ())
}

fn hand_to_server_account(path: &Path) -> Result<(), EmbeddedError> {
    let mut chown = Command::new("chown");
    chown.arg("-R").arg(format!("{SERVER_ACCOUNT}:")).arg(path);
    run(chown).map(|_| ())
}

impl EmbeddedCluster {
    /// Initialises the data directory when needed and starts the server.
    /// Blocks until it accepts connections.
    pub fn start(options: ClusterOptions) -> Result<Self, EmbeddedError> {
        let bindir = find_binaries()?;
        let run_as_server_account = is_root();
        if run_as_server_account {
            ensure_server_account()?;
        }
        let cluster = Self {
            bindir,
            options,
            run_as_server_account,
        };
        std::fs::create_dir_all(&cluster.options.socket_dir)?;
        if !cluster.options.data_dir.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        if run_as_server_account {
            hand_to_server_account(&cluster.options.socket_dir)?;
        }
        cluster.pg_ctl_start()?;
        Ok(cluster)
    }

    fn command(&self, binary: &str) -> Command {
        let path = self.bindir.join(binary);
        if self.run_as_server_account {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_ACCOUNT, "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        let data_dir = &self.options.data_dir;
        std::fs::create_dir_all(data_dir)?;
        let pwfile = data_dir
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .join(".dondoc-initdb-pw");
        std::fs::write(&pwfile, &self.options.superuser_password)?;
        if self.run_as_server_account {
            hand_to_server_account(data_dir)?;
            hand_to_server_account(&pwfile)?;
        }
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(data_dir)
            .args([
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        if self.options.ephemeral {
            initdb.arg("--no-sync");
        }
        let result = run(initdb);
        let _ = std::fs::remove_file(&pwfile);
        result.map(|_| ())
    }

    fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        let mut settings = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c port={SOCKET_PORT} \
             -c max_connections=300 -c shared_buffers=128MB",
            self.options.socket_dir.display()
        );
        if self.options.ephemeral {
            settings.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.options.data_dir.join("server.log");
        let mut start = self.command("pg_ctl");
        start
            .arg("start")
            .arg("-w")
            .args(["-t", "60"])
            .arg("-D")
            .arg(&self.options.data_dir)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(settings);
        run(start).map(|_| ())
    }

    /// Stops the server, waiting for it to finish (fast shutdown: open
    /// sessions are disconnected, committed work is kept).
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        let mut stop = self.command("pg_ctl");
        stop.arg("stop")
            .args(["-m", "fast", "-w"])
            .arg("-D")
            .arg(&self.options.data_dir);
        run(stop).map(|_| ())
    }

    /// Stops the server once `pid` has exited, from a detached watcher
    /// process; for throwaway clusters whose owner may not stop them.
    pub fn stop_when_process_exits(
        &self,
        pid: u32,
        also_remove: &Path,
    ) -> Result<(), EmbeddedError> {
        let pg_ctl = self.bindir.join("pg_ctl");
        let as_account = if self.run_as_server_account {
            format!("runuser -u {SERVER_ACCOUNT} -- ")
        } else {
            String::new()
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {as_account}{} stop -m immediate -D '{}' >/dev/null 2>&1; rm -rf '{}'",
            pg_ctl.display(),
            self.options.data_dir.display(),
            also_remove.display()
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(())
    }

    /// Connection options for `database` as the superuser.
    pub fn admin_options(&self, database: &str) -> PgConnectOptions {
        self.connect_options(SUPERUSER, &self.options.superuser_password, database)
    }

    /// Connection options for `database` as `user`.
    pub fn connect_options(&self, user: &str, password: &str, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.options.socket_dir)
            .port(SOCKET_PORT)
            .username(user)
            .password(password)
            .database(database)
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }
}
