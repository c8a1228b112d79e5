//! BBB API query strings: form-encoding in insertion order, signed URLs, and checksum stripping.
//!
//! The bytes that are signed are exactly the bytes that are sent: the query is built once as a
//! string and reused both for the checksum and for the URL. Only the RFC 3986 unreserved
//! characters (`A-Z a-z 0-9 - . _ ~`) are left as they are, so no client or proxy that
//! normalises percent-encodings (`%7E` to `~`, as Python's `requests` does) can change them.

use super::checksum::{checksum, ChecksumAlgorithm};

/// Appends `text` encoded as Python's `urlencode` does: RFC 3986 unreserved bytes as they are,
/// space as `+`, every other byte as `%XX` (upper-case hex).
pub fn encode_into(out: &mut String, text: &str) {
    fn hex(nibble: u8) -> char {
        char::from(if nibble < 10 {
            b'0' + nibble
        } else {
            b'A' + nibble - 10
        })
    }
    fn unreserved(b: u8) -> bool {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
    }
    out.reserve(text.len());
    // Runs of unreserved bytes are copied at once; such a run starts and ends on char
    // boundaries (it is ASCII, and what follows it is ASCII or the first byte of a character).
    let mut run_start = 0;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if unreserved(b) {
            continue;
        }
        if run_start < i {
            out.push_str(text.get(run_start..i).unwrap_or_default());
        }
        if b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(hex(b >> 4));
            out.push(hex(b & 0x0f));
        }
        run_start = i + 1;
    }
    if run_start < text.len() {
        out.push_str(text.get(run_start..).unwrap_or_default());
    }
}

/// `text` encoded by [`encode_into`].
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    encode_into(&mut out, text);
    out
}

/// Builds an `application/x-www-form-urlencoded` query (space as `+`, RFC 3986 unreserved
/// characters unencoded), keys in insertion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryBuilder {
    query: String,
}

impl QueryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key=value`, both form-encoded.
    pub fn text(&mut self, key: &str, value: &str) -> &mut Self {
        if !self.query.is_empty() {
            self.query.push('&');
        }
        encode_into(&mut self.query, key);
        self.query.push('=');
        encode_into(&mut self.query, value);
        self
    }

    /// Booleans are always sent explicitly, because BBB's defaults differ between versions.
    pub fn flag(&mut self, key: &str, value: bool) -> &mut Self {
        self.text(key, if value { "true" } else { "false" })
    }

    /// Appends `key=value` only when a value is given.
    pub fn opt_text(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(key, value),
            None => self,
        }
    }

    /// The encoded query, without a leading `?`.
    pub fn finish(&self) -> String {
        self.query.clone()
    }
}

/// `{base_url}api/{call}?{query}&checksum={hex}`; `base_url` ends with `/`.
pub fn signed_url(base_url: &str, call: &str, query: &str, alg: ChecksumAlgorithm, secret: &str) -> String {
    let sum = checksum(alg, call, query, secret);
    if query.is_empty() {
        format!("{base_url}api/{call}?checksum={sum}")
    } else {
        format!("{base_url}api/{call}?{query}&checksum={sum}")
    }
}

/// Splits a raw query string as received into (query without any `checksum` parameter, the first
/// checksum value). BBB removes `checksum=...` and its `&` from the raw query and hashes the rest
/// byte for byte, so no decoding or re-encoding happens here.
pub fn strip_checksum(raw_query: &str) -> (String, Option<String>) {
    let mut kept: Vec<&str> = Vec::new();
    let mut found: Option<String> = None;
    for pair in raw_query.split('&') {
        match pair.strip_prefix("checksum=") {
            Some(value) => {
                if found.is_none() {
                    found = Some(value.to_string());
                }
            }
            None if pair == "checksum" => {
                if found.is_none() {
                    found = Some(String::new());
                }
            }
            None => kept.push(pair),
        }
    }
    (kept.join("&"), found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::bbb::checksum::verify;

    const SECRET: &str = "639259d4-9dd8-4b25-bf01-95f9567eaf4b";

    fn docs_create_query() -> String {
        QueryBuilder::new()
            .text("name", "Test Meeting")
            .text("meetingID", "abc123")
            .text("attendeePW", "111222")
            .text("moderatorPW", "333444")
            .finish()
    }

    #[test]
    fn builder_reproduces_the_bbb_docs_create_query() {
        assert_eq!(
            docs_create_query(),
            "name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444"
        );
    }

    #[test]
    fn signed_url_matches_the_bbb_docs_create_example() {
        let url = signed_url(
            "https://bbb.example.org/bigbluebutton/",
            "create",
            &docs_create_query(),
            ChecksumAlgorithm::Sha1,
            SECRET,
        );
        assert_eq!(
            url,
            "https://bbb.example.org/bigbluebutton/api/create?name=Test+Meeting&meetingID=abc123\
             &attendeePW=111222&moderatorPW=333444&checksum=1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17"
        );
    }

    #[test]
    fn signed_url_with_empty_query_has_only_the_checksum() {
        let url = signed_url(
            "http://127.0.0.1:8375/simulator/bigbluebutton/",
            "getMeetings",
            "",
            ChecksumAlgorithm::Sha1,
            "secret",
        );
        assert_eq!(
            url,
            "http://127.0.0.1:8375/simulator/bigbluebutton/api/getMeetings?checksum=867e6596b930651c0cd4dd1912bec902fae56d5a"
        );
    }

    #[test]
    fn values_are_form_encoded_with_space_as_plus() {
        let q = QueryBuilder::new()
            .text("fullName", "Ada Lovelace & Co = 100%")
            .text("userdata-bbb_custom_style_url", "http://h:1/_bbb.css?a=b")
            .text("name", "Café – Raum")
            .text("empty", "")
            .text("safe", "a-b_c.d~e")
            .text("reserved", "*!'()~")
            .finish();
        assert_eq!(
            q,
            "fullName=Ada+Lovelace+%26+Co+%3D+100%25\
             &userdata-bbb_custom_style_url=http%3A%2F%2Fh%3A1%2F_bbb.css%3Fa%3Db\
             &name=Caf%C3%A9+%E2%80%93+Raum&empty=&safe=a-b_c.d~e&reserved=%2A%21%27%28%29~"
        );
    }

    #[test]
    fn only_rfc3986_unreserved_bytes_stay_unencoded() {
        for b in 0u8..=127 {
            let c = char::from(b);
            let encoded = encode(&c.to_string());
            let unreserved = c.is_ascii_alphanumeric() || "-._~".contains(c);
            if unreserved {
                assert_eq!(encoded, c.to_string());
            } else if c == ' ' {
                assert_eq!(encoded, "+");
            } else {
                assert_eq!(encoded, format!("%{b:02X}"), "byte {b}");
            }
        }
        assert_eq!(encode("ä~"), "%C3%A4~");
    }

    #[test]
    fn encoding_decodes_back_to_the_text() {
        let text = "Ann ~ O'Neil & \"Bob\" / 100% + ünïcödé 🎉";
        let q = QueryBuilder::new().text("fullName", text).finish();
        let decoded: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        assert_eq!(decoded, vec![("fullName".to_string(), text.to_string())]);
    }

    #[test]
    fn normalising_percent_encodings_of_unreserved_characters_changes_nothing() {
        // What a normalising client does to a URL: decode %XX of unreserved characters.
        let q = QueryBuilder::new().text("fullName", "a~b-c.d_e").finish();
        let normalised = q
            .replace("%7E", "~")
            .replace("%2D", "-")
            .replace("%2E", ".")
            .replace("%5F", "_");
        assert_eq!(normalised, q);
    }

    #[test]
    fn flags_are_always_sent_and_optional_text_only_when_present() {
        let q = QueryBuilder::new()
            .flag("record", true)
            .flag("muteOnStart", false)
            .opt_text("voiceBridge", None)
            .opt_text("avatarURL", Some("https://a.example/x.png"))
            .finish();
        assert_eq!(
            q,
            "record=true&muteOnStart=false&avatarURL=https%3A%2F%2Fa.example%2Fx.png"
        );
    }

    #[test]
    fn keys_keep_insertion_order_and_duplicates() {
        let q = QueryBuilder::new()
            .text("z", "1")
            .text("a", "2")
            .text("z", "3")
            .finish();
        assert_eq!(q, "z=1&a=2&z=3");
        assert_eq!(QueryBuilder::new().finish(), "");
    }

    #[test]
    fn strip_checksum_removes_it_at_end_start_and_middle() {
        assert_eq!(
            strip_checksum("a=1&b=2&checksum=abc"),
            ("a=1&b=2".to_string(), Some("abc".to_string()))
        );
        assert_eq!(
            strip_checksum("checksum=abc&a=1&b=2"),
            ("a=1&b=2".to_string(), Some("abc".to_string()))
        );
        assert_eq!(
            strip_checksum("a=1&checksum=abc&b=2"),
            ("a=1&b=2".to_string(), Some("abc".to_string()))
        );
        assert_eq!(
            strip_checksum("checksum=abc"),
            (String::new(), Some("abc".to_string()))
        );
    }

    #[test]
    fn strip_checksum_without_checksum_keeps_query_verbatim() {
        assert_eq!(
            strip_checksum("name=A+B%20C&x=%2F"),
            ("name=A+B%20C&x=%2F".to_string(), None)
        );
        assert_eq!(strip_checksum(""), (String::new(), None));
        // Only the exact key counts: a parameter that merely contains "checksum" stays.
        assert_eq!(
            strip_checksum("mychecksum=1&checksumx=2"),
            ("mychecksum=1&checksumx=2".to_string(), None)
        );
    }

    #[test]
    fn strip_checksum_takes_the_first_of_repeated_checksums() {
        assert_eq!(
            strip_checksum("a=1&checksum=first&checksum=second"),
            ("a=1".to_string(), Some("first".to_string()))
        );
    }

    #[test]
    fn signed_url_round_trips_through_strip_checksum_and_verify() {
        let query = QueryBuilder::new()
            .text("meetingID", "room 1/ä")
            .flag("record", true)
            .finish();
        for alg in [
            ChecksumAlgorithm::Sha1,
            ChecksumAlgorithm::Sha256,
            ChecksumAlgorithm::Sha384,
            ChecksumAlgorithm::Sha512,
        ] {
            let url = signed_url("http://h/bigbluebutton/", "create", &query, alg, SECRET);
            let raw = url.split_once('?').unwrap().1;
            let (rest, sum) = strip_checksum(raw);
            assert_eq!(rest, query);
            assert!(verify("create", &rest, SECRET, &sum.unwrap()), "{alg}");
        }
    }
}
