//! The push bus: every push to a user's sockets goes through here, as a [`Publish`] of
//! deliveries addressed to users (never to another session directly). Today the
//! [`SessionRegistry`] delivers a `Publish` to the sockets of this process; in a cluster the
//! publishing instance delivers it locally as well and sends
//! [`Publish::for_other_instances`] through PostgreSQL `NOTIFY` (every field is plain data),
//! and each other instance delivers that to its own sockets.
//!
//! Order: the deliveries of one `Publish` reach each socket in the order they are listed, so a
//! sequence such as `chat.channels`, the sender's `success`, `chat.event`,
//! `chat.unread_pointers`, `chat.notification` (SPEC 4.6.6) is one message. A request's own
//! reply may ride in the sequence ([`Audience::Socket`]) to be ordered among its pushes.

use std::sync::Arc;

use actix::prelude::*;

use crate::cluster::message::WireDelivery;
use crate::ids::UserId;
use crate::protocol::reply::Reply;
use crate::registry::{ConnId, Push, SessionRegistry};
use crate::services::Services;

/// Who gets a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every socket of the user.
    User(UserId),
    /// Every socket of the user except one (the socket that made the request).
    OtherSockets { user: UserId, except: ConnId },
    /// One socket of the user (a request's reply, ordered among the pushes it causes).
    Socket { user: UserId, conn: ConnId },
}

impl Audience {
    /// Whether socket `conn` of `user` is addressed.
    pub fn includes(&self, user: &UserId, conn: ConnId) -> bool {
        match self {
            Audience::User(u) => u == user,
            Audience::OtherSockets { user: u, except } => u == user && *except != conn,
            Audience::Socket { user: u, conn: c } => u == user && *c == conn,
        }
    }

    pub fn user(&self) -> &UserId {
        match self {
            Audience::User(user) | Audience::OtherSockets { user, .. } | Audience::Socket { user, .. } => {
                user
            }
        }
    }
}

/// One push for an audience.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub to: Audience,
    pub push: Push,
}

impl Delivery {
    pub fn new(to: Audience, push: Push) -> Self {
        Self { to, push }
    }

    /// A frame sent as is.
    pub fn frame(to: Audience, frame: impl Into<Arc<str>>) -> Self {
        Self::new(to, Push::Frame(frame.into()))
    }
}

/// Sent by sessions (for the chat service) and the admin API to the bus: deliver these, in order.
#[derive(Message, Clone, Debug, Default)]
#[rtype(result = "()")]
pub struct Publish {
    pub deliveries: Vec<Delivery>,
}

impl Publish {
    /// What other instances of a cluster deliver: sockets named by a request (its reply, the
    /// excepted requesting socket) live on the publishing instance, so elsewhere a reply is
    /// dropped and "every socket but the requester's" is every socket of the user there. Connection
    /// ids are per process, so they never cross instances; the order of the rest is kept.
    pub fn for_other_instances(&self) -> Publish {
        let deliveries = self
            .deliveries
            .iter()
            .filter_map(|d| {
                let to = match &d.to {
                    Audience::User(user) | Audience::OtherSockets { user, .. } => {
                        Audience::User(user.clone())
                    }
                    Audience::Socket { .. } => return None,
                };
                Some(Delivery::new(to, d.push.clone()))
            })
            .collect();
        Publish { deliveries }
    }
}

impl Publish {
    /// The deliveries as they cross instances (call on [`Publish::for_other_instances`]: every
    /// audience there is a whole user; `Replaced` never crosses).
    pub fn wire_deliveries(&self) -> Vec<WireDelivery> {
        self.deliveries
            .iter()
            .filter_map(|d| {
                Some(WireDelivery {
                    user: d.to.user().clone(),
                    push: d.push.to_wire()?,
                })
            })
            .collect()
    }
}

/// Hands `publish` to the bus (today: the local registry).
pub fn publish(services: &Services, publish: Publish) {
    services.registry.do_send(publish);
}

/// A request's answer and the pushes it causes: `before` reach their sockets before the reply,
/// `after` after it (each socket sees them in the order listed).
#[derive(Clone, Debug)]
pub struct Answer {
    pub reply: Reply,
    pub before: Vec<Delivery>,
    pub after: Vec<Delivery>,
}

impl Answer {
    /// An answer that causes no push.
    pub fn reply(reply: Reply) -> Self {
        Self {
            reply,
            before: Vec::new(),
            after: Vec::new(),
        }
    }

    pub fn has_pushes(&self) -> bool {
        !self.before.is_empty() || !self.after.is_empty()
    }

    /// The whole ordered sequence, with the `reply` frame for `reply_to` in its place.
    pub fn into_publish(self, reply_to: Audience, reply: String) -> Publish {
        let mut deliveries = self.before;
        deliveries.push(Delivery::frame(reply_to, reply));
        deliveries.extend(self.after);
        Publish { deliveries }
    }
}

impl Handler<Publish> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        if let Some(cluster) = self.cluster() {
            let remote = msg.for_other_instances().wire_deliveries();
            if !remote.is_empty() {
                cluster.publish(crate::cluster::ClusterMessage::Publish { deliveries: remote });
            }
        }
        for delivery in msg.deliveries {
            let user = delivery.to.user().clone();
            for (conn, addr) in self.sockets_of(&user) {
                if delivery.to.includes(&user, conn) {
                    addr.do_send(delivery.push.clone());
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn audiences_pick_the_users_sockets() {
        let ann = UserId::new("ann");
        let ben = UserId::new("ben");
        let sockets = [1, 2, 3];
        let recipients = |to: &Audience, user: &UserId, sockets: &[ConnId]| -> Vec<ConnId> {
            sockets
                .iter()
                .copied()
                .filter(|c| to.includes(user, *c))
                .collect()
        };
        assert_eq!(
            recipients(&Audience::User(ann.clone()), &ann, &sockets),
            vec![1, 2, 3]
        );
        assert_eq!(
            recipients(&Audience::User(ben.clone()), &ann, &sockets),
            Vec::<ConnId>::new()
        );
        let others = Audience::OtherSockets {
            user: ann.clone(),
            except: 2,
        };
        assert_eq!(recipients(&others, &ann, &sockets), vec![1, 3]);
        let one = Audience::Socket {
            user: ann.clone(),
            conn: 3,
        };
        assert_eq!(recipients(&one, &ann, &sockets), vec![3]);
        assert_eq!(one.user(), &ann);
    }

    #[test]
    fn other_instances_get_everything_but_what_names_a_local_socket() {
        let ann = UserId::new("ann");
        let publish = Publish {
            deliveries: vec![
                Delivery::frame(Audience::User(ann.clone()), "1"),
                Delivery::frame(
                    Audience::Socket {
                        user: ann.clone(),
                        conn: 7,
                    },
                    "2",
                ),
                Delivery::frame(
                    Audience::OtherSockets {
                        user: ann.clone(),
                        except: 7,
                    },
                    "3",
                ),
            ],
        };
        let remote = publish.for_other_instances();
        let to: Vec<&Audience> = remote.deliveries.iter().map(|d| &d.to).collect();
        assert_eq!(to, [&Audience::User(ann.clone()), &Audience::User(ann.clone())]);
        assert!(matches!(&remote.deliveries[1].push, Push::Frame(f) if &**f == "3"));
    }

    #[test]
    fn the_reply_sits_between_the_pushes_before_and_after_it() {
        let ann = UserId::new("ann");
        let push = |name: &str| Delivery::frame(Audience::User(ann.clone()), name.to_string());
        let answer = Answer {
            reply: Reply::Empty,
            before: vec![push("1")],
            after: vec![push("3"), push("4")],
        };
        let reply_to = Audience::Socket {
            user: ann.clone(),
            conn: 7,
        };
        let order: Vec<String> = answer
            .into_publish(reply_to, "2".into())
            .deliveries
            .iter()
            .map(|d| match &d.push {
                Push::Frame(f) => f.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(order, ["1", "2", "3", "4"]);
    }
}
