//! Checksum algorithms (interim; replaced by the full BBB client module).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    #[default]
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}
