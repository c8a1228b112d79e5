//! `SessionRegistry`: the live, authenticated sockets of every user. It enforces
//! `connection_limit` and delivers what the push bus publishes to this process's sockets.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::Value;

use crate::cluster::message::{ClusterMessage, WirePush};
use crate::cluster::Cluster;
use crate::ids::UserId;

/// Identifies one WebSocket connection for the life of the process.
pub type ConnId = u64;

/// Something the registry tells a session (the bus carries these; all plain data).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub enum Push {
    /// Send this frame as is.
    Frame(Arc<str>),
    /// The user's profile changed on another socket: cache it and send the frame.
    ProfileChanged { profile: Value, frame: Arc<str> },
    /// A newer socket of the same user took this one's place (`connection.replaced`).
    Replaced,
    /// An operator changed the user's standing (`connection.reload`): tell and close.
    Reload,
}

#[derive(Default)]
pub struct SessionRegistry {
    /// Per user, sockets oldest first.
    users: HashMap<UserId, Vec<(ConnId, Recipient<Push>)>>,
    sockets: usize,
    /// In a cluster: pushes go to the other instances too, sockets are counted cluster-wide.
    cluster: Option<Cluster>,
}

impl SessionRegistry {
    pub fn new(cluster: Option<Cluster>) -> Self {
        Self {
            cluster,
            ..Self::default()
        }
    }

    /// The cluster, when there is one (the bus publishes through it).
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    fn counted(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.set_local_sockets(self.sockets);
        }
    }

    /// Forgets a local socket and tells it that it was replaced.
    fn evict(&mut self, user: &UserId, conn: ConnId) {
        let Some(sockets) = self.users.get_mut(user) else {
            return;
        };
        let Some(at) = sockets.iter().position(|(c, _)| *c == conn) else {
            return;
        };
        let (_, addr) = sockets.remove(at);
        if sockets.is_empty() {
            self.users.remove(user);
        }
        addr.do_send(Push::Replaced);
        self.sockets = self.sockets.saturating_sub(1);
        log::info!("registry: user={user} conn={conn} replaced by a newer socket");
        if let Some(cluster) = &self.cluster {
            cluster.socket_closed(conn);
        }
        self.counted();
    }
}

impl Actor for SessionRegistry {
    type Context = Context<Self>;
}

/// Sent by a session once authenticated. With `limit` = Some(n), the user's oldest sockets
/// beyond n are told `Replaced` and forgotten.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub user: UserId,
    pub conn: ConnId,
    pub addr: Recipient<Push>,
    pub limit: Option<usize>,
}

impl Handler<Register> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Register, ctx: &mut Context<Self>) {
        let sockets = self.users.entry(msg.user.clone()).or_default();
        sockets.push((msg.conn, msg.addr));
        self.sockets += 1;
        let mut replaced = Vec::new();
        if let Some(limit) = msg.limit.filter(|l| *l > 0) {
            let excess = sockets.len().saturating_sub(limit);
            for (conn, addr) in sockets.drain(..excess) {
                log::info!(
                    "registry: user={} conn={conn} replaced by conn={}",
                    msg.user,
                    msg.conn
                );
                addr.do_send(Push::Replaced);
                replaced.push(conn);
                self.sockets = self.sockets.saturating_sub(1);
            }
        }
        self.counted();
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        for conn in replaced {
            cluster.socket_closed(conn);
        }
        // Count the user's sockets on every live instance; replace the oldest beyond the limit.
        let user = msg.user;
        let opened = cluster.socket_opened(user.clone(), msg.conn, msg.limit);
        ctx.spawn(opened.into_actor(self).map(move |result, act, _| {
            let Ok(excess) = result else { return };
            for (instance, conn) in excess {
                match act.cluster.as_ref() {
                    Some(cluster) if instance == cluster.name() => act.evict(&user, conn),
                    Some(cluster) => cluster.publish(ClusterMessage::Replace {
                        instance,
                        user: user.clone(),
                        conn,
                    }),
                    None => {}
                }
            }
        }));
    }
}

/// Sent by a session when it stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub user: UserId,
    pub conn: ConnId,
}

impl Handler<Unregister> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        if let Some(sockets) = self.users.get_mut(&msg.user) {
            let before = sockets.len();
            sockets.retain(|(conn, _)| *conn != msg.conn);
            self.sockets = self.sockets.saturating_sub(before - sockets.len());
            if sockets.is_empty() {
                self.users.remove(&msg.user);
            }
        }
        self.counted();
        if let Some(cluster) = &self.cluster {
            cluster.socket_closed(msg.conn);
        }
    }
}

impl SessionRegistry {
    /// The live sockets of `user`, oldest first (the bus delivers through this).
    pub(crate) fn sockets_of(&self, user: &UserId) -> Vec<(ConnId, Recipient<Push>)> {
        self.users.get(user).cloned().unwrap_or_default()
    }
}

/// Sent by `chat::presence` for `user.online_status`: which of these users have at least one
/// authenticated socket open here.
#[derive(Message)]
#[rtype(result = "Vec<bool>")]
pub struct AreOnline {
    pub users: Vec<UserId>,
}

impl Handler<AreOnline> for SessionRegistry {
    type Result = ResponseActFuture<Self, Vec<bool>>;

    fn handle(&mut self, msg: AreOnline, _: &mut Context<Self>) -> Self::Result {
        let local: Vec<bool> = msg.users.iter().map(|u| self.users.contains_key(u)).collect();
        let Some(cluster) = &self.cluster else {
            return Box::pin(actix::fut::ready(local));
        };
        // In a cluster: sockets on every live instance count (this one's are known here even
        // when the database is unreachable).
        let online = cluster.online(msg.users.clone());
        Box::pin(online.into_actor(self).map(move |result, _, _| {
            match result {
                Ok(elsewhere) => msg
                    .users
                    .iter()
                    .zip(local)
                    .map(|(u, here)| here || elsewhere.contains(u))
                    .collect(),
                Err(_) => local,
            }
        }))
    }
}

/// Sent by the cluster listener: what another instance published, for every local socket of
/// each user, in this order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub deliveries: Vec<(UserId, Push)>,
}

impl Handler<Deliver> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        for (user, push) in &msg.deliveries {
            for (_, addr) in self.users.get(user).into_iter().flatten() {
                addr.do_send(push.clone());
            }
        }
    }
}

/// Sent by the cluster listener: another instance counted this local socket beyond the
/// user's `connection_limit`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evict {
    pub user: UserId,
    pub conn: ConnId,
}

impl Handler<Evict> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Evict, _: &mut Context<Self>) {
        self.evict(&msg.user, msg.conn);
    }
}

/// Live counts, for metrics and readiness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sockets: usize,
    pub users: usize,
}

/// Sent by the metrics endpoint.
#[derive(Message)]
#[rtype(result = "Counts")]
pub struct GetCounts;

impl Handler<GetCounts> for SessionRegistry {
    type Result = MessageResult<GetCounts>;

    fn handle(&mut self, _: GetCounts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Counts {
            sockets: self.sockets,
            users: self.users.len(),
        })
    }
}

impl Push {
    /// The push as it crosses instances; `None` for `Replaced`, which is targeted (see
    /// `ClusterMessage::Replace`).
    pub fn to_wire(&self) -> Option<WirePush> {
        match self {
            Push::Frame(frame) => Some(WirePush::Frame {
                frame: frame.to_string(),
            }),
            Push::ProfileChanged { profile, frame } => Some(WirePush::ProfileChanged {
                profile: profile.clone(),
                frame: frame.to_string(),
            }),
            Push::Reload => Some(WirePush::Reload),
            Push::Replaced => None,
        }
    }

    /// A push another instance published.
    pub fn from_wire(wire: WirePush) -> Self {
        match wire {
            WirePush::Frame { frame } => Push::Frame(Arc::from(frame)),
            WirePush::ProfileChanged { profile, frame } => Push::ProfileChanged {
                profile,
                frame: Arc::from(frame),
            },
            WirePush::Reload => Push::Reload,
        }
    }
}

#[cfg(test)]
mod wire_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn pushes_convert_both_ways_and_replaced_stays_local() {
        let push = Push::ProfileChanged {
            profile: serde_json::json!({"display_name": "A"}),
            frame: Arc::from("f"),
        };
        let wire = push.to_wire().unwrap();
        assert!(matches!(Push::from_wire(wire), Push::ProfileChanged { frame, .. } if &*frame == "f"));
        assert!(Push::Replaced.to_wire().is_none());
        assert_eq!(Push::Reload.to_wire(), Some(WirePush::Reload));
    }
}
