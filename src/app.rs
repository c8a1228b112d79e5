//! Startup as a library function: open the store, start the actors, and serve HTTP on a given
//! `TcpListener` (port 0 in tests). `main` and the integration tests both go through here.

use std::net::TcpListener;
use std::path::PathBuf;

use actix::prelude::*;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};

use crate::config::{ConfigHandle, Settings};
use crate::http;
use crate::metrics::Metrics;
use crate::permissions::PermissionActor;
use crate::registry::SessionRegistry;
use crate::store::{self, StoreActor};

/// Addresses of the long-lived actors and shared handles; every session gets a clone.
#[derive(Clone)]
pub struct Services {
    pub config: ConfigHandle,
    pub store: Addr<StoreActor>,
    pub perms: Addr<PermissionActor>,
    pub registry: Addr<SessionRegistry>,
    pub metrics: Metrics,
}

/// Why the service could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running service: its HTTP server future, the port it listens on, its actors.
pub struct Application {
    server: Server,
    port: u16,
    services: Services,
}

impl Application {
    /// Opens the store, starts the actors and binds the HTTP server to `listener`.
    /// `config_path` is the file `/admin/reload` re-reads.
    pub async fn build(
        settings: Settings,
        listener: TcpListener,
        config_path: Option<PathBuf>,
    ) -> Result<Application, StartError> {
        let port = listener
            .local_addr()
            .map_err(|e| StartError(format!("listener: {e}")))?
            .port();
        let db_path = settings.server.database.clone();
        let conn = web::block(move || store::open(&db_path))
            .await
            .map_err(|e| StartError(format!("store: {e}")))?
            .map_err(|e| {
                StartError(format!(
                    "cannot open database {}: {e}",
                    settings.server.database.display()
                ))
            })?;
        let store = StoreActor::start(conn);
        let moderation = store
            .send(store::LoadModeration {})
            .await
            .map_err(|e| StartError(format!("store: {e}")))?
            .map_err(|e| StartError(e.to_string()))?;
        let grants = store
            .send(store::LoadRoleGrants {})
            .await
            .map_err(|e| StartError(format!("store: {e}")))?
            .map_err(|e| StartError(e.to_string()))?;
        let perms = PermissionActor::new(&settings, store.clone(), moderation, grants).start();
        let registry = SessionRegistry::default().start();
        let metrics = Metrics::new();
        let config = ConfigHandle::new(settings, config_path);
        let services = Services {
            config,
            store,
            perms,
            registry,
            metrics,
        };
        let data = web::Data::new(services.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(http::routes))
            .listen(listener)
            .map_err(|e| StartError(format!("cannot listen: {e}")))?
            .shutdown_timeout(5)
            .run();
        Ok(Application {
            server,
            port,
            services,
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

    /// Serves until the server is stopped (signal or handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
