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

    /// The next chunk for the writer.
    pub fn pop(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.pop_front()?;
        self.pending = self.pending.saturating_sub(chunk.len());
        Some(chunk)
    }

    /// Drops everything unsent and queues only a close frame with `code`; the response ends
    /// after it.
    pub fn close_now(&mut self, code: u16) {
        if self.closed {
            return;
        }
        self.chunks.clear();
        self.pending = 0;
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
