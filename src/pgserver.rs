//! A throwaway PostgreSQL server for tests and benchmarks: `initdb` into a temporary
//! directory (as the `postgres` user when running as root, since `initdb` refuses root) and
//! `pg_ctl start` on a free loopback port with trust authentication. A watchdog process stops
//! the server when the process that started it exits, however it exits, so no run leaks a
//! server into the next. Never used by the service itself.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A running PostgreSQL server owned by this process.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// Why the test server could not start.
#[derive(Debug, thiserror::Error)]
#[error("test PostgreSQL: {0}")]
pub struct PgServerError(String);

fn err(e: impl std::fmt::Display) -> PgServerError {
    PgServerError(e.to_string())
}

/// The newest `/usr/lib/postgresql/*/bin` holding `initdb`, or `initdb` on PATH.
pub fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, PgServerError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(err)?;
    Ok(listener.local_addr().map_err(err)?.port())
}

impl PgServer {
    /// initdb + start. Blocking (a few seconds).
    pub fn start() -> Result<Self, PgServerError> {
        let bin = find_bin_dir().ok_or_else(|| {
            PgServerError("no /usr/lib/postgresql/*/bin/initdb: install Debian's postgresql package".into())
        })?;
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bbb-gateway-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(err)?;
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        }
        let server = Self {
            bin,
            dir,
            port: free_port()?,
            as_postgres,
        };
        let data = server.dir.join("data");
        server.pg(
            "initdb",
            &[
                "-D",
                path(&data)?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        server.start_again()?;
        server.watchdog();
        Ok(server)
    }

    /// Runs a PostgreSQL program as the right user.
    fn pg(&self, program: &str, args: &[&str]) -> Result<(), PgServerError> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(&self.dir);
        run(&mut cmd)
    }

    /// (Re)starts the server on its port; waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), PgServerError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            self.port,
            path(&self.dir)?
        );
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        self.pg(
            "pg_ctl",
            &[
                "-D",
                path(&data)?,
                "-l",
                path(&log)?,
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        )
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) -> Result<(), PgServerError> {
        let data = self.dir.join("data");
        self.pg("pg_ctl", &["-D", path(&data)?, "-w", "-m", "fast", "stop"])
    }

    /// A background shell that stops the server once this process is gone.
    fn watchdog(&self) {
        let Ok(data) = path(&self.dir.join("data")).map(str::to_string) else {
            return;
        };
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {data} -m immediate stop",
                pg_ctl.display()
            )
        } else {
            format!("{} -D {data} -m immediate stop", pg_ctl.display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display(),
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, PgServerError> {
        let port = self.port.to_string();
        self.pg(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name],
        )?;
        Ok(self.url(name))
    }

    /// A new database with a unique name.
    pub fn fresh_database(&self) -> Result<String, PgServerError> {
        static N: AtomicU32 = AtomicU32::new(0);
        self.create_database(&format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Ok(data) = path(&self.dir.join("data")) {
            let _ = self.pg("pg_ctl", &["-D", data, "-m", "immediate", "stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> Result<&str, PgServerError> {
    p.to_str()
        .ok_or_else(|| PgServerError("temporary path is not UTF-8".into()))
}

fn run(cmd: &mut Command) -> Result<(), PgServerError> {
    let out = cmd.stdin(Stdio::null()).output().map_err(err)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PgServerError(format!(
            "{:?} failed: {}{}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// The server shared by a whole test binary, started on first use (stopped by the watchdog
/// when the binary exits).
pub fn shared() -> Result<&'static PgServer, PgServerError> {
    static SHARED: std::sync::OnceLock<Result<PgServer, String>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| PgServer::start().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| PgServerError(e.clone()))
}
