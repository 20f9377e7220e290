//! The OpenAPI document (`crates/server/src/api/openapi.json`) against the
//! server itself, so the two cannot drift apart:
//!
//! - every path the router matches is in the document, and every path in the
//!   document is matched by the router;
//! - on each of those paths, exactly the documented methods are routed (the
//!   rest answer 405), probed over the real TLS server;
//! - the admin operations are exactly `api::admin::endpoints()`;
//! - what the document says about authentication is what the server does;
//! - the document is well-formed OpenAPI 3.1 as far as this crate can tell
//!   without a validator (references resolve, path parameters declared, ids
//!   unique), and is served at `GET /api/v1/openapi.json` without auth.

use deskrec_server::testing as util;
use std::collections::BTreeSet;

use deskrec_server::api::{self, admin, openapi};
use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::Value;
use util::{Reply, TestServer, concrete, router_paths};

/// The methods probed on every path. TRACE and CONNECT are never routed.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The keys of an OpenAPI path item that are operations.
const OPERATION_KEYS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(openapi::DOCUMENT).expect("openapi.json is valid JSON")
}

/// Every operation in the document: (METHOD, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        for (key, op) in item.as_object().expect("a path item is an object") {
            if OPERATION_KEYS.contains(&key.as_str()) {
                out.push((key.to_ascii_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

/// Whether `doc` describes `method` on `path`.
fn documents(doc: &Value, method: &str, path: &str) -> bool {
    doc["paths"][path]
        .get(method.to_ascii_lowercase())
        .is_some()
}

/// One request with an empty body, optionally with a bearer token.
async fn probe(s: &TestServer, method: &str, path: &str, token: Option<&str>) -> Reply {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(concrete(path, "probe"))
        .header("host", "localhost");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    s.send(req.body(Full::new(Bytes::new())).unwrap()).await
}

/// Whether an answer came from a route for the request's method: not 405,
/// and not the router's fallback for unknown paths.
fn routed(r: &Reply) -> bool {
    let fallback = r.status == 404
        && serde_json::from_slice::<Value>(&r.body)
            .is_ok_and(|v| v["message"] == "no such endpoint");
    r.status != 405 && !fallback
}

#[test]
fn document_is_openapi_3_1_and_consistent() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1."), "openapi is {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Every $ref resolves inside the document.
    fn refs<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "$ref {r} does not resolve");
    }

    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no operationId"));
        assert!(ids.insert(id.to_owned()), "{what}: operationId {id} twice");
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}"));
        assert!(!responses.is_empty(), "{what}: no responses");
        for status in responses.keys() {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                "{what}: response key {status}"
            );
        }
        for requirement in op["security"].as_array().into_iter().flatten() {
            for scheme in requirement
                .as_object()
                .expect("a requirement object")
                .keys()
            {
                assert!(
                    schemes.contains_key(scheme),
                    "{what}: unknown scheme {scheme}"
                );
            }
        }
        // The placeholders of the path are exactly its path parameters.
        let placeholders: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let mut declared = BTreeSet::new();
        let item_params = doc["paths"][&path]["parameters"].as_array();
        let op_params = op["parameters"].as_array();
        for p in item_params.into_iter().chain(op_params).flatten() {
            let p = match p["$ref"].as_str() {
                Some(r) => doc.pointer(&r[1..]).unwrap(),
                None => p,
            };
            if p["in"] == "path" {
                assert_eq!(p["required"], true, "{what}: path parameter not required");
                declared.insert(p["name"].as_str().unwrap());
            }
        }
        assert_eq!(placeholders, declared, "{what}: path parameters");
    }
}

/// The admin operations are exactly the admin route table, each behind the
/// admin token with its 401 documented.
#[test]
fn admin_operations_are_the_admin_route_table() {
    let doc = document();
    let table: BTreeSet<(String, String)> = admin::endpoints()
        .into_iter()
        .map(|e| (e.method.to_string(), format!("/api/v1/admin{}", e.path)))
        .collect();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/api/v1/admin/"))
        .map(|(method, path, _)| (method, path))
        .collect();
    assert_eq!(
        table.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "admin routes missing from openapi.json"
    );
    assert_eq!(
        documented.difference(&table).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "openapi.json describes admin routes that do not exist"
    );
    for (method, path, op) in operations(&doc) {
        if path.starts_with("/api/v1/admin/") {
            assert_eq!(
                op["security"],
                serde_json::json!([{"adminToken": []}]),
                "{method} {path}"
            );
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {path}: no 401"
            );
        }
    }
}

/// Every path the router matches is documented, every documented path is
/// routed, and on each path exactly the documented methods are (HEAD comes
/// with GET in axum, so it is expected wherever GET is documented).
#[tokio::test]
async fn document_describes_exactly_the_routes() {
    let s = TestServer::start().await;
    let doc = document();

    let routed_paths = router_paths(&api::router(s.state.clone()));
    let documented_paths: BTreeSet<String> =
        doc["paths"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        routed_paths
            .difference(&documented_paths)
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes missing from openapi.json"
    );
    assert_eq!(
        documented_paths
            .difference(&routed_paths)
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "openapi.json describes paths the server does not route"
    );

    let mut wrong = Vec::new();
    for path in &documented_paths {
        // Admin routes sit behind the token: without it everything is 401.
        let token = path
            .starts_with("/api/v1/admin/")
            .then_some(s.admin_token.as_str());
        for method in METHODS {
            let expected =
                documents(&doc, method, path) || (method == "HEAD" && documents(&doc, "GET", path));
            let r = probe(&s, method, path, token).await;
            if routed(&r) != expected {
                wrong.push(format!(
                    "{method} {path}: documented {expected}, answered {} {}",
                    r.status,
                    r.text()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "router and openapi.json disagree:\n{}",
        wrong.join("\n")
    );
    s.stop().await;
}

/// An operation that requires credentials refuses a request without them
/// with a documented answer (401, or the pages' 303 to `/login`); one
/// documented without security does not answer 401.
#[tokio::test]
async fn documented_security_is_enforced() {
    let s = TestServer::start().await;
    let doc = document();
    let mut wrong = Vec::new();
    for (method, path, op) in operations(&doc) {
        let requirements = op["security"].as_array().cloned().unwrap_or_default();
        // `{}` among the requirements makes credentials optional.
        let required = !requirements.is_empty()
            && requirements
                .iter()
                .all(|r| r.as_object().is_some_and(|r| !r.is_empty()));
        let r = probe(&s, &method, &path, None).await;
        let documented = op["responses"].get(r.status.to_string()).is_some();
        let ok = if required {
            matches!(r.status, 401 | 303) && documented
        } else {
            r.status != 401
        };
        if !ok {
            wrong.push(format!(
                "{method} {path}: credentials required: {required}, answered {} {}",
                r.status,
                r.text()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    s.stop().await;
}

#[tokio::test]
async fn document_is_served_without_authentication() {
    let s = TestServer::start().await;
    let r = probe(&s, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.body, openapi::DOCUMENT.as_bytes());
    assert!(r.json()["openapi"].as_str().unwrap().starts_with("3.1."));
    s.stop().await;
}

/// What schemathesis (`cargo xtask openapi`) found the server doing
/// against the document, each pinned here: a whole number written `5.0`
/// is an integer, a `limit` outside its stated range is refused (not
/// silently cut), a CSV import must have a CSV header, a bad query string
/// or body is answered in JSON, and a stated maximum is enforced.
#[tokio::test]
async fn the_server_holds_to_the_documents_types_and_ranges() {
    const JSON: &str = "application/json";
    let s = TestServer::start().await;
    // (method, path, content type, body, status, why)
    let cases = [
        (
            "POST",
            "/api/v1/admin/enrollment-tokens",
            JSON,
            r#"{"ttl_seconds": 3600.0}"#,
            201,
            "3600.0 is an integer",
        ),
        (
            "POST",
            "/api/v1/admin/fleet-tokens",
            JSON,
            r#"{"name": "Leeds", "max_uses": 2.0}"#,
            201,
            "2.0 is an integer",
        ),
        (
            "GET",
            "/api/v1/admin/audit?limit=1001",
            JSON,
            "",
            400,
            "limit above its maximum",
        ),
        (
            "GET",
            "/api/v1/admin/contacts?limit=0",
            JSON,
            "",
            400,
            "limit below its minimum",
        ),
        (
            "GET",
            "/api/v1/admin/pauses?limit=5000",
            JSON,
            "",
            400,
            "limit above its maximum",
        ),
        (
            "GET",
            "/api/v1/admin/pauses?unknown=1",
            JSON,
            "",
            400,
            "an unknown parameter",
        ),
        (
            "POST",
            "/api/v1/admin/enrollment-tokens",
            JSON,
            "{",
            400,
            "not JSON",
        ),
        (
            "POST",
            "/api/v1/admin/enrollment-tokens",
            JSON,
            "\t",
            400,
            "white space is not JSON",
        ),
        (
            "POST",
            "/api/v1/admin/users/import",
            "text/csv",
            "{}",
            422,
            "a JSON body is not an empty CSV import",
        ),
        (
            "PATCH",
            "/api/v1/admin/settings",
            JSON,
            r#"{"upload": {"max_recording_bytes": 0, "max_parallel": 65, "max_bytes_per_second": null}}"#,
            422,
            "max_parallel above its maximum",
        ),
    ];
    for (method, path, content_type, body, status, why) in cases {
        let (got, answer) = s
            .request(method, path, Some(&s.admin_token), content_type, body)
            .await;
        assert_eq!(got, status, "{why}: {method} {path} {body}: {answer}");
        if status >= 400 {
            assert!(
                answer["code"].is_string(),
                "{why}: the error is JSON: {answer}"
            );
        }
    }
}
