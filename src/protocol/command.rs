//! Typed commands: checks namespace, then action, then the body's shape, in that order.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Namespace};
use crate::ids::{CallId, ChannelId, RoomId, UserId};
use crate::protocol::conversation::{self, ConversationCommand};

/// Longest accepted display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;
/// A stored profile is at most this many bytes of JSON (SPEC §7: no amplification).
pub const MAX_PROFILE_BYTES: usize = 16 * 1024;

/// A request the authenticated session can act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `user.update`: replace the profile.
    UserUpdate { profile: Map<String, Value> },
    /// `user.fetch`: one user of this world.
    UserFetch { id: UserId },
    /// `bbb.room_url`: a join URL for a room's meeting.
    RoomUrl { room: RoomId },
    /// `bbb.recordings`: a room's recordings.
    Recordings { room: RoomId },
    /// `bbb.call_url`: a join URL for a private call; `None` when the id is not a string.
    /// The id is not validated here (a malformed one is answered `bbb.failed`).
    CallUrl { call: Option<CallId> },
    /// `chat.direct.create`: the DM channel of the caller and these users; `hide` (default
    /// true) hides a new channel from the other members until its first message.
    DirectCreate { users: Vec<UserId>, hide: bool },
    /// `chat.send`: a message or a call into a channel.
    ChatSend {
        channel: ChannelId,
        content: SendContent,
    },
    /// `chat.fetch`: a page of a channel's events.
    ChatFetch {
        channel: ChannelId,
        count: u32,
        before_id: Option<i64>,
    },
    /// The commands around conversations of SPEC 4.6 (`protocol::conversation`).
    Conversation(ConversationCommand),
}

/// What `chat.send` carries.
#[derive(Debug, Clone, PartialEq)]
pub enum SendContent {
    /// `{"type": "text", "body": "..."}`, stored as given.
    Text(Value),
    /// `{"type": "call"}`: start a private call.
    Call,
}

/// Longest accepted text message body, in characters.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Largest `chat.fetch` page.
pub const MAX_FETCH_COUNT: u32 = 500;
const DEFAULT_FETCH_COUNT: u32 = 50;

#[derive(Deserialize)]
struct CallBody {
    call: Option<Value>,
}

#[derive(Deserialize)]
struct DirectCreateBody {
    users: Vec<UserId>,
    #[serde(default = "default_hide")]
    hide: bool,
}

fn default_hide() -> bool {
    true
}

#[derive(Deserialize)]
struct SendBody {
    channel: ChannelId,
    event_type: String,
    content: Map<String, Value>,
}

#[derive(Deserialize)]
struct FetchBody {
    channel: ChannelId,
    count: Option<u32>,
    before_id: Option<i64>,
}

#[derive(Deserialize)]
struct UserUpdateBody {
    profile: Value,
}

#[derive(Deserialize)]
struct RoomBody {
    room: RoomId,
}

#[derive(Deserialize)]
struct IdBody {
    id: Value,
}

/// Resolves `action` with `body` into a command, in the order the protocol requires:
/// unknown namespace, unknown action, then the body.
pub fn parse(action: &str, body: Option<Value>) -> Result<Command, Error> {
    let namespace = action.split('.').next().unwrap_or(action);
    let Some(ns) = Namespace::parse(namespace) else {
        return Err(Error::UnknownCommand);
    };
    let unsupported = || Error::UnsupportedCommand(ns);
    match action {
        "user.update" => {
            let b: UserUpdateBody = body_as(body)?;
            Ok(Command::UserUpdate {
                profile: validate_profile(b.profile)?,
            })
        }
        "user.fetch" if body.as_ref().is_some_and(|b| b.get("ids").is_some()) => {
            let b: Map<String, Value> = body_as(body)?;
            Ok(Command::Conversation(conversation::fetch_many(&b)?))
        }
        "user.fetch" => {
            let b: IdBody = body_as(body)?;
            match b.id {
                Value::String(id) => Ok(Command::UserFetch { id: UserId(id) }),
                _ => Err(Error::invalid("id must be a string")),
            }
        }
        "bbb.room_url" => Ok(Command::RoomUrl {
            room: body_as::<RoomBody>(body)?.room,
        }),
        "bbb.recordings" => Ok(Command::Recordings {
            room: body_as::<RoomBody>(body)?.room,
        }),
        "bbb.call_url" => {
            let b: CallBody = body_as(body)?;
            Ok(Command::CallUrl {
                call: match b.call {
                    Some(Value::String(s)) => Some(CallId(s)),
                    _ => None,
                },
            })
        }
        "chat.direct.create" => {
            let b: DirectCreateBody = body_as(body)?;
            Ok(Command::DirectCreate {
                users: b.users,
                hide: b.hide,
            })
        }
        "chat.send" => {
            // Edits and deletes carry `replaces`: not supported, and never stored as new messages.
            if body.as_ref().is_some_and(|b| b.get("replaces").is_some()) {
                return Err(Error::ChatUnsupportedContentType);
            }
            let b: SendBody = body_as(body)?;
            if b.event_type != "channel.message" {
                return Err(Error::invalid("event_type must be channel.message"));
            }
            Ok(Command::ChatSend {
                channel: b.channel,
                content: send_content(b.content)?,
            })
        }
        "chat.fetch" => {
            let b: FetchBody = body_as(body)?;
            let count = b.count.unwrap_or(DEFAULT_FETCH_COUNT);
            if count == 0 || count > MAX_FETCH_COUNT {
                return Err(Error::invalid("count must be between 1 and 500"));
            }
            Ok(Command::ChatFetch {
                channel: b.channel,
                count,
                before_id: b.before_id,
            })
        }
        _ => match conversation::parse(action, body) {
            Some(parsed) => parsed.map(Command::Conversation),
            None => Err(unsupported()),
        },
    }
}

fn send_content(content: Map<String, Value>) -> Result<SendContent, Error> {
    match content.get("type").and_then(Value::as_str) {
        Some("call") => Ok(SendContent::Call),
        Some("text") => match content.get("body") {
            Some(Value::String(body)) if body.chars().count() <= MAX_MESSAGE_CHARS => {
                Ok(SendContent::Text(Value::Object(content)))
            }
            Some(Value::String(_)) => Err(Error::invalid("message body is longer than 10000 characters")),
            _ => Err(Error::invalid("text content needs a string body")),
        },
        _ => Err(Error::invalid("content type must be text or call")),
    }
}

/// Deserialises the body object into `T`; a missing or ill-typed body is `invalid_message`.
fn body_as<T: DeserializeOwned>(body: Option<Value>) -> Result<T, Error> {
    match body {
        Some(body @ Value::Object(_)) => {
            serde_json::from_value(body).map_err(|e| Error::invalid(format!("invalid body: {e}")))
        }
        Some(_) => Err(Error::invalid("body must be an object")),
        None => Err(Error::invalid("missing body")),
    }
}

/// A profile is an object; `display_name`, if present, a string of at most 200 characters;
/// `avatar`, if present and not null, an object whose `url` (if any) is an http(s) URL.
pub fn validate_profile(profile: Value) -> Result<Map<String, Value>, Error> {
    let Value::Object(profile) = profile else {
        return Err(Error::invalid("profile must be an object"));
    };
    if profile_bytes(&profile) > MAX_PROFILE_BYTES {
        return Err(Error::invalid("profile is larger than 16 KiB of JSON"));
    }
    match profile.get("display_name") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) if name.chars().count() <= MAX_DISPLAY_NAME_CHARS => {}
        Some(Value::String(_)) => {
            return Err(Error::invalid("display_name is longer than 200 characters"));
        }
        Some(_) => return Err(Error::invalid("display_name must be a string")),
    }
    match profile.get("avatar") {
        None | Some(Value::Null) => {}
        Some(Value::Object(avatar)) => match avatar.get("url") {
            None | Some(Value::Null) => {}
            Some(Value::String(url)) if url.is_empty() || is_http_url(url) => {}
            Some(_) => return Err(Error::invalid("avatar.url must be an http(s) URL")),
        },
        Some(_) => return Err(Error::invalid("avatar must be an object")),
    }
    Ok(profile)
}

/// The size of a profile as stored (compact JSON).
pub fn profile_bytes(profile: &Map<String, Value>) -> usize {
    serde_json::to_vec(profile).map_or(usize::MAX, |v| v.len())
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_namespace_is_unknown_command() {
        assert_eq!(
            parse("exhibition.list", Some(json!({}))),
            Err(Error::UnknownCommand)
        );
        assert_eq!(parse("authenticate", Some(json!({}))), Err(Error::UnknownCommand));
    }

    #[test]
    fn unknown_action_is_checked_before_the_body() {
        assert_eq!(
            parse("bbb.nope", Some(json!("not an object"))),
            Err(Error::UnsupportedCommand(Namespace::Bbb))
        );
        assert_eq!(
            parse("world", None),
            Err(Error::UnsupportedCommand(Namespace::World))
        );
    }

    #[test]
    fn profile_is_at_most_16_kib_of_json() {
        let around = profile_bytes(json!({"display_name": "x", "bio": ""}).as_object().unwrap());
        let fits = "b".repeat(MAX_PROFILE_BYTES - around);
        let body = json!({"profile": {"display_name": "x", "bio": fits}});
        assert_eq!(
            profile_bytes(body["profile"].as_object().unwrap()),
            MAX_PROFILE_BYTES
        );
        assert!(parse("user.update", Some(body)).is_ok());
        let over = "b".repeat(MAX_PROFILE_BYTES - around + 1);
        let e = parse(
            "user.update",
            Some(json!({"profile": {"display_name": "x", "bio": over}})),
        )
        .unwrap_err();
        assert_eq!(e.code(), "protocol.invalid_message");
    }

    #[test]
    fn profile_must_be_an_object_with_a_short_string_name() {
        assert!(parse("user.update", Some(json!({"profile": []}))).is_err());
        assert!(parse("user.update", Some(json!({"profile": {"display_name": 5}}))).is_err());
        let long = "x".repeat(201);
        assert!(parse("user.update", Some(json!({"profile": {"display_name": long}}))).is_err());
        let ok = "ü".repeat(200);
        assert!(parse("user.update", Some(json!({"profile": {"display_name": ok}}))).is_ok());
    }

    #[test]
    fn avatar_url_must_be_http() {
        let js = json!({"profile": {"avatar": {"url": "javascript:alert(1)"}}});
        assert!(parse("user.update", Some(js)).is_err());
        let ok = json!({"profile": {"avatar": {"url": "https://example.org/a.png"}}});
        assert!(parse("user.update", Some(ok)).is_ok());
    }

    #[test]
    fn chat_send_accepts_text_and_call_only() {
        let text = json!({"channel": "c", "event_type": "channel.message", "content": {"type": "text", "body": "hi"}});
        assert!(matches!(
            parse("chat.send", Some(text)),
            Ok(Command::ChatSend {
                content: SendContent::Text(_),
                ..
            })
        ));
        let call = json!({"channel": "c", "event_type": "channel.message", "content": {"type": "call"}});
        assert!(matches!(
            parse("chat.send", Some(call)),
            Ok(Command::ChatSend {
                content: SendContent::Call,
                ..
            })
        ));
        for bad in [
            json!({"channel": "c", "event_type": "channel.message", "content": {"type": "file"}}),
            json!({"channel": "c", "event_type": "channel.message", "content": {"type": "text", "body": 5}}),
            json!({"channel": "c", "event_type": "channel.other", "content": {"type": "text", "body": "x"}}),
            json!({"channel": 1, "event_type": "channel.message", "content": {"type": "text", "body": "x"}}),
        ] {
            assert_eq!(
                parse("chat.send", Some(bad)).unwrap_err().code(),
                "protocol.invalid_message"
            );
        }
    }

    #[test]
    fn malformed_call_ids_are_kept_for_a_bbb_failed_answer() {
        assert_eq!(
            parse("bbb.call_url", Some(json!({"call": 42}))),
            Ok(Command::CallUrl { call: None })
        );
        assert_eq!(
            parse("bbb.call_url", Some(json!({}))),
            Ok(Command::CallUrl { call: None })
        );
    }

    #[test]
    fn fetch_count_is_bounded() {
        assert!(parse("chat.fetch", Some(json!({"channel": "c", "count": 0}))).is_err());
        assert!(parse("chat.fetch", Some(json!({"channel": "c", "count": 501}))).is_err());
        assert!(parse(
            "chat.fetch",
            Some(json!({"channel": "c", "count": 20, "before_id": 5}))
        )
        .is_ok());
    }

    #[test]
    fn ids_are_typed_from_the_parser_on() {
        assert_eq!(
            parse("bbb.room_url", Some(json!({"room": "stage"}))),
            Ok(Command::RoomUrl {
                room: RoomId::new("stage")
            })
        );
        assert_eq!(
            parse("user.fetch", Some(json!({"id": "u1"}))),
            Ok(Command::UserFetch {
                id: UserId::new("u1")
            })
        );
        assert_eq!(
            parse("chat.direct.create", Some(json!({"users": ["a", "b"]}))),
            Ok(Command::DirectCreate {
                users: vec![UserId::new("a"), UserId::new("b")],
                hide: true
            })
        );
        assert_eq!(
            parse("chat.direct.create", Some(json!({"users": [], "hide": false}))),
            Ok(Command::DirectCreate {
                users: vec![],
                hide: false
            })
        );
        assert_eq!(
            parse("chat.direct.create", Some(json!({"users": [], "hide": 1})))
                .unwrap_err()
                .code(),
            "protocol.invalid_message"
        );
        assert_eq!(
            parse(
                "chat.send",
                Some(json!({"channel": "c", "replaces": 3, "content": {"type": "deleted"}}))
            )
            .unwrap_err()
            .code(),
            "chat.unsupported_content_type"
        );
        assert_eq!(
            parse("bbb.call_url", Some(json!({"call": "not-a-uuid"}))),
            Ok(Command::CallUrl {
                call: Some(CallId::new("not-a-uuid"))
            })
        );
    }

    #[test]
    fn missing_body_is_invalid() {
        assert_eq!(
            parse("user.fetch", None).unwrap_err().code(),
            "protocol.invalid_message"
        );
    }
}
