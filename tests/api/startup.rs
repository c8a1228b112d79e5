//! The binary's startup contract: health, invalid settings exit with status 2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

use crate::helpers::*;

#[actix_web::test]
async fn healthz_answers_200() {
    let app = spawn_app().await;
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
}

fn run_with_settings(text: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bbb-gateway"));
    cmd.arg("--config").arg(&path).arg("--bind").arg("127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_settings_exit_2_with_one_line_naming_file_and_key() {
    let cases = [
        ("[server]\nunknown_key = 1\n", "unknown_key"),
        ("[server]\nmax_frame_bytes = \"lots\"\n", "server.max_frame_bytes"),
        ("[[bbb.servers]]\nid = \"a\"\nurl = \"::nope::\"\nsecret = \"s\"\n", "bbb.servers[0].url"),
        (
            "[[bbb.servers]]\nid = \"a\"\nurl = \"http://a/\"\nsecret = \"s\"\n[[bbb.servers]]\nid = \"a\"\nurl = \"http://b/\"\nsecret = \"s\"\n",
            "bbb.servers[1].id",
        ),
        (
            "[[worlds]]\nid = \"w\"\n[[worlds.rooms]]\nid = \"r\"\ntrait_grants = { wizard = [] }\n",
            "worlds[0].rooms[0].trait_grants.wizard",
        ),
    ];
    for (text, key) in cases {
        let (status, stderr) = run_with_settings(text, &[]);
        assert_eq!(status, Some(2), "for {text}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {stderr}");
        assert!(
            lines[0].contains("bad.toml") && lines[0].contains(key),
            "{stderr}"
        );
    }
}

#[test]
fn invalid_environment_override_exits_2() {
    let (status, stderr) = run_with_settings("", &[("BBB_GATEWAY__SERVER__REQUESTS_PER_SECOND", "many")]);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("server.requests_per_second"), "{stderr}");
}

#[test]
fn shipped_settings_are_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.toml");
    let settings = bbb_gateway::config::load_with_env(&path, &[]).unwrap();
    let world = settings.world("sample").unwrap();
    assert!(world.rooms.len() >= 3);
    assert!(settings.simulator.enabled);
}

/// A running `bbb-gateway` child process, killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary with `args` in `dir` and waits until `/healthz` answers.
async fn start_binary(dir: &std::path::Path, args: &[&str], port: u16) -> Child {
    let child = Child(
        Command::new(env!("CARGO_BIN_EXE_bbb-gateway"))
            .args(args)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if awc::Client::new()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return child;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("bbb-gateway did not start");
}

#[actix_web::test]
async fn the_binary_serves_the_shipped_settings_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let settings = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.toml");
    let port = free_port();
    let _gateway = start_binary(dir.path(), &["--config", settings.to_str().unwrap()], port).await;
    let (status, body) = http_get(&format!("http://127.0.0.1:{port}/readyz")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"ready":true}"#));
    let (status, page) = http_get(&format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "the test page");

    let mut ws = Ws::connect(&format!("http://127.0.0.1:{port}/ws/world/sample/")).await;
    ws.authenticate(serde_json::json!({"client_id": "shipped"})).await;
    ws.set_name("Shipped Settings").await;
    let r = ws
        .request("bbb.room_url", serde_json::json!({"room": "main-stage"}))
        .await;
    assert_eq!(r[0], "success", "{r}");
    let (status, join) = http_get(r[2]["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(join.contains("Shipped Settings"), "{join}");
    assert!(
        dir.path().join("data/bbb-gateway.sqlite3").exists(),
        "database created with its directory"
    );
}

#[actix_web::test]
async fn simulate_only_serves_just_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let settings = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.toml");
    let port = free_port();
    let _sim = start_binary(
        dir.path(),
        &["--config", settings.to_str().unwrap(), "--simulate-only"],
        port,
    )
    .await;
    let (status, stats) = http_get(&format!("http://127.0.0.1:{port}/simulator/stats")).await;
    assert_eq!(status, 200, "{stats}");
    let (status, body) = http_get(&format!("http://127.0.0.1:{port}/simulator/s1/bigbluebutton/api")).await;
    assert_eq!(status, 200);
    assert!(body.contains("SUCCESS"));
    assert_eq!(
        http_get(&format!("http://127.0.0.1:{port}/readyz")).await.0,
        404,
        "no gateway routes"
    );
    assert!(
        !dir.path().join("data").exists(),
        "no database in simulator-only mode"
    );
}
