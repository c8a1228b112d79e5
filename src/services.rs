//! `Services`: the addresses of the long-lived actors and shared handles that every session,
//! route and command module gets a clone of. A leaf of the module graph: it imports the actors'
//! types but nothing that imports it.

use actix::prelude::*;

use crate::balancer::BbbBalancer;
use crate::config::ConfigHandle;
use crate::metrics::Metrics;
use crate::permissions::PermissionActor;
use crate::registry::SessionRegistry;
use crate::store::Store;

/// Addresses of the long-lived actors and shared handles; every session gets a clone.
#[derive(Clone)]
pub struct Services {
    pub config: ConfigHandle,
    pub store: Store,
    pub perms: Addr<PermissionActor>,
    pub registry: Addr<SessionRegistry>,
    pub balancer: Addr<BbbBalancer>,
    pub metrics: Metrics,
    /// The address the HTTP server is bound to (the reload needs it for the simulator server).
    pub local_addr: std::net::SocketAddr,
    /// Set to true on SIGTERM: every session closes with 1012.
    pub shutdown: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    /// Present with a PostgreSQL database: the other instances.
    pub cluster: Option<crate::cluster::Cluster>,
    /// This instance's name (logs, metrics, `/admin/servers`).
    pub instance_name: std::sync::Arc<str>,
}
