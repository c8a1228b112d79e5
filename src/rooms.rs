//! Room commands (SPEC §4.3, §4.5): the checks behind `bbb.room_url` and `bbb.recordings`, in
//! the order the protocol fixes, then the balancer.

use serde_json::Value;

use crate::balancer::params::Joiner;
use crate::balancer::{GetRecordings, JoinRoom};
use crate::error::Error;
use crate::ids::{RoomId, WorldId};
use crate::permissions::rules::{ROOM_BBB_JOIN, ROOM_BBB_MODERATE, ROOM_BBB_RECORDINGS};
use crate::permissions::{GetRoomAccess, Principal, RoomAccess};
use crate::protocol::reply::Reply;
use crate::services::Services;
use crate::store::UserRecord;

/// The room and the user's rights in it; a room without a BBB module is `room.unknown`.
async fn bbb_room(
    services: &Services,
    world: &WorldId,
    user: &UserRecord,
    room: RoomId,
) -> Result<RoomAccess, Error> {
    let access = services
        .perms
        .send(GetRoomAccess {
            world: world.clone(),
            principal: Principal::of(user),
            room,
        })
        .await??;
    if access.bbb.is_none() {
        return Err(Error::RoomUnknown);
    }
    Ok(access)
}

/// `bbb.room_url`: room, permission, display name, then BBB.
pub async fn room_url(
    services: Services,
    world: WorldId,
    user: UserRecord,
    room: RoomId,
) -> Result<Reply, Error> {
    let access = bbb_room(&services, &world, &user, room).await?;
    if !access.has(ROOM_BBB_JOIN) {
        return Err(Error::Denied);
    }
    let display_name = display_name(&user.profile).ok_or(Error::MissingProfile)?;
    let config = access.bbb.clone().unwrap_or_default();
    let ready = services
        .balancer
        .send(JoinRoom {
            world,
            room: access.room.id.clone(),
            name: access.room.name.clone(),
            config: config.clone(),
            disable_private_chat: access.world.bbb_disable_privatechat,
        })
        .await??;
    let joiner = Joiner {
        user_id: user.id.0.clone(),
        display_name,
        avatar_url: avatar_url(&user.profile),
        moderator: access.has(ROOM_BBB_MODERATE),
    };
    Ok(Reply::Url(ready.room_join_url(&joiner, &config)))
}

/// `bbb.recordings`: room, permission, then every usable server.
pub async fn recordings(
    services: Services,
    world: WorldId,
    user: UserRecord,
    room: RoomId,
) -> Result<Reply, Error> {
    let access = bbb_room(&services, &world, &user, room).await?;
    if !access.has(ROOM_BBB_RECORDINGS) {
        return Err(Error::Denied);
    }
    let recordings = services
        .balancer
        .send(GetRecordings {
            world,
            room: access.room.id.clone(),
        })
        .await??;
    Ok(Reply::Recordings {
        recordings,
        timezone: access.world.tz(),
    })
}

/// The profile's non-blank display name, if any.
pub fn display_name(profile: &Value) -> Option<String> {
    profile
        .get("display_name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// The profile's avatar URL, if any.
pub fn avatar_url(profile: &Value) -> Option<String> {
    profile
        .get("avatar")
        .and_then(|a| a.get("url"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}
