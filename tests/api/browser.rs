//! The test page in a real browser: headless Chromium driven through chromedriver (WebDriver).
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run` installs them); without
//! them the test fails and says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, token};

/// How long one condition may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

#[actix_web::test]
async fn page_joins_a_room_and_a_private_call_in_two_browsers() {
    let app = spawn_app().await;
    let mut driver = ChromeDriver::start().await;
    let page = app.url("/");
    let shots = screenshot_dir();

    // Alice: signs in, is told in words that she needs a name, sets one, joins the stage.
    let alice = driver.browser(1200, 900).await;
    alice.goto(&page).await.unwrap();
    sign_in(&alice, "browser-alice").await;
    click(&alice, r#"[data-room="stage"] [data-action="join"]"#).await;
    let error = wait_text(&alice, "#error", "bbb.join.missing_profile").await;
    assert!(
        error.contains("You need to set a display name first"),
        "error shown in words: {error}"
    );
    set_name(&alice, "Alice Browser").await;
    click(&alice, r#"[data-room="stage"] [data-action="join"]"#).await;
    let joined = meeting_page(&alice, "VIEWER").await;
    assert_eq!(joined["name"], "Alice Browser");
    assert!(
        joined["text"].as_str().unwrap().contains("Main stage"),
        "{joined}"
    );

    // Bob, in a second browser, signs in; Alice finds him by name and starts a chat and a call.
    let bob = driver.browser(1200, 900).await;
    bob.goto(&page).await.unwrap();
    sign_in(&bob, "browser-bob").await;
    set_name(&bob, "Bob Browser").await;
    user_id(&bob).await;
    fill(&alice, "#dm-user", "bob br").await;
    wait_text(&alice, "#dm-results", "Bob Browser").await;
    click(&alice, "#dm-results [data-user]").await;
    wait_text(&alice, "#channel-title", "Bob Browser").await;
    wait_text(&alice, "#presence", "online: Bob Browser").await;
    // The new conversation is hidden from Bob until something is said in it.
    assert!(
        !find(&bob, "#channels")
            .await
            .text()
            .await
            .unwrap()
            .contains("Alice"),
        "a new conversation stays hidden from the invitee"
    );
    click(&alice, "#start-call").await;

    // Bob is told live, without a reload: the conversation appears with a badge and the call
    // invitation with a Join button (chat.channels, chat.unread_pointers, chat.notification).
    wait_text(&bob, "#incoming", "Alice Browser invited you to a video call").await;
    wait_text(&bob, "#channels", "Alice Browser").await;
    wait_text(&bob, "#channels .unread", "1").await;
    click(&bob, "#incoming [data-call]").await;
    let bob_joined = meeting_page(&bob, "MODERATOR").await;
    assert_eq!(bob_joined["name"], "Bob Browser");
    // Opening the conversation shows the call with its Join button and clears the badge.
    click(&bob, "#channels [data-open]").await;
    wait_text(&bob, "#chat-events", "Alice Browser invited you to a video call").await;
    find(&bob, "#chat-events [data-call]").await;
    poll("Bob's badge to go away", || async {
        bob.find(Locator::Css("#channels .unread"))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    click(&alice, "#chat-events [data-call]").await;
    let alice_joined = meeting_page(&alice, "MODERATOR").await;
    assert_eq!(alice_joined["name"], "Alice Browser");
    assert_eq!(
        alice_joined["meeting"], bob_joined["meeting"],
        "both are in the same call"
    );

    // Screenshots of the whole page: desktop, and phone-sized, which must not scroll sideways.
    full_page_screenshot(&alice, 1200, &shots.join("desktop.png")).await;
    full_page_screenshot(&bob, 390, &shots.join("narrow.png")).await;
    for (who, c) in [("desktop", &alice), ("narrow", &bob)] {
        let overflow = c
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(overflow, json!(0), "the {who} page scrolls sideways");
    }

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[actix_web::test]
async fn page_signs_in_with_a_token_lists_recordings_and_names_errors() {
    let app = spawn_app().await;
    let mut driver = ChromeDriver::start().await;
    let c = driver.browser(1200, 900).await;
    c.goto(&app.url("/")).await.unwrap();

    // An unknown world is reported in words, with its code.
    fill(&c, "#world", "nowhere").await;
    click(&c, "#connect").await;
    wait_text(
        &c,
        "#error",
        "There is no world with this id (world.unknown_world)",
    )
    .await;

    // A moderator token: the stage card offers recordings; after a recorded meeting ends, the
    // table lists it with its playback links.
    fill(&c, "#world", "sample").await;
    fill(&c, "#token", &token("browser-mod", &["moderator"])).await;
    click(&c, "#connect").await;
    wait_attr(&c, "#conn-state", "data-state", "authenticated").await;
    wait_text(&c, r#"[data-room="stage"]"#, "you moderate").await;
    set_name(&c, "Mona Browser").await;
    click(&c, r#"[data-room="stage"] [data-action="join"]"#).await;
    let joined = meeting_page(&c, "MODERATOR").await;
    app.sim_end("default", joined["meeting"].as_str().unwrap()).await;
    click(&c, r#"[data-room="stage"] [data-action="recordings"]"#).await;
    let table = wait_text(&c, r#"[data-room="stage"] .recordings table"#, "published").await;
    assert!(table.contains("Video"), "{table}");
    full_page_screenshot(&c, 1200, &screenshot_dir().join("recordings.png")).await;
    c.close().await.unwrap();
}

// ---- page steps ------------------------------------------------------------------------

async fn sign_in(c: &Client, client_id: &str) {
    fill(c, "#world", "sample").await;
    fill(c, "#client-id", client_id).await;
    click(c, "#connect").await;
    wait_attr(c, "#conn-state", "data-state", "authenticated").await;
}

async fn set_name(c: &Client, name: &str) {
    fill(c, "#display-name", name).await;
    click(c, "#save-name").await;
    wait_text(c, "#status", name).await;
}

/// Waits until the meeting iframe shows the simulator's join page with `role`, and returns what
/// it says (`name`, `meeting`, `text`). Leaves the browser in the top-level page.
async fn meeting_page(c: &Client, role: &str) -> Value {
    let frame = find(c, "#meeting-frame").await;
    frame.enter_frame().await.unwrap();
    let found = poll(
        &format!("#sim-join with role {role} in the meeting frame"),
        || async {
            let main = c.find(Locator::Css("#sim-join")).await.ok()?;
            (main.attr("data-role").await.ok()?? == role).then_some(main)
        },
    )
    .await;
    let page = json!({
        "name": found.attr("data-full-name").await.unwrap(),
        "meeting": found.attr("data-meeting-id").await.unwrap(),
        "text": found.text().await.unwrap(),
    });
    c.enter_parent_frame().await.unwrap();
    page
}

// ---- WebDriver helpers -----------------------------------------------------------------

async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(WAIT)
        .every(POLL)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css} within {WAIT:?}: {e}"))
}

/// Clicks `css` once it is shown and enabled; retries while the page re-renders it.
async fn click(c: &Client, css: &str) {
    poll(&format!("{css} to be clickable"), || async {
        let el = c.find(Locator::Css(css)).await.ok()?;
        if !(el.is_displayed().await.ok()? && el.is_enabled().await.ok()?) {
            return None;
        }
        el.click().await.ok()
    })
    .await;
}

async fn fill(c: &Client, css: &str, text: &str) {
    let el = find(c, css).await;
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// Waits until the text of `css` contains `needle`; returns the whole text.
async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    poll(&format!("{css} to show {needle:?}"), || async {
        let text = c.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
        text.contains(needle).then_some(text)
    })
    .await
}

/// Waits until `#user-id` shows a user id (a UUID) and returns it.
async fn user_id(c: &Client) -> String {
    poll("#user-id to show the user's id", || async {
        let text = c.find(Locator::Css("#user-id")).await.ok()?.text().await.ok()?;
        let text = text.trim().to_string();
        (text.len() == 36 && text.matches('-').count() == 4).then_some(text)
    })
    .await
}

async fn wait_attr(c: &Client, css: &str, attr: &str, value: &str) {
    poll(&format!("{css}[{attr}={value:?}]"), || async {
        let found = c.find(Locator::Css(css)).await.ok()?.attr(attr).await.ok()??;
        (found == value).then_some(())
    })
    .await;
}

/// Polls `check` every 50 ms until it gives a value; fails after 10 s.
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_web::rt::time::sleep(POLL).await;
    }
}

/// Resizes the window to `width` and the page's full height, then saves a PNG of it.
async fn full_page_screenshot(c: &Client, width: u32, path: &Path) {
    c.set_window_size(width, 900).await.unwrap();
    let size = c
        .execute(
            "window.scrollTo(0, 0); return [document.documentElement.scrollHeight, \
             window.outerHeight - window.innerHeight];",
            vec![],
        )
        .await
        .unwrap();
    let height = size[0].as_u64().unwrap() + size[1].as_u64().unwrap();
    c.set_window_size(width, height.clamp(600, 4000) as u32)
        .await
        .unwrap();
    std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-test");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- chromedriver ----------------------------------------------------------------------

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process on a free port. Dropping it (also when the test fails) stops
/// chromedriver and the browsers it started, and removes their profiles.
struct ChromeDriver {
    child: Child,
    url: String,
    profiles: Vec<tempfile::TempDir>,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing (Debian package {package}): the browser test needs the \
                 packages chromium and chromium-driver; install them with \
                 `apt-get install -y chromium chromium-driver` (.ci/run does this)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that drop stops chromedriver and its browsers together.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} does not start: {e}"));
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles: Vec::new(),
        };
        let status = format!("{}/status", driver.url);
        poll(&format!("chromedriver to answer {status}"), || async {
            let res = awc::Client::new()
                .get(&status)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .ok()?;
            res.status().is_success().then_some(())
        })
        .await;
        driver
    }

    /// A new browser (its own WebDriver session and profile) with a `width`×`height` window.
    async fn browser(&mut self, width: u32, height: u32) -> Client {
        let profile = tempfile::tempdir().unwrap();
        let args = json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ]);
        self.profiles.push(profile);
        let Value::Object(caps) = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }) else {
            unreachable!("a JSON object literal")
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver cannot start {CHROMIUM}: {e}"))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        signal("-KILL");
        let _ = self.child.wait();
    }
}
