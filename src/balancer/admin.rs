//! The balancer's operator messages (admin API, readiness, reload): server states, runtime
//! enable/disable, moving a room, replacing the server list.

use actix::prelude::*;
use serde::Serialize;

use super::strategy::Purpose;
use super::{room_key, BalancerSettings, BbbBalancer, ServerStatus};
use crate::config::ServerConfig;
use crate::ids::{RoomId, ServerId, WorldId};

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
        if let Some(cluster) = &self.cluster {
            cluster.publish(crate::cluster::ClusterMessage::ServerActive {
                server: msg.server.clone(),
                active: msg.active,
            });
        }
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
        self.metrics.set_meetings_running(self.meetings.running());
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
        let moved_meeting = meeting_id.clone();
        let work = async move {
            let ended = match &old_endpoint {
                Some(endpoint) => Some((endpoint.id.clone(), client.end(endpoint, &meeting_id).await)),
                None => None,
            };
            let saved = store.save_meeting(record).await.is_ok();
            (ended, saved)
        };
        Box::pin(work.into_actor(self).map(move |(ended, saved), act, ctx| {
            if saved {
                act.meetings.saved(&key);
            }
            act.meeting_gone(&key, &moved_meeting, ctx);
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
        self.public_url = std::sync::Arc::from(msg.settings.public_url.as_str());
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
