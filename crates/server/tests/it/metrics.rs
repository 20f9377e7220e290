//! Prometheus metrics over the real server.

use deskrec_server::testing as util;

use std::time::Duration;

use serde_json::json;
use util::TestServer;

#[tokio::test]
async fn metrics_count_agents_contacts_and_requests() {
    let s = TestServer::start().await;
    let (mut agent, dev) = s.agent().await;
    agent.hello(&dev, "CORP\\ann").await;
    // In the future: the device's login session, open since it enrolled,
    // covers it.
    let at = |m: u32| format!("2030-11-25T09:{m:02}:00Z");
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
    // Neither no token nor the admin token opens the metrics.
    for token in [None, Some(s.admin_token.as_str())] {
        let (status, _) = s
            .request("GET", "/api/v1/metrics", token, "text/plain", "")
            .await;
        assert_eq!(status, 401);
    }
    let text = s.metrics().await;
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
        assert_eq!(s.metric(series).await, Some(value), "{series} in\n{text}");
    }
    assert!(text.trim_end().ends_with("# EOF"));
}
