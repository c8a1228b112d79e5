//! Bounded output per socket. A session's encoded frames do not go to the HTTP writer directly:
//! a small task drives the session (so it keeps running, heartbeat included, while its peer
//! does not read) and moves each chunk into an [`Output`] queue, which the HTTP response drains
//! as the peer reads. The session reads [`Output::pending`] to refuse output past its limit
//! (close 1008), and [`Output::close_now`] puts a close frame ahead of everything unsent.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// The queue between a session and the HTTP writer (one socket, one thread).
#[derive(Default, Debug)]
pub struct Queue {
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`: handed over by the session, not yet taken by the writer.
    pending: usize,
    /// A close frame was put first; nothing more is queued.
    closed: bool,
    /// The session ended: once `chunks` is empty the response ends.
    finished: bool,
    /// The HTTP writer is gone (the peer disconnected): chunks are dropped.
    gone: bool,
    /// The writer has taken the first part of `chunks[0]` (it was cut): the rest must go out
    /// before anything else, or the peer would read a close frame inside a frame's payload.
    head_started: bool,
    waker: Option<Waker>,
}

impl Queue {
    /// Queues a chunk of encoded frames (dropped after a close or when the peer is gone).
    pub fn push(&mut self, chunk: Bytes) {
        if self.closed || self.gone || chunk.is_empty() {
            return;
        }
        self.pending += chunk.len();
        self.chunks.push_back(chunk);
        self.wake();
    }

    /// The next chunk for the writer: at most [`WRITER_CHUNK_BYTES`] (a longer chunk is cut,
    /// without copying, and its rest stays first in the queue).
    pub fn pop(&mut self) -> Option<Bytes> {
        let head = self.chunks.front_mut()?;
        let chunk = if head.len() > WRITER_CHUNK_BYTES {
            self.head_started = true;
            head.split_to(WRITER_CHUNK_BYTES)
        } else {
            self.head_started = false;
            let chunk = self.chunks.pop_front()?;
            if self.chunks.is_empty() {
                // A burst (a login's frames) may have grown the queue; an idle socket keeps none.
                self.chunks = VecDeque::new();
            }
            chunk
        };
        self.pending = self.pending.saturating_sub(chunk.len());
        Some(chunk)
    }

    /// Drops everything unsent (but the rest of a chunk the writer has begun) and queues only a
    /// close frame with `code`; the response ends after it.
    pub fn close_now(&mut self, code: u16) {
        if self.closed {
            return;
        }
        let begun = if self.head_started {
            self.chunks.pop_front()
        } else {
            None
        };
        self.chunks.clear();
        self.pending = begun.as_ref().map_or(0, Bytes::len);
        self.chunks.extend(begun);
        self.chunks.push_back(close_frame(code));
        self.closed = true;
        self.finished = true;
        self.wake();
    }

    pub fn finish(&mut self) {
        self.finished = true;
        self.wake();
    }

    pub fn pending(&self) -> usize {
        self.pending
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// The most the HTTP writer is handed at once. The server flushes its write buffer after every
/// chunk (`app::WRITE_BUFFER_FILL`), so the buffer holds one chunk at a time and never grows
/// past the 8 KiB it starts with: actix-http keeps a grown write buffer (up to 128 KiB) for the
/// life of the connection, which at 10,000 idle sockets is a large share of the memory.
pub const WRITER_CHUNK_BYTES: usize = 4 * 1024;

/// Frames longer than this go out as WebSocket fragments of `FRAGMENT_BYTES`, one per actor
/// turn, so no connection buffer grows to the size of a large frame (actix keeps write buffers
/// up to 128 KiB per connection, which at 10,000 sockets would be most of the memory).
pub const FRAGMENT_THRESHOLD: usize = 8 * 1024;
pub const FRAGMENT_BYTES: usize = 4 * 1024;

/// Whether a frame is sent in fragments.
pub fn is_large(text: &str) -> bool {
    text.len() > FRAGMENT_THRESHOLD
}

/// Whether a new frame of `len` bytes would leave more than `limit` unsent behind the frame
/// being sent. A frame is always taken when nothing waits (a large reply is one frame).
pub fn exceeds_limit(unsent: usize, len: usize, limit: usize) -> bool {
    unsent > 0 && unsent.saturating_add(len) > limit
}

/// What the session writes next.
#[derive(Debug, PartialEq)]
pub enum Piece {
    /// A small frame, whole.
    Whole(String),
    /// The next fragment of a large frame.
    Fragment(actix_http::ws::Item),
}

/// Frames waiting behind a large frame that is being sent in fragments, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    frames: VecDeque<String>,
    /// Bytes of the first frame already sent.
    sent_of_head: usize,
}

impl Outbox {
    pub fn push(&mut self, text: String) {
        self.frames.push_back(text);
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.sent_of_head = 0;
    }

    /// Bytes of the frames behind the one being sent.
    pub fn bytes_behind_head(&self) -> usize {
        self.frames.iter().skip(1).map(String::len).sum()
    }

    /// The next piece to write: a small frame whole, or the next fragment (at most
    /// `FRAGMENT_BYTES`, cut at a character boundary) of a large one.
    pub fn next_piece(&mut self) -> Option<Piece> {
        let head = self.frames.front()?;
        if self.sent_of_head == 0 && !is_large(head) {
            return self.frames.pop_front().map(Piece::Whole);
        }
        let start = self.sent_of_head;
        let mut end = (start + FRAGMENT_BYTES).min(head.len());
        while !head.is_char_boundary(end) {
            end -= 1;
        }
        let piece = Bytes::copy_from_slice(head.as_bytes().get(start..end).unwrap_or_default());
        let last = end == head.len();
        let item = match (start == 0, last) {
            (true, _) => actix_http::ws::Item::FirstText(piece),
            (false, false) => actix_http::ws::Item::Continue(piece),
            (false, true) => actix_http::ws::Item::Last(piece),
        };
        if last {
            self.frames.pop_front();
            self.sent_of_head = 0;
        } else {
            self.sent_of_head = end;
        }
        Some(Piece::Fragment(item))
    }
}

/// A server-to-client close frame (unmasked) carrying `code` and no reason text.
pub fn close_frame(code: u16) -> Bytes {
    let [hi, lo] = code.to_be_bytes();
    Bytes::from(vec![0x88, 0x02, hi, lo])
}

/// Shared handle on one socket's [`Queue`].
#[derive(Clone, Default, Debug)]
pub struct Output(Rc<RefCell<Queue>>);

impl Output {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes waiting for the peer to read them (beyond what the writer and the kernel hold).
    pub fn pending(&self) -> usize {
        self.0.borrow().pending()
    }

    /// See [`Queue::close_now`].
    pub fn close_now(&self, code: u16) {
        self.0.borrow_mut().close_now(code);
    }

    /// Whether a close frame was already put first.
    pub fn is_closed(&self) -> bool {
        self.0.borrow().closed
    }

    /// Runs the session's frame stream to its end, moving every chunk into the queue. Spawned
    /// on the socket's thread; it never waits for the peer.
    pub async fn drive<S, E>(self, stream: S)
    where
        S: Stream<Item = Result<Bytes, E>>,
    {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => self.0.borrow_mut().push(chunk),
                Err(_) => break,
            }
        }
        self.0.borrow_mut().finish();
    }

    /// The response body: the queue's chunks as the writer asks for them.
    pub fn body(&self) -> Body {
        Body(self.clone())
    }
}

/// The HTTP response body of a WebSocket: drains an [`Output`].
pub struct Body(Output);

impl Stream for Body {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut queue = self.0 .0.borrow_mut();
        if let Some(chunk) = queue.pop() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        if queue.finished {
            return Poll::Ready(None);
        }
        queue.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Ok(mut queue) = self.0 .0.try_borrow_mut() {
            queue.gone = true;
            queue.chunks.clear();
            queue.pending = 0;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn pending_counts_what_the_writer_has_not_taken() {
        let mut q = Queue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::from_static(b"de"));
        assert_eq!(q.pending(), 5);
        assert_eq!(q.pop().unwrap(), Bytes::from_static(b"abc"));
        assert_eq!(q.pending(), 2);
        assert_eq!(q.pop().unwrap(), Bytes::from_static(b"de"));
        assert_eq!((q.pending(), q.pop()), (0, None));
    }

    #[test]
    fn the_writer_gets_at_most_one_small_chunk_at_a_time_in_order() {
        let mut q = Queue::default();
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        q.push(Bytes::from(big.clone()));
        q.push(Bytes::from_static(b"next"));
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        while let Some(chunk) = q.pop() {
            sizes.push(chunk.len());
            out.extend_from_slice(&chunk);
            assert_eq!(q.pending(), big.len() + 4 - out.len());
        }
        assert_eq!(sizes, [WRITER_CHUNK_BYTES, WRITER_CHUNK_BYTES, 10_000 - 8192, 4]);
        assert_eq!(&out[..10_000], &big[..]);
        assert_eq!(&out[10_000..], b"next");
        assert_eq!(q.chunks.capacity(), 0, "an empty queue keeps no allocation");
    }

    #[test]
    fn close_now_drops_the_backlog_and_puts_the_close_frame_first() {
        let mut q = Queue::default();
        for _ in 0..100 {
            q.push(Bytes::from(vec![0; 1000]));
        }
        q.close_now(1008);
        assert_eq!(q.pending(), 0);
        assert_eq!(q.pop().unwrap(), Bytes::from_static(&[0x88, 0x02, 0x03, 0xf0]));
        q.push(Bytes::from_static(b"late"));
        assert_eq!(q.pop(), None, "nothing after the close frame");
        assert!(q.finished);
    }

    #[test]
    fn close_now_keeps_the_rest_of_a_frame_the_writer_has_begun() {
        let mut q = Queue::default();
        let frame = Bytes::from(vec![7; WRITER_CHUNK_BYTES + 100]);
        q.push(frame.clone());
        q.push(Bytes::from(vec![1; 1000]));
        assert_eq!(q.pop().unwrap().len(), WRITER_CHUNK_BYTES);
        q.close_now(1008);
        assert_eq!(q.pending(), 100);
        assert_eq!(
            q.pop().unwrap(),
            frame.slice(WRITER_CHUNK_BYTES..),
            "the frame ends first"
        );
        assert_eq!(q.pop().unwrap(), Bytes::from_static(&[0x88, 0x02, 0x03, 0xf0]));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn output_past_the_limit_is_refused_but_one_large_frame_is_taken() {
        assert!(!exceeds_limit(0, 5_000_000, 1 << 20), "one large reply");
        assert!(!exceeds_limit(1000, 1000, 1 << 20));
        assert!(!exceeds_limit((1 << 20) - 10, 10, 1 << 20));
        assert!(exceeds_limit((1 << 20) - 10, 11, 1 << 20));
        assert!(exceeds_limit(1, 5_000_000, 1 << 20));
    }

    #[test]
    fn a_large_frame_goes_out_in_fragments_at_character_boundaries_then_small_ones_whole() {
        let mut outbox = Outbox::default();
        let large = format!(
            "{}é{}",
            "a".repeat(FRAGMENT_BYTES - 1),
            "b".repeat(FRAGMENT_BYTES * 2)
        );
        outbox.push(large.clone());
        outbox.push("small".into());
        assert_eq!(outbox.bytes_behind_head(), 5);
        let mut whole = Vec::new();
        let mut kinds = Vec::new();
        while let Some(Piece::Fragment(item)) = outbox.next_piece() {
            let (kind, bytes) = match item {
                actix_http::ws::Item::FirstText(b) => ("first", b),
                actix_http::ws::Item::Continue(b) => ("continue", b),
                actix_http::ws::Item::Last(b) => ("last", b),
                actix_http::ws::Item::FirstBinary(_) => panic!("binary"),
            };
            assert!(bytes.len() <= FRAGMENT_BYTES);
            assert!(std::str::from_utf8(&bytes).is_ok(), "cut at a character boundary");
            kinds.push(kind);
            whole.extend_from_slice(&bytes);
            if kind == "last" {
                break;
            }
        }
        assert_eq!(String::from_utf8(whole).unwrap(), large);
        assert_eq!(kinds.first(), Some(&"first"));
        assert_eq!(kinds.last(), Some(&"last"));
        assert_eq!(outbox.next_piece(), Some(Piece::Whole("small".into())));
        assert!(outbox.is_empty());
    }

    #[test]
    fn close_frames_carry_the_code_big_endian() {
        assert_eq!(&close_frame(1012)[..], &[0x88, 0x02, 0x03, 0xf4]);
        assert_eq!(&close_frame(1001)[..], &[0x88, 0x02, 0x03, 0xe9]);
    }

    #[test]
    fn a_gone_writer_takes_nothing_more() {
        let output = Output::new();
        drop(output.body());
        output.0.borrow_mut().push(Bytes::from_static(b"x"));
        assert_eq!(output.pending(), 0);
    }
}
