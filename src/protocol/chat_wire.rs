//! The JSON shapes of conversations (SPEC 4.6): CHANNEL, LISTED, POINTERS, COUNTS and the
//! frames of the conversation pushes.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{frame, wire};
use crate::ids::ChannelId;
use crate::store::{is_inactive, ChannelInfo, ConversationList, Searchable, UserRecord};

/// A profile cut to `display_name` and `avatar` (the keys present; of the avatar only its
/// `url`), as lists show members: a member costs a few hundred bytes whatever the profile holds.
pub fn cut_profile(profile: &Value) -> Value {
    let mut cut = Map::new();
    if let Some(name) = profile.get("display_name") {
        cut.insert("display_name".into(), name.clone());
    }
    match profile.get("avatar") {
        Some(Value::Object(avatar)) => {
            let url = avatar.get("url").filter(|u| u.is_string()).cloned();
            let avatar = url.map_or_else(|| json!({}), |url| json!({ "url": url }));
            cut.insert("avatar".into(), avatar);
        }
        Some(other) => {
            cut.insert("avatar".into(), other.clone());
        }
        None => {}
    }
    Value::Object(cut)
}

/// USER with the profile cut (members of a listed channel).
pub fn member(user: &UserRecord) -> Value {
    let mut v = wire::user(user);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("profile".into(), cut_profile(&user.profile));
    }
    v
}

/// LISTED: exactly `{"id", "profile", "pretalx_id", "inactive", "badges"}`.
pub fn listed(user: &Searchable, now_ms: i64) -> Value {
    let mut profile = Map::new();
    profile.insert("display_name".into(), json!(user.display_name));
    if let Some(avatar) = &user.avatar {
        profile.insert("avatar".into(), avatar.clone());
    }
    json!({
        "id": user.id,
        "profile": profile,
        "pretalx_id": null,
        "inactive": is_inactive(user.last_login_ms, now_ms),
        "badges": [],
    })
}

/// CHANNEL: `{"id", "state", "unread_pointer", "next_event_id", "members"}` with cut profiles.
pub fn channel(info: &ChannelInfo) -> Value {
    json!({
        "id": info.id,
        "state": null,
        "unread_pointer": info.unread_pointer,
        "next_event_id": info.next_event_id,
        "members": info.members.iter().map(member).collect::<Vec<_>>(),
    })
}

/// The channel list stops before this many bytes of JSON, so `authenticated` stays under
/// 1 MiB even with 100 channels of 50 members with 200-character names (SPEC §7).
pub const CHANNEL_LIST_BYTES: usize = 900 * 1024;

/// The list's channels that fit in [`CHANNEL_LIST_BYTES`], encoded, in order.
fn fitting(list: &ConversationList) -> Vec<Value> {
    let mut used = 0;
    let mut out = Vec::new();
    for info in &list.channels {
        let value = channel(info);
        used += value.to_string().len() + 1;
        if used > CHANNEL_LIST_BYTES {
            break;
        }
        out.push(value);
    }
    out
}

/// The ids of channels in the list that [`channels`] leaves out for the budget (POINTERS and
/// COUNTS leave them out too). A list without channels (pointers and counts only) drops none.
fn dropped_ids(list: &ConversationList) -> Vec<&ChannelId> {
    let n = fitting(list).len();
    list.channels.iter().skip(n).map(|c| &c.id).collect()
}

/// The list of `authenticated`'s `chat.channels` and of the `chat.channels` push.
pub fn channels(list: &ConversationList) -> Value {
    Value::Array(fitting(list))
}

/// POINTERS: `{channel: read pointer}` over the listed channels.
pub fn pointers(list: &ConversationList) -> Value {
    let dropped = dropped_ids(list);
    let listed: BTreeMap<_, _> = list
        .pointers
        .iter()
        .filter(|(c, _)| !dropped.contains(c))
        .collect();
    json!(listed)
}

/// COUNTS: `{channel: count}`, counts ≥ 1 only, over the listed channels.
pub fn counts(list: &ConversationList) -> Value {
    let dropped = dropped_ids(list);
    let listed: BTreeMap<_, _> = list.counts.iter().filter(|(c, _)| !dropped.contains(c)).collect();
    json!(listed)
}

/// `["chat.channels", {"channels": [CHANNEL...]}]`: always the whole list.
pub fn channels_frame(list: &ConversationList) -> String {
    frame::event("chat.channels", json!({ "channels": channels(list) }))
}

/// `["chat.read_pointers", POINTERS]`.
pub fn read_pointers_frame(list: &ConversationList) -> String {
    frame::event("chat.read_pointers", pointers(list))
}

/// `["chat.notification_counts", COUNTS]`.
pub fn counts_frame(list: &ConversationList) -> String {
    frame::event("chat.notification_counts", counts(list))
}

/// `["chat.notification", {"event": EVENT + {"type": "chat.event"}, "sender": USER}]`.
pub fn notification_frame(event: &Value, sender: &UserRecord) -> String {
    let mut event = event.clone();
    if let Some(obj) = event.as_object_mut() {
        obj.insert("type".into(), json!("chat.event"));
    }
    frame::event(
        "chat.notification",
        json!({ "event": event, "sender": wire::user(sender) }),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ids::{ChannelId, UserId, WorldId};
    use crate::permissions::rules::Moderation;

    fn ann() -> UserRecord {
        UserRecord {
            id: UserId::new("a"),
            world: WorldId::new("w"),
            token_uid: None,
            traits: vec![],
            profile: json!({"display_name": "Ann", "avatar": {"url": "https://x/a.png"}, "bio": "long"}),
            moderation: Moderation::None,
            last_login_ms: Some(0),
        }
    }

    #[test]
    fn listed_users_have_exactly_five_keys_and_a_cut_profile() {
        let ann = ann();
        let searchable = Searchable {
            id: ann.id.clone(),
            display_name: "Ann".into(),
            avatar: ann.profile.get("avatar").cloned(),
            last_login_ms: ann.last_login_ms,
        };
        let v = listed(&searchable, 1);
        let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["badges", "id", "inactive", "pretalx_id", "profile"]);
        assert_eq!(
            v["profile"],
            json!({"display_name": "Ann", "avatar": {"url": "https://x/a.png"}})
        );
        assert_eq!(v["inactive"], false);
    }

    #[test]
    fn a_list_of_100_full_channels_stays_under_the_budget_and_so_do_pointers() {
        let mut member = ann();
        member.profile = json!({"display_name": "n".repeat(200), "avatar": {"url": format!("https://x/{}", "a".repeat(300)), "pad": "p".repeat(9000)}});
        let mut list = ConversationList::default();
        for i in 0..100 {
            let id = ChannelId::new(format!("c{i}"));
            list.channels.push(ChannelInfo {
                id: id.clone(),
                members: vec![member.clone(); 50],
                next_event_id: 1,
                unread_pointer: 0,
            });
            list.counts.insert(id, 1);
        }
        let listed = channels(&list);
        let n = listed.as_array().unwrap().len();
        assert!(
            listed.to_string().len() <= CHANNEL_LIST_BYTES && n < 100 && n > 10,
            "{n}"
        );
        assert!(listed[0]["members"][0]["profile"]["avatar"].get("pad").is_none());
        assert_eq!(
            counts(&list).as_object().unwrap().len(),
            n,
            "counts follow the listed channels"
        );
        // Pointers and counts alone (no channels) are not cut.
        let alone = ConversationList {
            channels: vec![],
            ..list
        };
        assert_eq!(counts(&alone).as_object().unwrap().len(), 100);
    }

    #[test]
    fn channels_cut_member_profiles_and_pointers_are_objects() {
        let mut list = ConversationList::default();
        list.channels.push(ChannelInfo {
            id: ChannelId::new("c"),
            members: vec![ann()],
            next_event_id: 4,
            unread_pointer: 3,
        });
        list.pointers.insert(ChannelId::new("c"), 2);
        list.counts.insert(ChannelId::new("c"), 1);
        let c = &channels(&list)[0];
        assert_eq!(c["unread_pointer"], 3);
        assert_eq!(c["members"][0]["profile"].as_object().unwrap().len(), 2);
        assert_eq!(pointers(&list), json!({"c": 2}));
        assert_eq!(counts(&list), json!({"c": 1}));
    }

    #[test]
    fn notifications_carry_the_event_typed_as_chat_event() {
        let f: Value = serde_json::from_str(&notification_frame(&json!({"event_id": 3}), &ann())).unwrap();
        assert_eq!(f[0], "chat.notification");
        assert_eq!(f[1]["event"], json!({"event_id": 3, "type": "chat.event"}));
        assert_eq!(f[1]["sender"]["id"], "a");
    }
}
