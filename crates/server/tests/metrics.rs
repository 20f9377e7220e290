//! Prometheus metrics over the real server.

#[allow(dead_code)] // each test binary uses part of the fixtures
mod util;

use std::time::Duration;

use serde_json::json;
use util::TestServer;

/// The value of the sample whose line starts with `series ` (name and
/// labels exactly as exported).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_count_agents_contacts_and_requests() {
    let s = TestServer::start().await;
    let (mut agent, dev) = s.agent().await;
    agent.hello(&dev, "CORP\\ann").await;
    let at = |m: u32| format!("2026-11-25T09:{m:02}:00Z");
    s.admin(
        "POST",
        "/contacts",
        json!({"contacts": [
            {"contact_id": "c1", "windows_login": "CORP\\ann", "start": at(0), "end": at(2)},
            {"contact_id": "c2", "windows_login": "CORP\\bob", "start": at(3), "end": at(4)},
        ]}),
    )
    .await;
    agent.recv().await; // c1 relayed
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = s
        .request("GET", "/api/v1/admin/metrics", None, "text/plain", "")
        .await;
    assert_eq!(status, 401);
    let r = s
        .send(
            hyper::Request::builder()
                .uri("/api/v1/admin/metrics")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {}", s.admin_token))
                .body(Default::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .starts_with("application/openmetrics-text")
    );
    let text = r.text();
    let expect = [
        ("deskrec_rte_connected_agents", 1.0),
        ("deskrec_contacts_imported_total", 2.0),
        ("deskrec_contacts_relayed_total", 1.0),
        ("deskrec_contacts{state=\"pending\"}", 2.0),
        ("deskrec_contacts{state=\"uploaded\"}", 0.0),
        ("deskrec_devices{state=\"active\"}", 1.0),
        (
            "deskrec_http_requests_total{method=\"POST\",route=\"/api/v1/admin/contacts\",status=\"2xx\"}",
            1.0,
        ),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert!(text.trim_end().ends_with("# EOF"));
}
