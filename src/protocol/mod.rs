//! The venueless/eventyay WebSocket protocol: frames in ([`frame`]), typed commands
//! ([`command`]), and the JSON shapes sent back ([`wire`]). Codes live in [`codes`].

pub mod codes;
pub mod command;
pub mod frame;
pub mod wire;
