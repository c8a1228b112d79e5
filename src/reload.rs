//! Settings reload as an application function: re-reads the settings file and applies worlds,
//! rooms and servers to the running actors without dropping sockets. The admin route calls it.
//! Bind address, database and simulator need a restart (they keep their running values).

use std::sync::Arc;

use crate::balancer::{BalancerSettings, ReplaceServers};
use crate::config::{self, complete_for_listener};
use crate::permissions::ReplaceWorlds;
use crate::services::Services;

/// Why a reload was not applied (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the service was not started from a settings file")]
    NoSettingsFile,
    /// The file could not be read or is invalid; the text says why (no secrets).
    #[error("{0}")]
    Invalid(String),
    #[error("internal error")]
    Internal,
}

/// What a reload applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloaded {
    pub worlds: usize,
    pub servers: usize,
}

/// Re-reads the settings file and hands the new settings to the permission actor and the
/// balancer.
pub async fn reload(services: &Services) -> Result<Reloaded, ReloadError> {
    let path = services
        .config
        .path()
        .map(|p| p.to_path_buf())
        .ok_or(ReloadError::NoSettingsFile)?;
    let mut settings = actix_web::web::block(move || config::load(&path))
        .await
        .map_err(|_| ReloadError::Internal)?
        .map_err(|e| ReloadError::Invalid(e.to_string()))?;
    let current = services.config.current();
    // What cannot change at runtime keeps its running value.
    settings.server.bind = current.server.bind.clone();
    settings.server.database = current.server.database.clone();
    settings.simulator = current.simulator.clone();
    if settings.server.public_url.is_empty() {
        settings.server.public_url = current.server.public_url.clone();
    }
    complete_for_listener(&mut settings, services.local_addr);
    let settings = Arc::new(settings);
    services.config.replace(settings.clone());
    services.perms.do_send(ReplaceWorlds {
        settings: settings.clone(),
    });
    services.balancer.do_send(ReplaceServers {
        servers: settings.bbb.servers.clone(),
        settings: BalancerSettings::from_settings(&settings.bbb, settings.public_url()),
    });
    log::info!("admin: settings reloaded");
    Ok(Reloaded {
        worlds: settings.worlds.len(),
        servers: settings.bbb.servers.len(),
    })
}
