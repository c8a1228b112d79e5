//! `BbbBalancer`: owns the BBB server pool (cost, meeting counts, health) and every meeting
//! record. It places meetings ([`strategy`]), creates them on BBB through the client (one
//! in-flight create per meeting, shared by every join that arrives meanwhile), signs join
//! URLs ([`params`]), polls servers for load and health, and gathers recordings.

pub mod params;
pub mod strategy;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::bbb::client::{BbbClient, BbbError, Endpoint};
use crate::bbb::xml::{MeetingLoad, Recording};
use crate::config::{BbbRoomConfig, BbbSettings, ServerConfig};
use crate::error::Error;
use crate::ids::{CallId, RoomId, ServerId, WorldId};
use crate::metrics::Metrics;
use crate::protocol::wire;
use crate::store::{self, MeetingRecord, StoreActor};
use params::{Joiner, MeetingSecrets};
use strategy::{Candidate, Purpose};

/// Length of generated meeting ids and passwords (alphanumeric).
const SECRET_LEN: usize = 32;

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
}

struct Server {
    endpoint: Arc<Endpoint>,
    rooms_only: bool,
    world_exclusive: Option<WorldId>,
    load_multiplier: f64,
    configured_active: bool,
    /// An operator's runtime enable/disable, persisted; wins over the settings.
    override_active: Option<bool>,
    healthy: bool,
    fail_streak: u32,
    ok_streak: u32,
    polled_cost: f64,
    polled_meetings: usize,
    polled_participants: u64,
    placed_since_poll: usize,
    last_poll_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    polling: bool,
}

impl Server {
    fn new(config: &ServerConfig, override_active: Option<bool>) -> Self {
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
            override_active,
            healthy: true,
            fail_streak: 0,
            ok_streak: 0,
            polled_cost: 0.0,
            polled_meetings: 0,
            polled_participants: 0,
            placed_since_poll: 0,
            last_poll_at: None,
            last_error: None,
            polling: false,
        }
    }

    fn id(&self) -> &ServerId {
        &self.endpoint.id
    }

    fn active(&self) -> bool {
        self.override_active.unwrap_or(self.configured_active)
    }

    fn cost(&self) -> f64 {
        self.polled_cost + self.placed_since_poll as f64 * strategy::PLACEMENT_CHARGE
    }

    fn candidate(&self) -> Candidate<'_> {
        Candidate {
            id: self.id(),
            active: self.active(),
            healthy: self.healthy,
            rooms_only: self.rooms_only,
            world_exclusive: self.world_exclusive.as_ref(),
            cost: self.cost(),
            load_multiplier: self.load_multiplier,
        }
    }

    fn status(&self) -> ServerStatus {
        ServerStatus {
            id: self.id().clone(),
            url: self.endpoint.url.clone(),
            active: self.active(),
            healthy: self.healthy,
            rooms_only: self.rooms_only,
            world_exclusive: self.world_exclusive.clone(),
            meetings: self.polled_meetings + self.placed_since_poll,
            participants: self.polled_participants,
            cost: self.cost(),
            last_poll_at: self.last_poll_at.map(|t| t.to_rfc3339()),
            last_error: self.last_error.clone(),
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
}

/// A meeting ready for joins: where it runs and its secrets.
#[derive(Clone, Debug)]
pub struct Ready {
    endpoint: Arc<Endpoint>,
    secrets: MeetingSecrets,
}

type Waiter = oneshot::Sender<Result<Ready, Error>>;

struct Meeting {
    record: MeetingRecord,
    /// Whether the record changed since it was last saved.
    dirty: bool,
    /// Until when BBB is known to have this meeting (see `create_reuse`).
    confirmed_until: Option<Instant>,
    /// Joins waiting for the one in-flight create, if any.
    waiters: Option<Vec<Waiter>>,
}

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

/// What `ensure` needs to find, place and create one meeting.
struct EnsureRequest {
    key: String,
    world: WorldId,
    purpose: Purpose,
    prefer: Option<ServerId>,
    voice_bridge: Option<String>,
    guest_policy: &'static str,
    plan: CreatePlan,
}

/// The outcome of `ensure`: a meeting ready now, or a create to wait for.
enum Ensured {
    Ready(Ready),
    Wait(oneshot::Receiver<Result<Ready, Error>>),
}

pub struct BbbBalancer {
    settings: BalancerSettings,
    /// In settings order.
    servers: Vec<Server>,
    meetings: HashMap<String, Meeting>,
    client: BbbClient,
    store: Addr<StoreActor>,
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

fn new_record(key: &str, guest_policy: &str) -> MeetingRecord {
    MeetingRecord {
        key: key.to_string(),
        secrets: MeetingSecrets {
            meeting_id: random_secret(),
            attendee_pw: random_secret(),
            moderator_pw: random_secret(),
        },
        server: None,
        voice_bridge: None,
        guest_policy: guest_policy.to_string(),
    }
}

fn random_secret() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect()
}

impl BbbBalancer {
    /// Builds the balancer; `records` and `overrides` come from the store at startup.
    pub fn new(
        settings: BalancerSettings,
        servers: &[ServerConfig],
        client: BbbClient,
        store: Addr<StoreActor>,
        metrics: Metrics,
        records: Vec<MeetingRecord>,
        overrides: Vec<(ServerId, bool)>,
    ) -> Self {
        let overrides: HashMap<ServerId, bool> = overrides.into_iter().collect();
        let meetings = records
            .into_iter()
            .map(|record| {
                (
                    record.key.clone(),
                    Meeting {
                        record,
                        dirty: false,
                        confirmed_until: None,
                        waiters: None,
                    },
                )
            })
            .collect();
        Self {
            servers: servers
                .iter()
                .map(|c| Server::new(c, overrides.get(&c.id).copied()))
                .collect(),
            settings,
            meetings,
            client,
            store,
            metrics,
        }
    }

    fn server(&self, id: &ServerId) -> Option<&Server> {
        self.servers.iter().find(|s| s.id() == id)
    }

    fn server_mut(&mut self, id: &ServerId) -> Option<&mut Server> {
        self.servers.iter_mut().find(|s| s.id() == id)
    }

    /// A `prefer_server` value (server id, or its URL) to a server id.
    fn resolve_prefer(&self, prefer: Option<&str>) -> Option<ServerId> {
        let prefer = prefer?;
        let as_url = format!("{}/", prefer.trim_end_matches('/'));
        self.servers
            .iter()
            .find(|s| s.id().as_str() == prefer || s.endpoint.url == as_url)
            .map(|s| s.id().clone())
    }

    fn usable(&self, server: &ServerId, world: &WorldId, purpose: Purpose) -> bool {
        self.server(server)
            .is_some_and(|s| s.candidate().usable_by(world, purpose))
    }

    fn publish(&self, server: &Server) {
        self.metrics.server_state(
            server.id().as_str(),
            (server.polled_meetings + server.placed_since_poll) as i64,
            server.polled_participants as i64,
            server.cost(),
            server.healthy,
        );
    }

    /// Counts a failed poll or call toward `unhealthy_after`.
    fn record_failure(&mut self, id: &ServerId, error: &BbbError) {
        let unhealthy_after = self.settings.unhealthy_after;
        let Some(server) = self.server_mut(id) else { return };
        server.fail_streak += 1;
        server.ok_streak = 0;
        server.last_error = Some(error.to_string());
        if server.healthy && server.fail_streak >= unhealthy_after {
            server.healthy = false;
            log::warn!(
                "balancer: server={id} unhealthy after {} failures: {error}",
                server.fail_streak
            );
        }
        if let Some(server) = self.server(id) {
            self.publish(server);
        }
    }

    fn record_call_success(&mut self, id: &ServerId) {
        if let Some(server) = self.server_mut(id) {
            server.fail_streak = 0;
        }
    }

    /// Makes sure the meeting behind `key` exists on a usable server, creating it (or moving
    /// it) if needed. Every join arriving while a create is in flight waits for that create.
    fn ensure(&mut self, req: EnsureRequest, ctx: &mut Context<Self>) -> Result<Ensured, Error> {
        let EnsureRequest {
            key,
            world,
            purpose,
            prefer,
            voice_bridge,
            guest_policy,
            plan,
        } = req;
        let world = &world;
        let now = Instant::now();
        let current_server = self.meetings.get(&key).and_then(|m| m.record.server.clone());
        let on_usable_server = current_server
            .as_ref()
            .is_some_and(|s| self.usable(s, world, purpose));
        let meeting = self.meetings.entry(key.clone()).or_insert_with(|| Meeting {
            record: new_record(&key, guest_policy),
            dirty: true,
            confirmed_until: None,
            waiters: None,
        });
        if on_usable_server && meeting.confirmed_until.is_some_and(|t| t > now) {
            if let Some(endpoint) = current_server
                .as_ref()
                .and_then(|id| self.servers.iter().find(|s| s.id() == id))
                .map(|s| s.endpoint.clone())
            {
                return Ok(Ensured::Ready(Ready {
                    endpoint,
                    secrets: meeting.record.secrets.clone(),
                }));
            }
        }
        let (tx, rx) = oneshot::channel();
        if let Some(waiters) = meeting.waiters.as_mut() {
            waiters.push(tx);
            return Ok(Ensured::Wait(rx));
        }

        // This join starts the one create for the meeting.
        let server_id = if on_usable_server {
            current_server
        } else {
            let candidates: Vec<Candidate<'_>> = self.servers.iter().map(Server::candidate).collect();
            let chosen = strategy::choose(
                &candidates,
                world,
                prefer.as_ref(),
                purpose,
                &mut rand::thread_rng(),
            );
            if let Some(chosen) = &chosen {
                log::info!(
                    "balancer: meeting {key} placed on server={chosen} (was {})",
                    current_server.as_ref().map(ServerId::as_str).unwrap_or("nowhere")
                );
            }
            chosen
        };
        let Some(server_id) = server_id else {
            log::warn!("balancer: no usable server for {key} (world={world})");
            return Err(Error::BbbFailed);
        };
        let Some(endpoint) = self.server(&server_id).map(|s| s.endpoint.clone()) else {
            return Err(Error::BbbFailed);
        };
        let Some(meeting) = self.meetings.get_mut(&key) else {
            return Err(Error::Fatal);
        };
        if meeting.record.server.as_ref() != Some(&server_id) {
            meeting.record.server = Some(server_id.clone());
            meeting.dirty = true;
            meeting.confirmed_until = None;
            if let Some(server) = self.servers.iter_mut().find(|s| s.id() == &server_id) {
                server.placed_since_poll += 1;
            }
        }
        if meeting.record.voice_bridge != voice_bridge || meeting.record.guest_policy != guest_policy {
            meeting.record.voice_bridge = voice_bridge;
            meeting.record.guest_policy = guest_policy.to_string();
            meeting.dirty = true;
        }
        meeting.waiters = Some(vec![tx]);
        let record = meeting.record.clone();
        let save = meeting.dirty.then(|| record.clone());
        let callback = self.end_callback(&record.secrets);
        let (query, presentation) = plan.query(&record, callback.as_deref());
        let store = self.store.clone();
        let client = self.client.clone();
        let secrets = record.secrets.clone();
        let create_endpoint = endpoint.clone();
        let work = async move {
            if let Some(record) = save {
                match store.send(store::SaveMeeting { record }).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(CreateFailure::Store(e.to_string())),
                    Err(e) => return Err(CreateFailure::Store(e.to_string())),
                }
            }
            client
                .create(&create_endpoint, &query, presentation.as_deref())
                .await
                .map_err(CreateFailure::Bbb)
        };
        if let Some(server) = self.server(&server_id) {
            self.publish(server);
        }
        work.into_actor(self)
            .map(move |result, act, _| act.finish_create(&key, &server_id, endpoint, secrets, result))
            .spawn(ctx);
        Ok(Ensured::Wait(rx))
    }

    /// The URL BBB calls when the meeting ends, so a reused confirmation is dropped at once.
    /// Only sent when joins may skip `create` (`create_reuse_ms` > 0); it carries a token only
    /// the gateway and that BBB server can compute.
    fn end_callback(&self, secrets: &MeetingSecrets) -> Option<String> {
        (!self.settings.create_reuse.is_zero()).then(|| {
            format!(
                "{}/bbb/ended/{}/{}",
                self.settings.public_url,
                secrets.meeting_id,
                end_token(secrets)
            )
        })
    }

    /// A usable server for a meeting being placed or moved, by SPEC §6.
    fn choose(
        &self,
        key: &str,
        world: &WorldId,
        purpose: Purpose,
        prefer: Option<&ServerId>,
        was: Option<&ServerId>,
    ) -> Option<ServerId> {
        let candidates: Vec<Candidate<'_>> = self.servers.iter().map(Server::candidate).collect();
        let chosen = strategy::choose(&candidates, world, prefer, purpose, &mut rand::thread_rng());
        if let Some(chosen) = &chosen {
            log::info!(
                "balancer: meeting {key} placed on server={chosen} (was {})",
                was.map(ServerId::as_str).unwrap_or("nowhere")
            );
        }
        chosen
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
                self.record_call_success(server_id);
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
        let reuse = self.settings.create_reuse;
        let Some(meeting) = self.meetings.get_mut(key) else {
            return;
        };
        // The record is saved before the create, so only a store failure leaves it dirty.
        if !matches!(result, Err(CreateFailure::Store(_))) {
            meeting.dirty = false;
        }
        if result.is_ok() {
            meeting.confirmed_until = (!reuse.is_zero()).then(|| Instant::now() + reuse);
        }
        for waiter in meeting.waiters.take().into_iter().flatten() {
            let _ = waiter.send(outcome.clone());
        }
    }

    fn poll_all(&mut self, ctx: &mut Context<Self>) {
        let mut jobs = Vec::new();
        for server in self.servers.iter_mut().filter(|s| !s.polling) {
            server.polling = true;
            jobs.push((
                server.id().clone(),
                server.endpoint.clone(),
                server.placed_since_poll,
            ));
        }
        for (id, endpoint, placed_before) in jobs {
            let client = self.client.clone();
            async move { client.get_meetings(&endpoint).await }
                .into_actor(self)
                .map(move |result, act, _| act.finish_poll(&id, placed_before, result))
                .spawn(ctx);
        }
    }

    fn finish_poll(
        &mut self,
        id: &ServerId,
        placed_before: usize,
        result: Result<Vec<MeetingLoad>, BbbError>,
    ) {
        let (healthy_after, reuse) = (self.settings.healthy_after, self.settings.create_reuse);
        let Some(server) = self.server_mut(id) else { return };
        server.polling = false;
        let meetings = match result {
            Ok(meetings) => meetings,
            Err(e) => {
                self.record_failure(id, &e);
                return;
            }
        };
        server.fail_streak = 0;
        server.ok_streak += 1;
        if !server.healthy && server.ok_streak >= healthy_after {
            server.healthy = true;
            log::info!("balancer: server={id} healthy again");
        }
        server.polled_cost = meetings
            .iter()
            .map(|m| strategy::meeting_cost(m.participant_count, m.video_count, m.voice_participant_count))
            .sum();
        server.polled_meetings = meetings.len();
        server.polled_participants = meetings.iter().map(|m| m.participant_count).sum();
        server.placed_since_poll = server.placed_since_poll.saturating_sub(placed_before);
        server.last_poll_at = Some(Utc::now());
        server.last_error = None;
        let running: HashMap<&str, &MeetingLoad> =
            meetings.iter().map(|m| (m.meeting_id.as_str(), m)).collect();
        let now = Instant::now();
        for meeting in self.meetings.values_mut() {
            if meeting.record.server.as_ref() != Some(id) || meeting.waiters.is_some() {
                continue;
            }
            match running.get(meeting.record.secrets.meeting_id.as_str()) {
                Some(m) if m.participant_count > 0 && !reuse.is_zero() => {
                    meeting.confirmed_until = Some(now + reuse)
                }
                Some(_) => {}
                None => meeting.confirmed_until = None,
            }
        }
        if let Some(server) = self.server(id) {
            self.publish(server);
        }
    }
}

/// The token of a meeting's end callback: derived from its moderator password.
fn end_token(secrets: &MeetingSecrets) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!(
        "bbb-gateway end {} {}",
        secrets.meeting_id, secrets.moderator_pw
    ));
    hex::encode(digest).chars().take(32).collect()
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

enum CreateFailure {
    Bbb(BbbError),
    Store(String),
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
        let prefer = self.resolve_prefer(msg.config.prefer_server.as_deref());
        let plan = CreatePlan::Room {
            world: msg.world.clone(),
            room: msg.room.clone(),
            name: msg.name.clone(),
            config: msg.config.clone(),
            disable_private_chat: msg.disable_private_chat,
        };
        let ensured = self.ensure(
            EnsureRequest {
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
/// world may use, asked concurrently. Failing servers are skipped; all failing is `bbb.failed`.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<Value>, Error>")]
pub struct GetRecordings {
    pub world: WorldId,
    pub room: RoomId,
    pub timezone: chrono_tz::Tz,
}

impl Handler<GetRecordings> for BbbBalancer {
    type Result = ResponseActFuture<Self, Result<Vec<Value>, Error>>;

    fn handle(&mut self, msg: GetRecordings, _: &mut Context<Self>) -> Self::Result {
        let Some(meeting) = self.meetings.get(&room_key(&msg.world, &msg.room)) else {
            return Box::pin(actix::fut::ready(Ok(Vec::new())));
        };
        let meeting_id = meeting.record.secrets.meeting_id.clone();
        let endpoints: Vec<Arc<Endpoint>> = self
            .servers
            .iter()
            .filter(|s| s.active() && s.world_exclusive.as_ref().is_none_or(|w| *w == msg.world))
            .map(|s| s.endpoint.clone())
            .collect();
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
            let mut recordings: Vec<Recording> = Vec::new();
            let mut any_ok = false;
            for (server, result) in asked.iter().zip(results) {
                match result {
                    Ok(list) => {
                        act.record_call_success(server);
                        any_ok = true;
                        recordings.extend(list);
                    }
                    Err(e) => act.record_failure(server, &e),
                }
            }
            if !any_ok {
                return Err(Error::BbbFailed);
            }
            let mut seen = HashSet::new();
            recordings.retain(|r| seen.insert(r.record_id.clone()));
            recordings.sort_by_key(|r| r.start_time_ms);
            Ok(recordings
                .iter()
                .map(|r| wire::recording(r, msg.timezone))
                .collect())
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
        MessageResult(self.servers.iter().map(Server::status).collect())
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
        if self.meetings.contains_key(&key) {
            return;
        }
        let mut record = new_record(&key, params::GUEST_ALWAYS);
        record.server = self.choose(&key, &msg.world, Purpose::Call, None, None);
        if let Some(server) = record
            .server
            .as_ref()
            .and_then(|id| self.servers.iter_mut().find(|s| s.id() == id))
        {
            server.placed_since_poll += 1;
        }
        self.meetings.insert(
            key.clone(),
            Meeting {
                record: record.clone(),
                dirty: true,
                confirmed_until: None,
                waiters: None,
            },
        );
        self.store
            .send(store::SaveMeeting { record })
            .into_actor(self)
            .map(move |result, act, _| match result {
                Ok(Ok(())) => {
                    if let Some(m) = act.meetings.get_mut(&key) {
                        m.dirty = false;
                    }
                }
                Ok(Err(e)) => log::error!("balancer: saving {key} failed: {e}"),
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
            EnsureRequest {
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
        let Some(server) = self.server_mut(&msg.server) else {
            return Box::pin(actix::fut::ready(Err(AdminRefusal::UnknownServer)));
        };
        server.override_active = Some(msg.active);
        log::info!(
            "balancer: server={} {} by an operator",
            msg.server,
            if msg.active { "enabled" } else { "disabled" }
        );
        let save = self.store.send(store::SaveServerOverride {
            server: msg.server.clone(),
            active: msg.active,
        });
        Box::pin(save.into_actor(self).map(move |result, act, _| {
            if !matches!(result, Ok(Ok(()))) {
                log::error!("balancer: saving the override of server={} failed", msg.server);
            }
            act.server(&msg.server)
                .map(Server::status)
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
        let Some(target) = self.server(&msg.server) else {
            return Box::pin(actix::fut::ready(Err(AdminRefusal::UnknownServer)));
        };
        if !target.candidate().usable_by(&msg.world, Purpose::Room) {
            return Box::pin(actix::fut::ready(Err(AdminRefusal::Unusable)));
        }
        let key = room_key(&msg.world, &msg.room);
        let meeting = self.meetings.entry(key.clone()).or_insert_with(|| Meeting {
            record: new_record(&key, msg.guest_policy),
            dirty: true,
            confirmed_until: None,
            waiters: None,
        });
        let previous = meeting.record.server.replace(msg.server.clone());
        meeting.confirmed_until = None;
        meeting.dirty = true;
        let record = meeting.record.clone();
        if let Some(server) = self.server_mut(&msg.server) {
            server.placed_since_poll += 1;
        }
        let old_endpoint = previous
            .as_ref()
            .and_then(|id| self.server(id))
            .map(|s| s.endpoint.clone());
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
            let saved = matches!(store.send(store::SaveMeeting { record }).await, Ok(Ok(())));
            (ended, saved)
        };
        Box::pin(work.into_actor(self).map(move |(ended, saved), act, _| {
            if saved {
                if let Some(m) = act.meetings.get_mut(&key) {
                    m.dirty = false;
                }
            }
            let meeting_ended = match ended {
                Some((id, Ok(()))) => {
                    act.record_call_success(&id);
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
        let mut old: HashMap<ServerId, Server> =
            self.servers.drain(..).map(|s| (s.id().clone(), s)).collect();
        let mut added = false;
        self.servers = msg
            .servers
            .iter()
            .map(|config| match old.remove(&config.id) {
                Some(previous) => {
                    let mut server = Server::new(config, previous.override_active);
                    server.healthy = previous.healthy;
                    server.fail_streak = previous.fail_streak;
                    server.ok_streak = previous.ok_streak;
                    server.polled_cost = previous.polled_cost;
                    server.polled_meetings = previous.polled_meetings;
                    server.polled_participants = previous.polled_participants;
                    server.placed_since_poll = previous.placed_since_poll;
                    server.last_poll_at = previous.last_poll_at;
                    server.last_error = previous.last_error;
                    server.polling = previous.polling;
                    server
                }
                None => {
                    added = true;
                    Server::new(config, None)
                }
            })
            .collect();
        self.settings = msg.settings;
        log::info!("balancer: server list reloaded ({} servers)", self.servers.len());
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
        let Some(meeting) = self
            .meetings
            .values_mut()
            .find(|m| m.record.secrets.meeting_id == msg.meeting_id)
        else {
            return false;
        };
        let expected = end_token(&meeting.record.secrets);
        let valid = expected.len() == msg.token.len()
            && expected
                .bytes()
                .zip(msg.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if valid {
            meeting.confirmed_until = None;
            log::info!("balancer: BBB reports {} ended", meeting.record.key);
        }
        valid
    }
}
