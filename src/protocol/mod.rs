//! The venueless/eventyay WebSocket protocol: frames in ([`frame`]), typed commands
//! ([`command`]), typed replies ([`reply`]), and the JSON shapes sent back ([`wire`]). Codes live in [`crate::codes`] (re-exported as `protocol::codes`).

pub use crate::codes;
pub mod command;
pub mod frame;
pub mod reply;
pub mod wire;
