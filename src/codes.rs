//! Every wire error code, spelled once. Other modules refer to these constants.

pub const PROTOCOL_UNAUTHENTICATED: &str = "protocol.unauthenticated";
pub const PROTOCOL_UNKNOWN_COMMAND: &str = "protocol.unknown_command";
pub const PROTOCOL_INVALID_MESSAGE: &str = "protocol.invalid_message";
pub const PROTOCOL_RATE_LIMITED: &str = "protocol.rate_limited";
pub const PROTOCOL_DENIED: &str = "protocol.denied";
pub const SERVER_FATAL: &str = "server.fatal";

pub const BBB_UNSUPPORTED_COMMAND: &str = "bbb.unsupported_command";
pub const USER_UNSUPPORTED_COMMAND: &str = "user.unsupported_command";
pub const CHAT_UNSUPPORTED_COMMAND: &str = "chat.unsupported_command";
pub const WORLD_UNSUPPORTED_COMMAND: &str = "world.unsupported_command";
pub const ROOM_UNSUPPORTED_COMMAND: &str = "room.unsupported_command";

pub const WORLD_UNKNOWN_WORLD: &str = "world.unknown_world";

pub const AUTH_MISSING_ID_OR_TOKEN: &str = "auth.missing_id_or_token";
pub const AUTH_INVALID_TOKEN: &str = "auth.invalid_token";
pub const AUTH_EXPIRED_TOKEN: &str = "auth.expired_token";
pub const AUTH_MISSING_TOKEN: &str = "auth.missing_token";
pub const AUTH_DENIED: &str = "auth.denied";

pub const USER_NOT_FOUND: &str = "user.not_found";
pub const ROOM_UNKNOWN: &str = "room.unknown";
pub const CHAT_DENIED: &str = "chat.denied";
pub const CHAT_INVALID_BODY: &str = "chat.invalid_body";
pub const CHAT_UNSUPPORTED_CONTENT_TYPE: &str = "chat.unsupported_content_type";

pub const BBB_MISSING_PROFILE: &str = "bbb.join.missing_profile";
pub const BBB_FAILED: &str = "bbb.failed";

pub const CONNECTION_REPLACED: &str = "connection.replaced";
