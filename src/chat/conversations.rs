//! The conversation commands of SPEC 4.6 beyond sending: finding people, the conversation
//! list, opening, reading and hiding conversations, presence, and room enter/leave. Data is the
//! store's; pushes are returned in [`Answer`]s for the session to publish on the bus.

use std::collections::BTreeMap;

use crate::bus::{Answer, Audience, Delivery};
use crate::error::Error;
use crate::ids::{ChannelId, UserId, WorldId};
use crate::permissions::rules::{ROOM_VIEW, WORLD_CHAT_DIRECT, WORLD_VIEW};
use crate::permissions::{GetRoomAccess, GetWorldRights, Principal};
use crate::protocol::chat_wire;
use crate::protocol::conversation::ConversationCommand;
use crate::protocol::reply::Reply;
use crate::registry::{AreOnline, ConnId};
use crate::services::Services;
use crate::store::{ChatEvent, ChatRefusal, ConversationList, UserRecord, MEMBER_EVENT};

use super::{pointers, search};

/// How many channels `authenticated` and `chat.channels` list (the most recently active).
pub const LISTED_CHANNELS: usize = 100;

pub(crate) fn refusal(r: ChatRefusal) -> Error {
    match r {
        ChatRefusal::UnknownChannel => Error::RoomUnknown,
        ChatRefusal::NotMember | ChatRefusal::UnknownUser | ChatRefusal::TooFewMembers => Error::ChatDenied,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A successful authenticate: records its time on `user` and in the store, and answers the
/// conversation list for `authenticated`.
pub async fn login(
    services: &Services,
    world: &WorldId,
    user: &mut UserRecord,
) -> Result<ConversationList, Error> {
    let now = now_ms();
    let list = services
        .store
        .login_conversations(world.clone(), user.id.clone(), now, LISTED_CHANNELS)
        .await?;
    user.last_login_ms = Some(now);
    Ok(list)
}

/// The user's POINTERS and COUNTS (the list without its channels).
pub async fn pointers_and_counts_of(
    services: &Services,
    world: &WorldId,
    user: &UserId,
) -> Result<ConversationList, Error> {
    Ok(services
        .store
        .pointers_and_counts(world.clone(), user.clone(), LISTED_CHANNELS)
        .await?)
}

/// `["chat.channels", ...]` for every socket of `user` (or all but `except`).
pub async fn channels_push(
    services: &Services,
    world: &WorldId,
    user: &UserId,
    except: Option<ConnId>,
) -> Result<Delivery, Error> {
    let list = services
        .store
        .conversation_list(world.clone(), user.clone(), LISTED_CHANNELS)
        .await?;
    let to = match except {
        Some(conn) => Audience::OtherSockets {
            user: user.clone(),
            except: conn,
        },
        None => Audience::User(user.clone()),
    };
    Ok(Delivery::frame(to, chat_wire::channels_frame(&list)))
}

/// Whether `user` holds the world-level permission `right`.
pub(crate) async fn has_world_right(
    services: &Services,
    world: &WorldId,
    user: &UserRecord,
    right: &str,
) -> Result<bool, Error> {
    let rights = services
        .perms
        .send(GetWorldRights {
            world: world.clone(),
            principal: Principal::of(user),
        })
        .await??;
    Ok(rights.has(right))
}

/// Runs one conversation command for `user` on socket `conn`.
pub async fn run(
    services: Services,
    world: WorldId,
    user: UserRecord,
    conn: ConnId,
    cmd: ConversationCommand,
) -> Result<Answer, Error> {
    match cmd {
        ConversationCommand::UserSearch { term, page, badge } => {
            search_users(&services, &world, &user, &term, page, badge)
                .await
                .map(Answer::reply)
        }
        ConversationCommand::UserFetchMany { ids } => {
            let users = services.store.users_by_ids(world, ids).await?;
            Ok(Answer::reply(Reply::Users(users)))
        }
        ConversationCommand::OnlineStatus { ids } => online_status(&services, &world, &user, ids)
            .await
            .map(Answer::reply),
        ConversationCommand::Subscribe { channel } => {
            let info = services
                .store
                .subscribe_channel(world, channel, user.id)
                .await?
                .map_err(refusal)?;
            Ok(Answer::reply(Reply::Subscribed(info)))
        }
        ConversationCommand::Unsubscribe { channel } => {
            if !services.store.channel_exists(world, channel).await? {
                return Err(Error::RoomUnknown);
            }
            Ok(Answer::reply(Reply::Empty))
        }
        ConversationCommand::MarkRead { channel, id } => {
            mark_read(&services, &world, &user.id, conn, channel, id).await
        }
        ConversationCommand::Leave { channel } => {
            services
                .store
                .hide_channel(world.clone(), channel, user.id.clone())
                .await?
                .map_err(refusal)?;
            let mut answer = Answer::reply(Reply::Empty);
            answer
                .after
                .push(channels_push(&services, &world, &user.id, Some(conn)).await?);
            Ok(answer)
        }
        ConversationCommand::RoomEnter { room } => {
            let access = services
                .perms
                .send(GetRoomAccess {
                    world,
                    principal: Principal::of(&user),
                    room,
                })
                .await??;
            if !access.has(ROOM_VIEW) {
                return Err(Error::Denied);
            }
            Ok(Answer::reply(Reply::Empty))
        }
        ConversationCommand::RoomLeave { room } => {
            // Only the room's existence is checked: leaving needs no permission.
            services
                .perms
                .send(GetRoomAccess {
                    world,
                    principal: Principal::of(&user),
                    room,
                })
                .await??;
            Ok(Answer::reply(Reply::Empty))
        }
    }
}

/// `chat.fetch`'s `users`: every sender and every member event's user (once each).
pub async fn users_of_events(
    services: &Services,
    world: &WorldId,
    events: &[ChatEvent],
) -> Result<Vec<UserRecord>, Error> {
    let mut ids: Vec<UserId> = Vec::new();
    for event in events {
        let mut add = |id: &str| {
            if !ids.iter().any(|known| known.as_str() == id) {
                ids.push(UserId::new(id));
            }
        };
        add(event.sender.as_str());
        if event.event_type == MEMBER_EVENT {
            if let Some(id) = event
                .content
                .get("user")
                .and_then(|u| u.get("id"))
                .and_then(|id| id.as_str())
            {
                add(id);
            }
        }
    }
    Ok(services.store.users_by_ids(world.clone(), ids).await?)
}

async fn search_users(
    services: &Services,
    world: &WorldId,
    user: &UserRecord,
    term: &str,
    page: u64,
    badge: bool,
) -> Result<Reply, Error> {
    if !has_world_right(services, world, user, WORLD_CHAT_DIRECT).await? {
        return Err(Error::AuthDenied);
    }
    let now_ms = now_ms();
    if badge {
        // Nobody has a badge here (no trait_badges_map).
        return Ok(Reply::Search {
            results: Vec::new(),
            is_last: true,
            now_ms,
        });
    }
    let users = services.store.searchable_users(world.clone()).await?;
    let found = search::search(&users, term, page);
    Ok(Reply::Search {
        results: found.results.into_iter().cloned().collect(),
        is_last: found.is_last,
        now_ms,
    })
}

async fn online_status(
    services: &Services,
    world: &WorldId,
    user: &UserRecord,
    ids: Vec<UserId>,
) -> Result<Reply, Error> {
    if !has_world_right(services, world, user, WORLD_VIEW).await? {
        return Err(Error::AuthDenied);
    }
    let mut reply: BTreeMap<UserId, bool> = ids.into_iter().map(|id| (id, false)).collect();
    // Only users of this world can be online in it; other ids are unknown, hence false.
    let known: Vec<UserId> = services
        .store
        .users_by_ids(world.clone(), reply.keys().cloned().collect())
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    let online = services.registry.send(AreOnline { users: known.clone() }).await?;
    for (id, is_online) in known.into_iter().zip(online) {
        reply.insert(id, is_online);
    }
    Ok(Reply::OnlineStatus(reply))
}

async fn mark_read(
    services: &Services,
    world: &WorldId,
    user: &UserId,
    conn: ConnId,
    channel: ChannelId,
    id: i64,
) -> Result<Answer, Error> {
    services
        .store
        .mark_read(
            world.clone(),
            channel,
            user.clone(),
            id,
            pointers::new_read_pointer,
        )
        .await?
        .map_err(refusal)?;
    let list = pointers_and_counts_of(services, world, user).await?;
    let others = Audience::OtherSockets {
        user: user.clone(),
        except: conn,
    };
    let mut answer = Answer::reply(Reply::Empty);
    answer.after = vec![
        Delivery::frame(
            Audience::Socket {
                user: user.clone(),
                conn,
            },
            chat_wire::counts_frame(&list),
        ),
        Delivery::frame(others.clone(), chat_wire::read_pointers_frame(&list)),
        Delivery::frame(others, chat_wire::counts_frame(&list)),
    ];
    Ok(answer)
}
