//! `BbbBalancer`: the actor that owns the balancer's pure cores and runs their I/O.
//!
//! - [`pool`]: the server pool (settings, operator overrides, health streaks, load and
//!   placement charges); [`strategy`]: placement (SPEC §6).
//! - [`meetings`]: the meeting table (records, state, the joins waiting for the one create in
//!   flight), answering ready / wait / create on server S.
//! - [`params`]: create and join parameters; [`callback`]: the end-callback URL and token;
//!   [`recordings`]: merging recordings from several servers.
//!
//! The actor glues them: BBB client calls, store writes, replies, logs and metrics.

mod admin;
pub mod callback;
mod joins;
pub mod meetings;
pub mod params;
pub mod pool;
pub mod recordings;
mod shared;
pub mod strategy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::oneshot;

use crate::bbb::client::{BbbClient, BbbError, Endpoint};
use crate::bbb::xml::MeetingLoad;
use crate::config::{BbbSettings, ServerConfig};
use crate::error::Error;
use crate::ids::{CallId, RoomId, ServerId, WorldId};
use crate::metrics::Metrics;
use crate::store::{MeetingRecord, MeetingSecrets, Store};
pub use admin::{AdminRefusal, ListServers, MoveRoom, Moved, ReplaceServers, SetServerActive};
use joins::CreatePlan;
pub use joins::{GetRecordings, JoinCall, JoinRoom, MeetingEnded, PlaceCall};
use meetings::{Decision, MeetingTable, Want};
pub use pool::ServerStatus;
use pool::{HealthChange, Hysteresis, Pool};
pub use shared::{ApplyServerOverride, ResyncShared, Shared};
use strategy::Purpose;

/// What the balancer needs from the settings.
#[derive(Clone, Debug)]
pub struct BalancerSettings {
    pub poll_interval: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
    /// How browsers reach the gateway (for the BBB client's stylesheet URL).
    pub public_url: String,
    /// Every create carries `meetingEndedURL` (`bbb.end_callbacks`).
    pub end_callbacks: bool,
    /// In a cluster: how long a create claim holds (a BBB call's timeout plus a margin).
    pub claim_lease: Duration,
}

impl BalancerSettings {
    pub fn from_settings(bbb: &BbbSettings, public_url: String) -> Self {
        Self {
            poll_interval: Duration::from_millis(bbb.poll_interval_ms),
            unhealthy_after: bbb.unhealthy_after,
            healthy_after: bbb.healthy_after,
            public_url,
            end_callbacks: bbb.end_callbacks,
            claim_lease: Duration::from_millis(bbb.request_timeout_ms) + Duration::from_secs(2),
        }
    }

    fn hysteresis(&self) -> Hysteresis {
        Hysteresis {
            unhealthy_after: self.unhealthy_after,
            healthy_after: self.healthy_after,
        }
    }
}

/// A meeting ready for joins: where it runs and its secrets. The caller signs its join URL
/// ([`Ready::room_join_url`], [`Ready::call_join_url`]) on its own thread, so the balancer
/// actor spends no time on hashing and encoding.
#[derive(Clone, Debug)]
pub struct Ready {
    endpoint: Arc<Endpoint>,
    secrets: MeetingSecrets,
    public_url: Arc<str>,
}

impl Ready {
    /// A signed room join URL for `joiner`.
    pub fn room_join_url(&self, joiner: &params::Joiner, config: &crate::config::BbbRoomConfig) -> String {
        self.endpoint.url_for(
            "join",
            &params::room_join(&self.secrets, joiner, config, &self.public_url),
        )
    }

    /// A signed call join URL for `joiner` (moderator).
    pub fn call_join_url(&self, joiner: &params::Joiner) -> String {
        self.endpoint.url_for(
            "join",
            &params::call_join(&self.secrets, joiner, &self.public_url),
        )
    }
}

type Waiter = oneshot::Sender<Result<Ready, Error>>;

/// What a join needs to find, place and create one meeting.
struct JoinRequest {
    key: String,
    world: WorldId,
    purpose: Purpose,
    prefer: Option<ServerId>,
    voice_bridge: Option<String>,
    guest_policy: &'static str,
    plan: CreatePlan,
}

/// A join's meeting: ready now, or a create to wait for.
enum Ensured {
    Ready(Ready),
    Wait(oneshot::Receiver<Result<Ready, Error>>),
}

enum CreateFailure {
    Bbb(BbbError),
    Store(String),
}

pub struct BbbBalancer {
    settings: BalancerSettings,
    /// `settings.public_url`, shared with every [`Ready`].
    public_url: Arc<str>,
    pool: Pool,
    meetings: MeetingTable<Waiter>,
    client: BbbClient,
    store: Store,
    metrics: Metrics,
    /// In a cluster: operator changes go to the other instances.
    cluster: Option<crate::cluster::Cluster>,
}

impl Actor for BbbBalancer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.poll_all(ctx);
        ctx.run_interval(self.settings.poll_interval, |act, ctx| act.poll_all(ctx));
    }
}

pub fn room_key(world: &WorldId, room: &RoomId) -> String {
    format!("room/{world}/{room}")
}

pub fn call_key(call: &CallId) -> String {
    format!("call/{call}")
}

impl BbbBalancer {
    /// Builds the balancer; `records` and `overrides` come from the store at startup.
    pub fn new(
        settings: BalancerSettings,
        servers: &[ServerConfig],
        client: BbbClient,
        store: Store,
        metrics: Metrics,
        records: Vec<MeetingRecord>,
        overrides: Vec<(ServerId, bool)>,
    ) -> Self {
        let overrides: HashMap<ServerId, bool> = overrides.into_iter().collect();
        Self {
            pool: Pool::new(servers, &overrides, settings.hysteresis()),
            meetings: MeetingTable::from_records(records),
            public_url: Arc::from(settings.public_url.as_str()),
            settings,
            client,
            store,
            metrics,
            cluster: None,
        }
    }

    /// Shares operator changes with the other instances of a cluster.
    pub fn with_cluster(mut self, cluster: Option<crate::cluster::Cluster>) -> Self {
        self.cluster = cluster;
        self
    }

    fn publish(&self, id: &ServerId) {
        if let Some(server) = self.pool.get(id) {
            self.metrics.server_state(
                id.as_str(),
                server.meetings() as i64,
                server.load.polled_participants as i64,
                server.cost(),
                server.health.healthy,
            );
        }
    }

    fn log_health(id: &ServerId, change: Option<HealthChange>, error: &str) {
        match change {
            Some(HealthChange::BecameUnhealthy { failures }) => {
                log::warn!("balancer: server={id} unhealthy after {failures} failures: {error}")
            }
            Some(HealthChange::BecameHealthy) => log::info!("balancer: server={id} healthy again"),
            None => {}
        }
    }

    /// Counts a failed poll or call toward `unhealthy_after`.
    fn record_failure(&mut self, id: &ServerId, error: &BbbError) {
        let error = error.to_string();
        let change = self.pool.record_failure(id, error.clone());
        Self::log_health(id, change, &error);
        self.publish(id);
        self.store_server_row(id, None);
        self.tell_cluster(crate::cluster::ClusterMessage::CallFailed {
            server: id.clone(),
            error,
        });
    }

    /// Makes sure the meeting behind `key` exists on a usable server, creating it (or moving
    /// it) if needed. Every join arriving while a create is in flight waits for that create.
    fn ensure(&mut self, req: JoinRequest, ctx: &mut Context<Self>) -> Result<Ensured, Error> {
        let (tx, rx) = oneshot::channel();
        let JoinRequest {
            key,
            world,
            purpose,
            prefer,
            voice_bridge,
            guest_policy,
            plan,
        } = req;
        let want = Want {
            key: &key,
            voice_bridge,
            guest_policy,
        };
        let pool = &self.pool;
        let decision = self.meetings.join(
            want,
            self.settings.end_callbacks,
            tx,
            |s| pool.usable(s, &world, purpose),
            |was| choose(pool, &key, &world, purpose, prefer.as_ref(), was),
        );
        let (server_id, record, save, placed) = match decision {
            Decision::Ready { server, secrets } => {
                let endpoint = self.pool.endpoint(&server).ok_or(Error::BbbFailed)?;
                let public_url = self.public_url.clone();
                return Ok(Ensured::Ready(Ready {
                    endpoint,
                    secrets,
                    public_url,
                }));
            }
            Decision::Wait => return Ok(Ensured::Wait(rx)),
            Decision::NoServer => {
                crate::log_limit::warn(
                    "balancer-no-server",
                    &format!("balancer: no usable server for {key} (world={world})"),
                );
                return Err(Error::BbbFailed);
            }
            Decision::Create {
                on,
                record,
                save,
                placed,
            } => (on, *record, save, placed),
        };
        if placed {
            self.pool.charge(&server_id);
            self.store_charge(&server_id);
            self.tell_cluster(crate::cluster::ClusterMessage::Charged {
                server: server_id.clone(),
            });
        }
        let Some(endpoint) = self.pool.endpoint(&server_id) else {
            return Err(Error::BbbFailed);
        };
        if let Some(cluster) = self.cluster.clone() {
            let job = shared::ClusterCreate {
                cluster,
                store: self.store.clone(),
                client: self.client.clone(),
                plan,
                public_url: self.settings.public_url.clone(),
                end_callbacks: self.settings.end_callbacks,
                usable: self.pool.usable_endpoints(&world, purpose),
                lease: self.settings.claim_lease,
            };
            self.publish(&server_id);
            shared::create_in_cluster(job, record, endpoint, save)
                .into_actor(self)
                .map(move |result, act, _| act.finish_cluster_create(&key, &server_id, result))
                .spawn(ctx);
            return Ok(Ensured::Wait(rx));
        }
        let callback = self.settings.end_callbacks.then(|| {
            let meeting_id = &record.secrets.meeting_id;
            callback::callback_url(
                &self.settings.public_url,
                meeting_id,
                &callback::token(endpoint.secret.expose(), meeting_id, &record.incarnation),
            )
        });
        let (query, presentation) = plan.query(&record, callback.as_deref());
        let save = save.then(|| record.clone());
        let store = self.store.clone();
        let client = self.client.clone();
        let secrets = record.secrets.clone();
        let create_endpoint = endpoint.clone();
        let work = async move {
            if let Some(record) = save {
                store
                    .save_meeting(record)
                    .await
                    .map_err(|e| CreateFailure::Store(e.to_string()))?;
            }
            client
                .create(&create_endpoint, &query, presentation.as_deref())
                .await
                .map_err(CreateFailure::Bbb)
        };
        self.publish(&server_id);
        work.into_actor(self)
            .map(move |result, act, _| act.finish_create(&key, &server_id, endpoint, secrets, result))
            .spawn(ctx);
        Ok(Ensured::Wait(rx))
    }

    /// A create under the cluster's claim finished: the table takes the shared record.
    fn finish_cluster_create(
        &mut self,
        key: &str,
        server_id: &ServerId,
        result: Result<shared::Adopted, CreateFailure>,
    ) {
        match result {
            Ok(adopted) => {
                let server = adopted.record.server.clone().unwrap_or_else(|| server_id.clone());
                if !adopted.created_here {
                    log::debug!("balancer: {key} runs on server={server} (created by another instance)");
                }
                let secrets = adopted.record.secrets.clone();
                self.meetings.adopt(adopted.record);
                self.finish_create(key, &server, adopted.endpoint, secrets, Ok(()));
            }
            Err(e) => {
                let endpoint = self.pool.endpoint(server_id);
                let secrets = self.meetings.get(key).map(|m| m.record.secrets.clone());
                match (endpoint, secrets) {
                    (Some(endpoint), Some(secrets)) => {
                        self.finish_create(key, server_id, endpoint, secrets, Err(e))
                    }
                    _ => {
                        let waiters = self.meetings.create_finished(key, false, false);
                        for waiter in waiters {
                            let _ = waiter.send(Err(Error::BbbFailed));
                        }
                    }
                }
            }
        }
    }

    fn finish_create(
        &mut self,
        key: &str,
        server_id: &ServerId,
        endpoint: Arc<Endpoint>,
        secrets: MeetingSecrets,
        result: Result<(), CreateFailure>,
    ) {
        let outcome = match &result {
            Ok(()) => {
                self.pool.record_call_success(server_id);
                Ok(Ready {
                    endpoint,
                    secrets,
                    public_url: self.public_url.clone(),
                })
            }
            Err(CreateFailure::Bbb(e)) => {
                self.record_failure(server_id, e);
                Err(Error::BbbFailed)
            }
            Err(CreateFailure::Store(e)) => {
                log::error!("balancer: saving meeting {key} failed: {e}");
                Err(Error::BbbFailed)
            }
        };
        // The record is saved before the create, so only a store failure leaves it dirty.
        let saved = !matches!(result, Err(CreateFailure::Store(_)));
        let waiters = self.meetings.create_finished(key, result.is_ok(), saved);
        self.metrics.set_meetings_running(self.meetings.running());
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }

    /// Polls every server without a poll in flight: `getMeetings` (load, health, which
    /// meetings run) and the version index.
    fn poll_all(&mut self, ctx: &mut Context<Self>) {
        let sent = self.meetings.epoch();
        for job in self.pool.start_polls() {
            let client = self.client.clone();
            let endpoint = job.endpoint;
            // In a cluster the instance holding the server's poll lease polls it for everyone.
            let lease = self
                .cluster
                .as_ref()
                .map(|c| c.take_poll_lease(job.server.clone(), self.settings.poll_interval.mul_f64(0.8)));
            async move {
                if let Some(lease) = lease {
                    // Without the database every instance polls for itself.
                    if !lease.await.unwrap_or(true) {
                        return None;
                    }
                }
                Some(
                    futures_util::future::join(client.get_meetings(&endpoint), client.version(&endpoint))
                        .await,
                )
            }
            .into_actor(self)
            .map(move |polled, act, _| match polled {
                Some((result, version)) => {
                    act.finish_version(&job.server, version);
                    act.finish_poll(&job.server, job.placed_before, sent, result)
                }
                None => act.pool.poll_skipped(&job.server),
            })
            .spawn(ctx);
        }
    }

    /// A version answer: kept (and shown) when the server names one; a failure keeps the
    /// version known before (an index hidden behind a proxy does not make a server unhealthy).
    fn finish_version(&mut self, id: &ServerId, version: Result<Option<String>, BbbError>) {
        let Ok(Some(version)) = version else { return };
        if let Some(previous) = self.pool.set_version(id, version.clone()) {
            if previous.is_some() {
                log::info!("balancer: server={id} now reports BBB {version}");
            }
            self.metrics
                .server_version(id.as_str(), previous.as_deref(), Some(&version));
        }
    }

    fn finish_poll(
        &mut self,
        id: &ServerId,
        placed_before: usize,
        sent: u64,
        result: Result<Vec<MeetingLoad>, BbbError>,
    ) {
        if let Some(cluster) = &self.cluster {
            if let Ok(list) = &result {
                let listed = list.iter().map(|m| m.meeting_id.clone()).collect();
                drop(cluster.set_running_on(id.clone(), listed));
            }
            cluster.publish(crate::cluster::ClusterMessage::ServerPolled {
                server: id.clone(),
                result: shared::wire_poll(&result),
                version: self.pool.get(id).and_then(|s| s.version.clone()),
            });
        }
        let polled = result.is_ok();
        self.apply_poll(id, placed_before, sent, result.map_err(|e| e.to_string()));
        // This instance polled for the cluster: the result goes into the server's row.
        self.store_server_row(id, polled.then_some(placed_before));
    }

    /// A poll's result (this instance's, or shared by the instance holding the poll lease).
    fn apply_poll(
        &mut self,
        id: &ServerId,
        placed_before: usize,
        sent: u64,
        result: Result<Vec<MeetingLoad>, String>,
    ) {
        match result {
            Err(error) => {
                let change = self.pool.poll_failed(id, error.clone());
                Self::log_health(id, change, &error);
            }
            Ok(meetings) => {
                if self.pool.get(id).is_none() {
                    return;
                }
                let change = self.pool.poll_succeeded(id, placed_before, &meetings, Utc::now());
                Self::log_health(id, change, "");
                let listed: HashMap<&str, u64> = meetings
                    .iter()
                    .map(|m| (m.meeting_id.as_str(), m.participant_count))
                    .collect();
                self.meetings.polled(id, &listed, sent);
                self.metrics.set_meetings_running(self.meetings.running());
            }
        }
        self.publish(id);
    }
}

/// A usable server for a meeting being placed or moved, by SPEC §6; logs where it went.
fn choose(
    pool: &Pool,
    key: &str,
    world: &WorldId,
    purpose: Purpose,
    prefer: Option<&ServerId>,
    was: Option<&ServerId>,
) -> Option<ServerId> {
    let chosen = pool.choose(world, prefer, purpose, &mut rand::thread_rng());
    if let Some(chosen) = &chosen {
        log::info!(
            "balancer: meeting {key} placed on server={chosen} (was {})",
            was.map(ServerId::as_str).unwrap_or("nowhere")
        );
    }
    chosen
}
