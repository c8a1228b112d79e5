//! BigBlueButton API: checksums, query signing, response parsing.

pub mod checksum;
