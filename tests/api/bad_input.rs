//! Every kind of bad input gets its 4xx, a JSON error, and stores nothing.

use serde_json::{Value, json};

use crate::common::{Db, Server, TestDb, client, executions_of};
use crate::{both_backends, count_rows};

async fn expect_error(resp: reqwest::Response, status: u16, code: &str, field: Option<&str>) {
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    match field {
        Some(f) => assert_eq!(body["error"]["field"], f, "{body}"),
        None => assert!(body["error"].get("field").is_none(), "{body}"),
    }
}

async fn bad_jobs_are_rejected_and_nothing_is_stored(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &[]);
    let c = client();
    let post_json = |body: Value| c.post(server.url("/jobs")).json(&body).send();
    let ok_api = "http://127.0.0.1:9/x";

    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"api": ok_api}), "missing_field", "schedule"),
        (json!({"schedule": "* * * * * *"}), "missing_field", "api"),
        (
            json!({"schedule": "61 * * * * *", "api": ok_api}),
            "invalid_schedule",
            "schedule",
        ),
        (
            json!({"schedule": "* * *", "api": ok_api}),
            "invalid_schedule",
            "schedule",
        ),
        (
            json!({"schedule": "* * * * * MONDAY", "api": ok_api}),
            "invalid_schedule",
            "schedule",
        ),
        (
            json!({"schedule": 7, "api": ok_api}),
            "invalid_type_of_field",
            "schedule",
        ),
        (
            json!({"schedule": "* * * * * *", "api": "not a url"}),
            "invalid_api",
            "api",
        ),
        (
            json!({"schedule": "* * * * * *", "api": "/relative"}),
            "invalid_api",
            "api",
        ),
        (
            json!({"schedule": "* * * * * *", "api": "ftp://example.com/x"}),
            "invalid_api",
            "api",
        ),
        (
            json!({"schedule": "* * * * * *", "api": ok_api, "type": "EXACTLY_ONCE"}),
            "invalid_type",
            "type",
        ),
        (
            json!({"schedule": "* * * * * *", "api": ok_api, "type": 1}),
            "invalid_type_of_field",
            "type",
        ),
        (
            json!({"schedule": "* * * * * *", "api": ok_api, "misfirePolicy": "twice"}),
            "invalid_misfire_policy",
            "misfirePolicy",
        ),
        (
            json!({"schedule": "* * * * * *", "api": ok_api, "retry": {"maxAttempts": 0}}),
            "invalid_retry",
            "retry.maxAttempts",
        ),
        (
            json!({"schedule": "* * * * * *", "api": ok_api, "retry": 3}),
            "invalid_retry",
            "retry",
        ),
        (
            json!({"schedule": "* * * * * *", "api": ok_api, "color": "red"}),
            "unknown_field",
            "color",
        ),
    ];
    for (body, code, field) in cases {
        let resp = post_json(body.clone()).await.unwrap();
        expect_error(resp, 400, code, Some(field)).await;
    }
    // The invalid cron message says what is wrong.
    let resp = post_json(json!({"schedule": "* * *", "api": ok_api}))
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("got 3"),
        "{body}"
    );

    let raw = |ct: Option<&str>, body: Vec<u8>| {
        let mut r = c.post(server.url("/jobs")).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    expect_error(
        raw(Some("application/json"), b"{\"schedule\": ".to_vec())
            .await
            .unwrap(),
        400,
        "malformed_json",
        None,
    )
    .await;
    expect_error(
        raw(Some("application/json"), b"[1, 2]".to_vec())
            .await
            .unwrap(),
        400,
        "invalid_body",
        None,
    )
    .await;
    expect_error(
        raw(Some("application/json"), Vec::new()).await.unwrap(),
        400,
        "malformed_json",
        None,
    )
    .await;
    expect_error(
        raw(Some("text/plain"), b"{}".to_vec()).await.unwrap(),
        415,
        "unsupported_media_type",
        None,
    )
    .await;
    expect_error(
        raw(None, b"{}".to_vec()).await.unwrap(),
        415,
        "unsupported_media_type",
        None,
    )
    .await;
    let mut big =
        br#"{"schedule": "* * * * * *", "api": "http://127.0.0.1:9/x", "pad": ""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend(br#""}"#);
    expect_error(
        raw(Some("application/json"), big).await.unwrap(),
        413,
        "payload_too_large",
        None,
    )
    .await;

    // Bad job ids and unknown jobs.
    let get = |path: String| c.get(server.url(&path)).send();
    expect_error(
        get("/jobs/not-a-uuid/executions".into()).await.unwrap(),
        400,
        "invalid_id",
        Some("jobId"),
    )
    .await;
    expect_error(
        get(format!("/jobs/{}/executions", uuid::Uuid::now_v7()))
            .await
            .unwrap(),
        404,
        "not_found",
        None,
    )
    .await;
    expect_error(
        get("/nowhere".into()).await.unwrap(),
        404,
        "not_found",
        None,
    )
    .await;
    expect_error(
        c.delete(server.url("/health")).send().await.unwrap(),
        405,
        "method_not_allowed",
        None,
    )
    .await;

    // The server is still up, and nothing was stored.
    assert_eq!(
        client()
            .get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(count_rows(&db.url, "jobs").await, 0);
    assert_eq!(count_rows(&db.url, "executions").await, 0);
}

async fn a_valid_job_is_created_with_its_location(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &[]);
    let resp = client()
        .post(server.url("/jobs"))
        .json(&json!({"schedule": "31 10-15 1 * * MON-FRI", "api": "https://localhost:4444/foo", "type": "ATMOST_ONCE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let id = body["jobId"].as_str().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "only jobId: {body}");
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(location, format!("/jobs/{id}"));
    assert_eq!(count_rows(&db.url, "jobs").await, 1);
    let list = executions_of(&server, id).await;
    assert!(list.is_empty(), "{list:?}");
}

both_backends!(
    bad_jobs_are_rejected_and_nothing_is_stored,
    a_valid_job_is_created_with_its_location
);
