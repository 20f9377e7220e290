//! Contact import and relay over real TLS sockets: order, queueing while
//! offline, replay after the cursor exactly once, the watermark, and the
//! devices' answers.

use deskrec_server::testing as util;

use std::time::Duration;

use deskrec_protocol::{
    AgentMessage, ContactAck, ContactOutcome, ContactRelay, ServerMessage, UnrecoverableReason,
};
use serde_json::{Value, json};
use util::{Agent, TestServer};

const ANN: &str = "CORP\\ann";
/// 2030-11-25T09:00:00Z in µs: in the future, so the login sessions of
/// devices enrolled by the tests (open since their enrollment) cover it.
const NINE: i64 = 1_921_827_600_000_000;

/// A contact for `login` starting `minute` minutes after nine, 2 min long.
fn contact(id: &str, login: &str, minute: i64) -> Value {
    let at = |m: i64| deskrec_vault::utc::rfc3339(NINE + m * 60_000_000);
    json!({"contact_id": id, "windows_login": login, "start": at(minute), "end": at(minute + 2),
           "direction": "inbound", "queue": "billing"})
}

async fn import(s: &TestServer, contacts: Vec<Value>) -> Value {
    s.admin("POST", "/contacts", json!({ "contacts": contacts }))
        .await
}

/// The next message, which must be a relayed contact.
async fn next_contact(agent: &mut Agent) -> ContactRelay {
    match agent.recv().await {
        ServerMessage::Contact(c) => c,
        other => panic!("expected a contact, got {other:?}"),
    }
}

/// Every message that arrives within `wait`.
async fn drain(agent: &mut Agent, wait: Duration) -> Vec<ServerMessage> {
    let mut out = Vec::new();
    while let Some(m) = agent.try_recv(wait).await {
        out.push(m);
    }
    out
}

fn ids(msgs: &[ServerMessage]) -> Vec<(u64, String)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Contact(c) => Some((c.seq, c.contact_id.clone())),
            _ => None,
        })
        .collect()
}

/// A device that has said hello as Ann (so her contacts are routed to it),
/// connected; returns the agent, device id and credential.
async fn ann_pc(s: &TestServer) -> (Agent, String, String) {
    let d = s.enroll().await;
    let mut agent = s.rte(Some(&d.credential)).await.unwrap();
    agent.hello(&d.device_id, ANN).await;
    (agent, d.device_id, d.credential)
}

#[tokio::test]
async fn contacts_reach_a_connected_agent_at_once_in_order() {
    let s = TestServer::start().await;
    let (mut agent, _dev, _) = ann_pc(&s).await;
    let r = import(
        &s,
        vec![
            contact("c1", ANN, 0),
            contact("c2", "corp\\ANN", 5), // logins compare case-insensitively
            contact("c3", "CORP\\bob", 7), // not Ann: not for this PC
            contact("c4", ANN, 3),
        ],
    )
    .await;
    assert_eq!(r["created"], 4);
    assert_eq!(r["deliveries"], 3);
    let got: Vec<_> = [
        next_contact(&mut agent).await,
        next_contact(&mut agent).await,
        next_contact(&mut agent).await,
    ]
    .into_iter()
    .map(|c| (c.seq, c.contact_id, c.start, c.end))
    .collect();
    assert_eq!(
        got,
        [
            (1, "c1".into(), NINE, NINE + 120_000_000),
            (2, "c2".into(), NINE + 300_000_000, NINE + 420_000_000),
            (3, "c4".into(), NINE + 180_000_000, NINE + 300_000_000),
        ]
    );
    assert!(
        drain(&mut agent, Duration::from_millis(300))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn contacts_queue_while_offline_and_replay_after_the_cursor_exactly_once() {
    let s = TestServer::start().await;
    let (agent, dev, cred) = ann_pc(&s).await;
    drop(agent); // the PC goes off
    import(
        &s,
        (1..=5).map(|i| contact(&format!("c{i}"), ANN, i)).collect(),
    )
    .await;

    // Back with no cursor: everything, in order.
    let mut agent = s.rte(Some(&cred)).await.unwrap();
    agent.hello_at(&dev, ANN, None).await;
    let first = drain(&mut agent, Duration::from_millis(500)).await;
    assert_eq!(
        ids(&first),
        (1..=5).map(|i| (i, format!("c{i}"))).collect::<Vec<_>>()
    );
    // The agent stores 1..=3, then the network drops.
    agent
        .send(&AgentMessage::ContactAck(ContactAck { seq: 3 }))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(agent);
    import(&s, vec![contact("c6", ANN, 6), contact("c7", ANN, 7)]).await;

    // The server remembers the ack...
    let c2 = s.admin("GET", "/contacts/c2", Value::Null).await;
    assert_eq!(c2["deliveries"][0]["acknowledged"], true);
    let c4 = s.admin("GET", "/contacts/c4", Value::Null).await;
    assert_eq!(c4["deliveries"][0]["acknowledged"], false);
    // ...and replays exactly what follows the agent's cursor, once.
    let mut agent = s.rte(Some(&cred)).await.unwrap();
    agent.hello_at(&dev, ANN, Some(3)).await;
    let again = drain(&mut agent, Duration::from_millis(500)).await;
    assert_eq!(
        ids(&again),
        (4..=7).map(|i| (i, format!("c{i}"))).collect::<Vec<_>>()
    );
    // A new contact while connected comes once more, with the next seq.
    import(&s, vec![contact("c8", ANN, 8)]).await;
    let live = drain(&mut agent, Duration::from_millis(500)).await;
    assert_eq!(ids(&live), vec![(8, "c8".to_owned())]);
}

#[tokio::test]
async fn deliveries_survive_a_server_restart() {
    let s = TestServer::start().await;
    let (agent, dev, cred) = ann_pc(&s).await;
    drop(agent);
    import(&s, vec![contact("c1", ANN, 1), contact("c2", ANN, 2)]).await;
    let s = TestServer::start_in(s.stop().await).await;
    let mut agent = s.rte(Some(&cred)).await.unwrap();
    agent.hello_at(&dev, ANN, Some(1)).await;
    assert_eq!(
        ids(&drain(&mut agent, Duration::from_millis(500)).await),
        vec![(2, "c2".into())]
    );
}

#[tokio::test]
async fn import_is_idempotent_and_a_correction_is_relayed_again() {
    let s = TestServer::start().await;
    let (mut agent, _dev, _) = ann_pc(&s).await;
    let batch = vec![contact("c1", ANN, 0), contact("c2", ANN, 4)];
    import(&s, batch.clone()).await;
    let audit = s.audit_count().await;
    let again = import(&s, batch).await;
    assert_eq!(
        (
            &again["created"],
            &again["updated"],
            &again["unchanged"],
            &again["deliveries"]
        ),
        (&json!(0), &json!(0), &json!(2), &json!(0))
    );
    assert_eq!(
        s.audit_count().await,
        audit,
        "a no-op import writes no audit"
    );
    let mut corrected = contact("c1", ANN, 0);
    corrected["end"] = json!("2030-11-25T09:03:30Z");
    let r = import(&s, vec![corrected]).await;
    assert_eq!((&r["updated"], &r["deliveries"]), (&json!(1), &json!(1)));
    let msgs = drain(&mut agent, Duration::from_millis(500)).await;
    assert_eq!(
        ids(&msgs),
        vec![(1, "c1".into()), (2, "c2".into()), (3, "c1".into())]
    );
    let ServerMessage::Contact(last) = &msgs[2] else {
        unreachable!()
    };
    assert_eq!(last.end, NINE + 210_000_000);
}

#[tokio::test]
async fn invalid_imports_are_refused_whole() {
    let s = TestServer::start().await;
    let mut backwards = contact("c2", ANN, 0);
    backwards["end"] = backwards["start"].clone();
    let mut too_long = contact("c3", ANN, 0);
    too_long["end"] = json!("2030-11-27T09:00:00Z");
    for (bad, why) in [
        (vec![contact("c1", ANN, 0), backwards], "not after start"),
        (vec![contact("c1", ANN, 0), contact("c1", ANN, 3)], "twice"),
        (vec![contact("c1", "", 0)], "windows_login"),
        (vec![too_long], "24 hours"),
    ] {
        let body = json!({ "contacts": bad }).to_string();
        let (status, err) = s
            .request(
                "POST",
                "/api/v1/admin/contacts",
                Some(&s.admin_token),
                "application/json",
                &body,
            )
            .await;
        assert_eq!(status, 422, "{err}");
        assert!(err["message"].as_str().unwrap().contains(why), "{err}");
    }
    let (status, err) = s
        .request(
            "POST",
            "/api/v1/admin/contacts",
            Some(&s.admin_token),
            "application/json",
            r#"{"contacts":[{"contact_id":"x","windows_login":"a","start":"yesterday","end":"now"}]}"#,
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert!(err["message"].as_str().unwrap().contains("start"), "{err}");
    let all = s.admin("GET", "/contacts", Value::Null).await;
    assert_eq!(all, json!([]), "nothing of a refused import is kept");
}

#[tokio::test]
async fn the_watermark_follows_the_contacts_and_never_moves_back() {
    let s = TestServer::start().await;
    let (mut agent, _dev, _) = ann_pc(&s).await;
    let body = json!({"contacts": [contact("c1", ANN, 0)], "watermark": "2030-11-25T09:10:00Z"});
    s.admin("POST", "/contacts", body).await;
    let msgs = drain(&mut agent, Duration::from_millis(1500)).await;
    assert_eq!(ids(&msgs), vec![(1, "c1".into())]);
    assert_eq!(
        msgs.last(),
        Some(&ServerMessage::Watermark(deskrec_protocol::Watermark {
            before: NINE + 600_000_000
        })),
        "the watermark comes after the contacts it covers: {msgs:?}"
    );
    // An older watermark is ignored; a newer one alone reaches the agent.
    let r = s
        .admin(
            "POST",
            "/contacts",
            json!({"watermark": "2030-11-25T09:05:00Z"}),
        )
        .await;
    assert_eq!(r["watermark"], NINE + 600_000_000);
    s.admin(
        "POST",
        "/contacts",
        json!({"watermark": "2030-11-25T09:20:00Z"}),
    )
    .await;
    let msgs = drain(&mut agent, Duration::from_millis(1500)).await;
    assert_eq!(
        msgs,
        vec![ServerMessage::Watermark(deskrec_protocol::Watermark {
            before: NINE + 1_200_000_000
        })]
    );
    // A reconnecting agent gets the current watermark after its replay.
    drop(agent);
    let (mut other, _, _) = ann_pc(&s).await;
    let msgs = drain(&mut other, Duration::from_millis(500)).await;
    assert!(
        matches!(msgs.last(), Some(ServerMessage::Watermark(w)) if w.before == NINE + 1_200_000_000),
        "{msgs:?}"
    );
}

#[tokio::test]
async fn a_login_first_seen_on_a_pc_brings_its_pending_contacts() {
    let s = TestServer::start().await;
    let d = s.enroll().await;
    let mut agent = s.rte(Some(&d.credential)).await.unwrap();
    agent.hello(&d.device_id, "").await; // no one logged on yet
    drop(agent); // the PC goes offline
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A contact while it was offline (it may have recorded it), and one
    // from before it enrolled.
    let now = jiff::Timestamp::now();
    let at = |ms: i64| (now + jiff::SignedDuration::from_millis(ms)).to_string();
    let later =
        json!({"contact_id": "c-new", "windows_login": ANN, "start": at(-50), "end": at(0)});
    let before = json!({"contact_id": "c-old", "windows_login": ANN,
                        "start": "2020-01-01T09:00:00Z", "end": "2020-01-01T09:05:00Z"});
    let r = import(&s, vec![later, before]).await;
    assert_eq!(r["deliveries"], 0, "no PC has seen Ann yet");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut agent = s.rte(Some(&d.credential)).await.unwrap();
    agent.hello(&d.device_id, ANN).await;
    let msgs = drain(&mut agent, Duration::from_millis(500)).await;
    assert_eq!(
        ids(&msgs),
        vec![(1, "c-new".into())],
        "not from before enrollment"
    );
}

#[tokio::test]
async fn a_contact_is_unrecoverable_only_when_every_pc_says_so() {
    let s = TestServer::start().await;
    let (mut pc1, dev1, _) = ann_pc(&s).await;
    let (mut pc2, dev2, _) = ann_pc(&s).await;
    import(&s, vec![contact("c1", ANN, 0)]).await;
    let (c_on_1, c_on_2) = (next_contact(&mut pc1).await, next_contact(&mut pc2).await);
    let outcome = |c: &ContactRelay, detail: &str| {
        AgentMessage::ContactOutcome(ContactOutcome {
            seq: c.seq,
            contact_id: c.contact_id.clone(),
            reason: UnrecoverableReason::NotRecorded,
            detail: detail.into(),
        })
    };
    pc1.send(&outcome(&c_on_1, "PC was off")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = s.admin("GET", "/contacts/c1", Value::Null).await;
    assert_eq!(c["status"], "pending", "PC 2 may still have it: {c}");
    pc2.send(&outcome(&c_on_2, "another user was logged on"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = s.admin("GET", "/contacts/c1", Value::Null).await;
    assert_eq!(c["status"], "unrecoverable", "{c}");
    let reason = c["status_reason"].as_str().unwrap();
    for part in [dev1.as_str(), dev2.as_str(), "PC was off", "another user"] {
        assert!(reason.contains(part), "{reason}");
    }
    let filtered = s
        .admin("GET", "/contacts?status=unrecoverable", Value::Null)
        .await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    // Answers about contacts a PC never got are refused.
    let mut bogus = c_on_1.clone();
    bogus.seq = 99;
    pc1.send(&outcome(&bogus, "")).await;
    match pc1.recv().await {
        ServerMessage::Error(e) => assert_eq!(e.code, "unknown_contact"),
        other => panic!("{other:?}"),
    }
    pc1.send(&AgentMessage::ContactAck(ContactAck { seq: 50 }))
        .await;
    match pc1.recv().await {
        ServerMessage::Error(e) => assert_eq!(e.code, "bad_ack"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_contact_goes_only_to_the_pcs_its_login_was_on_during_it() {
    const BOB: &str = "CORP\\bob";
    let s = TestServer::start().await;
    let (mut pc_a, dev_a, _) = ann_pc(&s).await;
    let d = s.enroll().await;
    let mut pc_b = s.rte(Some(&d.credential)).await.unwrap();
    pc_b.hello(&d.device_id, BOB).await;
    let t1 = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t2 = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Ann moves from PC A to PC B, Bob from B to A.
    pc_a.hello(&dev_a, BOB).await;
    pc_b.hello(&d.device_id, ANN).await;
    // A contact from while she was on A, and one after she moved, both
    // imported now: each goes to the PC she was on then, and only there.
    let then = json!({"contact_id": "c-then", "windows_login": ANN,
                      "start": t1.to_string(), "end": t2.to_string()});
    let r = import(&s, vec![then, contact("c-later", ANN, 0)]).await;
    assert_eq!(r["deliveries"], 2, "{r}");
    let wait = Duration::from_millis(500);
    assert_eq!(
        ids(&drain(&mut pc_a, wait).await),
        vec![(1, "c-then".into())]
    );
    assert_eq!(
        ids(&drain(&mut pc_b, wait).await),
        vec![(1, "c-later".into())]
    );
}
