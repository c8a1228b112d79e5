//! Direct messages and private calls (SPEC §4.4): the logic behind `chat.direct.create`,
//! `chat.send`, `chat.fetch` and `bbb.call_url`. Storage is the store actor's; pushes go
//! through the session registry; calls are placed and joined through the balancer.

use std::sync::Arc;

use crate::balancer::params::Joiner;
use crate::balancer::{JoinCall, PlaceCall};
use crate::error::Error;
use crate::ids::{is_uuid, CallId, ChannelId, UserId, WorldId};
use crate::permissions::rules::WORLD_CHAT_DIRECT;
use crate::permissions::{GetWorldRights, Principal};
use crate::protocol::command::SendContent;
use crate::protocol::reply::Reply;
use crate::protocol::{frame, wire};
use crate::registry::{Push, PushToUsers};
use crate::rooms::{avatar_url, display_name};
use crate::services::Services;
use crate::store::{ChannelInfo, ChatRefusal, NewContent, UserRecord};

fn refusal(r: ChatRefusal) -> Error {
    match r {
        ChatRefusal::UnknownChannel => Error::RoomUnknown,
        ChatRefusal::NotMember | ChatRefusal::UnknownUser | ChatRefusal::TooFewMembers => Error::ChatDenied,
    }
}

async fn may_chat(services: &Services, world: &WorldId, user: &UserRecord) -> Result<bool, Error> {
    let rights = services
        .perms
        .send(GetWorldRights {
            world: world.clone(),
            principal: Principal::of(user),
        })
        .await??;
    Ok(rights.has(WORLD_CHAT_DIRECT))
}

/// `chat.direct.create`: the channel of the caller plus `users` (same set, same channel).
pub async fn direct_create(
    services: Services,
    world: WorldId,
    caller: UserRecord,
    users: Vec<UserId>,
) -> Result<Reply, Error> {
    if !may_chat(&services, &world, &caller).await? {
        return Err(Error::AuthDenied);
    }
    if users.iter().any(|u| !is_uuid(u.as_str())) {
        return Err(Error::ChatDenied);
    }
    let mut members = users;
    members.push(caller.id.clone());
    let info = services
        .store
        .direct_channel(world, members)
        .await?
        .map_err(refusal)?;
    Ok(Reply::Channel(info))
}

/// `chat.channels` of the `authenticated` frame.
pub async fn channels(
    services: &Services,
    world: &WorldId,
    user: &UserId,
) -> Result<Vec<ChannelInfo>, Error> {
    Ok(services.store.channels_of(world.clone(), user.clone()).await?)
}

/// `chat.send`: stores the event, starts a call for call content, and pushes `chat.event` to
/// every live socket of every member.
pub async fn send(
    services: Services,
    world: WorldId,
    sender: UserRecord,
    channel: ChannelId,
    content: SendContent,
) -> Result<Reply, Error> {
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
    let pushed: Arc<str> = frame::event("chat.event", wire::chat_event(&appended.event)).into();
    services.registry.do_send(PushToUsers {
        users: appended.members,
        push: Push::Frame(pushed),
        except: None,
    });
    Ok(Reply::Event(appended.event))
}

/// `chat.fetch`: a page of events, oldest first; members only.
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
        .fetch_events(world, channel, user, count, before_id)
        .await?
        .map_err(refusal)?;
    Ok(Reply::Events(events))
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
    let url = services
        .balancer
        .send(JoinCall {
            world,
            call: CallId(record.id.0),
            joiner: Joiner {
                user_id: user.id.0.clone(),
                display_name,
                avatar_url: avatar_url(&user.profile),
                moderator: true,
            },
        })
        .await??;
    Ok(Reply::Url(url))
}
