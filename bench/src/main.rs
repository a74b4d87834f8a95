//! `dondoc-bench`: every figure measured side by side with a real peer on
//! the same machine in the same run, reported as a ratio. See BENCHMARKS.md.

#![forbid(unsafe_code)]
#![allow(clippy::expect_used)]

mod env;
mod load;
mod peers;
mod report;
mod scenarios;

use std::time::Duration;

use clap::{Parser, Subcommand};

/// The allocator the `dondoc` binary ships with (see its `main.rs`), so that
/// the gateway and the suite this process runs are measured as shipped. The
/// peers started from this executable (echo, broadcast) use it too, which
/// only makes them faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The agency page as the assignments service sends it (see
/// `services/assignments/src/storage/tasks.rs`, `list`), with the agency
/// inlined, for EXPLAIN next to hand-written SQL.
pub const SERVICE_AGENCY_PAGE: &str = "SELECT * FROM assignments.tasks WHERE true AND \
    (lead_agencies @> ARRAY['ag-17'] OR coordinating_agencies @> ARRAY['ag-17']) \
    ORDER BY COALESCE(due_date, DATE '9999-12-31'), id LIMIT 51";

#[derive(Parser, Debug)]
#[command(
    name = "dondoc-bench",
    about = "Benchmarks dondoc side by side with real peers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    args: Args,
}

/// Options every scenario takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Seconds each measured run lasts (default 10; 2 with --quick).
    #[arg(long, global = true)]
    pub(crate) duration: Option<u64>,
    /// Calls in flight at once (workers).
    #[arg(long, global = true, default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// HTTP/2 connections the workers share.
    #[arg(long, global = true, default_value_t = 8)]
    pub(crate) connections: usize,
    /// Small sizes and short runs: the whole set in about a minute.
    #[arg(long, global = true)]
    pub(crate) quick: bool,
    /// Also print the results as JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[arg(skip = Duration::ZERO)]
    pub(crate) duration_resolved: Duration,
}

impl Args {
    fn resolve(mut self) -> Self {
        let secs = self.duration.unwrap_or(if self.quick { 2 } else { 10 });
        self.duration_resolved = Duration::from_secs(secs.clamp(1, 60));
        self
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// 1. Gateway overhead against nginx grpc_pass.
    Gateway,
    /// 2. Write path against pgbench running the same SQL.
    Write,
    /// 3. Read path at province scale (1,000,000 tasks).
    Read,
    /// 4. Idle notification streams and fan-out against a tonic broadcast server.
    Subscribers,
    /// 5. Reminder pipeline against pgbench's SKIP LOCKED claim.
    Reminders,
    /// 6. Latency floor against a stock tonic echo server.
    Latency,
    /// Every scenario in turn.
    All,
    /// (internal) The broadcast reference server, for memory measurements.
    #[command(hide = true)]
    ServeBroadcast,
    /// (internal) The stock tonic echo server, in its own process.
    #[command(hide = true)]
    ServeEcho,
    /// (internal) A benchmark gateway in front of one backend (echo), in
    /// its own process.
    #[command(hide = true)]
    ServeGateway {
        /// The backend every route goes to.
        #[arg(long)]
        backend: std::net::SocketAddr,
    },
    /// (internal) The notifications service alone, for memory measurements.
    #[command(hide = true)]
    ServeNotifications {
        /// The cluster's socket folder.
        socket_dir: String,
    },
}

type Scenario = for<'a> fn(
    &'a Args,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = anyhow::Result<Vec<report::Row>>> + 'a>,
>;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

/// Whether the run logs as `dondoc up` does (`DONDOC_BENCH_TELEMETRY`),
/// nginx with its access log on.
fn logging() -> bool {
    std::env::var_os("DONDOC_BENCH_TELEMETRY").is_some()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // What `dondoc up` installs (`DONDOC_LOG`, default `info`: the server
    // spans and the gateway's access log, written to stderr), in the bench
    // and in its children (whose stderr is discarded); without it, tracing
    // costs what it does with no subscriber.
    let _telemetry = logging().then(|| dondoc_telemetry::init("bench"));
    let args = cli.args.resolve();
    let all: [(&str, Scenario); 6] = [
        ("gateway", |a| Box::pin(scenarios::gateway(a))),
        ("write", |a| Box::pin(scenarios::write(a))),
        ("read", |a| Box::pin(scenarios::read(a))),
        ("subscribers", |a| Box::pin(scenarios::subscribers(a))),
        ("reminders", |a| Box::pin(scenarios::reminders(a))),
        ("latency", |a| Box::pin(scenarios::latency(a))),
    ];
    let chosen: Vec<&str> = match &cli.command {
        Command::ServeBroadcast => {
            exit_when_stdin_closes();
            return peers::serve_broadcast().await;
        }
        Command::ServeEcho => {
            exit_when_stdin_closes();
            return peers::serve_echo().await;
        }
        Command::ServeGateway { backend } => {
            exit_when_stdin_closes();
            return env::serve_gateway(*backend).await;
        }
        Command::ServeNotifications { socket_dir } => {
            exit_when_stdin_closes();
            return serve_notifications(socket_dir).await;
        }
        Command::All => all.iter().map(|(n, _)| *n).collect(),
        Command::Gateway => vec!["gateway"],
        Command::Write => vec!["write"],
        Command::Read => vec!["read"],
        Command::Subscribers => vec!["subscribers"],
        Command::Reminders => vec!["reminders"],
        Command::Latency => vec!["latency"],
    };
    print_machine(&args);
    let mut rows = Vec::new();
    for (name, scenario) in all.iter().filter(|(n, _)| chosen.contains(n)) {
        println!("== {name}");
        let started = std::time::Instant::now();
        match scenario(&args).await {
            Ok(mut r) => rows.append(&mut r),
            Err(error) => {
                println!("  {name} failed: {error:#}");
                rows.push(report::Row::info(
                    name,
                    format!("FAILED: {error}"),
                    f64::NAN,
                    f64::NAN,
                    "",
                ));
            }
        }
        println!("  ({name} took {:.1} s)", started.elapsed().as_secs_f64());
    }
    report::print(&rows);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report::json(&rows))?);
    }
    Ok(())
}

/// In a child process: exits once stdin reaches its end. The parent holds
/// the other end of the pipe (`scenarios::spawn_child`), so the child goes
/// when the parent drops it or dies without killing it. A plain thread:
/// tokio's `io-std` is not among the workspace's features.
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });
}

fn print_machine(args: &Args) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    println!(
        "machine: {} cores, {cpu}, {mem}; runs of {} s, {} workers over {} connections{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.duration_resolved.as_secs(),
        args.concurrency,
        args.connections,
        if args.quick { " (quick)" } else { "" }
    );
}

/// The suite in this process, on the cluster at `socket_dir`; prints
/// `READY <notifications addr> <assertion>` (an assertion for an agency
/// user of `so-bench`, signed with the suite's gateway key), so that the
/// parent can open streams straight to the notifications service and read
/// this process's memory.
async fn serve_notifications(socket_dir: &str) -> anyhow::Result<()> {
    use dondoc_identity::{AssertionSigner, Principal, Role};
    let admin = sqlx::postgres::PgConnectOptions::new()
        .socket(socket_dir)
        .port(5432)
        .username(dondoc_database::embedded::SUPERUSER)
        .password(env::PASSWORD)
        .database(env::DATABASE);
    let keys = dondoc::suite::SuiteKeys::generate();
    let gateway = AssertionSigner::new("gateway", keys.gateway.clone(), Duration::from_secs(3600));
    let running = env::Running::start_on(admin, keys).await?;
    let assertion = gateway.sign(&Principal {
        subject: "users/bench-agency".into(),
        agency: Some("so-bench".into()),
        roles: vec![Role::Agency],
    });
    println!("READY {} {assertion}", running.suite.notifications);
    std::future::pending::<()>().await;
    Ok(())
}
