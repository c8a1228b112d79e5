//! Smoke-size runs of every load-generator scenario against the real app (correctness only:
//! timing targets live in the README's benchmarks, never in tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use serde_json::Value;

use crate::helpers::*;

/// The app with the settings `loadgen settings` generates (3 warm rooms, 12 spread rooms,
/// 3 simulated servers on the app's own simulator), on the test's database.
async fn bench_app() -> TestApp {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "settings",
            "--rooms",
            "3",
            "--meetings",
            "12",
            "--servers",
            "3",
            "--sim-url",
            "http://127.0.0.1:{PORT}",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    spawn_app_with(move |base| {
        let database = base
            .lines()
            .find(|l| l.starts_with("database = "))
            .unwrap()
            .to_string();
        generated
            .replace("database = \"data/bench.sqlite3\"", &database)
            .replace("bind = \"127.0.0.1:8375\"", "bind = \"127.0.0.1:0\"")
    })
    .await
}

/// Runs the loadgen binary off the event loop and returns its final JSON line.
async fn loadgen(app: &TestApp, args: &[&str]) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args(args).args(["--url", &app.url(""), "--threads", "1"]);
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "loadgen failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("scenario"), "human summary first: {stdout}");
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn assert_clean(r: &Value, connections: u64) {
    assert_eq!(r["connections_ok"], connections, "{r}");
    assert_eq!(r["connections_failed"], 0, "{r}");
    assert!(r["errors"].as_object().unwrap().is_empty(), "{r}");
    assert_eq!(r["login_ms"]["count"], connections, "{r}");
}

#[actix_web::test]
async fn storm_scenario_joins_everyone_with_one_create() {
    let app = bench_app().await;
    let r = loadgen(&app, &["storm", "--connections", "20"]).await;
    assert_clean(&r, 20);
    assert_eq!(r["requests_ok"], 20);
    assert_eq!(r["meetings"], 1);
    assert_eq!(
        r["creates_per_meeting_max"], 1,
        "one create for the storm, with the shipped defaults: {r}"
    );
    for key in ["p50", "p90", "p99", "max"] {
        assert!(r["latency_ms"][key].as_f64().unwrap() > 0.0, "{r}");
    }
}

#[actix_web::test]
async fn warm_scenario_requests_urls_over_all_rooms() {
    let app = bench_app().await;
    let r = loadgen(
        &app,
        &["warm", "--connections", "4", "--rooms", "3", "--duration", "0.5"],
    )
    .await;
    assert_clean(&r, 4);
    assert!(r["requests_ok"].as_u64().unwrap() >= 4, "{r}");
    assert_eq!(r["requests_ok"], r["requests"]);
    assert_eq!(r["meetings"], 3);
    assert!(r["throughput_rps"].as_f64().unwrap() > 0.0);
}

#[actix_web::test]
async fn idle_scenario_holds_sockets_and_reads_memory() {
    let app = bench_app().await;
    let pid = std::process::id().to_string();
    let r = loadgen(
        &app,
        &["idle", "--connections", "20", "--duration", "0.5", "--pid", &pid],
    )
    .await;
    assert_clean(&r, 20);
    assert!(r["gateway_rss_mib"]["peak"].as_f64().unwrap() > 0.0, "{r}");
}

#[actix_web::test]
async fn spread_scenario_balances_rooms_over_servers() {
    let app = bench_app().await;
    let r = loadgen(&app, &["spread", "--connections", "4", "--meetings", "12"]).await;
    assert_clean(&r, 4);
    assert_eq!(r["requests_ok"], 12);
    let per_server = r["meetings_per_server"].as_object().unwrap();
    assert_eq!(per_server.len(), 3, "{r}");
    assert_eq!(per_server.values().map(|v| v.as_i64().unwrap()).sum::<i64>(), 12);
    assert!(r["meetings_per_server_spread"].as_i64().unwrap() <= 2, "{r}");
}

#[actix_web::test]
async fn login_scenario_authenticates_everyone_at_once_with_tokens() {
    let app = bench_app().await;
    let r = loadgen(
        &app,
        &[
            "login",
            "--connections",
            "20",
            "--token-secret",
            "bench-jwt-secret",
        ],
    )
    .await;
    assert_clean(&r, 20);
}
