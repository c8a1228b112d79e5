//! BBB's end callback (`meetingEndedURL`), pure: the URL a create carries, its token, and the
//! verdict on a callback that arrives.
//!
//! The token is `{incarnation}.{mac}`: the incarnation is a random nonce stored with the
//! meeting record and renewed whenever the gateway has to assume BBB no longer has the meeting,
//! and the mac is HMAC-SHA256 keyed with the secret of the server the create went to, over the
//! meetingID and that incarnation (truncated to 128 bits). Only the gateway and that BBB server
//! know the secret, so nobody else can make a token; a genuine token of an earlier incarnation
//! (a bbb-web retry arriving after the room was created again) is recognised as such.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256, Sha512};

/// Length of an incarnation nonce (alphanumeric).
pub const INCARNATION_LEN: usize = 16;

/// Bytes of the HMAC kept in a token.
const MAC_BYTES: usize = 16;

/// Separates this use of the server's secret from every other.
const CONTEXT: &[u8] = b"bbb-gateway meetingEndedURL v1";

/// A fresh random incarnation nonce.
pub fn new_incarnation() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), INCARNATION_LEN)
}

fn mac(secret: &str, meeting_id: &str, incarnation: &str) -> Hmac<Sha256> {
    // The key is derived from the server's secret; SHA-512 gives exactly one SHA-256 block,
    // HMAC's native key size, so the constructor cannot fail.
    let key = Sha512::new()
        .chain_update(CONTEXT)
        .chain_update(secret.as_bytes())
        .finalize();
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&key);
    for part in [CONTEXT, meeting_id.as_bytes(), incarnation.as_bytes()] {
        // Length-prefixed, so no two (meetingID, incarnation) pairs share an input.
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

/// The token for one incarnation of a meeting, keyed with its server's secret.
pub fn token(secret: &str, meeting_id: &str, incarnation: &str) -> String {
    let tag = mac(secret, meeting_id, incarnation).finalize().into_bytes();
    let kept = tag.get(..MAC_BYTES).unwrap_or_default();
    format!("{incarnation}.{}", hex::encode(kept))
}

/// `{public_url}/bbb/ended/{meetingID}/{token}`.
pub fn callback_url(public_url: &str, meeting_id: &str, token: &str) -> String {
    format!(
        "{}/bbb/ended/{}/{}",
        public_url.trim_end_matches('/'),
        path_segment(meeting_id),
        path_segment(token)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters (meetingIDs the gateway makes
/// are alphanumeric; this keeps any other id a single path segment).
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The incarnation a genuine token was made for: `Some` when the token verifies under one of
/// `secrets` (every configured server's, since a meeting may have moved since), else `None`.
/// The comparison takes the same time wherever the first difference is.
pub fn verify<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    meeting_id: &str,
    token: &str,
) -> Option<String> {
    let (incarnation, tag_hex) = token.split_once('.')?;
    if incarnation.is_empty() || incarnation.len() > 64 || tag_hex.len() != MAC_BYTES * 2 {
        return None;
    }
    let tag = hex::decode(tag_hex).ok()?;
    let mut genuine = false;
    for secret in secrets {
        // Every secret is tried, so the time does not tell which one matched.
        genuine |= mac(secret, meeting_id, incarnation)
            .verify_truncated_left(&tag)
            .is_ok();
    }
    genuine.then(|| incarnation.to_string())
}

/// What a callback means for the meeting it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not made by the gateway: 403, nothing changes.
    Forged,
    /// The meeting's current incarnation ended: forget that it runs.
    Ended,
    /// Genuine, but for an earlier incarnation (or a meeting the gateway no longer has):
    /// answered 200 and ignored.
    Stale,
}

impl Verdict {
    /// The label in `bbb_gateway_end_callbacks_total{outcome}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Forged => "forged",
            Verdict::Ended => "ended",
            Verdict::Stale => "stale",
        }
    }
}

/// Judges a callback: `verified` is what [`verify`] returned, `current` the incarnation the
/// meeting record holds now (`None` when no record has that meetingID).
pub fn judge(verified: Option<&str>, current: Option<&str>) -> Verdict {
    match (verified, current) {
        (None, _) => Verdict::Forged,
        (Some(v), Some(c)) if v == c => Verdict::Ended,
        (Some(_), _) => Verdict::Stale,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SECRET: &str = "server-secret";

    #[test]
    fn a_token_verifies_under_its_secret_and_names_its_incarnation() {
        let t = token(SECRET, "m1", "inc1");
        assert!(t.starts_with("inc1."));
        assert_eq!(t.len(), "inc1.".len() + 32);
        assert_eq!(verify([SECRET], "m1", &t).as_deref(), Some("inc1"));
        assert_eq!(verify(["other", SECRET], "m1", &t).as_deref(), Some("inc1"));
    }

    #[test]
    fn tokens_depend_on_secret_meeting_and_incarnation() {
        let t = token(SECRET, "m1", "inc1");
        assert_ne!(t, token("other", "m1", "inc1"));
        assert_ne!(t, token(SECRET, "m2", "inc1"));
        assert_ne!(t, token(SECRET, "m1", "inc2"));
        assert_eq!(t, token(SECRET, "m1", "inc1"));
    }

    #[test]
    fn forged_or_altered_tokens_do_not_verify() {
        let t = token(SECRET, "m1", "inc1");
        assert_eq!(verify(["other"], "m1", &t), None);
        assert_eq!(verify([SECRET], "m2", &t), None);
        // Another incarnation with this mac.
        let swapped = t.replacen("inc1", "inc2", 1);
        assert_eq!(verify([SECRET], "m1", &swapped), None);
        // One hex digit changed.
        let mut flipped = t.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(verify([SECRET], "m1", &flipped), None);
        for bad in [
            "",
            ".",
            "inc1",
            "inc1.",
            ".abc",
            "inc1.zz",
            "inc1.00",
            &format!("{t}0"),
        ] {
            assert_eq!(verify([SECRET], "m1", bad), None, "{bad:?}");
        }
        assert_eq!(verify(std::iter::empty(), "m1", &t), None);
    }

    #[test]
    fn the_token_is_not_the_secret_or_derivable_from_the_old_scheme() {
        let t = token(SECRET, "m1", "inc1");
        assert!(!t.contains(SECRET));
    }

    #[test]
    fn callback_url_is_one_path_under_public_url() {
        assert_eq!(
            callback_url("https://gw.example.org/", "abc", "i.0f"),
            "https://gw.example.org/bbb/ended/abc/i.0f"
        );
        assert_eq!(
            callback_url("http://h:1", "a/b c", "t"),
            "http://h:1/bbb/ended/a%2Fb%20c/t"
        );
    }

    #[test]
    fn incarnations_are_random_alphanumeric() {
        let a = new_incarnation();
        let b = new_incarnation();
        assert_eq!(a.len(), INCARNATION_LEN);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(None, Some("a")), Verdict::Forged);
        assert_eq!(judge(None, None), Verdict::Forged);
        assert_eq!(judge(Some("a"), Some("a")), Verdict::Ended);
        assert_eq!(judge(Some("a"), Some("b")), Verdict::Stale);
        assert_eq!(judge(Some("a"), None), Verdict::Stale);
        assert_eq!(Verdict::Stale.as_str(), "stale");
    }
}
