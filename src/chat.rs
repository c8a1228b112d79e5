//! Direct messages and private calls (SPEC §4.4, §4.6): the logic behind `chat.direct.create`,
//! `chat.send`, `chat.fetch` and `bbb.call_url`; the other conversation commands are in
//! [`conversations`]. Storage is the store's; pushes are returned in [`Answer`]s that the
//! session publishes on the [`crate::bus`]; calls are placed and joined through the balancer.
//!
//! - [`pointers`]: read-pointer arithmetic and the notification decision (pure).
//! - [`search`]: `user.list.search` matching, order and pages (pure).

pub mod conversations;
pub mod pointers;
pub mod search;

use std::sync::Arc;

use serde_json::json;

use crate::balancer::params::Joiner;
use crate::balancer::{JoinCall, PlaceCall};
use crate::bus::{Answer, Audience, Delivery};
use crate::error::Error;
use crate::ids::{is_uuid, CallId, ChannelId, UserId, WorldId};
use crate::permissions::rules::WORLD_CHAT_DIRECT;
use crate::protocol::command::SendContent;
use crate::protocol::reply::Reply;
use crate::protocol::{chat_wire, frame, wire};
use crate::registry::ConnId;
use crate::rooms::{avatar_url, display_name};
use crate::services::Services;
use crate::store::{NewContent, UserRecord};
use conversations::{channels_push, has_world_right, pointers_and_counts_of, refusal};
use pointers::{notify_as, NotifyAs};

/// A direct channel has at most this many members, the caller included (SPEC §7).
pub const MAX_CHANNEL_MEMBERS: usize = 50;

async fn may_chat(services: &Services, world: &WorldId, user: &UserRecord) -> Result<bool, Error> {
    has_world_right(services, world, user, WORLD_CHAT_DIRECT).await
}

/// `chat.direct.create`: the channel of the caller plus `users` (same set, same channel). After
/// the reply: the caller's other sockets get `chat.channels` when the channel is new or the
/// caller had hidden it; with `hide` false, a new channel's other members get it too.
pub async fn direct_create(
    services: Services,
    world: WorldId,
    caller: UserRecord,
    conn: ConnId,
    users: Vec<UserId>,
    hide: bool,
) -> Result<Answer, Error> {
    if !may_chat(&services, &world, &caller).await? {
        return Err(Error::AuthDenied);
    }
    if users.iter().any(|u| !is_uuid(u.as_str())) {
        return Err(Error::ChatDenied);
    }
    let mut members = users;
    members.push(caller.id.clone());
    let distinct: std::collections::HashSet<&UserId> = members.iter().collect();
    if distinct.len() > MAX_CHANNEL_MEMBERS {
        return Err(Error::ChatDenied);
    }
    let outcome = services
        .store
        .direct_channel(world.clone(), members, caller.id.clone(), hide, wire::user)
        .await?
        .map_err(refusal)?;
    let created = outcome.created;
    let others: Vec<UserId> = outcome
        .info
        .members
        .iter()
        .filter(|m| m.id != caller.id)
        .map(|m| m.id.clone())
        .collect();
    let mut answer = Answer::reply(Reply::Channel(outcome.info));
    if created || outcome.caller_was_hidden {
        answer
            .after
            .push(channels_push(&services, &world, &caller.id, Some(conn)).await?);
    }
    if created && !hide {
        for member in &others {
            answer
                .after
                .push(channels_push(&services, &world, member, None).await?);
        }
    }
    Ok(answer)
}

/// `chat.send`: stores the event (with one notification per other member, and the call for
/// call content), then answers with the pushes of SPEC 4.6.6 in their order: `chat.channels`
/// for members whose hidden membership became visible, (the reply,) `chat.event` to every
/// member, then per other member `chat.unread_pointers` and `chat.notification`.
pub async fn send(
    services: Services,
    world: WorldId,
    sender: UserRecord,
    channel: ChannelId,
    content: SendContent,
) -> Result<Answer, Error> {
    if !may_chat(&services, &world, &sender).await? {
        return Err(Error::ChatDenied);
    }
    let content = match content {
        SendContent::Text(v) => NewContent::Message(v),
        SendContent::Call => NewContent::Call,
    };
    let appended = services
        .store
        .append_event(
            world.clone(),
            channel,
            sender.id.clone(),
            "channel.message".into(),
            content,
        )
        .await?
        .map_err(refusal)?;
    if let Some(call) = &appended.call {
        log::info!("chat: world={world} call={call} started by user={}", sender.id);
        services.balancer.do_send(PlaceCall {
            world: world.clone(),
            call: call.clone(),
        });
    }
    let event = wire::chat_event(&appended.event);
    let mut before = Vec::new();
    for member in &appended.unhidden {
        before.push(channels_push(&services, &world, member, None).await?);
    }
    let mut after = Vec::new();
    let pushed: Arc<str> = frame::event("chat.event", event.clone()).into();
    for member in &appended.members {
        after.push(Delivery::frame(Audience::User(member.clone()), pushed.clone()));
    }
    let event_id = appended.event.event_id;
    let unread: Arc<str> = frame::event(
        "chat.unread_pointers",
        json!({ appended.event.channel.as_str(): event_id }),
    )
    .into();
    let notification: Arc<str> = chat_wire::notification_frame(&event, &sender).into();
    for (member, read_pointer) in &appended.recipients {
        let to = Audience::User(member.clone());
        after.push(Delivery::frame(to.clone(), unread.clone()));
        let frame = match notify_as(*read_pointer, event_id) {
            NotifyAs::Notification => notification.clone(),
            NotifyAs::Counts => {
                chat_wire::counts_frame(&pointers_and_counts_of(&services, &world, member).await?).into()
            }
        };
        after.push(Delivery::frame(to, frame));
    }
    Ok(Answer {
        reply: Reply::Event(appended.event),
        before,
        after,
    })
}

/// `chat.fetch`: a page of events, oldest first, and the users they name; members only.
pub async fn fetch(
    services: Services,
    world: WorldId,
    user: UserId,
    channel: ChannelId,
    count: u32,
    before_id: Option<i64>,
) -> Result<Reply, Error> {
    let events = services
        .store
        .fetch_events(world.clone(), channel, user, count, before_id)
        .await?
        .map_err(refusal)?;
    let users = conversations::users_of_events(&services, &world, &events).await?;
    Ok(Reply::Events { events, users })
}

/// `bbb.call_url`: a moderator join URL for invited members. Anything wrong with the call is
/// `bbb.failed`, as venueless clients expect.
pub async fn call_url(
    services: Services,
    world: WorldId,
    user: UserRecord,
    call: Option<CallId>,
) -> Result<Reply, Error> {
    let display_name = display_name(&user.profile).ok_or(Error::MissingProfile)?;
    let call = call.filter(|c| is_uuid(c.as_str())).ok_or(Error::BbbFailed)?;
    let record = services
        .store
        .get_call(world.clone(), call)
        .await?
        .ok_or(Error::BbbFailed)?;
    if !record.invited.contains(&user.id) {
        log::info!("chat: user={} not invited to call={}", user.id, record.id);
        return Err(Error::BbbFailed);
    }
    let ready = services
        .balancer
        .send(JoinCall {
            world,
            call: CallId(record.id.0),
        })
        .await??;
    let joiner = Joiner {
        user_id: user.id.0.clone(),
        display_name,
        avatar_url: avatar_url(&user.profile),
        moderator: true,
    };
    Ok(Reply::Url(ready.call_join_url(&joiner)))
}
