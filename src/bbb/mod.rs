//! Pure BBB API helpers (no actix): checksums, signed query strings, response XML parsing.
pub mod checksum;
pub mod client;
pub mod query;
pub mod xml;
