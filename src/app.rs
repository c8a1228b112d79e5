//! Startup as a library function: open the store, start the actors, and serve HTTP on a given
//! `TcpListener` (port 0 in tests). `main` and the integration tests both go through here.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};

use crate::balancer::{BalancerSettings, BbbBalancer};
use crate::bbb::client::{tls_config, BbbClient};
use crate::cluster::Cluster;
pub use crate::config::complete_for_listener;
use crate::config::{ConfigHandle, Settings};
use crate::http;
use crate::metrics::Metrics;
use crate::permissions::PermissionActor;
use crate::registry::SessionRegistry;
pub use crate::services::Services;
use crate::simulator::SimulatorState;
use crate::store::postgres::{is_postgres_url, PgStore};
use crate::store::{Store, StoreResult};

/// The HTTP writer stops taking body chunks once its buffer holds this many bytes, then flushes.
/// actix-http starts every connection's write buffer at 8 KiB and keeps it at whatever size it
/// grew to (up to 128 KiB). With 1, the writer takes one chunk (a WebSocket body hands out at
/// most `outbound::WRITER_CHUNK_BYTES`) and flushes it before the next, so the buffer never
/// grows (idle memory, README "Benchmarks").
pub const WRITE_BUFFER_FILL: usize = 1;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// A running service: its HTTP server future, the port it listens on, its actors.
pub struct Application {
    server: Server,
    port: u16,
    services: Services,
    grace: Duration,
}

impl Application {
    /// Opens the store, starts the actors and binds the HTTP server to `listener`.
    /// `config_path` is the file `/admin/reload` re-reads.
    pub async fn build(
        mut settings: Settings,
        listener: TcpListener,
        config_path: Option<PathBuf>,
    ) -> Result<Application, StartError> {
        let local = listener
            .local_addr()
            .map_err(|e| StartError(format!("listener: {e}")))?;
        let port = local.port();
        complete_for_listener(&mut settings, local);
        let (store, pg) = open_store(&settings).await?;
        let instance_name = instance_name(&settings, port);
        let cluster = match pg {
            Some(pg) => Some(
                Cluster::start(pg, instance_name.clone())
                    .await
                    .map_err(|e| StartError(format!("{DATABASE_REFUSED} (PostgreSQL): {e}")))?,
            ),
            None => None,
        };
        let moderation = load(store.load_moderation().await)?;
        let grants = load(store.load_role_grants().await)?;
        let perms = PermissionActor::new(&settings, store.clone(), moderation, grants)
            .with_cluster(cluster.clone())
            .start();
        let registry = SessionRegistry::new(cluster.clone()).start();
        // In a cluster every metric carries the instance name; alone, `bbb_gateway_instance_info`
        // names it.
        let metrics = if cluster.is_some() {
            Metrics::for_instance(&instance_name)
        } else {
            Metrics::new()
        };
        metrics.set_instance_info(&instance_name);
        let records = load(store.load_meetings().await)?;
        let overrides = load(store.load_server_overrides().await)?;
        // In a cluster the servers' health, load, charges and version live in the database:
        // taken before serving, so this instance starts with the cluster's view.
        let server_rows = match &cluster {
            Some(cluster) => load(cluster.server_rows().await)?,
            None => Vec::new(),
        };
        let tls =
            tls_config(&settings.bbb.tls_ca_file).map_err(|e| StartError(format!("bbb.tls_ca_file: {e}")))?;
        let client = BbbClient::new(
            std::time::Duration::from_millis(settings.bbb.request_timeout_ms),
            tls,
            metrics.clone(),
        );
        let balancer = BbbBalancer::new(
            BalancerSettings::from_settings(&settings.bbb, settings.public_url()),
            &settings.bbb.servers,
            client,
            store.clone(),
            metrics.clone(),
            records,
            overrides,
        )
        .with_cluster(cluster.clone())
        .with_server_rows(server_rows)
        .start();
        if let Some(cluster) = &cluster {
            crate::relay::start(
                cluster,
                crate::relay::Targets {
                    registry: registry.clone(),
                    balancer: balancer.clone(),
                    perms: perms.clone(),
                },
            )
            .await;
            log::info!("cluster: instance={} joined", cluster.name());
        }
        let simulator = settings.simulator.enabled.then(|| {
            web::Data::new(SimulatorState::new(
                settings.simulator.secret.expose().to_string(),
                settings.public_url(),
            ))
        });
        let grace = Duration::from_millis(settings.server.shutdown_grace_ms);
        let config = ConfigHandle::new(settings, config_path);
        let services = Services {
            config,
            store,
            perms,
            registry,
            balancer,
            metrics,
            local_addr: local,
            shutdown: Arc::new(tokio::sync::watch::channel(false).0),
            cluster,
            instance_name: instance_name.into(),
        };
        let data = web::Data::new(services.clone());
        let server = HttpServer::new(move || {
            let simulator = simulator.clone();
            App::new()
                .app_data(data.clone())
                .configure(http::routes)
                .configure(move |cfg| {
                    if let Some(state) = simulator {
                        crate::simulator::configure(cfg, state);
                    }
                })
        })
        .h1_write_buffer_size(WRITE_BUFFER_FILL)
        .listen(listener)
        .map_err(|e| StartError(format!("cannot listen: {e}")))?
        // Signals are handled by `run_until_terminated`, which closes the sockets first; the
        // server's own grace is a second longer than the sessions'.
        .disable_signals()
        .shutdown_timeout(grace.as_secs() + 1)
        .run();
        Ok(Application {
            server,
            port,
            services,
            grace,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until the server is stopped through its handle.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully: no new connections, every socket
    /// answers what is in flight (at most `server.shutdown_grace_ms`) and is closed with 1012.
    pub async fn run_until_terminated(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let services = self.services.clone();
        let grace = self.grace;
        actix_web::rt::spawn(async move {
            terminated().await;
            log::info!(
                "shutting down: closing sockets with 1012 (grace {} ms)",
                grace.as_millis()
            );
            services.shutdown.send_replace(true);
            handle.stop(true).await;
        });
        let served = self.server.await;
        if let Some(cluster) = &self.services.cluster {
            // The others stop counting this instance's sockets now, not when its heartbeat expires.
            let left = tokio::time::timeout(std::time::Duration::from_secs(2), cluster.leave()).await;
            if !matches!(left, Ok(Ok(()))) {
                log::warn!("cluster: instance={} could not sign off", cluster.name());
            }
        }
        served
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn terminated() {
    use actix_rt::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            futures_util::future::select(Box::pin(term.recv()), Box::pin(int.recv())).await;
        }
        _ => {
            log::error!("cannot listen for signals; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

/// `server.instance_name`, or the host name and the bound port.
fn instance_name(settings: &Settings, port: u16) -> String {
    if !settings.server.instance_name.is_empty() {
        return settings.server.instance_name.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{port}")
}

/// Opens the configured store: PostgreSQL for a `postgres://` URL, else the SQLite file.
/// Returns the PostgreSQL handle too (the cluster's coordination needs it).
async fn open_store(settings: &Settings) -> Result<(Store, Option<PgStore>), StartError> {
    let database = settings.server.database.to_string_lossy().to_string();
    if is_postgres_url(&database) {
        let pg = PgStore::open(&database)
            .await
            .map_err(|e| StartError(format!("{DATABASE_REFUSED} (PostgreSQL): {e}")))?;
        return Ok((Store::new(pg.clone()), Some(pg)));
    }
    let db_path = settings.server.database.clone();
    let store = web::block(move || Store::open_sqlite(&db_path))
        .await
        .map_err(|e| StartError(format!("store: {e}")))?
        .map_err(|e| StartError(format!("{DATABASE_REFUSED} {database}: {e}")))?;
    Ok((store, None))
}

/// How a start failure caused by the database begins (such a failure exits with status 2).
const DATABASE_REFUSED: &str = "cannot open database";

impl StartError {
    /// The process exit status for this failure: 2 for a database that cannot be used
    /// (unwritable, unreachable, or a schema newer than this build), else 1.
    pub fn exit_code(&self) -> u8 {
        if self.0.starts_with(DATABASE_REFUSED) {
            2
        } else {
            1
        }
    }
}

/// Asks the store for startup data; any failure stops the start.
fn load<T>(result: StoreResult<T>) -> Result<T, StartError> {
    result.map_err(|e| StartError(e.to_string()))
}

/// Binds a listening socket with a deep accept backlog, so thousands of browsers connecting in
/// the same second are queued rather than refused (std's `TcpListener::bind` uses 128).
pub fn bind_listener(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Serves only the BBB simulator (and `/healthz`) on `listener`: the BBB side of benchmarks,
/// in its own process so its CPU and its counters are separate from the gateway's.
pub fn simulator_only(settings: &Settings, listener: TcpListener) -> Result<Server, StartError> {
    let public_url = match listener.local_addr() {
        Ok(addr) if settings.server.public_url.is_empty() => format!("http://{addr}"),
        _ => settings.public_url(),
    };
    let state = web::Data::new(SimulatorState::new(
        settings.simulator.secret.expose().to_string(),
        public_url,
    ));
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new()
            .route(
                "/healthz",
                web::get().to(|| async { actix_web::HttpResponse::Ok().finish() }),
            )
            .configure(move |cfg| crate::simulator::configure(cfg, state))
    })
    .backlog(4096)
    .listen(listener)
    .map_err(|e| StartError(format!("cannot listen: {e}")))?
    .run();
    Ok(server)
}
