//! The one error type of the service: each variant is exactly one wire code.

use crate::codes;

/// The command namespaces the protocol knows (text before the first dot of an action).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    Bbb,
    User,
    Chat,
    World,
    Room,
}

impl Namespace {
    pub fn parse(ns: &str) -> Option<Self> {
        match ns {
            "bbb" => Some(Self::Bbb),
            "user" => Some(Self::User),
            "chat" => Some(Self::Chat),
            "world" => Some(Self::World),
            "room" => Some(Self::Room),
            _ => None,
        }
    }
}

/// Everything that can go wrong for a client, as it is told on the wire.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub enum Error {
    Unauthenticated,
    UnknownCommand,
    UnsupportedCommand(Namespace),
    /// The text says what was wrong with the frame; it never echoes secrets.
    InvalidMessage(String),
    RateLimited,
    Denied,
    /// An internal bug (a dead actor mailbox); logged once where it happens.
    Fatal,
    UnknownWorld,
    MissingIdOrToken,
    InvalidToken,
    ExpiredToken,
    MissingToken,
    AuthDenied,
    UserNotFound,
    RoomUnknown,
    ChatDenied,
    /// `chat.mark_read` without an event id of at least 1.
    ChatInvalidBody,
    /// `chat.send` with `replaces` (edits and deletes are not supported).
    ChatUnsupportedContentType,
    MissingProfile,
    BbbFailed,
    ConnectionReplaced,
}

impl Error {
    /// The wire code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated => codes::PROTOCOL_UNAUTHENTICATED,
            Error::UnknownCommand => codes::PROTOCOL_UNKNOWN_COMMAND,
            Error::UnsupportedCommand(ns) => match ns {
                Namespace::Bbb => codes::BBB_UNSUPPORTED_COMMAND,
                Namespace::User => codes::USER_UNSUPPORTED_COMMAND,
                Namespace::Chat => codes::CHAT_UNSUPPORTED_COMMAND,
                Namespace::World => codes::WORLD_UNSUPPORTED_COMMAND,
                Namespace::Room => codes::ROOM_UNSUPPORTED_COMMAND,
            },
            Error::InvalidMessage(_) => codes::PROTOCOL_INVALID_MESSAGE,
            Error::RateLimited => codes::PROTOCOL_RATE_LIMITED,
            Error::Denied => codes::PROTOCOL_DENIED,
            Error::Fatal => codes::SERVER_FATAL,
            Error::UnknownWorld => codes::WORLD_UNKNOWN_WORLD,
            Error::MissingIdOrToken => codes::AUTH_MISSING_ID_OR_TOKEN,
            Error::InvalidToken => codes::AUTH_INVALID_TOKEN,
            Error::ExpiredToken => codes::AUTH_EXPIRED_TOKEN,
            Error::MissingToken => codes::AUTH_MISSING_TOKEN,
            Error::AuthDenied => codes::AUTH_DENIED,
            Error::UserNotFound => codes::USER_NOT_FOUND,
            Error::RoomUnknown => codes::ROOM_UNKNOWN,
            Error::ChatDenied => codes::CHAT_DENIED,
            Error::ChatInvalidBody => codes::CHAT_INVALID_BODY,
            Error::ChatUnsupportedContentType => codes::CHAT_UNSUPPORTED_CONTENT_TYPE,
            Error::MissingProfile => codes::BBB_MISSING_PROFILE,
            Error::BbbFailed => codes::BBB_FAILED,
            Error::ConnectionReplaced => codes::CONNECTION_REPLACED,
        }
    }

    /// A human-readable message for the `message` field, where one helps.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::InvalidMessage(text) => Some(text),
            Error::RateLimited => Some("too many requests; slow down"),
            Error::Fatal => Some("internal error"),
            Error::MissingProfile => Some("set a display name before joining"),
            Error::BbbFailed => Some("the video service is not available"),
            _ => None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidMessage(message.into())
    }
}

impl Error {
    /// `code` or `code: message`: the Display of the error.
    fn describe(&self) -> String {
        match self.message() {
            Some(m) => format!("{}: {}", self.code(), m),
            None => self.code().to_string(),
        }
    }
}

/// A dead actor mailbox is a bug, not a client error: log it once and answer `server.fatal`.
impl From<actix::MailboxError> for Error {
    fn from(e: actix::MailboxError) -> Self {
        crate::log_limit::error("mailbox", &format!("actor mailbox failed: {e}"));
        Error::Fatal
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        crate::log_limit::error("store-request", &e.to_string());
        Error::Fatal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_command_codes_carry_their_namespace() {
        assert_eq!(
            Error::UnsupportedCommand(Namespace::Bbb).code(),
            "bbb.unsupported_command"
        );
        assert_eq!(
            Error::UnsupportedCommand(Namespace::Room).code(),
            "room.unsupported_command"
        );
    }

    #[test]
    fn namespaces_parse_only_known_prefixes() {
        assert_eq!(Namespace::parse("chat"), Some(Namespace::Chat));
        assert_eq!(Namespace::parse("exhibition"), None);
    }
}
