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
        self.fetch_url(server, call, server.url_for(call, query), body)
            .await
    }

    /// GET (or POST with an XML body) of `url`, metered as `call` of `server`.
    async fn fetch_url(
        &self,
        server: &Endpoint,
        call: &str,
        url: String,
        body: Option<String>,
    ) -> Result<Bytes, BbbError> {
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

    /// `getRecordings` for one meeting, in any state, page by page ([`RECORDINGS_PAGE`] per
    /// page, at most [`MAX_RECORDING_PAGES`] pages).
    pub async fn get_recordings(
        &self,
        server: &Endpoint,
        meeting_id: &str,
    ) -> Result<Vec<Recording>, BbbError> {
        let mut pages = RecordingPages::default();
        loop {
            let query = recordings_query(meeting_id, pages.offset());
            let bytes = self.fetch(server, "getRecordings", &query, None).await?;
            let (status, page) = xml::parse_recordings(&bytes)?;
            if !status.is_success() {
                return Err(BbbError::Failed {
                    key: status.message_key,
                    message: status.message,
                });
            }
            match pages.add(page) {
                NextPage::Fetch => {}
                NextPage::Done => return Ok(pages.into_recordings()),
                NextPage::Truncated => {
                    log::warn!(
                        "bbb: server={} getRecordings of {meeting_id}: stopped after {MAX_RECORDING_PAGES} pages",
                        server.id
                    );
                    return Ok(pages.into_recordings());
                }
            }
        }
    }

    /// The server's version from its index `GET {url}api` (no checksum): `bbbVersion`, else
    /// `apiVersion`; `None` when it names neither.
    pub async fn version(&self, server: &Endpoint) -> Result<Option<String>, BbbError> {
        let bytes = self
            .fetch_url(server, "version", format!("{}api", server.url), None)
            .await?;
        let (status, version) = xml::parse_version(&bytes)?;
        if !status.is_success() {
            return Err(BbbError::Failed {
                key: status.message_key,
                message: status.message,
            });
        }
        Ok(version)
    }
}

/// Recordings asked per `getRecordings` page (BBB 2.6+ allows 1 to 100).
pub const RECORDINGS_PAGE: usize = 100;

/// Pages asked per server at most (5,000 recordings of one meeting).
pub const MAX_RECORDING_PAGES: usize = 50;

/// The query of one `getRecordings` page.
pub fn recordings_query(meeting_id: &str, offset: usize) -> String {
    QueryBuilder::new()
        .text("meetingID", meeting_id)
        .text("state", "any")
        .text("offset", &offset.to_string())
        .text("limit", &RECORDINGS_PAGE.to_string())
        .finish()
}

/// What to do after a page of recordings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextPage {
    Fetch,
    Done,
    /// [`MAX_RECORDING_PAGES`] reached while pages were still full.
    Truncated,
}

/// Pages of `getRecordings` gathered so far: follows pages until one comes back short. A
/// server that ignores paging (before BBB 2.6) answers everything at once, with more than a
/// page or only recordings already seen: that ends the walk too.
#[derive(Debug, Default)]
pub struct RecordingPages {
    pages: usize,
    recordings: Vec<Recording>,
    seen: std::collections::HashSet<String>,
}

impl RecordingPages {
    /// The offset of the next page to ask for.
    pub fn offset(&self) -> usize {
        self.pages * RECORDINGS_PAGE
    }

    pub fn add(&mut self, page: Vec<Recording>) -> NextPage {
        self.pages += 1;
        let len = page.len();
        let mut new = 0;
        for recording in page {
            if self.seen.insert(recording.record_id.clone()) {
                new += 1;
                self.recordings.push(recording);
            }
        }
        if len != RECORDINGS_PAGE || new == 0 {
            NextPage::Done
        } else if self.pages >= MAX_RECORDING_PAGES {
            NextPage::Truncated
        } else {
            NextPage::Fetch
        }
    }

    pub fn into_recordings(self) -> Vec<Recording> {
        self.recordings
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

    fn recs(from: usize, n: usize) -> Vec<Recording> {
        (from..from + n)
            .map(|i| Recording {
                record_id: format!("r{i}"),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn recordings_query_asks_one_page_from_an_offset() {
        assert_eq!(
            recordings_query("m~1", 200),
            "meetingID=m~1&state=any&offset=200&limit=100"
        );
    }

    #[test]
    fn pages_are_followed_until_one_comes_back_short() {
        let mut pages = RecordingPages::default();
        assert_eq!(pages.offset(), 0);
        assert_eq!(pages.add(recs(0, 100)), NextPage::Fetch);
        assert_eq!(pages.offset(), 100);
        assert_eq!(pages.add(recs(100, 100)), NextPage::Fetch);
        assert_eq!(pages.add(recs(200, 50)), NextPage::Done);
        let all = pages.into_recordings();
        assert_eq!(all.len(), 250);
        assert_eq!(all[249].record_id, "r249");
    }

    #[test]
    fn an_exact_multiple_ends_with_an_empty_page() {
        let mut pages = RecordingPages::default();
        assert_eq!(pages.add(recs(0, 100)), NextPage::Fetch);
        assert_eq!(pages.add(Vec::new()), NextPage::Done);
        assert_eq!(pages.into_recordings().len(), 100);
    }

    #[test]
    fn at_most_fifty_pages_are_asked() {
        let mut pages = RecordingPages::default();
        for page in 0..MAX_RECORDING_PAGES - 1 {
            assert_eq!(pages.add(recs(page * 100, 100)), NextPage::Fetch);
        }
        assert_eq!(pages.add(recs(4900, 100)), NextPage::Truncated);
        assert_eq!(pages.into_recordings().len(), 5000);
    }

    #[test]
    fn a_server_that_ignores_paging_is_asked_once() {
        // Before 2.6 BBB answers every recording whatever offset and limit say.
        let mut pages = RecordingPages::default();
        assert_eq!(pages.add(recs(0, 150)), NextPage::Done);
        assert_eq!(pages.into_recordings().len(), 150);
        // Exactly a page's worth, twice the same: the repeat ends it, without duplicates.
        let mut pages = RecordingPages::default();
        assert_eq!(pages.add(recs(0, 100)), NextPage::Fetch);
        assert_eq!(pages.add(recs(0, 100)), NextPage::Done);
        assert_eq!(pages.into_recordings().len(), 100);
    }
}
