//! The balancer's messages from sessions and BBB: joins (rooms and calls), call placement,
//! recordings, and the end callback. Handlers are glue over [`super::meetings`] and
//! [`super::pool`].

use std::sync::Arc;

use actix::prelude::*;

use super::callback::{self, Verdict};
use super::strategy::Purpose;
use super::{call_key, choose, params, recordings, room_key, BbbBalancer, Ensured, JoinRequest, Ready};
use crate::bbb::xml::Recording;
use crate::config::BbbRoomConfig;
use crate::error::Error;
use crate::ids::{CallId, RoomId, ServerId, WorldId};
use crate::store::MeetingRecord;

/// How to create a meeting on BBB.
#[derive(Clone, Debug)]
pub(super) enum CreatePlan {
    Room {
        world: WorldId,
        room: RoomId,
        name: String,
        config: Arc<BbbRoomConfig>,
        disable_private_chat: bool,
    },
    Call {
        call: CallId,
    },
}

impl CreatePlan {
    pub(super) fn query(
        &self,
        record: &MeetingRecord,
        end_callback: Option<&str>,
    ) -> (String, Option<String>) {
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

/// The meeting once it is ready: now, or when its create completes.
fn ready(ensured: Result<Ensured, Error>) -> Response<Result<Ready, Error>> {
    match ensured {
        Err(e) => Response::reply(Err(e)),
        Ok(Ensured::Ready(ready)) => Response::reply(Ok(ready)),
        Ok(Ensured::Wait(rx)) => Response::fut(async move { rx.await.map_err(|_| Error::BbbFailed)? }),
    }
}

/// Sent by a session for `bbb.room_url`, after the permission checks: the room's meeting, ready
/// for joins (created or moved as needed); the session signs the join URL.
#[derive(Message, Debug)]
#[rtype(result = "Result<Ready, Error>")]
pub struct JoinRoom {
    pub world: WorldId,
    pub room: RoomId,
    pub name: String,
    pub config: Arc<BbbRoomConfig>,
    pub disable_private_chat: bool,
}

impl Handler<JoinRoom> for BbbBalancer {
    type Result = Response<Result<Ready, Error>>;

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
        ready(ensured)
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

/// Sent by a session for `bbb.call_url`, after the invite check: the call's meeting, ready for
/// joins (created or moved as needed); the session signs the moderator join URL.
#[derive(Message, Debug)]
#[rtype(result = "Result<Ready, Error>")]
pub struct JoinCall {
    pub world: WorldId,
    pub call: CallId,
}

impl Handler<JoinCall> for BbbBalancer {
    type Result = Response<Result<Ready, Error>>;

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
        ready(ensured)
    }
}

/// Sent by the `/bbb/ended/...` route when BBB reports that a meeting ended. The token is
/// checked against every configured server's secret ([`callback::verify`]); a genuine callback
/// for the meeting's current incarnation makes the next join create it again. The verdict
/// decides the HTTP answer.
#[derive(Message, Debug)]
#[rtype(result = "Verdict")]
pub struct MeetingEnded {
    pub meeting_id: String,
    pub token: String,
}

impl Handler<MeetingEnded> for BbbBalancer {
    type Result = ResponseActFuture<Self, Verdict>;

    fn handle(&mut self, msg: MeetingEnded, ctx: &mut Context<Self>) -> Self::Result {
        // In a cluster BBB calls back whichever instance the load balancer picks: one that has
        // not seen the meeting yet reads its record from the database first.
        if let Some(cluster) = self.cluster.clone() {
            if !self.meetings.knows_meeting_id(&msg.meeting_id) {
                let lookup = cluster.meeting_by_id(msg.meeting_id.clone());
                return Box::pin(lookup.into_actor(self).map(move |found, act, ctx| {
                    if let Ok(Some(record)) = found {
                        act.meetings.learn(record);
                    }
                    act.judge_end(&msg, ctx)
                }));
            }
        }
        let verdict = self.judge_end(&msg, ctx);
        Box::pin(actix::fut::ready(verdict))
    }
}

impl BbbBalancer {
    fn judge_end(&mut self, msg: &MeetingEnded, ctx: &mut Context<Self>) -> Verdict {
        let verified = callback::verify(
            self.pool.servers().iter().map(|s| s.endpoint().secret.expose()),
            &msg.meeting_id,
            &msg.token,
        );
        let (verdict, key) = self.meetings.ended(&msg.meeting_id, verified.as_deref());
        self.metrics.set_meetings_running(self.meetings.running());
        match verdict {
            Verdict::Ended => {
                log::info!("balancer: BBB reports {} ended", key.as_deref().unwrap_or("?"));
                if let Some(key) = &key {
                    self.meeting_gone(key, &msg.meeting_id, ctx);
                }
            }
            Verdict::Stale => log::debug!("balancer: ignored a late end callback"),
            Verdict::Forged => log::warn!("balancer: refused an end callback with an invalid token"),
        }
        verdict
    }
}
