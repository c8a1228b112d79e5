//! A WebSocket client speaking the gateway's JSON frames: the one client of the load generator
//! (`src/bin/loadgen.rs`) and the integration tests (`tests/api/helpers.rs` wraps it with
//! panicking helpers). Answers pings, reassembles fragmented text messages.

use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

type Framed = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

/// What the server sent: a JSON text message, or a close (also when the stream ended).
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Close(Option<ws::CloseReason>),
}

/// Why the client could not go on.
#[derive(Debug, thiserror::Error)]
pub enum WsClientError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("send: {0}")]
    Send(String),
    #[error("bad json: {0}")]
    BadJson(String),
    #[error("binary frame")]
    Binary,
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("closed")]
    Closed(Option<ws::CloseReason>),
}

/// One client connection.
pub struct WsClient {
    framed: Framed,
    next_id: u64,
    /// A fragmented text message being reassembled.
    partial: Vec<u8>,
    /// How many messages arrived in fragments.
    pub fragmented_messages: usize,
}

impl WsClient {
    /// Connects to `url` (`ws://…/ws/world/{id}/`), accepting frames up to `max_frame_size`.
    pub async fn connect(
        client: &awc::Client,
        url: &str,
        max_frame_size: usize,
    ) -> Result<Self, WsClientError> {
        let (_, framed) = client
            .ws(url)
            .max_frame_size(max_frame_size)
            .connect()
            .await
            .map_err(|e| WsClientError::Connect(e.to_string()))?;
        Ok(Self {
            framed,
            next_id: 1,
            partial: Vec::new(),
            fragmented_messages: 0,
        })
    }

    pub async fn send_text(&mut self, text: &str) -> Result<(), WsClientError> {
        self.send(ws::Message::Text(text.to_string().into())).await
    }

    pub async fn send_json(&mut self, value: &Value) -> Result<(), WsClientError> {
        self.send_text(&value.to_string()).await
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) -> Result<(), WsClientError> {
        self.send(ws::Message::Binary(bytes.to_vec().into())).await
    }

    async fn send(&mut self, message: ws::Message) -> Result<(), WsClientError> {
        self.framed
            .send(message)
            .await
            .map_err(|e| WsClientError::Send(e.to_string()))
    }

    /// The next JSON message or close, answering pings on the way.
    pub async fn next_message(&mut self) -> Result<Received, WsClientError> {
        loop {
            match self.framed.next().await {
                Some(Ok(ws::Frame::Text(bytes))) => return parse(&bytes).map(Received::Json),
                Some(Ok(ws::Frame::Continuation(item))) => match item {
                    actix_http::ws::Item::FirstText(b) => self.partial = b.to_vec(),
                    actix_http::ws::Item::Continue(b) => self.partial.extend_from_slice(&b),
                    actix_http::ws::Item::Last(b) => {
                        self.partial.extend_from_slice(&b);
                        let whole = std::mem::take(&mut self.partial);
                        self.fragmented_messages += 1;
                        return parse(&whole).map(Received::Json);
                    }
                    actix_http::ws::Item::FirstBinary(_) => return Err(WsClientError::Binary),
                },
                Some(Ok(ws::Frame::Ping(p))) => self.send(ws::Message::Pong(p)).await?,
                Some(Ok(ws::Frame::Close(reason))) => return Ok(Received::Close(reason)),
                None => return Ok(Received::Close(None)),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(WsClientError::Protocol(e.to_string())),
            }
        }
    }

    /// The next JSON message; a close is an error.
    pub async fn recv(&mut self) -> Result<Value, WsClientError> {
        match self.next_message().await? {
            Received::Json(v) => Ok(v),
            Received::Close(reason) => Err(WsClientError::Closed(reason)),
        }
    }

    /// A fresh request id.
    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends `[action, id, body]` and returns the `success`/`error` reply carrying that id,
    /// skipping pushes.
    pub async fn request(&mut self, action: &str, body: Value) -> Result<Value, WsClientError> {
        let id = self.take_id();
        self.send_json(&json!([action, id, body])).await?;
        self.reply_to(&json!(id)).await
    }

    /// Waits for the `success`/`error` frame with `id`, skipping pushes.
    pub async fn reply_to(&mut self, id: &Value) -> Result<Value, WsClientError> {
        loop {
            let v = self.recv().await?;
            if is_reply_to(&v, id) {
                return Ok(v);
            }
        }
    }
}

/// Whether `frame` is the `success` or `error` reply to request `id`.
pub fn is_reply_to(frame: &Value, id: &Value) -> bool {
    matches!(frame.get(0).and_then(Value::as_str), Some("success" | "error")) && frame.get(1) == Some(id)
}

fn parse(bytes: &[u8]) -> Result<Value, WsClientError> {
    serde_json::from_slice(bytes).map_err(|e| WsClientError::BadJson(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_matched_by_kind_and_id() {
        assert!(is_reply_to(&json!(["success", 3, {}]), &json!(3)));
        assert!(is_reply_to(&json!(["error", 3, {"code": "x"}]), &json!(3)));
        assert!(!is_reply_to(&json!(["success", 4, {}]), &json!(3)));
        assert!(!is_reply_to(&json!(["chat.event", {"id": 3}]), &json!(3)));
        assert!(!is_reply_to(&json!("success"), &json!(3)));
    }
}
