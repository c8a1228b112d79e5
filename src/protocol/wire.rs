//! The JSON shapes of users, worlds and rooms as venueless clients expect them.
//! Only what a client may see goes in: no secrets, roles, trait grants or BBB settings.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use chrono::TimeZone;

use crate::bbb::xml::Recording;
use crate::config::{RoomSettings, WorldSettings, BBB_MODULE};
use crate::permissions::WorldConfig;
use crate::store::{is_inactive, ChannelInfo, ChatEvent, UserRecord};

use super::chat_wire;
use super::reply::Reply;

/// The body of a `success` frame for a typed reply.
pub fn reply(reply: &Reply) -> Value {
    match reply {
        Reply::Empty => json!({}),
        Reply::Url(url) => json!({ "url": url }),
        Reply::Recordings { recordings, timezone } => {
            let results: Vec<Value> = recordings.iter().map(|r| recording(r, *timezone)).collect();
            json!({ "results": results })
        }
        Reply::Channel(info) => channel(info),
        Reply::Event(event) => json!({ "event": chat_event(event) }),
        Reply::Events { events, users } => json!({
            "results": events.iter().map(chat_event).collect::<Vec<_>>(),
            "users": users_by_id(users),
        }),
        Reply::User(record) => user(record),
        Reply::Users(records) => users_by_id(records),
        Reply::Search {
            results,
            is_last,
            now_ms,
        } => json!({
            "results": results.iter().map(|u| chat_wire::listed(u, *now_ms)).collect::<Vec<_>>(),
            "isLastPage": is_last,
        }),
        Reply::OnlineStatus(online) => json!(online),
        Reply::Subscribed(info) => json!({
            "state": null,
            "next_event_id": info.next_event_id,
            "unread_pointer": info.unread_pointer,
            "members": info.members.iter().map(user).collect::<Vec<_>>(),
        }),
    }
}

/// `{uid: USER}`.
pub fn users_by_id(users: &[UserRecord]) -> Value {
    Value::Object(users.iter().map(|u| (u.id.to_string(), user(u))).collect())
}

/// USER: `{"id", "profile", "pretalx_id", "deleted", "badges", "inactive", "client_state"}`.
pub fn user(user: &UserRecord) -> Value {
    json!({
        "id": user.id,
        "profile": user.profile,
        "pretalx_id": null,
        "deleted": false,
        "badges": [],
        "inactive": is_inactive(user.last_login_ms, chrono::Utc::now().timestamp_millis()),
        "client_state": {},
    })
}

/// ROOM with the user's permissions in it. BBB module configs are shown as `{}`.
pub fn room(room: &RoomSettings, permissions: &BTreeSet<String>) -> Value {
    let modules: Vec<Value> = room
        .modules
        .iter()
        .map(|m| {
            let config = if m.kind == BBB_MODULE {
                json!({})
            } else {
                serde_json::to_value(&m.config).unwrap_or_else(|_| json!({}))
            };
            json!({ "type": m.kind, "config": config })
        })
        .collect();
    json!({
        "id": room.id,
        "name": room.name,
        "description": room.description,
        "picture": null,
        "import_id": null,
        "pretalx_id": 0,
        "permissions": permissions,
        "force_join": false,
        "modules": modules,
        "schedule_data": null,
    })
}

/// The `world.config` JSON text of a view, encoded once and shared by every user of the view.
pub fn world_config(config: &WorldConfig) -> Arc<str> {
    config
        .encoded
        .get_or_init(|| {
            let rooms = config
                .rooms
                .iter()
                .map(|r| room(&r.room, &r.permissions))
                .collect();
            world_config_value(&config.world, &config.permissions, rooms)
                .to_string()
                .into()
        })
        .clone()
}

/// WORLD: the world's public face, the user's world permissions, and the rooms they may view.
pub fn world_config_value(world: &WorldSettings, permissions: &BTreeSet<String>, rooms: Vec<Value>) -> Value {
    json!({
        "world": {
            "id": world.id,
            "title": world.title,
            "pretalx": {},
            "profile_fields": [],
            "social_logins": [],
            "iframe_blockers": {"default": {"enabled": false, "policy_url": null}},
            "onsite_traits": [],
        },
        "permissions": permissions,
        "rooms": rooms,
    })
}

/// The whole `authenticated` frame: exactly seven keys. `world_config` is JSON text (shared
/// between users with the same view), spliced in without parsing it again; `channels`,
/// `read_pointers` and `notification_counts` are the conversation list (SPEC 4.6.3).
pub fn authenticated_frame(
    user_config: &Value,
    world_config: &str,
    channels: &Value,
    read_pointers: &Value,
    notification_counts: &Value,
) -> String {
    format!(
        "[\"authenticated\",{{\"user.config\":{user_config},\"world.config\":{world_config},\"chat.channels\":{channels},\
         \"chat.read_pointers\":{read_pointers},\"chat.notification_counts\":{notification_counts},\
         \"exhibition\":{{\"exhibitors\":[],\"contact_requests\":[]}},\"announcements\":[]}}]"
    )
}

/// REC: one recording with start and end in the world's time zone (ISO-8601 with offset) and
/// the URL of each playback format the client knows.
pub fn recording(rec: &Recording, tz: chrono_tz::Tz) -> Value {
    let time = |ms: i64| {
        tz.timestamp_millis_opt(ms)
            .single()
            .map(|t| t.to_rfc3339())
            .map_or(Value::Null, Value::String)
    };
    let url = |kind: &str| {
        rec.formats
            .iter()
            .find(|f| f.kind == kind)
            .map_or(Value::Null, |f| Value::String(f.url.clone()))
    };
    json!({
        "start": time(rec.start_time_ms),
        "end": time(rec.end_time_ms),
        "participants": rec.participants,
        "state": rec.state,
        "url": url("presentation"),
        "url_video": url("video"),
        "url_screenshare": url("screenshare"),
        "url_notes": url("notes"),
    })
}

/// A DM channel: `{"id", "state", "members", "unread_pointer", "next_event_id"}`.
pub fn channel(info: &ChannelInfo) -> Value {
    json!({
        "id": info.id,
        "state": null,
        "members": info.members.iter().map(user).collect::<Vec<_>>(),
        "unread_pointer": info.unread_pointer,
        "next_event_id": info.next_event_id,
    })
}

/// EVENT: one chat event.
pub fn chat_event(event: &ChatEvent) -> Value {
    json!({
        "event_id": event.event_id,
        "channel": event.channel,
        "sender": event.sender,
        "timestamp": event.timestamp,
        "event_type": event.event_type,
        "content": event.content,
        "edited": null,
        "replaces": null,
        "reactions": {},
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ids::{ChannelId, UserId};

    fn event(id: i64) -> ChatEvent {
        ChatEvent {
            event_id: id,
            channel: ChannelId::new("c"),
            sender: UserId::new("u"),
            timestamp: "t".into(),
            event_type: "channel.message".into(),
            content: json!({"type": "text", "body": "hi"}),
        }
    }

    #[test]
    fn replies_have_the_documented_shapes() {
        assert_eq!(reply(&Reply::Empty), json!({}));
        assert_eq!(
            reply(&Reply::Url("https://x".into())),
            json!({"url": "https://x"})
        );
        assert_eq!(
            reply(&Reply::Event(event(1))),
            json!({"event": chat_event(&event(1))})
        );
        assert_eq!(
            reply(&Reply::Events {
                events: vec![event(1), event(2)],
                users: Vec::new()
            }),
            json!({"results": [chat_event(&event(1)), chat_event(&event(2))], "users": {}})
        );
        let searchable = crate::store::Searchable {
            id: UserId::new("u"),
            display_name: "Ann".into(),
            avatar: None,
            last_login_ms: Some(5),
        };
        assert_eq!(
            reply(&Reply::Search {
                results: vec![searchable],
                is_last: true,
                now_ms: 5
            }),
            json!({"results": [{"id": "u", "profile": {"display_name": "Ann"}, "pretalx_id": null, "inactive": false, "badges": []}], "isLastPage": true})
        );
        let online = [(UserId::new("u"), true)].into_iter().collect();
        assert_eq!(reply(&Reply::OnlineStatus(online)), json!({"u": true}));
        let recordings = reply(&Reply::Recordings {
            recordings: Vec::new(),
            timezone: chrono_tz::Tz::UTC,
        });
        assert_eq!(recordings, json!({"results": []}));
    }
}
