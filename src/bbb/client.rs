//! BBB API client over awc: signs each call with the server's checksum algorithm, bounds it by
//! `request_timeout_ms` from connect to last byte, reuses keep-alive connections per server,
//! and turns every kind of failure into a [`BbbError`]. https uses rustls with the public
//! roots plus `tls_ca_file`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use bytes::Bytes;

use crate::bbb::checksum::ChecksumAlgorithm;
use crate::bbb::query::{signed_url, QueryBuilder};
use crate::bbb::xml::{self, MeetingLoad, Recording, Status, MAX_XML_BYTES};
use crate::ids::ServerId;
use crate::metrics::Metrics;
use crate::secret::Secret;
pub use crate::tls::{read_pem_certs, tls_config};

/// Where and how to reach one BBB server.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: ServerId,
    /// Base URL ending in `/`.
    pub url: String,
    pub secret: Secret,
    pub checksum: ChecksumAlgorithm,
}

impl Endpoint {
    /// A signed URL for `call` with `query` (used for join URLs, which the browser opens).
    pub fn url_for(&self, call: &str, query: &str) -> String {
        signed_url(&self.url, call, query, self.checksum, self.secret.expose())
    }
}

/// Why a BBB call failed. Display text is safe for logs and the admin API (no secrets, no URLs
/// with checksums).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BbbError {
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("reading the body failed: {0}")]
    Body(String),
    #[error("unparsable response: {0}")]
    Xml(String),
    #[error(
        "returncode FAILED ({}: {})",
        .key.as_deref().unwrap_or("-"),
        .message.as_deref().unwrap_or("-")
    )]
    Failed {
        key: Option<String>,
        message: Option<String>,
    },
}

impl BbbError {
    fn outcome(&self) -> &'static str {
        match self {
            BbbError::Timeout => "timeout",
            BbbError::Connect(_) => "connect_error",
            BbbError::Status(_) => "http_error",
            BbbError::Body(_) => "body_error",
            BbbError::Xml(_) => "bad_xml",
            BbbError::Failed { .. } => "failed",
        }
    }

    /// BBB's "no such meeting" answer (not a server fault).
    pub fn is_not_found(&self) -> bool {
        matches!(self, BbbError::Failed { key: Some(k), .. } if k == "notFound" || k == "invalidMeetingIdentifier")
    }
}

impl From<xml::XmlError> for BbbError {
    fn from(e: xml::XmlError) -> Self {
        BbbError::Xml(e.to_string())
    }
}

/// The HTTP side of BBB calls. Lives on one actor's thread (awc clients are not `Send`).
#[derive(Clone)]
pub struct BbbClient {
    http: awc::Client,
    timeout: Duration,
    metrics: Metrics,
}

impl BbbClient {
    pub fn new(timeout: Duration, tls: rustls::ClientConfig, metrics: Metrics) -> Self {
        let connector = awc::Connector::new()
            .rustls_0_23(Arc::new(tls))
            .timeout(timeout)
            .conn_keep_alive(Duration::from_secs(30))
            .limit(256);
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .disable_redirects()
            .add_default_header((header::USER_AGENT, "bbb-gateway"))
            .finish();
        Self {
            http,
            timeout,
            metrics,
        }
    }

    /// One API call: GET, or POST with an XML body. Returns the body of a 200 answer.
    async fn fetch(
        &self,
        server: &Endpoint,
        call: &str,
        query: &str,
        body: Option<String>,
    ) -> Result<Bytes, BbbError> {
        let url = server.url_for(call, query);
        let started = Instant::now();
        let request = async {
            let mut response = match body {
                Some(body) => {
                    self.http
                        .post(url.as_str())
                        .insert_header((header::CONTENT_TYPE, "application/xml"))
                        .send_body(body)
                        .await
                }
                None => self.http.get(url.as_str()).send().await,
            }
            .map_err(|e| match e {
                awc::error::SendRequestError::Timeout => BbbError::Timeout,
                other => BbbError::Connect(other.to_string()),
            })?;
            if response.status() != awc::http::StatusCode::OK {
                return Err(BbbError::Status(response.status().as_u16()));
            }
            response
                .body()
                .limit(MAX_XML_BYTES)
                .await
                .map_err(|e| BbbError::Body(e.to_string()))
        };
        let result = match actix_web::rt::time::timeout(self.timeout, request).await {
            Ok(r) => r,
            Err(_) => Err(BbbError::Timeout),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.metrics
            .bbb_call(server.id.as_str(), call, outcome, started.elapsed());
        if let Err(e) = &result {
            crate::log_limit::warn(
                &format!("bbb-call-{}", server.id),
                &format!("bbb: server={} call={call} failed: {e}", server.id),
            );
        }
        result
    }

    /// A call whose answer must say SUCCESS.
    async fn call_status(
        &self,
        server: &Endpoint,
        call: &str,
        query: &str,
        body: Option<String>,
    ) -> Result<(Status, Bytes), BbbError> {
        let bytes = self.fetch(server, call, query, body).await?;
        let status = xml::parse_status(&bytes)?;
        if !status.is_success() {
            let e = BbbError::Failed {
                key: status.message_key.clone(),
                message: status.message.clone(),
            };
            if !e.is_not_found() {
                crate::log_limit::warn(
                    &format!("bbb-call-{}", server.id),
                    &format!("bbb: server={} call={call} failed: {e}", server.id),
                );
            }
            return Err(e);
        }
        Ok((status, bytes))
    }

    /// `create` (by POST when a presentation is given). `duplicateWarning` is success.
    pub async fn create(
        &self,
        server: &Endpoint,
        query: &str,
        presentation: Option<&str>,
    ) -> Result<(), BbbError> {
        let body = presentation.map(presentation_body);
        self.call_status(server, "create", query, body).await.map(|_| ())
    }

    pub async fn get_meetings(&self, server: &Endpoint) -> Result<Vec<MeetingLoad>, BbbError> {
        let bytes = self.fetch(server, "getMeetings", "", None).await?;
        let (status, meetings) = xml::parse_get_meetings(&bytes)?;
        if !status.is_success() {
            return Err(BbbError::Failed {
                key: status.message_key,
                message: status.message,
            });
        }
        Ok(meetings)
    }

    /// `end`; a meeting that does not exist counts as ended.
    pub async fn end(&self, server: &Endpoint, meeting_id: &str) -> Result<(), BbbError> {
        let query = QueryBuilder::new().text("meetingID", meeting_id).finish();
        match self.call_status(server, "end", &query, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `isMeetingRunning`.
    pub async fn is_meeting_running(&self, server: &Endpoint, meeting_id: &str) -> Result<bool, BbbError> {
        let query = QueryBuilder::new().text("meetingID", meeting_id).finish();
        let (_, bytes) = self.call_status(server, "isMeetingRunning", &query, None).await?;
        Ok(xml::parse_is_meeting_running(&bytes)?.1)
    }

    /// `getRecordings` for one meeting, in any state.
    pub async fn get_recordings(
        &self,
        server: &Endpoint,
        meeting_id: &str,
    ) -> Result<Vec<Recording>, BbbError> {
        let query = QueryBuilder::new()
            .text("meetingID", meeting_id)
            .text("state", "any")
            .finish();
        let bytes = self.fetch(server, "getRecordings", &query, None).await?;
        let (status, recordings) = xml::parse_recordings(&bytes)?;
        if !status.is_success() {
            return Err(BbbError::Failed {
                key: status.message_key,
                message: status.message,
            });
        }
        Ok(recordings)
    }
}

/// The POST body that preloads a presentation, XML-escaped.
pub fn presentation_body(url: &str) -> String {
    format!(
        "<modules><module name=\"presentation\"><document url=\"{}\"/></module></modules>",
        xml::escape(url)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn presentation_body_escapes_the_url() {
        assert_eq!(
            presentation_body("https://x.org/a.pdf?a=1&b=\"2\""),
            "<modules><module name=\"presentation\"><document url=\"https://x.org/a.pdf?a=1&amp;b=&quot;2&quot;\"/></module></modules>"
        );
    }

    #[test]
    fn join_urls_are_signed_for_their_server() {
        let e = Endpoint {
            id: ServerId::new("a"),
            url: "https://bbb.example.org/bigbluebutton/".into(),
            secret: Secret::new("639259d4-9dd8-4b25-bf01-95f9567eaf4b"),
            checksum: ChecksumAlgorithm::Sha1,
        };
        let q = "name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444";
        assert_eq!(
            e.url_for("create", q),
            format!("https://bbb.example.org/bigbluebutton/api/create?{q}&checksum=1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17")
        );
    }

    #[test]
    fn not_found_answers_are_recognised() {
        let e = BbbError::Failed {
            key: Some("notFound".into()),
            message: None,
        };
        assert!(e.is_not_found());
        assert!(!BbbError::Timeout.is_not_found());
    }

    #[test]
    fn tls_config_rejects_a_file_without_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "nothing here").unwrap();
        assert!(tls_config(path.to_str().unwrap()).is_err());
        assert!(tls_config("").is_ok());
    }
}
