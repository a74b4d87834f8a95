//! The command line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use dondoc_identity::{Principal, Role};
use dondoc_time::Clock;
use tokio_util::sync::CancellationToken;

use crate::config;
use crate::embedded::{DataDir, DevSecrets};
use crate::suite::{Suite, SuiteConfig, bootstrap_all, migrate_all};

/// dondoc: directives, tasks and deadline reminders for a provincial People's Committee.
#[derive(Debug, Parser)]
#[command(name = "dondoc", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole suite: a private PostgreSQL under the data folder (or
    /// DATABASE_URL when set), the three services and the gateway.
    Up {
        /// Where the private cluster and development secrets live.
        #[arg(long, default_value = ".dondoc", env = "DONDOC_DATA_DIR")]
        data_dir: PathBuf,
        /// The gateway's address.
        #[arg(long, default_value = config::DEFAULT_GATEWAY, env = "DONDOC_GATEWAY_LISTEN")]
        listen: SocketAddr,
    },
    /// Run one service, configured from the environment.
    Serve {
        /// Which one.
        service: ServiceName,
    },
    /// Create the schemas and roles and apply every migration
    /// (DATABASE_URL: an administrator; DONDOC_<SERVICE>_DB_PASSWORD: role passwords).
    Migrate,
    /// Read a directive document (.txt or .docx) and print the tasks found, offline.
    Parse {
        /// The document.
        file: PathBuf,
        /// Print the JSON format of shared/fixtures/documents/README.md.
        #[arg(long)]
        json: bool,
    },
    /// Check a component's gRPC health: exit 0 when it is serving, 1 otherwise
    /// (for container health checks).
    Health {
        /// host:port of the component.
        addr: String,
        /// A service name to check instead of the server as a whole.
        #[arg(long, default_value = "")]
        service: String,
    },
    /// Print fresh secrets for a deployment, as environment lines: each
    /// component's signing key, the trusted public keys, the JWT secret and
    /// the database role passwords.
    Keygen,
    /// Print a development bearer token (HS256 secret from
    /// DONDOC_JWT_HS256_SECRET or the data folder).
    Token {
        /// Subject, e.g. users/nguyen-van-a.
        #[arg(long)]
        subject: String,
        /// Agency code, e.g. so-ldtbxh.
        #[arg(long)]
        agency: Option<String>,
        /// Roles (office, leader, agency, inspector, subscriber, admin).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Validity in hours.
        #[arg(long, default_value_t = 24)]
        hours: u64,
        /// The data folder of `dondoc up`.
        #[arg(long, default_value = ".dondoc", env = "DONDOC_DATA_DIR")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ServiceName {
    Directives,
    Assignments,
    Notifications,
    Gateway,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up { data_dir, listen } => up(data_dir, listen).await,
        Command::Serve { service } => serve(service).await,
        Command::Migrate => migrate().await,
        Command::Parse { file, json } => parse(file, json),
        Command::Health { addr, service } => health(&addr, service).await,
        Command::Keygen => {
            print!("{}", keygen());
            Ok(())
        }
        Command::Token {
            subject,
            agency,
            roles,
            hours,
            data_dir,
        } => {
            let jwt = dev_jwt(&data_dir)?;
            let roles = roles
                .iter()
                .map(|r| r.parse::<Role>().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if roles.contains(&Role::Service) {
                bail!("the service role is never given to callers");
            }
            let principal = Principal {
                subject,
                agency,
                roles,
            };
            println!(
                "{}",
                dondoc_gateway::mint_token(&jwt, &principal, Duration::from_secs(hours * 3600))
            );
            Ok(())
        }
    }
}

fn dev_jwt(data_dir: &std::path::Path) -> anyhow::Result<dondoc_gateway::JwtConfig> {
    if std::env::var("DONDOC_JWT_HS256_SECRET").is_ok() {
        return config::jwt();
    }
    let secrets = DevSecrets::load_or_create(&DataDir::open(data_dir)?.secrets_path())?;
    Ok(dev_jwt_config(&secrets))
}

fn dev_jwt_config(secrets: &DevSecrets) -> dondoc_gateway::JwtConfig {
    dondoc_gateway::JwtConfig {
        hs256_secret: secrets.jwt_secret.clone(),
        issuer: "dondoc".into(),
        audience: "dondoc".into(),
    }
}

async fn up(data_dir: PathBuf, listen: SocketAddr) -> anyhow::Result<()> {
    let _telemetry = dondoc_telemetry::init("suite");
    let data = DataDir::open(&data_dir)?;
    let secrets = DevSecrets::load_or_create(&data.secrets_path())?;
    let (admin, cluster) = match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(_) => (config::database_options("DATABASE_URL")?, None),
        None => {
            let cluster = tokio::task::block_in_place(|| data.start_cluster(&secrets))?;
            (cluster.admin_options("postgres"), Some(cluster))
        }
    };
    let result = run_suite(&data, &secrets, admin, listen).await;
    if let Some(cluster) = cluster {
        eprintln!("Stopping PostgreSQL…");
        tokio::task::block_in_place(|| cluster.stop()).context("stop PostgreSQL")?;
    }
    result
}

async fn run_suite(
    data: &DataDir,
    secrets: &DevSecrets,
    admin: sqlx::postgres::PgConnectOptions,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let passwords = secrets.passwords();
    bootstrap_all(&admin, &passwords).await?;
    let jwt = dev_jwt_config(secrets);
    let calendar = config::calendar()?;
    let mut suite = Suite::start(SuiteConfig {
        admin,
        passwords,
        keys: secrets.keys()?,
        jwt: jwt.clone(),
        gateway_listen: listen,
        service_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        clock: Clock::system(),
        follow: config::follow()?,
        deadline_policy: dondoc_assignments::DeadlinePolicy {
            calendar: calendar.clone(),
            ..Default::default()
        },
        reminder_policy: dondoc_notifications::ReminderPolicy {
            calendar,
            ..Default::default()
        },
        scheduler: dondoc_notifications::SchedulerSettings::from_env()
            .map_err(anyhow::Error::msg)?,
        shutdown_grace: Duration::from_secs(10),
    })
    .await?;
    let ttl = Duration::from_secs(30 * 24 * 3600);
    let office = Principal {
        subject: "users/van-phong".into(),
        agency: Some("vp-ubnd".into()),
        roles: vec![Role::Office],
    };
    let agency = Principal {
        subject: "users/so-ldtbxh".into(),
        agency: Some("so-ldtbxh".into()),
        roles: vec![Role::Agency],
    };
    let office_token = dondoc_gateway::mint_token(&jwt, &office, ttl);
    let agency_token = dondoc_gateway::mint_token(&jwt, &agency, ttl);
    let tokens_path = data.0.join("tokens.env");
    std::fs::write(
        &tokens_path,
        format!(
            "DONDOC_GATEWAY={}\nOFFICE_TOKEN={office_token}\nAGENCY_TOKEN={agency_token}\n",
            suite.gateway
        ),
    )?;
    println!(
        "dondoc is up.\n\n  gateway   {gw}  (gRPC, plaintext, with reflection)\n  data      {data}\n\n\
         Development credentials (valid 30 days; also in {tokens}):\n\n  \
         office  users/van-phong  for agencies/vp-ubnd\n    Bearer {office_token}\n\n  \
         agency  users/so-ldtbxh  for agencies/so-ldtbxh\n    Bearer {agency_token}\n\n\
         Try:  grpcurl -plaintext {gw} list\n\nCtrl-C stops everything.",
        gw = suite.gateway,
        data = data.0.display(),
        tokens = tokens_path.display(),
    );
    tokio::select! {
        _ = dondoc_server::shutdown_signal() => {
            eprintln!("Stopping…");
        }
        stopped = suite.stopped() => {
            if let Some((name, result)) = stopped {
                eprintln!("The {name} stopped unexpectedly: {result:?}");
            }
        }
    }
    suite.stop().await
}

async fn serve(service: ServiceName) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        dondoc_server::shutdown_signal().await;
        signal.cancel();
    });
    let calendar = config::calendar()?;
    match service {
        ServiceName::Directives => {
            let _t = dondoc_telemetry::init("directives");
            let app = dondoc_directives::App::build(
                config::service("directives", config::DEFAULT_DIRECTIVES)?,
                Clock::system(),
                shutdown,
            )
            .await?;
            tracing::info!(addr = %app.local_addr(), "directives serving");
            app.run_until_stopped().await?;
        }
        ServiceName::Assignments => {
            let _t = dondoc_telemetry::init("assignments");
            let app = dondoc_assignments::App::build(
                dondoc_assignments::AssignmentsConfig {
                    service: config::service("assignments", config::DEFAULT_ASSIGNMENTS)?,
                    directives: config::upstream(
                        "DONDOC_DIRECTIVES_URL",
                        config::DEFAULT_DIRECTIVES,
                    )?,
                    policy: dondoc_assignments::DeadlinePolicy {
                        calendar,
                        ..Default::default()
                    },
                },
                Clock::system(),
                shutdown,
            )
            .await?;
            tracing::info!(addr = %app.local_addr(), "assignments serving");
            app.run_until_stopped().await?;
        }
        ServiceName::Notifications => {
            let _t = dondoc_telemetry::init("notifications");
            let app = dondoc_notifications::App::build(
                dondoc_notifications::NotificationsConfig {
                    service: config::service("notifications", config::DEFAULT_NOTIFICATIONS)?,
                    assignments: config::upstream(
                        "DONDOC_ASSIGNMENTS_URL",
                        config::DEFAULT_ASSIGNMENTS,
                    )?,
                    directives: config::upstream(
                        "DONDOC_DIRECTIVES_URL",
                        config::DEFAULT_DIRECTIVES,
                    )?,
                    policy: dondoc_notifications::ReminderPolicy {
                        calendar,
                        ..Default::default()
                    },
                    scheduler: dondoc_notifications::SchedulerSettings::from_env()
                        .map_err(anyhow::Error::msg)?,
                },
                Clock::system(),
                shutdown,
            )
            .await?;
            tracing::info!(addr = %app.local_addr(), "notifications serving");
            app.run_until_stopped().await?;
        }
        ServiceName::Gateway => {
            let _t = dondoc_telemetry::init("gateway");
            let key = dondoc_identity::KeyPair::from_base64(
                &std::env::var("DONDOC_ASSERTION_KEY")
                    .context("DONDOC_ASSERTION_KEY must be set")?,
            )
            .map_err(anyhow::Error::msg)?;
            let extras = dondoc_gateway::GatewayExtras::from_env()?;
            let gateway = dondoc_gateway::Gateway::build_with(
                dondoc_gateway::GatewayConfig {
                    listen: std::env::var("DONDOC_LISTEN")
                        .unwrap_or_else(|_| config::DEFAULT_GATEWAY.into())
                        .parse()
                        .context("DONDOC_LISTEN")?,
                    directives: config::upstream(
                        "DONDOC_DIRECTIVES_URL",
                        config::DEFAULT_DIRECTIVES,
                    )?,
                    assignments: config::upstream(
                        "DONDOC_ASSIGNMENTS_URL",
                        config::DEFAULT_ASSIGNMENTS,
                    )?,
                    notifications: config::upstream(
                        "DONDOC_NOTIFICATIONS_URL",
                        config::DEFAULT_NOTIFICATIONS,
                    )?,
                    jwt: config::jwt()?,
                    signer: dondoc_identity::AssertionSigner::new(
                        "gateway",
                        key,
                        crate::suite::ASSERTION_TTL,
                    ),
                    shutdown_grace: Duration::from_secs(config::parsed_secs(
                        "DONDOC_SHUTDOWN_GRACE_SECS",
                        20,
                    )?),
                },
                extras,
                shutdown,
            )
            .await?;
            tracing::info!(addr = %gateway.local_addr(), "gateway serving");
            gateway.run_until_stopped().await?;
        }
    }
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    let _t = dondoc_telemetry::init("migrate");
    let admin = config::database_options("DATABASE_URL")?;
    let password = |name: &str| std::env::var(name).with_context(|| format!("{name} must be set"));
    let passwords = crate::suite::RolePasswords {
        directives: password("DONDOC_DIRECTIVES_DB_PASSWORD")?,
        assignments: password("DONDOC_ASSIGNMENTS_DB_PASSWORD")?,
        notifications: password("DONDOC_NOTIFICATIONS_DB_PASSWORD")?,
    };
    bootstrap_all(&admin, &passwords).await?;
    migrate_all(&admin, &passwords).await?;
    println!("Schemas, roles and migrations are up to date.");
    Ok(())
}

fn parse(file: PathBuf, json: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    let is_docx = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("docx"))
        || bytes.starts_with(b"PK\x03\x04");
    let document = if is_docx {
        dondoc_docparse::parse_docx(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
    } else {
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{} is not UTF-8 text", file.display()))?;
        dondoc_docparse::parse_text(&text)
    };
    let source = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&dondoc_docparse::to_fixture_json(&source, &document))?
        );
        return Ok(());
    }
    let header = &document.document;
    println!(
        "{} {} — {}",
        header.kind.as_str(),
        header
            .number
            .as_deref()
            .or(header.symbol.as_deref())
            .unwrap_or("(no number)"),
        header.subject.as_deref().unwrap_or("(no subject)")
    );
    for task in &document.tasks {
        let due = match (&task.due, &task.recurrence) {
            (Some(due), _) => due.to_string(),
            (None, Some(r)) => format!("{r:?}"),
            (None, None) => "no deadline".into(),
        };
        println!(
            "  {:<8} {:<12} lead: {}",
            task.reference,
            due,
            task.lead.join("; ")
        );
    }
    for warning in &document.warnings {
        println!("  warning: {warning}");
    }
    Ok(())
}

async fn health(addr: &str, service: String) -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .context("address")?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3));
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connect to {addr}"))?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest { service })
        .await
        .context("health check")?
        .into_inner()
        .status;
    if status == ServingStatus::Serving as i32 {
        println!("SERVING");
        Ok(())
    } else {
        bail!(
            "not serving ({})",
            ServingStatus::try_from(status)
                .map(|s| s.as_str_name())
                .unwrap_or("unknown")
        )
    }
}

/// Fresh deployment secrets as `NAME=value` lines.
pub fn keygen() -> String {
    use dondoc_identity::{AssertionSigner, KeyPair, TrustedKeys};
    let mut out = String::from("# dondoc deployment secrets: keep this file private.\n");
    let mut trusted = TrustedKeys::default();
    for component in ["gateway", "directives", "assignments", "notifications"] {
        let key = KeyPair::generate();
        out.push_str(&format!(
            "DONDOC_{}_ASSERTION_KEY={}\n",
            component.to_uppercase(),
            key.secret_base64()
        ));
        trusted.trust(&AssertionSigner::new(
            component,
            key,
            crate::suite::ASSERTION_TTL,
        ));
    }
    out.push_str(&format!("DONDOC_TRUSTED_KEYS={}\n", trusted.to_spec()));
    out.push_str(&format!(
        "DONDOC_JWT_HS256_SECRET={}\n",
        dondoc_database::generate_password()
    ));
    for component in ["DIRECTIVES", "ASSIGNMENTS", "NOTIFICATIONS"] {
        out.push_str(&format!(
            "DONDOC_{component}_DB_PASSWORD={}\n",
            dondoc_database::generate_password()
        ));
    }
    out
}
