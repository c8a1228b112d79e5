//! `SessionRegistry`: the live, authenticated sockets of every user. It enforces
//! `connection_limit` and delivers what the push bus publishes to this process's sockets.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::Value;

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

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) {
        let sockets = self.users.entry(msg.user.clone()).or_default();
        sockets.push((msg.conn, msg.addr));
        self.sockets += 1;
        if let Some(limit) = msg.limit.filter(|l| *l > 0) {
            let excess = sockets.len().saturating_sub(limit);
            for (conn, addr) in sockets.drain(..excess) {
                log::info!(
                    "registry: user={} conn={conn} replaced by conn={}",
                    msg.user,
                    msg.conn
                );
                addr.do_send(Push::Replaced);
                self.sockets = self.sockets.saturating_sub(1);
            }
        }
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
    type Result = MessageResult<AreOnline>;

    fn handle(&mut self, msg: AreOnline, _: &mut Context<Self>) -> Self::Result {
        MessageResult(msg.users.iter().map(|u| self.users.contains_key(u)).collect())
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
