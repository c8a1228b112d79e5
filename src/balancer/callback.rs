//! BBB's end callback (pure): the URL BBB calls when a meeting ends, and its token.

use crate::store::MeetingSecrets;

/// The token of a meeting's end callback: derived from its moderator password, so only the
/// gateway and the BBB server that has the meeting can compute it.
pub fn end_token(secrets: &MeetingSecrets) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!(
        "bbb-gateway end {} {}",
        secrets.meeting_id, secrets.moderator_pw
    ));
    hex::encode(digest).chars().take(32).collect()
}

/// Whether `token` is the meeting's end token (constant-time).
pub fn token_matches(secrets: &MeetingSecrets, token: &str) -> bool {
    crate::secret::constant_time_eq(end_token(secrets).as_bytes(), token.as_bytes())
}

/// The URL BBB calls when the meeting ends, so a reused confirmation is dropped at once.
/// Only sent when joins may skip `create` (`reuse_enabled`, i.e. `create_reuse_ms` > 0).
pub fn end_callback_url(public_url: &str, secrets: &MeetingSecrets, reuse_enabled: bool) -> Option<String> {
    reuse_enabled.then(|| {
        format!(
            "{public_url}/bbb/ended/{}/{}",
            secrets.meeting_id,
            end_token(secrets)
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn secrets() -> MeetingSecrets {
        MeetingSecrets {
            meeting_id: "m1".into(),
            attendee_pw: "ap".into(),
            moderator_pw: "mp".into(),
        }
    }

    #[test]
    fn token_is_32_hex_and_depends_on_the_moderator_password() {
        let token = end_token(&secrets());
        assert_eq!(token.len(), 32);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        let other = MeetingSecrets {
            moderator_pw: "other".into(),
            ..secrets()
        };
        assert_ne!(end_token(&other), token);
    }

    #[test]
    fn token_matches_only_the_exact_token() {
        let token = end_token(&secrets());
        assert!(token_matches(&secrets(), &token));
        assert!(!token_matches(&secrets(), &token[..31]));
        assert!(!token_matches(&secrets(), ""));
        assert!(!token_matches(&secrets(), &format!("{token}0")));
    }

    #[test]
    fn callback_url_only_when_reuse_is_enabled() {
        assert_eq!(end_callback_url("https://gw", &secrets(), false), None);
        let url = end_callback_url("https://gw", &secrets(), true).unwrap();
        assert_eq!(url, format!("https://gw/bbb/ended/m1/{}", end_token(&secrets())));
    }
}
