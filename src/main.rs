//! Command line: `bbb-gateway [--config PATH] [--bind ADDR:PORT] [--simulate-only]`. Loads
//! settings (exit 2 when they are invalid), sets up logging and runs the service, or with
//! `--simulate-only` only the BBB simulator (the BBB side of benchmarks).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bbb_gateway::app::{self, Application};
use bbb_gateway::config;

const USAGE: &str = "usage: bbb-gateway [--config PATH] [--bind ADDR:PORT] [--simulate-only]";

struct Cli {
    config: PathBuf,
    bind: Option<String>,
    simulate_only: bool,
}

fn parse_args() -> Result<Cli, String> {
    let mut cli = Cli {
        config: PathBuf::from("settings.toml"),
        bind: None,
        simulate_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--config" => cli.config = PathBuf::from(value("--config")?),
            "--bind" => cli.bind = Some(value("--bind")?),
            "--simulate-only" => cli.simulate_only = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(cli)
}

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("bbb-gateway: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
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
        Ok(app) => app,
        Err(e) => {
            eprintln!("bbb-gateway: {e}");
            return ExitCode::from(1);
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bbb-gateway: {e}");
            ExitCode::from(1)
        }
    }
}
