//! Newtype identifiers, so a room id can never be passed where a world id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A world (one event), `[a-z0-9]+`, part of the WebSocket path.
    WorldId
);
string_id!(
    /// A room inside a world, unique within that world.
    RoomId
);
string_id!(
    /// A BBB server of the pool, stable across restarts.
    ServerId
);
string_id!(
    /// A user's UUID as shown in `user.config.id`.
    UserId
);
string_id!(
    /// A private call started from a direct-message channel (UUID).
    CallId
);
string_id!(
    /// A direct-message channel (UUID).
    ChannelId
);

/// A fresh random UUID (v4) in its hyphenated text form.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether `s` is a UUID in any of its usual text forms.
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}
