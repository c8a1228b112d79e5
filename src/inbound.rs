//! Fragmented text messages from a client, reassembled within `max_frame_bytes`: a pure core
//! the session feeds with continuation frames.

use actix_http::ws::Item;

/// What one continuation frame did to the message being reassembled.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A message began; its deadline is for generation `n` ([`Reassembly::is_open`]).
    Started(u64),
    /// More is needed (or the frame belongs to a refused binary message).
    Pending,
    /// A binary message began: refused, its continuations are dropped.
    Binary,
    /// The message grew past the limit; it is dropped.
    TooLarge,
    /// The message is complete.
    Message(String),
    /// The complete message is not UTF-8.
    NotUtf8,
}

/// The fragmented text message being reassembled, if any.
#[derive(Debug)]
pub struct Reassembly {
    buffer: Option<Vec<u8>>,
    started: u64,
    max_bytes: usize,
}

impl Reassembly {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            buffer: None,
            started: 0,
            max_bytes,
        }
    }

    pub fn feed(&mut self, item: Item) -> Step {
        let (bytes, last) = match item {
            Item::FirstText(b) => {
                self.buffer = Some(Vec::new());
                self.started += 1;
                if let Some(step) = self.append(&b, false) {
                    return step;
                }
                return Step::Started(self.started);
            }
            Item::FirstBinary(_) => {
                self.buffer = None;
                return Step::Binary;
            }
            Item::Continue(b) => (b, false),
            Item::Last(b) => (b, true),
        };
        self.append(&bytes, last).unwrap_or(Step::Pending)
    }

    fn append(&mut self, bytes: &[u8], last: bool) -> Option<Step> {
        let buffer = self.buffer.as_mut()?;
        buffer.extend_from_slice(bytes);
        if buffer.len() > self.max_bytes {
            self.buffer = None;
            return Some(Step::TooLarge);
        }
        if !last {
            return None;
        }
        let whole = self.buffer.take().unwrap_or_default();
        Some(String::from_utf8(whole).map_or(Step::NotUtf8, Step::Message))
    }

    /// Whether message `started` is still unfinished (for its deadline).
    pub fn is_open(&self, started: u64) -> bool {
        self.buffer.is_some() && self.started == started
    }

    /// Drops the unfinished message.
    pub fn abandon(&mut self) {
        self.buffer = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    #[test]
    fn fragments_make_one_message_and_a_deadline_sees_whether_it_finished() {
        let mut r = Reassembly::new(100);
        assert_eq!(r.feed(Item::FirstText(b(b"[\"ping\","))), Step::Started(1));
        assert!(r.is_open(1));
        assert_eq!(r.feed(Item::Continue(b(b" 1"))), Step::Pending);
        assert_eq!(r.feed(Item::Last(b(b"]"))), Step::Message("[\"ping\", 1]".into()));
        assert!(!r.is_open(1));
        assert_eq!(r.feed(Item::FirstText(b(b"x"))), Step::Started(2));
        assert!(!r.is_open(1) && r.is_open(2));
    }

    #[test]
    fn too_large_binary_and_invalid_utf8_are_reported() {
        let mut r = Reassembly::new(4);
        assert_eq!(r.feed(Item::FirstText(b(b"abc"))), Step::Started(1));
        assert_eq!(r.feed(Item::Continue(b(b"de"))), Step::TooLarge);
        assert_eq!(
            r.feed(Item::Last(b(b"f"))),
            Step::Pending,
            "rest of a dropped message"
        );
        assert_eq!(r.feed(Item::FirstBinary(b(b"\x00"))), Step::Binary);
        assert_eq!(r.feed(Item::Last(b(b"\x00"))), Step::Pending);
        assert_eq!(r.feed(Item::FirstText(b(b"\xc3"))), Step::Started(2));
        assert_eq!(r.feed(Item::Last(b(b"("))), Step::NotUtf8);
    }
}
