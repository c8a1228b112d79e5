//! Command line: `bbb-gateway [--config PATH] [--bind ADDR:PORT] [--simulate-only]`, or
//! `bbb-gateway migrate-store --from FILE --to postgres://...`. Loads settings (exit 2 when
//! they are invalid), sets up logging and runs the service, or with `--simulate-only` only the
//! BBB simulator (the BBB side of benchmarks).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bbb_gateway::app::{self, Application};
use bbb_gateway::config;
use clap::Parser;

/// jemalloc instead of glibc's allocator, returning freed pages at once: 10,000 logins at a burst
/// leave glibc's heap fragmented (idle sockets afterwards, README "Benchmarks").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start (the crate's documented way to set them).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"dirty_decay_ms:0,muzzy_decay_ms:0\0";

/// WebSocket gateway that hands out signed BigBlueButton join URLs.
#[derive(Debug, Parser)]
#[command(name = "bbb-gateway", version, about)]
struct Cli {
    /// The settings file (TOML); `/admin/reload` re-reads it.
    #[arg(long, value_name = "PATH", default_value = "settings.toml")]
    config: PathBuf,
    /// Listen on ADDR:PORT instead of `server.bind`.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<String>,
    /// Serve only the BBB simulator (the BBB side of benchmarks).
    #[arg(long)]
    simulate_only: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Copy an SQLite database (stop the service first) into an empty PostgreSQL database.
    MigrateStore {
        /// The SQLite file (`server.database` of the single instance).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The PostgreSQL URL the cluster will use (`postgres://user:pass@host/db`).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// `migrate-store`: prints one line per copied table.
async fn migrate_store(from: PathBuf, to: String) -> ExitCode {
    match bbb_gateway::store::transfer::sqlite_to_postgres(&from, &to).await {
        Ok(copied) => {
            for c in copied {
                println!("{}: {} rows", c.table, c.rows);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bbb-gateway: migrate-store: {e}");
            ExitCode::from(1)
        }
    }
}

/// `server.instance_name` once known: every log line then names the instance.
static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            use std::io::Write;
            let ts = buf.timestamp();
            match INSTANCE.get() {
                Some(name) => writeln!(
                    buf,
                    "[{ts} {} {} {name}] {}",
                    record.level(),
                    record.target(),
                    record.args()
                ),
                None => writeln!(
                    buf,
                    "[{ts} {} {}] {}",
                    record.level(),
                    record.target(),
                    record.args()
                ),
            }
        })
        .init();
    // Bad arguments print the problem and usage and exit with status 2.
    let cli = Cli::parse();
    if let Some(Command::MigrateStore { from, to }) = cli.command {
        return migrate_store(from, to).await;
    }
    let mut settings = match config::load(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bbb-gateway: invalid settings: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(bind) = cli.bind {
        settings.server.bind = bind;
    }
    let addr: SocketAddr = match settings.server.bind.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bbb-gateway: invalid settings: --bind: not an ADDRESS:PORT: {e}");
            return ExitCode::from(2);
        }
    };
    let postgres = bbb_gateway::store::postgres::is_postgres_url(&settings.server.database.to_string_lossy());
    // PostgreSQL is checked (reachable, schema not newer, writable) when the app opens it.
    if !cli.simulate_only && !postgres {
        // Before the port opens: a database that cannot take a write is a configuration error.
        let database = settings.server.database.display().to_string();
        if let Err(e) = bbb_gateway::store::check_writable(&settings.server.database) {
            eprintln!(
                "bbb-gateway: database {database} is not usable: {}",
                e.0.replace('\n', " ")
            );
            return ExitCode::from(2);
        }
    }
    let listener = match app::bind_listener(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bbb-gateway: cannot bind {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    if cli.simulate_only {
        log::info!("simulator only, listening on {addr}");
        return match app::simulator_only(&settings, listener) {
            Ok(server) => match server.await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bbb-gateway: {e}");
                    ExitCode::from(1)
                }
            },
            Err(e) => {
                eprintln!("bbb-gateway: {e}");
                ExitCode::from(1)
            }
        };
    }
    log::info!(
        "listening on {} (public URL {})",
        settings.server.bind,
        settings.public_url()
    );
    let app = match Application::build(settings, listener, Some(cli.config)).await {
        Ok(app) => {
            let _ = INSTANCE.set(app.services().instance_name.to_string());
            app
        }
        Err(e) => {
            eprintln!("bbb-gateway: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    match app.run_until_terminated().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bbb-gateway: {e}");
            ExitCode::from(1)
        }
    }
}
