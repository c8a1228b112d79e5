//! Typed bodies of the conversation commands the venueless webapp sends (SPEC 4.6):
//! `user.list.search`, `user.fetch` with `ids`, `user.online_status`, `chat.subscribe`,
//! `chat.unsubscribe`, `chat.mark_read`, `chat.leave`, `room.enter`, `room.leave`.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::ids::{ChannelId, RoomId, UserId};

/// Longest accepted `search_term`, in characters.
pub const MAX_SEARCH_TERM_CHARS: usize = 200;
/// Most ids `user.fetch` and `user.online_status` look at.
pub const MAX_IDS: usize = 100;

/// A conversation command with a checked body.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationCommand {
    /// `user.list.search`: a page of people by display name. `badge`: a badge filter was given
    /// (no user has a badge, so no results).
    UserSearch {
        term: String,
        page: u64,
        badge: bool,
    },
    /// `user.fetch` with `ids`: the first 100 ids.
    UserFetchMany {
        ids: Vec<UserId>,
    },
    /// `user.online_status`: at most 100 ids.
    OnlineStatus {
        ids: Vec<UserId>,
    },
    Subscribe {
        channel: ChannelId,
    },
    Unsubscribe {
        channel: ChannelId,
    },
    /// `chat.mark_read` with an event id ≥ 1.
    MarkRead {
        channel: ChannelId,
        id: i64,
    },
    Leave {
        channel: ChannelId,
    },
    RoomEnter {
        room: RoomId,
    },
    RoomLeave {
        room: RoomId,
    },
}

/// Parses the body of a conversation `action`; `None` when the action is not one of them.
pub fn parse(action: &str, body: Option<Value>) -> Option<Result<ConversationCommand, Error>> {
    let parsed = match action {
        "user.list.search" => object(body).and_then(search),
        "user.online_status" => object(body).and_then(|b| {
            let ids = string_list(&b, "ids")?;
            if ids.len() > MAX_IDS {
                return Err(Error::invalid("at most 100 ids"));
            }
            Ok(ConversationCommand::OnlineStatus { ids })
        }),
        "chat.subscribe" => channel(body).map(|channel| ConversationCommand::Subscribe { channel }),
        "chat.unsubscribe" => channel(body).map(|channel| ConversationCommand::Unsubscribe { channel }),
        "chat.leave" => channel(body).map(|channel| ConversationCommand::Leave { channel }),
        "chat.mark_read" => object(body).and_then(mark_read),
        "room.enter" => room(body).map(|room| ConversationCommand::RoomEnter { room }),
        "room.leave" => room(body).map(|room| ConversationCommand::RoomLeave { room }),
        _ => return None,
    };
    Some(parsed)
}

/// `user.fetch` with an `ids` key (the form with `id` stays in `command`).
pub fn fetch_many(body: &Map<String, Value>) -> Result<ConversationCommand, Error> {
    let mut ids = string_list(body, "ids")?;
    ids.truncate(MAX_IDS);
    Ok(ConversationCommand::UserFetchMany { ids })
}

fn search(b: Map<String, Value>) -> Result<ConversationCommand, Error> {
    let term = match b.get("search_term") {
        Some(Value::String(s)) if s.chars().count() <= MAX_SEARCH_TERM_CHARS => s.clone(),
        Some(Value::String(_)) => return Err(Error::invalid("search_term is longer than 200 characters")),
        _ => return Err(Error::invalid("search_term must be a string")),
    };
    let page = match b.get("page").and_then(Value::as_u64) {
        Some(page) if page >= 1 => page,
        _ => return Err(Error::invalid("page must be an integer of at least 1")),
    };
    let badge = matches!(b.get("badge"), Some(Value::String(_)));
    Ok(ConversationCommand::UserSearch { term, page, badge })
}

fn channel(body: Option<Value>) -> Result<ChannelId, Error> {
    object(body).and_then(|b| string(&b, "channel")).map(ChannelId)
}

fn room(body: Option<Value>) -> Result<RoomId, Error> {
    object(body).and_then(|b| string(&b, "room")).map(RoomId)
}

fn mark_read(b: Map<String, Value>) -> Result<ConversationCommand, Error> {
    let channel = ChannelId(string(&b, "channel")?);
    let id = match b.get("id") {
        None | Some(Value::Null) => return Err(Error::ChatInvalidBody),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.as_i64().unwrap_or(i64::MAX),
        Some(_) => return Err(Error::invalid("id must be an integer")),
    };
    if id < 1 {
        return Err(Error::ChatInvalidBody);
    }
    Ok(ConversationCommand::MarkRead { channel, id })
}

fn object(body: Option<Value>) -> Result<Map<String, Value>, Error> {
    match body {
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(Error::invalid("body must be an object")),
        None => Err(Error::invalid("missing body")),
    }
}

fn string(b: &Map<String, Value>, key: &str) -> Result<String, Error> {
    match b.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(Error::invalid(format!("{key} must be a string"))),
    }
}

fn string_list(b: &Map<String, Value>, key: &str) -> Result<Vec<UserId>, Error> {
    let Some(Value::Array(items)) = b.get(key) else {
        return Err(Error::invalid(format!("{key} must be a list of strings")));
    };
    items
        .iter()
        .map(|v| v.as_str().map(UserId::new))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::invalid(format!("{key} must be a list of strings")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(action: &str, body: Value) -> &'static str {
        match parse(action, Some(body)).unwrap() {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn search_needs_a_short_string_term_and_a_page_of_at_least_one() {
        assert_eq!(
            code("user.list.search", json!({"search_term": "a", "page": 1})),
            "ok"
        );
        for bad in [
            json!({"page": 1}),
            json!({"search_term": 5, "page": 1}),
            json!({"search_term": "x".repeat(201), "page": 1}),
            json!({"search_term": "a", "page": 0}),
            json!({"search_term": "a", "page": "1"}),
            json!({"search_term": "a", "page": 1.5}),
            json!({"search_term": "a"}),
        ] {
            assert_eq!(
                code("user.list.search", bad.clone()),
                "protocol.invalid_message",
                "{bad}"
            );
        }
        assert_eq!(
            parse(
                "user.list.search",
                Some(json!({"search_term": "", "page": 2, "badge": "x"}))
            )
            .unwrap(),
            Ok(ConversationCommand::UserSearch {
                term: String::new(),
                page: 2,
                badge: true
            })
        );
    }

    #[test]
    fn mark_read_separates_malformed_bodies_from_missing_or_low_ids() {
        assert_eq!(
            parse("chat.mark_read", Some(json!({"channel": "c", "id": 3}))).unwrap(),
            Ok(ConversationCommand::MarkRead {
                channel: ChannelId::new("c"),
                id: 3
            })
        );
        for (body, expected) in [
            (json!({"id": 3}), "protocol.invalid_message"),
            (json!({"channel": 1, "id": 3}), "protocol.invalid_message"),
            (json!({"channel": "c", "id": "3"}), "protocol.invalid_message"),
            (json!({"channel": "c", "id": 2.5}), "protocol.invalid_message"),
            (json!({"channel": "c"}), "chat.invalid_body"),
            (json!({"channel": "c", "id": null}), "chat.invalid_body"),
            (json!({"channel": "c", "id": 0}), "chat.invalid_body"),
            (json!({"channel": "c", "id": -4}), "chat.invalid_body"),
        ] {
            assert_eq!(code("chat.mark_read", body.clone()), expected, "{body}");
        }
    }

    #[test]
    fn id_lists_are_strings_and_online_status_takes_at_most_100() {
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        let many_ids: Vec<UserId> = many.iter().map(UserId::new).collect();
        assert_eq!(
            code("user.online_status", json!({ "ids": many })),
            "protocol.invalid_message"
        );
        assert_eq!(
            code("user.online_status", json!({"ids": [1]})),
            "protocol.invalid_message"
        );
        assert_eq!(
            code("user.online_status", json!({"ids": "a"})),
            "protocol.invalid_message"
        );
        assert_eq!(code("user.online_status", json!({"ids": ["a"]})), "ok");
        let b = json!({ "ids": many });
        assert_eq!(
            fetch_many(b.as_object().unwrap()),
            Ok(ConversationCommand::UserFetchMany {
                ids: many_ids[..100].to_vec()
            })
        );
    }

    #[test]
    fn rooms_and_channels_must_be_strings() {
        for action in ["chat.subscribe", "chat.unsubscribe", "chat.leave"] {
            assert_eq!(code(action, json!({"channel": 1})), "protocol.invalid_message");
            assert_eq!(code(action, json!({"channel": "c"})), "ok");
        }
        for action in ["room.enter", "room.leave"] {
            assert_eq!(code(action, json!({})), "protocol.invalid_message");
            assert_eq!(code(action, json!({"room": "r"})), "ok");
        }
        assert!(parse("chat.react", Some(json!({}))).is_none());
    }
}
