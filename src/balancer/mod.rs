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

pub mod callback;
pub mod meetings;
pub mod params;
pub mod pool;
pub mod recordings;
pub mod strategy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::bbb::client::{BbbClient, BbbError, Endpoint};
use crate::bbb::xml::{MeetingLoad, Recording};
use crate::config::{BbbRoomConfig, BbbSettings, ServerConfig};
use crate::error::Error;
use crate::ids::{CallId, RoomId, ServerId, WorldId};
use crate::metrics::Metrics;
use crate::store::{MeetingRecord, MeetingSecrets, Store};
use meetings::{Decision, MeetingTable, Want};
use params::Joiner;
pub use pool::ServerStatus;
use pool::{HealthChange, Hysteresis, Pool};
use strategy::Purpose;

/// What the balancer needs from the settings.
#[derive(Clone, Debug)]
pub struct BalancerSettings {
    pub poll_interval: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
    /// After BBB confirmed a meeting, joins within this long skip `create`; zero = never skip.
    pub create_reuse: Duration,
    /// How browsers reach the gateway (for the BBB client's stylesheet URL).
    pub public_url: String,
}

impl BalancerSettings {
    pub fn from_settings(bbb: &BbbSettings, public_url: String) -> Self {
        Self {
            poll_interval: Duration::from_millis(bbb.poll_interval_ms),
            unhealthy_after: bbb.unhealthy_after,
            healthy_after: bbb.healthy_after,
            create_reuse: Duration::from_millis(bbb.create_reuse_ms),
            public_url,
        }
    }

    fn hysteresis(&self) -> Hysteresis {
        Hysteresis {
            unhealthy_after: self.unhealthy_after,
            healthy_after: self.healthy_after,
        }
    }
}

/// A meeting ready for joins: where it runs and its secrets.
#[derive(Clone, Debug)]
pub struct Ready {
    endpoint: Arc<Endpoint>,
    secrets: MeetingSecrets,
}

type Waiter = oneshot::Sender<Result<Ready, Error>>;

/// How to create a meeting on BBB.
#[derive(Clone, Debug)]
enum CreatePlan {
    Room {
        world: WorldId,
        room: RoomId,
        name: String,
        config: BbbRoomConfig,
        disable_private_chat: bool,
    },
    Call {
        call: CallId,
    },
}

impl CreatePlan {
    fn query(&self, record: &MeetingRecord, end_callback: Option<&str>) -> (String, Option<String>) {
        match self {
            CreatePlan::Room {
                world,
                room,
                name,
                config,
                disable_private_chat,
            } => (
                params::room_create(
                    &record.secrets,
                    &params::RoomCreate {
                        world: world.as_str(),
                        room: room.as_str(),
                        name,
                        config,
                        disable_private_chat: *disable_private_chat,
                        voice_bridge: record.voice_bridge.as_deref(),
                        end_callback,
                    },
                ),
                config.presentation.clone(),
            ),
            CreatePlan::Call { call } => (
                params::call_create(&record.secrets, call.as_str(), end_callback),
                None,
            ),
        }
    }
}

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
    pool: Pool,
    meetings: MeetingTable<Waiter>,
    client: BbbClient,
    store: Store,
    metrics: Metrics,
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
            settings,
            client,
            store,
            metrics,
        }
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
            Instant::now(),
            tx,
            |s| pool.usable(s, &world, purpose),
            |was| choose(pool, &key, &world, purpose, prefer.as_ref(), was),
        );
        let (server_id, record, save, placed) = match decision {
            Decision::Ready { server, secrets } => {
                let endpoint = self.pool.endpoint(&server).ok_or(Error::BbbFailed)?;
                return Ok(Ensured::Ready(Ready { endpoint, secrets }));
            }
            Decision::Wait => return Ok(Ensured::Wait(rx)),
            Decision::NoServer => {
                log::warn!("balancer: no usable server for {key} (world={world})");
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
        }
        let Some(endpoint) = self.pool.endpoint(&server_id) else {
            return Err(Error::BbbFailed);
        };
        let callback = callback::end_callback_url(
            &self.settings.public_url,
            &record.secrets,
            !self.settings.create_reuse.is_zero(),
        );
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
                Ok(Ready { endpoint, secrets })
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
        let waiters = self.meetings.create_finished(
            key,
            result.is_ok(),
            saved,
            self.settings.create_reuse,
            Instant::now(),
        );
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }

    fn poll_all(&mut self, ctx: &mut Context<Self>) {
        for job in self.pool.start_polls() {
            let client = self.client.clone();
            let endpoint = job.endpoint;
            async move { client.get_meetings(&endpoint).await }
                .into_actor(self)
                .map(move |result, act, _| act.finish_poll(&job.server, job.placed_before, result))
                .spawn(ctx);
        }
    }

    fn finish_poll(
        &mut self,
        id: &ServerId,
        placed_before: usize,
        result: Result<Vec<MeetingLoad>, BbbError>,
    ) {
        match result {
            Err(e) => {
                let error = e.to_string();
                let change = self.pool.poll_failed(id, error.clone());
                Self::log_health(id, change, &error);
            }
            Ok(meetings) => {
                if self.pool.get(id).is_none() {
                    return;
                }
                let change = self.pool.poll_succeeded(id, placed_before, &meetings, Utc::now());
                Self::log_health(id, change, "");
                let running: HashMap<&str, u64> = meetings
                    .iter()
                    .map(|m| (m.meeting_id.as_str(), m.participant_count))
                    .collect();
                self.meetings
                    .polled(id, &running, self.settings.create_reuse, Instant::now());
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

/// Signs a join URL once the meeting is ready: now, or when its create completes.
fn join_url(
    ensured: Result<Ensured, Error>,
    sign: impl FnOnce(Ready) -> String + 'static,
) -> ResponseFuture<Result<String, Error>> {
    match ensured {
        Err(e) => Box::pin(async move { Err(e) }),
        Ok(Ensured::Ready(ready)) => {
            let url = sign(ready);
            Box::pin(async move { Ok(url) })
        }
        Ok(Ensured::Wait(rx)) => Box::pin(async move {
            let ready = rx.await.map_err(|_| Error::BbbFailed)??;
            Ok(sign(ready))
        }),
    }
}

/// Sent by a session for `bbb.room_url`, after the permission checks: a signed join URL for
/// the room's meeting, creating or moving the meeting as needed.
#[derive(Message, Debug)]
#[rtype(result = "Result<String, Error>")]
pub struct JoinRoom {
    pub world: WorldId,
    pub room: RoomId,
    pub name: String,
    pub config: BbbRoomConfig,
    pub disable_private_chat: bool,
    pub joiner: Joiner,
}

impl Handler<JoinRoom> for BbbBalancer {
    type Result = ResponseFuture<Result<String, Error>>;

    fn handle(&mut self, msg: JoinRoom, ctx: &mut Context<Self>) -> Self::Result {
        let prefer = self.pool.resolve_prefer(msg.config.prefer_server.as_deref());
        let plan = CreatePlan::Room {
            world: msg.world.clone(),
            room: msg.room.clone(),
            name: msg.name.clone(),
            config: msg.config.clone(),
            disable_private_chat: msg.disable_private_chat,
        };
        let ensured = self.ensure(
            JoinRequest {
                key: room_key(&msg.world, &msg.room),
                world: msg.world.clone(),
                purpose: Purpose::Room,
                prefer,
                voice_bridge: msg.config.voice_bridge.clone(),
                guest_policy: params::guest_policy(&msg.config),
                plan,
            },
            ctx,
        );
        let public_url = self.settings.public_url.clone();
        let sign = move |ready: Ready| {
            ready.endpoint.url_for(
                "join",
                &params::room_join(&ready.secrets, &msg.joiner, &msg.config, &public_url),
            )
        };
        join_url(ensured, sign)
    }
}

/// Sent by a session for `bbb.recordings`: the room's recordings from every active server the
/// world may use, asked concurrently, merged ([`recordings::merge`]). Failing servers are
/// skipped; all failing is `bbb.failed`. The session formats them for the wire.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<Recording>, Error>")]
pub struct GetRecordings {
    pub world: WorldId,
    pub room: RoomId,
}

impl Handler<GetRecordings> for BbbBalancer {
    type Result = ResponseActFuture<Self, Result<Vec<Recording>, Error>>;

    fn handle(&mut self, msg: GetRecordings, _: &mut Context<Self>) -> Self::Result {
        let Some(meeting) = self.meetings.get(&room_key(&msg.world, &msg.room)) else {
            return Box::pin(actix::fut::ready(Ok(Vec::new())));
        };
        let meeting_id = meeting.record.secrets.meeting_id.clone();
        let endpoints = self.pool.recording_endpoints(&msg.world);
        if endpoints.is_empty() {
            return Box::pin(actix::fut::ready(Err(Error::BbbFailed)));
        }
        let client = self.client.clone();
        let asked: Vec<ServerId> = endpoints.iter().map(|e| e.id.clone()).collect();
        let work = async move {
            let calls = endpoints.iter().map(|e| client.get_recordings(e, &meeting_id));
            futures_util::future::join_all(calls).await
        };
        Box::pin(work.into_actor(self).map(move |results, act, _| {
            let mut lists = Vec::new();
            for (server, result) in asked.iter().zip(results) {
                match result {
                    Ok(list) => {
                        act.pool.record_call_success(server);
                        lists.push(list);
                    }
                    Err(e) => act.record_failure(server, &e),
                }
            }
            if lists.is_empty() {
                return Err(Error::BbbFailed);
            }
            Ok(recordings::merge(lists))
        }))
    }
}

/// Sent by the admin API and the readiness probe: every server's state.
#[derive(Message, Debug)]
#[rtype(result = "Vec<ServerStatus>")]
pub struct ListServers;

impl Handler<ListServers> for BbbBalancer {
    type Result = MessageResult<ListServers>;

    fn handle(&mut self, _: ListServers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.pool.statuses())
    }
}

/// Sent by a session when a call starts: place the call's meeting (never on a `rooms_only`
/// server) and persist its record. With no usable server the call is placed on its first join.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PlaceCall {
    pub world: WorldId,
    pub call: CallId,
}

impl Handler<PlaceCall> for BbbBalancer {
    type Result = ();

    fn handle(&mut self, msg: PlaceCall, ctx: &mut Context<Self>) {
        let key = call_key(&msg.call);
        let pool = &self.pool;
        let Some(record) = self.meetings.place_call(&key, params::GUEST_ALWAYS, || {
            choose(pool, &key, &msg.world, Purpose::Call, None, None)
        }) else {
            return;
        };
        if let Some(server) = &record.server {
            self.pool.charge(server);
        }
        self.store
            .save_meeting(record)
            .into_actor(self)
            .map(move |result, act, _| match result {
                Ok(()) => act.meetings.saved(&key),
                Err(e) => log::error!("balancer: saving {key} failed: {e}"),
            })
            .spawn(ctx);
    }
}

/// Sent by a session for `bbb.call_url`, after the invite check: a moderator join URL for the
/// call's meeting, creating or moving it as needed.
#[derive(Message, Debug)]
#[rtype(result = "Result<String, Error>")]
pub struct JoinCall {
    pub world: WorldId,
    pub call: CallId,
    pub joiner: Joiner,
}

impl Handler<JoinCall> for BbbBalancer {
    type Result = ResponseFuture<Result<String, Error>>;

    fn handle(&mut self, msg: JoinCall, ctx: &mut Context<Self>) -> Self::Result {
        let ensured = self.ensure(
            JoinRequest {
                key: call_key(&msg.call),
                world: msg.world.clone(),
                purpose: Purpose::Call,
                prefer: None,
                voice_bridge: None,
                guest_policy: params::GUEST_ALWAYS,
                plan: CreatePlan::Call {
                    call: msg.call.clone(),
                },
            },
            ctx,
        );
        let public_url = self.settings.public_url.clone();
        let sign = move |ready: Ready| {
            ready.endpoint.url_for(
                "join",
                &params::call_join(&ready.secrets, &msg.joiner, &public_url),
            )
        };
        join_url(ensured, sign)
    }
}

/// Why an operator's request about servers or rooms was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRefusal {
    UnknownServer,
    /// The target server is inactive, unhealthy, or exclusive to another world.
    Unusable,
}

/// Sent by the admin API: enable or disable a server at runtime (persisted). A disabled
/// server gets no new meetings; its rooms move on their next join.
#[derive(Message, Debug)]
#[rtype(result = "Result<ServerStatus, AdminRefusal>")]
pub struct SetServerActive {
    pub server: ServerId,
    pub active: bool,
}

impl Handler<SetServerActive> for BbbBalancer {
    type Result = ResponseActFuture<Self, Result<ServerStatus, AdminRefusal>>;

    fn handle(&mut self, msg: SetServerActive, _: &mut Context<Self>) -> Self::Result {
        if !self.pool.set_override(&msg.server, msg.active) {
            return Box::pin(actix::fut::ready(Err(AdminRefusal::UnknownServer)));
        }
        log::info!(
            "balancer: server={} {} by an operator",
            msg.server,
            if msg.active { "enabled" } else { "disabled" }
        );
        let save = self.store.save_server_override(msg.server.clone(), msg.active);
        Box::pin(save.into_actor(self).map(move |result, act, _| {
            if result.is_err() {
                log::error!("balancer: saving the override of server={} failed", msg.server);
            }
            act.pool
                .get(&msg.server)
                .map(|s| s.status())
                .ok_or(AdminRefusal::UnknownServer)
        }))
    }
}

/// What a move did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Moved {
    pub previous_server: Option<ServerId>,
    pub server: ServerId,
    /// Whether the meeting was ended on the previous server (false when there was none, or
    /// that server could not be reached).
    pub meeting_ended: bool,
}

/// Sent by the admin API: end the room's meeting on its current server and re-home the room on
/// `server`; the next join creates the meeting there with the same meetingID and passwords.
#[derive(Message, Debug)]
#[rtype(result = "Result<Moved, AdminRefusal>")]
pub struct MoveRoom {
    pub world: WorldId,
    pub room: RoomId,
    pub server: ServerId,
    /// Guest policy for a record that does not exist yet.
    pub guest_policy: &'static str,
}

impl Handler<MoveRoom> for BbbBalancer {
    type Result = ResponseActFuture<Self, Result<Moved, AdminRefusal>>;

    fn handle(&mut self, msg: MoveRoom, _: &mut Context<Self>) -> Self::Result {
        let Some(target) = self.pool.get(&msg.server) else {
            return Box::pin(actix::fut::ready(Err(AdminRefusal::UnknownServer)));
        };
        if !target.candidate().usable_by(&msg.world, Purpose::Room) {
            return Box::pin(actix::fut::ready(Err(AdminRefusal::Unusable)));
        }
        let key = room_key(&msg.world, &msg.room);
        let (previous, record) = self.meetings.move_to(&key, msg.guest_policy, &msg.server);
        self.pool.charge(&msg.server);
        let old_endpoint = previous.as_ref().and_then(|id| self.pool.endpoint(id));
        log::info!(
            "balancer: {key} moved by an operator from {} to server={}",
            previous.as_ref().map(ServerId::as_str).unwrap_or("nowhere"),
            msg.server
        );
        let client = self.client.clone();
        let store = self.store.clone();
        let meeting_id = record.secrets.meeting_id.clone();
        let work = async move {
            let ended = match &old_endpoint {
                Some(endpoint) => Some((endpoint.id.clone(), client.end(endpoint, &meeting_id).await)),
                None => None,
            };
            let saved = store.save_meeting(record).await.is_ok();
            (ended, saved)
        };
        Box::pin(work.into_actor(self).map(move |(ended, saved), act, _| {
            if saved {
                act.meetings.saved(&key);
            }
            let meeting_ended = match ended {
                Some((id, Ok(()))) => {
                    act.pool.record_call_success(&id);
                    true
                }
                Some((id, Err(e))) => {
                    act.record_failure(&id, &e);
                    false
                }
                None => false,
            };
            Ok(Moved {
                previous_server: previous,
                server: msg.server,
                meeting_ended,
            })
        }))
    }
}

/// Sent by the admin reload: the new server list. Servers that stay keep their health, load
/// and overrides; removed servers' meetings move on their next join.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ReplaceServers {
    pub servers: Vec<ServerConfig>,
    pub settings: BalancerSettings,
}

impl Handler<ReplaceServers> for BbbBalancer {
    type Result = ();

    fn handle(&mut self, msg: ReplaceServers, ctx: &mut Context<Self>) {
        let added = self.pool.replace(&msg.servers, msg.settings.hysteresis());
        self.settings = msg.settings;
        log::info!(
            "balancer: server list reloaded ({} servers)",
            self.pool.servers().len()
        );
        if added {
            self.poll_all(ctx);
        }
    }
}

/// Sent by the `/bbb/ended/...` route when BBB reports that a meeting ended: the next join
/// must create it again. Returns whether the meeting and token were recognised.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct MeetingEnded {
    pub meeting_id: String,
    pub token: String,
}

impl Handler<MeetingEnded> for BbbBalancer {
    type Result = bool;

    fn handle(&mut self, msg: MeetingEnded, _: &mut Context<Self>) -> bool {
        match self.meetings.ended(&msg.meeting_id, &msg.token) {
            Some(key) => {
                log::info!("balancer: BBB reports {key} ended");
                true
            }
            None => false,
        }
    }
}
