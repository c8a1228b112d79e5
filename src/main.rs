//! Command line: `bbb-gateway [--config PATH] [--bind ADDR:PORT]`. Loads settings (exit 2 when
//! they are invalid), sets up logging and runs the service.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use bbb_gateway::app::Application;
use bbb_gateway::config;

const USAGE: &str = "usage: bbb-gateway [--config PATH] [--bind ADDR:PORT]";

struct Cli {
    config: PathBuf,
    bind: Option<String>,
}

fn parse_args() -> Result<Cli, String> {
    let mut cli = Cli {
        config: PathBuf::from("settings.toml"),
        bind: None,
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
        if let Err(e) = bind.parse::<std::net::SocketAddr>() {
            eprintln!("bbb-gateway: invalid settings: --bind: not an ADDRESS:PORT: {e}");
            return ExitCode::from(2);
        }
        settings.server.bind = bind;
    }
    let listener = match TcpListener::bind(&settings.server.bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bbb-gateway: cannot bind {}: {e}", settings.server.bind);
            return ExitCode::from(1);
        }
    };
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
