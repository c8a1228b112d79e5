//! The WebSocket session actor, one per connection (the only module that imports
//! actix-web-actors). It turns frames into typed commands, forwards them to the actors that own
//! the data, and turns their answers into frames. Requests run concurrently, so replies may
//! complete out of order; each carries its request's id.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use serde_json::{json, Value};

use crate::bus::{self, Answer, Audience};
use crate::error::Error;
use crate::ids::WorldId;
use crate::inbound::{Reassembly, Step};
use crate::outbound::{exceeds_limit, is_large, Outbox, Output, Piece};
use crate::permissions::rules::WORLD_CONNECTIONS_UNLIMITED;
use crate::protocol::command::{self, Command};
use crate::protocol::frame::{self, Frame};
use crate::protocol::reply::Reply;
use crate::protocol::{chat_wire, wire};
use crate::rate_limit::RateLimiter;
use crate::registry::{ConnId, Push, Register, Unregister};
use crate::services::Services;
use crate::store::UserRecord;
use crate::users::{self, LoggedIn};
use crate::{chat, rooms};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// `GET /ws/world/{world_id}/`: upgrade to a session. An unknown world still gets a socket,
/// which is told `world.unknown_world` and closed.
pub async fn ws_route(
    req: HttpRequest,
    stream: web::Payload,
    path: web::Path<String>,
    services: web::Data<Services>,
) -> Result<HttpResponse, actix_web::Error> {
    let settings = services.config.current();
    let world = WorldId(path.into_inner());
    let known = settings.world(world.as_str()).is_some();
    let max_frame_bytes = settings.server.max_frame_bytes;
    let output = Output::new();
    let session = Session {
        conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        world,
        known_world: known,
        services: services.get_ref().clone(),
        user: None,
        logged_in: false,
        limiter: RateLimiter::new(settings.server.requests_per_second),
        last_seen: Instant::now(),
        inbound: Reassembly::new(max_frame_bytes),
        max_frame_bytes,
        heartbeat: Duration::from_millis(settings.server.heartbeat_interval_ms),
        client_timeout: Duration::from_millis(settings.server.client_timeout_ms),
        outbox: Outbox::default(),
        close_after: None,
        output: output.clone(),
        output_limit: max_frame_bytes.saturating_mul(OUTPUT_LIMIT_FRAMES),
        auth_timeout: Duration::from_millis(settings.server.auth_timeout_ms),
        fragment_timeout: Duration::from_millis(settings.server.fragment_timeout_ms),
        shutdown_grace: Duration::from_millis(settings.server.shutdown_grace_ms),
        inflight: 0,
        shutting_down: false,
    };
    // The session runs in a task of its own that hands its frames to `output`; the response
    // drains `output` as the peer reads. So a peer that stops reading never stops the session
    // (its heartbeat, its deadlines, its mailbox) and costs at most `output_limit`.
    let mut response = ws::handshake(&req)?;
    let codec = actix_http::ws::Codec::new().max_size(max_frame_bytes);
    let frames = ws::WebsocketContext::with_codec(session, stream, codec);
    actix_web::rt::spawn(output.clone().drive(frames));
    Ok(response.streaming(output.body()))
}

/// The logged-in user of a session.
struct SessionUser {
    record: UserRecord,
}

pub struct Session {
    conn: ConnId,
    world: WorldId,
    known_world: bool,
    services: Services,
    user: Option<SessionUser>,
    /// Whether this socket ever authenticated (for the gauge, even after a replacement).
    logged_in: bool,
    limiter: RateLimiter,
    last_seen: Instant,
    /// A fragmented text message being assembled.
    inbound: Reassembly,
    max_frame_bytes: usize,
    heartbeat: Duration,
    client_timeout: Duration,
    /// Frames waiting behind a large frame that is being sent in fragments.
    outbox: Outbox,
    /// A close waiting for the outbox to drain.
    close_after: Option<CloseCode>,
    /// Encoded frames not yet taken by the peer.
    output: Output,
    /// Most unsent output (beyond a frame being sent) before the socket is closed with 1008.
    output_limit: usize,
    auth_timeout: Duration,
    fragment_timeout: Duration,
    shutdown_grace: Duration,
    /// Requests being answered.
    inflight: usize,
    /// SIGTERM: close with 1012 once in-flight requests are answered (or the grace is over).
    shutting_down: bool,
}

/// Unsent output is bounded by `max_frame_bytes` × this (SPEC §7).
const OUTPUT_LIMIT_FRAMES: usize = 16;

/// A large frame's next fragment is written only while less than this is unsent, so a slow
/// reader's large reply waits in the outbox (where it already was) instead of the queue.
const PUMP_LOW_WATER: usize = 64 * 1024;
const PUMP_RETRY: Duration = Duration::from_millis(10);

type Ctx = ws::WebsocketContext<Session>;

impl Actor for Session {
    type Context = Ctx;

    fn started(&mut self, ctx: &mut Ctx) {
        self.services.metrics.socket_opened();
        if !self.known_world {
            log::info!("session: conn={} unknown world={}", self.conn, self.world);
            self.send(ctx, frame::error(None, &Error::UnknownWorld));
            self.close(ctx, CloseCode::Policy);
            return;
        }
        ctx.run_interval(self.heartbeat, |act, ctx| {
            if act.last_seen.elapsed() > act.client_timeout {
                log::info!("session: conn={} heartbeat timed out", act.conn);
                // Ahead of any unsent output, then the connection is dropped.
                act.close_now(ctx, CloseCode::Away);
            } else {
                ctx.ping(b"");
            }
        });
        ctx.run_later(self.auth_timeout, |act, ctx| {
            if !act.logged_in {
                log::info!("session: conn={} not authenticated in time", act.conn);
                act.close(ctx, CloseCode::Policy);
            }
        });
        let mut shutdown = self.services.shutdown.subscribe();
        ctx.spawn(
            async move { shutdown.wait_for(|stop| *stop).await.is_ok() }
                .into_actor(self)
                .map(|stop, act, ctx| {
                    if stop {
                        act.begin_shutdown(ctx);
                    }
                }),
        );
    }

    fn stopping(&mut self, _: &mut Ctx) -> Running {
        self.services.metrics.socket_closed(self.logged_in);
        if let Some(user) = &self.user {
            self.services.registry.do_send(Unregister {
                user: user.record.id.clone(),
                conn: self.conn,
            });
        }
        Running::Stop
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Ctx) {
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Binary(_)) => {
                if self.admit(None, ctx) {
                    self.send_error(ctx, None, &Error::invalid("binary frames are not supported"));
                }
            }
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                log::info!(
                    "session: conn={} frame over {} bytes",
                    self.conn,
                    self.max_frame_bytes
                );
                self.send_error(ctx, None, &Error::invalid("frame too large"));
                self.close(ctx, CloseCode::Size);
            }
            Err(ws::ProtocolError::Io(e)) if e.to_string().contains("utf-8") => {
                log::info!("session: conn={} text frame is not UTF-8", self.conn);
                self.close(ctx, CloseCode::Invalid);
            }
            Err(e) => {
                log::info!("session: conn={} protocol error: {e}", self.conn);
                self.close(ctx, CloseCode::Protocol);
            }
        }
    }
}

impl Handler<Push> for Session {
    type Result = ();

    fn handle(&mut self, push: Push, ctx: &mut Ctx) {
        match push {
            Push::Frame(text) => self.send(ctx, text.to_string()),
            Push::ProfileChanged { profile, frame } => {
                if let Some(user) = &mut self.user {
                    user.record.profile = profile;
                }
                self.send(ctx, frame.to_string());
            }
            Push::Replaced => {
                self.send(ctx, frame::error(None, &Error::ConnectionReplaced));
                self.user = None;
                self.close(ctx, CloseCode::Policy);
            }
            Push::Reload => {
                self.send(ctx, frame::event("connection.reload", json!({})));
                self.close(ctx, CloseCode::Policy);
            }
        }
    }
}

impl Session {
    /// Closes at once: unsent output is dropped, the close frame goes first, the session stops.
    fn close_now(&mut self, ctx: &mut Ctx, code: CloseCode) {
        self.outbox.clear();
        self.output.close_now(u16::from(code));
        ctx.stop();
    }

    /// SIGTERM: answer what is in flight (at most `shutdown_grace`), then close with 1012.
    fn begin_shutdown(&mut self, ctx: &mut Ctx) {
        self.shutting_down = true;
        if self.inflight == 0 {
            self.close(ctx, CloseCode::Restart);
            return;
        }
        ctx.run_later(self.shutdown_grace, |act, ctx| {
            act.close_now(ctx, CloseCode::Restart)
        });
    }

    /// Closes once every queued frame is out.
    fn close(&mut self, ctx: &mut Ctx, code: CloseCode) {
        if !self.outbox.is_empty() {
            self.close_after = Some(code);
            return;
        }
        ctx.close(Some(CloseReason {
            code,
            description: None,
        }));
        ctx.stop();
    }

    /// Sends a text frame, in order with every frame before it. Large frames are fragmented.
    /// Past `output_limit` of unsent output the socket is closed with 1008 (policy).
    fn send(&mut self, ctx: &mut Ctx, text: String) {
        if self.output.is_closed() {
            return;
        }
        if exceeds_limit(self.unsent_behind_head(), text.len(), self.output_limit) {
            log::info!(
                "session: conn={} does not read its output ({} bytes unsent): closing",
                self.conn,
                self.unsent_behind_head()
            );
            self.close_now(ctx, CloseCode::Policy);
            return;
        }
        if self.outbox.is_empty() && !is_large(&text) {
            ctx.text(text);
            return;
        }
        self.outbox.push(text);
        if self.outbox.len() == 1 {
            self.pump(ctx);
        }
    }

    /// Unsent bytes, not counting the rest of a large frame being sent in fragments.
    fn unsent_behind_head(&self) -> usize {
        self.output.pending() + self.outbox.bytes_behind_head()
    }

    /// Sends the next piece of the outbox: small frames whole, a large one fragment by fragment
    /// (one fragment per turn, so each is flushed before the next is written; and only while
    /// the peer keeps up).
    fn pump(&mut self, ctx: &mut Ctx) {
        if self.output.is_closed() {
            return;
        }
        if !self.outbox.is_empty() && self.output.pending() >= PUMP_LOW_WATER {
            ctx.run_later(PUMP_RETRY, |act, ctx| act.pump(ctx));
            return;
        }
        while let Some(piece) = self.outbox.next_piece() {
            match piece {
                Piece::Whole(text) => ctx.text(text),
                Piece::Fragment(item) => {
                    ctx.write_raw(ws::Message::Continuation(item));
                    if !self.outbox.is_empty() {
                        ctx.run_later(Duration::ZERO, |act, ctx| act.pump(ctx));
                        return;
                    }
                }
            }
        }
        if let Some(code) = self.close_after.take() {
            self.close(ctx, code);
        }
    }

    fn send_error(&mut self, ctx: &mut Ctx, id: Option<&Value>, error: &Error) {
        self.send(ctx, frame::error(id, error));
    }

    /// Counts a frame against the rate limit; a refused frame is answered here.
    fn admit(&mut self, id: Option<&Value>, ctx: &mut Ctx) -> bool {
        if self.limiter.allow(Instant::now()) {
            return true;
        }
        self.services.metrics.request("", Error::RateLimited.code());
        self.send_error(ctx, id, &Error::RateLimited);
        false
    }

    fn on_fragment(&mut self, item: actix_http::ws::Item, ctx: &mut Ctx) {
        match self.inbound.feed(item) {
            Step::Started(n) => {
                ctx.run_later(self.fragment_timeout, move |act, ctx| {
                    if act.inbound.is_open(n) {
                        log::info!("session: conn={} left a fragmented message unfinished", act.conn);
                        act.inbound.abandon();
                        act.close(ctx, CloseCode::Policy);
                    }
                });
            }
            Step::Pending => {}
            Step::Binary => {
                if self.admit(None, ctx) {
                    self.send_error(ctx, None, &Error::invalid("binary frames are not supported"));
                }
            }
            Step::TooLarge => {
                self.send_error(ctx, None, &Error::invalid("frame too large"));
                self.close(ctx, CloseCode::Size);
            }
            Step::Message(text) => self.on_text(&text, ctx),
            Step::NotUtf8 => {
                log::info!("session: conn={} text message is not UTF-8", self.conn);
                self.close(ctx, CloseCode::Invalid);
            }
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut Ctx) {
        let parsed = frame::parse(text);
        let id = match &parsed {
            Ok(Frame::Request { id, .. }) => Some(id),
            Ok(Frame::Authenticate { id, .. }) => id.as_ref(),
            Ok(Frame::Ping(x)) => Some(x),
            Err(e) => e.id.as_ref(),
        };
        if !self.admit(id, ctx) {
            return;
        }
        match parsed {
            Err(e) => {
                self.services.metrics.request("", e.error.code());
                self.send_error(ctx, e.id.as_ref(), &e.error);
            }
            Ok(Frame::Ping(x)) => self.send(ctx, frame::event("pong", x)),
            Ok(Frame::Authenticate { id, body }) => {
                if self.user.is_some() {
                    self.services
                        .metrics
                        .request("authenticate", Error::UnknownCommand.code());
                    self.send_error(ctx, id.as_ref(), &Error::UnknownCommand);
                } else {
                    self.authenticate(body, ctx);
                }
            }
            Ok(Frame::Request { action, id, body }) => {
                if self.user.is_none() {
                    self.services
                        .metrics
                        .request(&action, Error::Unauthenticated.code());
                    self.send_error(ctx, Some(&id), &Error::Unauthenticated);
                    return;
                }
                match command::parse(&action, body) {
                    Ok(cmd) => self.dispatch(cmd, action, id, ctx),
                    Err(e) => {
                        self.services.metrics.request(&action, e.code());
                        self.send_error(ctx, Some(&id), &e);
                    }
                }
            }
        }
    }

    /// Logs the user in ([`users::login`]). Runs with `ctx.wait`: frames that arrive meanwhile
    /// are handled after the login settles, so a client may pipeline requests behind
    /// `authenticate`.
    fn authenticate(&mut self, body: Value, ctx: &mut Ctx) {
        let started = Instant::now();
        let login = users::login(self.services.clone(), self.world.clone(), body);
        ctx.wait(login.into_actor(self).map(move |result, act, ctx| match result {
            Ok(LoggedIn {
                record,
                view,
                conversations,
            }) => {
                act.services.metrics.login(started.elapsed(), "success");
                let limit =
                    (!view.rights.has(WORLD_CONNECTIONS_UNLIMITED)).then_some(view.world.connection_limit);
                act.services.registry.do_send(Register {
                    user: record.id.clone(),
                    conn: act.conn,
                    addr: ctx.address().recipient(),
                    limit,
                });
                log::debug!(
                    "session: conn={} world={} user={} authenticated",
                    act.conn,
                    act.world,
                    record.id
                );
                act.send(
                    ctx,
                    wire::authenticated_frame(
                        &wire::user(&record),
                        &wire::world_config(&view.config),
                        &chat_wire::channels(&conversations),
                        &chat_wire::pointers(&conversations),
                        &chat_wire::counts(&conversations),
                    ),
                );
                act.user = Some(SessionUser { record });
                act.logged_in = true;
            }
            Err(e) => {
                act.services.metrics.login(started.elapsed(), e.code());
                act.send_error(ctx, None, &e);
            }
        }));
    }

    /// Runs a request future concurrently and answers with its typed reply under `id`.
    fn respond<F>(&mut self, action: String, id: Value, fut: F, ctx: &mut Ctx)
    where
        F: Future<Output = Result<Reply, Error>> + 'static,
    {
        let metrics = self.services.metrics.clone();
        self.inflight += 1;
        fut.into_actor(self)
            .map(move |result, act, ctx| {
                act.inflight = act.inflight.saturating_sub(1);
                match result {
                    Ok(reply) => {
                        metrics.request(&action, "success");
                        act.send(ctx, frame::success(&id, wire::reply(&reply)));
                    }
                    Err(e) => {
                        metrics.request(&action, e.code());
                        act.send(ctx, frame::error(Some(&id), &e));
                    }
                }
                act.close_if_shut_down(ctx);
            })
            .spawn(ctx);
    }

    /// Like `respond`, for requests that cause pushes: the reply and the pushes go out as one
    /// ordered sequence on the bus, so every socket sees them in the order the answer lists.
    fn respond_with_pushes<F>(&mut self, action: String, id: Value, fut: F, ctx: &mut Ctx)
    where
        F: Future<Output = Result<Answer, Error>> + 'static,
    {
        let metrics = self.services.metrics.clone();
        self.inflight += 1;
        fut.into_actor(self)
            .map(move |result, act, ctx| {
                act.inflight = act.inflight.saturating_sub(1);
                match (result, &act.user) {
                    (Ok(answer), Some(user)) if answer.has_pushes() => {
                        metrics.request(&action, "success");
                        let reply_to = Audience::Socket {
                            user: user.record.id.clone(),
                            conn: act.conn,
                        };
                        let reply = frame::success(&id, wire::reply(&answer.reply));
                        bus::publish(&act.services, answer.into_publish(reply_to, reply));
                        // The reply comes back through the bus; a shutdown closes at its grace.
                        return;
                    }
                    (Ok(answer), _) => {
                        metrics.request(&action, "success");
                        act.send(ctx, frame::success(&id, wire::reply(&answer.reply)));
                    }
                    (Err(e), _) => {
                        metrics.request(&action, e.code());
                        act.send(ctx, frame::error(Some(&id), &e));
                    }
                }
                act.close_if_shut_down(ctx);
            })
            .spawn(ctx);
    }

    /// During a shutdown, closes with 1012 once nothing is in flight.
    fn close_if_shut_down(&mut self, ctx: &mut Ctx) {
        if self.shutting_down && self.inflight == 0 {
            self.close(ctx, CloseCode::Restart);
        }
    }

    fn dispatch(&mut self, cmd: Command, action: String, id: Value, ctx: &mut Ctx) {
        let Some(user) = &self.user else {
            return;
        };
        let services = self.services.clone();
        let world = self.world.clone();
        let conn = self.conn;
        match cmd {
            Command::UserUpdate { profile } => {
                let fut = users::update_profile(services, world, user.record.id.clone(), conn, profile);
                fut.into_actor(self)
                    .map(move |result: Result<Value, Error>, act, ctx| {
                        let reply = result.map(|profile| {
                            if let Some(user) = &mut act.user {
                                user.record.profile = profile;
                            }
                            Reply::Empty
                        });
                        act.respond(action, id, async move { reply }, ctx);
                    })
                    .spawn(ctx);
            }
            Command::UserFetch { id: wanted } => {
                let fut = users::fetch(services, world, wanted);
                self.respond(action, id, fut, ctx);
            }
            Command::RoomUrl { room } => {
                let fut = rooms::room_url(services, world, user.record.clone(), room);
                self.respond(action, id, fut, ctx);
            }
            Command::Recordings { room } => {
                let fut = rooms::recordings(services, world, user.record.clone(), room);
                self.respond(action, id, fut, ctx);
            }
            Command::CallUrl { call } => {
                let fut = chat::call_url(services, world, user.record.clone(), call);
                self.respond(action, id, fut, ctx);
            }
            Command::DirectCreate { users, hide } => {
                let fut = chat::direct_create(services, world, user.record.clone(), conn, users, hide);
                self.respond_with_pushes(action, id, fut, ctx);
            }
            Command::ChatSend { channel, content } => {
                let fut = chat::send(services, world, user.record.clone(), channel, content);
                self.respond_with_pushes(action, id, fut, ctx);
            }
            Command::Conversation(cmd) => {
                let fut = chat::conversations::run(services, world, user.record.clone(), conn, cmd);
                self.respond_with_pushes(action, id, fut, ctx);
            }
            Command::ChatFetch {
                channel,
                count,
                before_id,
            } => {
                let fut = chat::fetch(services, world, user.record.id.clone(), channel, count, before_id);
                self.respond(action, id, fut, ctx);
            }
        }
    }
}
