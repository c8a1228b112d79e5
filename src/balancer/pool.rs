//! The BBB server pool (pure): each server's static settings ([`ServerSpec`]), an operator's
//! runtime override, its health ([`Health`], with `unhealthy_after` / `healthy_after`
//! hysteresis) and its load ([`Load`]: polled cost and meetings plus placement charges).
//! The balancer actor owns one [`Pool`] and feeds it call and poll outcomes.

use std::collections::HashMap;
use std::sync::Arc;

pub use crate::cluster::servers::ServerRow;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;

use crate::bbb::client::Endpoint;
use crate::bbb::xml::MeetingLoad;
use crate::config::ServerConfig;
use crate::ids::{ServerId, WorldId};

use super::strategy::{self, Candidate, Purpose};

/// A server as the settings describe it; replaced whole on reload.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub endpoint: Arc<Endpoint>,
    pub rooms_only: bool,
    pub world_exclusive: Option<WorldId>,
    pub load_multiplier: f64,
    pub configured_active: bool,
}

impl ServerSpec {
    pub fn from_config(config: &ServerConfig) -> Self {
        Self {
            endpoint: Arc::new(Endpoint {
                id: config.id.clone(),
                url: config.url.clone(),
                secret: config.secret.clone(),
                checksum: config.checksum,
            }),
            rooms_only: config.rooms_only,
            world_exclusive: config.world_exclusive.clone(),
            load_multiplier: config.load_multiplier,
            configured_active: config.active,
        }
    }
}

/// A server's health: failure and success streaks with hysteresis.
#[derive(Clone, Debug)]
pub struct Health {
    pub healthy: bool,
    pub fail_streak: u32,
    pub ok_streak: u32,
    pub last_error: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            healthy: true,
            fail_streak: 0,
            ok_streak: 0,
            last_error: None,
        }
    }
}

/// A server's load as last polled, plus meetings placed there since.
#[derive(Clone, Debug, Default)]
pub struct Load {
    pub polled_cost: f64,
    pub polled_meetings: usize,
    pub polled_participants: u64,
    pub placed_since_poll: usize,
    pub last_poll_at: Option<DateTime<Utc>>,
    /// Whether a poll is in flight (at most one per server).
    pub polling: bool,
}

/// One server of the pool: settings plus runtime state.
#[derive(Clone, Debug)]
pub struct PoolServer {
    pub spec: ServerSpec,
    /// An operator's runtime enable/disable, persisted; wins over the settings.
    pub override_active: Option<bool>,
    pub health: Health,
    pub load: Load,
    /// The BBB version the server reports (`GET {url}api`), once known.
    pub version: Option<String>,
}

impl PoolServer {
    fn new(spec: ServerSpec, override_active: Option<bool>) -> Self {
        Self {
            spec,
            override_active,
            health: Health::default(),
            load: Load::default(),
            version: None,
        }
    }

    pub fn id(&self) -> &ServerId {
        &self.spec.endpoint.id
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.spec.endpoint
    }

    pub fn active(&self) -> bool {
        self.override_active.unwrap_or(self.spec.configured_active)
    }

    /// Polled cost plus placement charges.
    pub fn cost(&self) -> f64 {
        self.load.polled_cost + self.load.placed_since_poll as f64 * strategy::PLACEMENT_CHARGE
    }

    /// Polled meetings plus meetings placed since.
    pub fn meetings(&self) -> usize {
        self.load.polled_meetings + self.load.placed_since_poll
    }

    pub fn candidate(&self) -> Candidate<'_> {
        Candidate {
            id: self.id(),
            active: self.active(),
            healthy: self.health.healthy,
            rooms_only: self.spec.rooms_only,
            world_exclusive: self.spec.world_exclusive.as_ref(),
            cost: self.cost(),
            load_multiplier: self.spec.load_multiplier,
        }
    }

    pub fn status(&self) -> ServerStatus {
        ServerStatus {
            id: self.id().clone(),
            url: self.spec.endpoint.url.clone(),
            active: self.active(),
            healthy: self.health.healthy,
            rooms_only: self.spec.rooms_only,
            world_exclusive: self.spec.world_exclusive.clone(),
            meetings: self.meetings(),
            participants: self.load.polled_participants,
            cost: self.cost(),
            last_poll_at: self.load.last_poll_at.map(|t| t.to_rfc3339()),
            last_error: self.health.last_error.clone(),
            version: self.version.clone(),
        }
    }
}

/// A server as the admin API and readiness probe show it (no secret).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServerStatus {
    pub id: ServerId,
    pub url: String,
    pub active: bool,
    pub healthy: bool,
    pub rooms_only: bool,
    pub world_exclusive: Option<WorldId>,
    pub meetings: usize,
    pub participants: u64,
    pub cost: f64,
    pub last_poll_at: Option<String>,
    pub last_error: Option<String>,
    /// The BBB version it reports (`bbbVersion`, else `apiVersion`); null until known.
    pub version: Option<String>,
}

/// How many failures make a server unhealthy, and how many good polls make it healthy again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hysteresis {
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

/// A health change worth logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthChange {
    BecameUnhealthy { failures: u32 },
    BecameHealthy,
}

/// A poll to start: which server, where, and how many placements it will account for.
#[derive(Clone, Debug)]
pub struct PollJob {
    pub server: ServerId,
    pub endpoint: Arc<Endpoint>,
    pub placed_before: usize,
}

/// Every configured server, in settings order.
#[derive(Clone, Debug)]
pub struct Pool {
    servers: Vec<PoolServer>,
    hysteresis: Hysteresis,
}

impl Pool {
    /// The pool from the settings and the persisted operator overrides.
    pub fn new(
        configs: &[ServerConfig],
        overrides: &HashMap<ServerId, bool>,
        hysteresis: Hysteresis,
    ) -> Self {
        Self {
            servers: configs
                .iter()
                .map(|c| PoolServer::new(ServerSpec::from_config(c), overrides.get(&c.id).copied()))
                .collect(),
            hysteresis,
        }
    }

    pub fn servers(&self) -> &[PoolServer] {
        &self.servers
    }

    pub fn get(&self, id: &ServerId) -> Option<&PoolServer> {
        self.servers.iter().find(|s| s.id() == id)
    }

    fn get_mut(&mut self, id: &ServerId) -> Option<&mut PoolServer> {
        self.servers.iter_mut().find(|s| s.id() == id)
    }

    pub fn endpoint(&self, id: &ServerId) -> Option<Arc<Endpoint>> {
        self.get(id).map(|s| s.endpoint().clone())
    }

    pub fn statuses(&self) -> Vec<ServerStatus> {
        self.servers.iter().map(PoolServer::status).collect()
    }

    /// A `prefer_server` value (server id, or its URL) to a server id.
    pub fn resolve_prefer(&self, prefer: Option<&str>) -> Option<ServerId> {
        let prefer = prefer?;
        let as_url = format!("{}/", prefer.trim_end_matches('/'));
        self.servers
            .iter()
            .find(|s| s.id().as_str() == prefer || s.spec.endpoint.url == as_url)
            .map(|s| s.id().clone())
    }

    /// Every server `world` may use for `purpose` now, with its endpoint.
    pub fn usable_endpoints(&self, world: &WorldId, purpose: Purpose) -> Vec<(ServerId, Arc<Endpoint>)> {
        self.servers
            .iter()
            .filter(|s| s.candidate().usable_by(world, purpose))
            .map(|s| (s.id().clone(), s.endpoint().clone()))
            .collect()
    }

    /// Whether `world` may have a meeting of `purpose` on `server` now.
    pub fn usable(&self, server: &ServerId, world: &WorldId, purpose: Purpose) -> bool {
        self.get(server)
            .is_some_and(|s| s.candidate().usable_by(world, purpose))
    }

    /// A usable server for a meeting being placed or moved, by SPEC §6 ([`strategy::choose`]).
    pub fn choose<R: Rng + ?Sized>(
        &self,
        world: &WorldId,
        prefer: Option<&ServerId>,
        purpose: Purpose,
        rng: &mut R,
    ) -> Option<ServerId> {
        let candidates: Vec<Candidate<'_>> = self.servers.iter().map(PoolServer::candidate).collect();
        strategy::choose(&candidates, world, prefer, purpose, rng)
    }

    /// Charges a server for a meeting placed on it (until its next poll).
    pub fn charge(&mut self, id: &ServerId) {
        if let Some(server) = self.get_mut(id) {
            server.load.placed_since_poll += 1;
        }
    }

    /// Counts a failed poll or call toward `unhealthy_after`.
    pub fn record_failure(&mut self, id: &ServerId, error: String) -> Option<HealthChange> {
        let unhealthy_after = self.hysteresis.unhealthy_after;
        let server = self.get_mut(id)?;
        let health = &mut server.health;
        health.fail_streak += 1;
        health.ok_streak = 0;
        health.last_error = Some(error);
        if health.healthy && health.fail_streak >= unhealthy_after {
            health.healthy = false;
            return Some(HealthChange::BecameUnhealthy {
                failures: health.fail_streak,
            });
        }
        None
    }

    /// A successful call breaks a failure streak (only polls count toward `healthy_after`).
    pub fn record_call_success(&mut self, id: &ServerId) {
        if let Some(server) = self.get_mut(id) {
            server.health.fail_streak = 0;
        }
    }

    /// Marks every server without a poll in flight as polling and returns their jobs.
    pub fn start_polls(&mut self) -> Vec<PollJob> {
        self.servers
            .iter_mut()
            .filter(|s| !s.load.polling)
            .map(|s| {
                s.load.polling = true;
                PollJob {
                    server: s.id().clone(),
                    endpoint: s.endpoint().clone(),
                    placed_before: s.load.placed_since_poll,
                }
            })
            .collect()
    }

    /// A poll failed: counts toward `unhealthy_after`.
    /// Another instance of the cluster polls `id` this round.
    pub fn poll_skipped(&mut self, id: &ServerId) {
        if let Some(s) = self.get_mut(id) {
            s.load.polling = false;
        }
    }

    pub fn poll_failed(&mut self, id: &ServerId, error: String) -> Option<HealthChange> {
        self.get_mut(id)?.load.polling = false;
        self.record_failure(id, error)
    }

    /// A poll listed `meetings`: the new load, and a good poll toward `healthy_after`.
    /// Placements made before the poll started are now in the polled figures.
    pub fn poll_succeeded(
        &mut self,
        id: &ServerId,
        placed_before: usize,
        meetings: &[MeetingLoad],
        now: DateTime<Utc>,
    ) -> Option<HealthChange> {
        let healthy_after = self.hysteresis.healthy_after;
        let server = self.get_mut(id)?;
        server.load = Load {
            polled_cost: meetings
                .iter()
                .map(|m| {
                    strategy::meeting_cost(m.participant_count, m.video_count, m.voice_participant_count)
                })
                .sum(),
            polled_meetings: meetings.len(),
            polled_participants: meetings.iter().map(|m| m.participant_count).sum(),
            placed_since_poll: server.load.placed_since_poll.saturating_sub(placed_before),
            last_poll_at: Some(now),
            polling: false,
        };
        let health = &mut server.health;
        health.fail_streak = 0;
        health.ok_streak += 1;
        health.last_error = None;
        if !health.healthy && health.ok_streak >= healthy_after {
            health.healthy = true;
            return Some(HealthChange::BecameHealthy);
        }
        None
    }

    /// The version a server reported. `Some(previous)` when it changed (for the metric), `None`
    /// when it is the same or the server is unknown.
    pub fn set_version(&mut self, id: &ServerId, version: String) -> Option<Option<String>> {
        let server = self.get_mut(id)?;
        if server.version.as_deref() == Some(version.as_str()) {
            return None;
        }
        Some(server.version.replace(version))
    }

    /// What the cluster stores of server `id` (`cluster::servers`).
    pub fn row(&self, id: &ServerId) -> Option<ServerRow> {
        let s = self.get(id)?;
        Some(ServerRow {
            server: id.clone(),
            healthy: s.health.healthy,
            fail_streak: s.health.fail_streak,
            ok_streak: s.health.ok_streak,
            last_error: s.health.last_error.clone(),
            last_poll_at: s.load.last_poll_at.map(|t| t.to_rfc3339()),
            polled_cost: s.load.polled_cost,
            polled_meetings: s.load.polled_meetings as u64,
            polled_participants: s.load.polled_participants,
            placed_since_poll: s.load.placed_since_poll as u64,
            version: s.version.clone(),
        })
    }

    /// Takes the cluster's stored view of a server (at start, or after the listener
    /// reconnected). The version goes through [`Pool::set_version`]; false when the server is
    /// not in this instance's settings.
    pub fn restore(&mut self, row: &ServerRow) -> bool {
        let Some(s) = self.get_mut(&row.server) else {
            return false;
        };
        s.health = Health {
            healthy: row.healthy,
            fail_streak: row.fail_streak,
            ok_streak: row.ok_streak,
            last_error: row.last_error.clone(),
        };
        s.load = Load {
            polled_cost: row.polled_cost,
            polled_meetings: row.polled_meetings as usize,
            polled_participants: row.polled_participants,
            placed_since_poll: row.placed_since_poll as usize,
            last_poll_at: row
                .last_poll_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            polling: s.load.polling,
        };
        true
    }

    /// An operator's enable/disable; false when the server is unknown.
    pub fn set_override(&mut self, id: &ServerId, active: bool) -> bool {
        match self.get_mut(id) {
            Some(server) => {
                server.override_active = Some(active);
                true
            }
            None => false,
        }
    }

    /// The new server list on reload: servers that stay keep their override, health and load
    /// and take the new settings; new servers start fresh. Returns whether any server is new.
    pub fn replace(&mut self, configs: &[ServerConfig], hysteresis: Hysteresis) -> bool {
        let mut old: HashMap<ServerId, PoolServer> =
            self.servers.drain(..).map(|s| (s.id().clone(), s)).collect();
        let mut added = false;
        self.servers = configs
            .iter()
            .map(|config| {
                let spec = ServerSpec::from_config(config);
                match old.remove(&config.id) {
                    Some(previous) => PoolServer { spec, ..previous },
                    None => {
                        added = true;
                        PoolServer::new(spec, None)
                    }
                }
            })
            .collect();
        self.hysteresis = hysteresis;
        added
    }

    /// The endpoints to ask for a room's recordings: active servers `world` may use.
    pub fn recording_endpoints(&self, world: &WorldId) -> Vec<Arc<Endpoint>> {
        self.servers
            .iter()
            .filter(|s| s.active() && s.spec.world_exclusive.as_ref().is_none_or(|w| w == world))
            .map(|s| s.endpoint().clone())
            .collect()
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
