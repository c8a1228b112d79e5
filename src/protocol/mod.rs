//! The venueless/eventyay WebSocket protocol: frames in ([`frame`]), typed commands
//! ([`command`], the conversation commands in [`conversation`]), typed replies ([`reply`]), and the JSON shapes sent back ([`wire`], conversations in [`chat_wire`]). Codes live in [`crate::codes`] (re-exported as `protocol::codes`).

pub use crate::codes;
pub mod chat_wire;
pub mod command;
pub mod conversation;
pub mod frame;
pub mod reply;
pub mod wire;
