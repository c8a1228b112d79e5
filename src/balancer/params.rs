//! The exact create and join parameters of SPEC §6, as pure query builders. Boolean
//! parameters are always sent.

use crate::bbb::query::QueryBuilder;
use crate::config::BbbRoomConfig;

pub use crate::store::MeetingSecrets;

/// What a room's create needs besides the meeting's identity.
#[derive(Clone, Debug)]
pub struct RoomCreate<'a> {
    pub world: &'a str,
    pub room: &'a str,
    pub name: &'a str,
    pub config: &'a BbbRoomConfig,
    pub disable_private_chat: bool,
    pub voice_bridge: Option<&'a str>,
    /// `meetingEndedURL`, when the gateway wants to hear about the meeting's end. Never a
    /// `meta_` parameter: BBB copies those into the meeting's metadata, clients and recordings.
    pub end_callback: Option<&'a str>,
}

pub const GUEST_ASK: &str = "ASK_MODERATOR";
pub const GUEST_ALWAYS: &str = "ALWAYS_ACCEPT";

pub fn guest_policy(config: &BbbRoomConfig) -> &'static str {
    if config.waiting_room {
        GUEST_ASK
    } else {
        GUEST_ALWAYS
    }
}

pub fn room_create(m: &MeetingSecrets, r: &RoomCreate<'_>) -> String {
    let name = if r.name.trim().is_empty() {
        "Meeting"
    } else {
        r.name
    };
    let mut q = QueryBuilder::new();
    q.text("name", name)
        .text("meetingID", &m.meeting_id)
        .text("attendeePW", &m.attendee_pw)
        .text("moderatorPW", &m.moderator_pw)
        .flag("record", r.config.record)
        .text("meta_Source", "bbb-gateway")
        .text("meta_World", r.world)
        .text("meta_Room", r.room)
        .flag("muteOnStart", r.config.bbb_mute_on_start)
        .flag("lockSettingsDisablePrivateChat", r.disable_private_chat)
        .flag("lockSettingsDisableCam", r.config.bbb_disable_cam)
        .flag("lockSettingsDisablePublicChat", r.config.bbb_disable_chat)
        .opt_text("voiceBridge", r.voice_bridge)
        .text("guestPolicy", guest_policy(r.config))
        .opt_text("meetingEndedURL", r.end_callback);
    q.finish()
}

pub fn call_create(m: &MeetingSecrets, call: &str, end_callback: Option<&str>) -> String {
    let mut q = QueryBuilder::new();
    q.text("name", "Call")
        .text("meetingID", &m.meeting_id)
        .text("attendeePW", &m.attendee_pw)
        .text("moderatorPW", &m.moderator_pw)
        .flag("record", false)
        .text("meta_Source", "bbb-gateway")
        .text("meta_Call", call)
        .flag("lockSettingsDisablePrivateChat", true)
        .text("guestPolicy", GUEST_ALWAYS)
        .opt_text("meetingEndedURL", end_callback);
    q.finish()
}

/// Who is joining.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joiner {
    pub user_id: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub moderator: bool,
}

impl Joiner {
    /// BBB uses `:` as a separator in names; it is removed.
    fn full_name(&self) -> String {
        self.display_name.replace(':', "")
    }
}

fn join_common(q: &mut QueryBuilder, m: &MeetingSecrets, j: &Joiner, moderator: bool, public_url: &str) {
    q.text("meetingID", &m.meeting_id)
        .text("fullName", &j.full_name())
        .text("userID", &j.user_id)
        .text(
            "password",
            if moderator {
                &m.moderator_pw
            } else {
                &m.attendee_pw
            },
        )
        .text("role", if moderator { "MODERATOR" } else { "VIEWER" })
        .opt_text("avatarURL", j.avatar_url.as_deref().filter(|u| !u.is_empty()))
        .text("userdata-bbb_custom_style_url", &format!("{public_url}/_bbb.css"))
        .flag("userdata-bbb_show_public_chat_on_login", false)
        .flag("userdata-bbb_skip_check_audio", true);
}

pub fn room_join(m: &MeetingSecrets, j: &Joiner, config: &BbbRoomConfig, public_url: &str) -> String {
    let mut q = QueryBuilder::new();
    join_common(&mut q, m, j, j.moderator, public_url);
    if config.waiting_room && !j.moderator {
        // Only waiting-room guests carry it: BBB 2.6+ reads an explicit `guest=false` too.
        q.flag("guest", true);
    }
    q.flag("userdata-bbb_listen_only_mode", !config.auto_microphone)
        .flag("userdata-bbb_auto_share_webcam", config.auto_camera)
        .flag("userdata-bbb_skip_video_preview", config.auto_camera)
        .flag("userdata-bbb_hide_presentation_on_join", config.hide_presentation);
    q.finish()
}

/// Everyone joins a private call as moderator, camera on, not listen-only.
pub fn call_join(m: &MeetingSecrets, j: &Joiner, public_url: &str) -> String {
    let mut q = QueryBuilder::new();
    join_common(&mut q, m, j, true, public_url);
    q.flag("userdata-bbb_listen_only_mode", false)
        .flag("userdata-bbb_auto_share_webcam", true)
        .flag("userdata-bbb_skip_video_preview", true)
        .flag("userdata-bbb_auto_swap_layout", true);
    q.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn params(q: &str) -> HashMap<String, String> {
        url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    fn secrets() -> MeetingSecrets {
        MeetingSecrets {
            meeting_id: "m1".into(),
            attendee_pw: "att".into(),
            moderator_pw: "mod".into(),
        }
    }

    #[test]
    fn room_create_sends_every_spec_parameter() {
        let config = BbbRoomConfig {
            record: true,
            waiting_room: true,
            bbb_disable_cam: true,
            ..Default::default()
        };
        let q = room_create(
            &secrets(),
            &RoomCreate {
                world: "w",
                room: "r",
                name: "",
                config: &config,
                disable_private_chat: true,
                voice_bridge: Some("12345"),
                end_callback: None,
            },
        );
        let p = params(&q);
        for (k, v) in [
            ("name", "Meeting"),
            ("meetingID", "m1"),
            ("attendeePW", "att"),
            ("moderatorPW", "mod"),
            ("record", "true"),
            ("meta_Source", "bbb-gateway"),
            ("meta_World", "w"),
            ("meta_Room", "r"),
            ("muteOnStart", "false"),
            ("lockSettingsDisablePrivateChat", "true"),
            ("lockSettingsDisableCam", "true"),
            ("lockSettingsDisablePublicChat", "false"),
            ("voiceBridge", "12345"),
            ("guestPolicy", "ASK_MODERATOR"),
        ] {
            assert_eq!(p.get(k).map(String::as_str), Some(v), "{k} in {q}");
        }
        assert!(!p.contains_key("meta_endCallbackUrl"));
        assert!(!p.contains_key("meetingEndedURL"));
    }

    #[test]
    fn end_callbacks_are_meeting_ended_url_never_metadata() {
        let config = BbbRoomConfig::default();
        let url = "http://gw/bbb/ended/m1/i.00";
        let q = room_create(
            &secrets(),
            &RoomCreate {
                world: "w",
                room: "r",
                name: "R",
                config: &config,
                disable_private_chat: true,
                voice_bridge: None,
                end_callback: Some(url),
            },
        );
        let p = params(&q);
        assert_eq!(p["meetingEndedURL"], url);
        let c = params(&call_create(&secrets(), "c", Some(url)));
        assert_eq!(c["meetingEndedURL"], url);
        for query in [q.as_str(), &call_create(&secrets(), "c", Some(url))] {
            for (k, v) in params(query) {
                assert!(
                    !(k.starts_with("meta_") && v.contains("/bbb/ended/")),
                    "{k} carries the callback"
                );
                assert!(!k.eq_ignore_ascii_case("meta_endCallbackUrl"));
            }
        }
    }

    #[test]
    fn call_create_is_fixed() {
        let p = params(&call_create(&secrets(), "c-1", None));
        assert_eq!(p["name"], "Call");
        assert_eq!(p["meta_Call"], "c-1");
        assert_eq!(p["record"], "false");
        assert_eq!(p["lockSettingsDisablePrivateChat"], "true");
        assert_eq!(p["guestPolicy"], "ALWAYS_ACCEPT");
    }

    #[test]
    fn room_join_for_a_waiting_room_viewer() {
        let config = BbbRoomConfig {
            waiting_room: true,
            auto_camera: true,
            ..Default::default()
        };
        let j = Joiner {
            user_id: "u1".into(),
            display_name: "Ann: The Great".into(),
            avatar_url: Some("https://x/a.png".into()),
            moderator: false,
        };
        let p = params(&room_join(&secrets(), &j, &config, "http://gw"));
        assert_eq!(p["fullName"], "Ann The Great");
        assert_eq!(p["password"], "att");
        assert_eq!(p["guest"], "true");
        assert_eq!(p["role"], "VIEWER");
        assert!(!p.contains_key("joinViaHtml5"));
        assert_eq!(p["avatarURL"], "https://x/a.png");
        assert_eq!(p["userdata-bbb_custom_style_url"], "http://gw/_bbb.css");
        assert_eq!(p["userdata-bbb_listen_only_mode"], "true");
        assert_eq!(p["userdata-bbb_auto_share_webcam"], "true");
        assert_eq!(p["userdata-bbb_skip_video_preview"], "true");
        assert_eq!(p["userdata-bbb_hide_presentation_on_join"], "false");
        assert_eq!(p["userdata-bbb_show_public_chat_on_login"], "false");
        assert_eq!(p["userdata-bbb_skip_check_audio"], "true");
    }

    #[test]
    fn moderators_are_never_guests() {
        let config = BbbRoomConfig {
            waiting_room: true,
            ..Default::default()
        };
        let j = Joiner {
            user_id: "u".into(),
            display_name: "M".into(),
            avatar_url: None,
            moderator: true,
        };
        let p = params(&room_join(&secrets(), &j, &config, "http://gw"));
        assert_eq!(p["password"], "mod");
        assert_eq!(p["role"], "MODERATOR");
        assert!(!p.contains_key("guest"));
        assert!(!p.contains_key("avatarURL"));
    }

    #[test]
    fn viewers_outside_a_waiting_room_carry_no_guest_flag() {
        let j = Joiner {
            user_id: "u".into(),
            display_name: "V".into(),
            avatar_url: None,
            moderator: false,
        };
        let p = params(&room_join(&secrets(), &j, &BbbRoomConfig::default(), "http://gw"));
        assert_eq!(p["password"], "att");
        assert_eq!(p["role"], "VIEWER");
        assert!(!p.contains_key("guest"));
        assert!(!p.contains_key("joinViaHtml5"));
    }

    #[test]
    fn call_join_is_moderator_with_camera() {
        let j = Joiner {
            user_id: "u".into(),
            display_name: "C".into(),
            avatar_url: None,
            moderator: false,
        };
        let p = params(&call_join(&secrets(), &j, "http://gw"));
        assert_eq!(p["password"], "mod");
        assert_eq!(p["role"], "MODERATOR");
        assert!(!p.contains_key("guest"));
        assert!(!p.contains_key("joinViaHtml5"));
        assert_eq!(p["userdata-bbb_auto_share_webcam"], "true");
        assert_eq!(p["userdata-bbb_listen_only_mode"], "false");
        assert_eq!(p["userdata-bbb_auto_swap_layout"], "true");
    }
}
