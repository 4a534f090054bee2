//! The job-management endpoints: list, read, change, pause, resume, trigger, delete, the
//! executions pages and details, the cron preview and the bearer token.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{
    Behaviour, Db, Server, Target, TestDb, client, create_job, eventually, fast_env,
};

both_backends!(
    every_field_round_trips_and_lists_page_by_page,
    pause_stops_fires_and_resume_follows_the_misfire_policy,
    patch_moves_next_run_at_at_once_and_changes_the_call,
    nothing_fires_after_delete_returns,
    trigger_calls_once_and_is_recorded_as_manual,
    executions_page_back_with_a_cursor,
    cron_next_previews_like_the_cli,
    schedules_are_described_in_plain_words,
    a_stored_schedule_this_version_refuses_still_reads,
    api_token_guards_every_endpoint_but_health,
    forbid_skips_a_fire_while_the_previous_call_runs,
    the_target_policy_blocks_loopback_unless_allowed,
    history_is_pruned_to_the_newest_k,
    openapi_document_and_docs_are_served_offline,
    a_job_timeout_cuts_a_slow_call,
    max_call_timeout_caps_every_timeout,
    a_spread_job_is_due_its_offset_after_each_instant,
);

async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = client().request(method, server.url(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, v, headers)
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let (s, v, _) = send(server, reqwest::Method::GET, path, None).await;
    (s, v)
}

async fn post(server: &Server, path: &str) -> (u16, Value) {
    let (s, v, _) = send(server, reqwest::Method::POST, path, None).await;
    (s, v)
}

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

fn assert_error(status: u16, v: &Value, want: u16, field: Option<&str>) {
    assert_eq!(status, want, "{v}");
    assert!(v["error"]["code"].is_string(), "error model: {v}");
    assert!(v["error"]["message"].is_string(), "error model: {v}");
    if let Some(f) = field {
        assert_eq!(v["error"]["field"], f, "{v}");
    }
}

/// A running service with one job: dropped server first, database last.
struct Setup {
    server: Server,
    target: Target,
    job: String,
    db: TestDb,
}

/// A fresh database, a target answering per `behaviour`, the service with the fast settings
/// plus `env`, and the job `body` (its `api` set to the target).
async fn setup(
    db: Db,
    behaviour: Behaviour,
    env: &[(&'static str, &str)],
    mut body: Value,
) -> Setup {
    let db = TestDb::new(db).await;
    let target = Target::start(behaviour).await;
    let mut all = fast_env();
    all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    let server = Server::start(&db.url, &all);
    body["api"] = json!(target.url());
    let job = create_job(&server, body).await;
    Setup {
        server,
        target,
        job,
        db,
    }
}

/// Polls an execution's details until its state is `state` (at most `within`).
async fn execution_in_state(server: &Server, path: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, d) = get(server, path).await;
        if d["state"] == state || Instant::now() > deadline {
            assert_eq!(d["state"], state, "{d}");
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn every_field_round_trips_and_lists_page_by_page(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &fast_env());
    let full = json!({
        "name": "nightly report",
        "schedule": "0 30 2 * * *",
        "timezone": "America/New_York",
        "api": "http://127.0.0.1:9/hook",
        "type": "ATMOST_ONCE",
        "method": "PUT",
        "headers": {"X-Api-Key": "k1", "Authorization": "Bearer t"},
        "body": "{\"report\":\"nightly\"}",
        "timeoutMs": 2500,
        "retry": {"maxAttempts": 4, "backoffMs": 100, "maxBackoffMs": 1000},
        "misfirePolicy": "all",
        "concurrencyPolicy": "forbid",
        "enabled": true
    });
    let id = create_job(&server, full.clone()).await;
    let (status, job) = get(&server, &format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    for (k, v) in full.as_object().unwrap() {
        if k == "headers" {
            // Values are write-only: names shown, values masked.
            assert_eq!(job[k], json!({"X-Api-Key": "***", "Authorization": "***"}));
            continue;
        }
        assert_eq!(&job[k], v, "field {k}");
    }
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["state"], "active");
    assert_eq!(job["version"], 1);
    assert_eq!(job["lastExecution"], Value::Null);
    // 02:30 in New York is 06:30 or 07:30 UTC.
    let next = instant(&job["nextRunAt"]);
    assert!(next > Utc::now());
    assert!(
        next.format("%M:%S").to_string() == "30:00"
            && ["06", "07"].contains(&next.format("%H").to_string().as_str()),
        "{next}"
    );
    instant(&job["createdAt"]);

    let seed = create_job(
        &server,
        json!({"schedule": "0 0 * * * *", "api": "http://127.0.0.1:9/a"}),
    )
    .await;
    let (_, seed_job) = get(&server, &format!("/jobs/{seed}")).await;
    assert_eq!(seed_job["timezone"], "UTC");
    assert_eq!(seed_job["method"], "POST");
    assert_eq!(seed_job["type"], "ATLEAST_ONCE");
    assert_eq!(seed_job["concurrencyPolicy"], "allow");
    assert_eq!(seed_job["headers"], json!({}));
    let paused = create_job(
        &server,
        json!({"schedule": "0 0 * * * *", "api": "http://127.0.0.1:9/b", "enabled": false}),
    )
    .await;

    // Three jobs, two per page, in creation order.
    let (status, page1) = get(&server, "/jobs?limit=2").await;
    assert_eq!(status, 200, "{page1}");
    let ids = |p: &Value| -> Vec<String> {
        p["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page1), vec![id.clone(), seed.clone()]);
    let cursor = page1["nextCursor"].as_str().unwrap().to_owned();
    let (_, page2) = get(&server, &format!("/jobs?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&page2), vec![paused.clone()]);
    assert_eq!(page2["nextCursor"], Value::Null);
    let (_, only_paused) = get(&server, "/jobs?state=paused").await;
    assert_eq!(ids(&only_paused), vec![paused.clone()]);
    assert_eq!(only_paused["jobs"][0]["state"], "paused");
    let (_, active) = get(&server, "/jobs?state=active").await;
    assert_eq!(ids(&active), vec![id.clone(), seed.clone()]);

    for (path, field) in [
        ("/jobs?limit=0", "limit"),
        ("/jobs?limit=501", "limit"),
        ("/jobs?state=sleeping", "state"),
        ("/jobs?cursor=nope", "cursor"),
        ("/jobs?page=2", "page"),
    ] {
        let (s, v) = get(&server, path).await;
        assert_error(s, &v, 400, Some(field));
    }
    let (s, v) = get(&server, &format!("/jobs/{}", uuid::Uuid::now_v7())).await;
    assert_error(s, &v, 404, None);
    let (s, v) = get(&server, "/jobs/not-a-uuid").await;
    assert_error(s, &v, 400, Some("jobId"));
}

async fn pause_stops_fires_and_resume_follows_the_misfire_policy(db: Db) {
    let db = TestDb::new(db).await;
    let target = Target::start(Behaviour::default()).await;
    let mut env = fast_env();
    env.push(("MISFIRE_THRESHOLD_MS", "1000".into()));
    let server = Server::start(&db.url, &env);
    // Every 5 s: instants missed while paused stand apart from the ones after the resume.
    let one = create_job(
        &server,
        json!({"schedule": "*/5 * * * * *", "api": target.url(), "misfirePolicy": "one"}),
    )
    .await;
    let none = create_job(
        &server,
        json!({"schedule": "*/5 * * * * *", "api": target.url(), "misfirePolicy": "none"}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(12), || {
            !target.calls_of(&one).is_empty() && !target.calls_of(&none).is_empty()
        })
        .await
    );
    // Pause just after an instant T0 has fired.
    let t0 = sleep_until_just_after_a_multiple_of(5).await;
    for job in [&one, &none] {
        let (s, v) = post(&server, &format!("/jobs/{job}/pause")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["state"], "paused");
        assert_eq!(v["enabled"], false);
    }
    let paused_at = Instant::now();
    // T1 = T0 + 5 s passes while paused; resume 1.5 s after it, a misfire by then.
    let t1 = t0 + chrono::Duration::seconds(5);
    sleep_until(t1 + chrono::Duration::milliseconds(1500)).await;
    let late: Vec<_> = target
        .calls()
        .into_iter()
        .filter(|c| c.at > paused_at)
        .collect();
    assert!(late.is_empty(), "a paused job fired: {late:?}");
    // Pausing twice changes nothing.
    let (s, v) = post(&server, &format!("/jobs/{one}/pause")).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("paused")));
    for job in [&one, &none] {
        let (s, v) = post(&server, &format!("/jobs/{job}/resume")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["state"], "active");
    }
    // Before T2 = T0 + 10 s: `one` has called T1 once, `none` has skipped it.
    sleep_until(t0 + chrono::Duration::milliseconds(9500)).await;
    let at_t1 = |job: &str| {
        target
            .calls_of(job)
            .into_iter()
            .filter(|c| instant(&json!(c.scheduled_at)) == t1)
            .count()
    };
    assert_eq!(
        at_t1(&one),
        1,
        "one catch-up call of the missed instant under `one`"
    );
    assert_eq!(at_t1(&none), 0, "no catch-up call under `none`");
    // Both are back on schedule.
    let t2 = t0 + chrono::Duration::seconds(10);
    assert!(
        eventually(Duration::from_secs(5), || {
            [&one, &none].iter().all(|j| {
                target
                    .calls_of(j)
                    .iter()
                    .any(|c| instant(&json!(c.scheduled_at)) == t2)
            })
        })
        .await,
        "resumed jobs fire at T2"
    );
}

/// Sleeps until the wall clock is 200 ms past a multiple of `n` seconds; returns that
/// multiple.
async fn sleep_until_just_after_a_multiple_of(n: i64) -> DateTime<Utc> {
    let now = Utc::now().timestamp_millis();
    let mut next = (now / (n * 1000) + 1) * n * 1000;
    if next - now < 100 {
        next += n * 1000;
    }
    let at = DateTime::from_timestamp_millis(next).unwrap();
    sleep_until(at + chrono::Duration::milliseconds(200)).await;
    at
}

async fn sleep_until(t: DateTime<Utc>) {
    let left = (t - Utc::now()).num_milliseconds();
    if left > 0 {
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
}

async fn patch_moves_next_run_at_at_once_and_changes_the_call(db: Db) {
    let db = TestDb::new(db).await;
    let target = Target::start(Behaviour::default()).await;
    let server = Server::start(&db.url, &fast_env());
    let id = create_job(
        &server,
        json!({"schedule": "0 0 0 1 1 *", "api": target.url()}),
    )
    .await;
    let (_, before) = get(&server, &format!("/jobs/{id}")).await;
    assert!(instant(&before["nextRunAt"]) > Utc::now() + chrono::Duration::days(1));

    let (s, after, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/jobs/{id}"),
        Some(json!({
            "schedule": "* * * * * *",
            "method": "PUT",
            "headers": {"X-Api-Key": "abc"},
            "body": "hello",
            "name": "renamed"
        })),
    )
    .await;
    assert_eq!(s, 200, "{after}");
    let next = instant(&after["nextRunAt"]);
    let now = Utc::now();
    assert!(
        next > now - chrono::Duration::seconds(1) && next <= now + chrono::Duration::seconds(2),
        "nextRunAt {next} moved to the new schedule at once"
    );
    assert_eq!(after["version"], 2);
    assert_eq!(after["name"], "renamed");
    assert_eq!(after["api"], target.url().as_str(), "untouched fields kept");
    assert!(
        eventually(Duration::from_secs(10), || !target.calls_of(&id).is_empty()).await,
        "the changed job fires"
    );
    let call = target.calls_of(&id)[0].clone();
    assert_eq!(call.method, "PUT");
    assert_eq!(call.raw_body, "hello");
    assert_eq!(call.headers["x-api-key"], "abc");
    assert_eq!(call.headers["content-type"], "text/plain; charset=utf-8");

    // A bad change is refused whole and stores nothing.
    let (s, v, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/jobs/{id}"),
        Some(json!({"name": "x", "schedule": "every day"})),
    )
    .await;
    assert_error(s, &v, 400, Some("schedule"));
    let (_, kept) = get(&server, &format!("/jobs/{id}")).await;
    assert_eq!(kept["version"], 2);
    assert_eq!(kept["name"], "renamed");
    let (s, v, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/jobs/{id}"),
        Some(json!({"schedule": null})),
    )
    .await;
    assert_error(s, &v, 400, Some("schedule"));
    let (s, v, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/jobs/{}", uuid::Uuid::now_v7()),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_error(s, &v, 404, None);
}

async fn nothing_fires_after_delete_returns(db: Db) {
    let Setup {
        server,
        target,
        job: id,
        db: _db,
    } = setup(
        db,
        Behaviour::default(),
        &[],
        json!({"schedule": "* * * * * *"}),
    )
    .await;
    assert!(eventually(Duration::from_secs(10), || target.calls_of(&id).len() >= 2).await);
    let (s, v, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/jobs/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let deleted_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let late: Vec<_> = target
        .calls_of(&id)
        .into_iter()
        .filter(|c| c.at > deleted_at)
        .collect();
    assert!(late.is_empty(), "calls after DELETE returned: {late:?}");
    let (s, v) = get(&server, &format!("/jobs/{id}")).await;
    assert_error(s, &v, 404, None);
    let (s, v) = get(&server, &format!("/jobs/{id}/executions")).await;
    assert_error(s, &v, 404, None);
    let (s, v, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/jobs/{id}"),
        None,
    )
    .await;
    assert_error(s, &v, 404, None);
}

async fn trigger_calls_once_and_is_recorded_as_manual(db: Db) {
    let Setup {
        server,
        target,
        job: id,
        db: _db,
    } = setup(
        db,
        Behaviour::default(),
        &[],
        json!({"schedule": "0 0 0 1 1 *", "enabled": false}),
    )
    .await;
    let (s, v) = post(&server, &format!("/jobs/{id}/trigger")).await;
    assert_eq!(s, 202, "{v}");
    let execution = v["executionId"].as_str().unwrap().to_owned();
    assert!(eventually(Duration::from_secs(5), || !target.calls_of(&id).is_empty()).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = target.calls_of(&id);
    assert_eq!(calls.len(), 1, "one call: {calls:?}");
    assert_eq!(calls[0].execution_id, execution);
    let detail_path = format!("/jobs/{id}/executions/{execution}");
    let detail =
        execution_in_state(&server, &detail_path, "succeeded", Duration::from_secs(5)).await;
    assert_eq!(detail["trigger"], "manual");
    assert_eq!(detail["attempt"], 1);
    assert_eq!(detail["statusCode"], 200);
    assert_eq!(detail["success"], true);
    assert_eq!(detail["jobId"], id.as_str());
    let (_, job) = get(&server, &format!("/jobs/{id}")).await;
    assert_eq!(job["lastExecution"]["id"], execution.as_str());
    let (s, v) = post(&server, &format!("/jobs/{}/trigger", uuid::Uuid::now_v7())).await;
    assert_error(s, &v, 404, None);
}

async fn executions_page_back_with_a_cursor(db: Db) {
    let Setup {
        server,
        job: id,
        db: _db,
        target: _target,
    } = setup(
        db,
        Behaviour::default(),
        &[],
        json!({"schedule": "* * * * * *"}),
    )
    .await;
    assert!(
        crate::common::eventually_async(Duration::from_secs(20), || async {
            get(&server, &format!("/jobs/{id}/executions?limit=100"))
                .await
                .1
                .as_array()
                .is_some_and(|a| a.len() >= 7)
        })
        .await
    );
    // Stop it so the history holds still.
    post(&server, &format!("/jobs/{id}/pause")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, all) = get(&server, &format!("/jobs/{id}/executions?limit=100")).await;
    let all: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let (_, default) = get(&server, &format!("/jobs/{id}/executions")).await;
    assert_eq!(
        default.as_array().unwrap().len(),
        5,
        "the contract's default"
    );

    let mut paged = Vec::new();
    let mut path = format!("/jobs/{id}/executions?limit=3");
    loop {
        let (s, page, headers) = send(&server, reqwest::Method::GET, &path, None).await;
        assert_eq!(s, 200, "{page}");
        let items = page.as_array().unwrap();
        assert!(items.len() <= 3);
        paged.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match headers.get("x-next-cursor") {
            Some(c) => {
                let link = headers["link"].to_str().unwrap();
                assert!(link.contains("rel=\"next\""), "{link}");
                path = format!(
                    "/jobs/{id}/executions?limit=3&cursor={}",
                    c.to_str().unwrap()
                );
            }
            None => break,
        }
    }
    assert_eq!(
        paged, all,
        "the pages together are the whole history, in order"
    );

    let (s, d) = get(&server, &format!("/jobs/{id}/executions/{}", all[0])).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["trigger"], "schedule");
    assert_eq!(d["state"], "succeeded");
    instant(&d["scheduledAt"]);
    instant(&d["dueAt"]);
    assert!(d.get("node").is_some() && d.get("error").is_some());
    for (path, field) in [
        (format!("/jobs/{id}/executions?limit=101"), "limit"),
        (format!("/jobs/{id}/executions?cursor=zzz"), "cursor"),
        (format!("/jobs/{id}/executions/nope"), "executionId"),
    ] {
        let (s, v) = get(&server, &path).await;
        assert_error(s, &v, 400, Some(field));
    }
    let (s, v) = get(
        &server,
        &format!("/jobs/{id}/executions/{}", uuid::Uuid::now_v7()),
    )
    .await;
    assert_error(s, &v, 404, None);
}

async fn cron_next_previews_like_the_cli(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &fast_env());
    let (s, v) = get(
        &server,
        "/cron/next?expr=0%200%2012%20*%20*%20MON-FRI&tz=Europe/Paris&n=3",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["timezone"], "Europe/Paris");
    let next = v["next"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    let mut previous = Utc::now();
    for t in next {
        let at = instant(t);
        assert!(at > previous);
        // Noon in Paris is 10:00 or 11:00 UTC.
        assert!(["10:00:00", "11:00:00"].contains(&at.format("%H:%M:%S").to_string().as_str()));
        previous = at;
    }
    let (_, d) = get(&server, "/cron/next?expr=*%20*%20*%20*%20*").await;
    assert_eq!(d["next"].as_array().unwrap().len(), 5, "default n");
    // From a given instant (here a year ahead, in New York's offset), not from now.
    let (s, v) = get(
        &server,
        "/cron/next?expr=0%200%2012%20*%20*%20*&n=2&from=2027-06-01T07:00:00-04:00",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["next"],
        json!(["2027-06-01T12:00:00.000Z", "2027-06-02T12:00:00.000Z"])
    );
    for (path, field) in [
        ("/cron/next?expr=nope", "expr"),
        ("/cron/next", "expr"),
        ("/cron/next?expr=*%20*%20*%20*%20*&tz=Mars/Base", "tz"),
        ("/cron/next?expr=*%20*%20*%20*%20*&n=0", "n"),
        ("/cron/next?expr=*%20*%20*%20*%20*&n=101", "n"),
        ("/cron/next?expr=*%20*%20*%20*%20*&from=tomorrow", "from"),
    ] {
        let (s, v) = get(&server, path).await;
        assert_error(s, &v, 400, Some(field));
    }
}

async fn schedules_are_described_in_plain_words(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &fast_env());
    let id = create_job(
        &server,
        json!({
            "schedule": "0 0 9 * * MON-FRI",
            "timezone": "Europe/Paris",
            "api": "http://127.0.0.1:9/hook",
            "enabled": false
        }),
    )
    .await;
    let paris = "at 09:00 on weekdays, Europe/Paris";
    let (s, job) = get(&server, &format!("/jobs/{id}")).await;
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["description"], paris);
    let (_, page) = get(&server, "/jobs").await;
    assert_eq!(page["jobs"][0]["description"], paris);
    // A change answers with the new schedule's words; UTC is not named.
    let (s, changed, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/jobs/{id}"),
        Some(json!({"schedule": "@hourly", "timezone": "UTC"})),
    )
    .await;
    assert_eq!(s, 200, "{changed}");
    assert_eq!(changed["description"], "every hour");
    let (_, paused) = post(&server, &format!("/jobs/{id}/pause")).await;
    assert_eq!(paused["description"], "every hour");

    let (s, v) = get(&server, "/cron/next?expr=*/10+*+*+*+*+*").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["description"], "every 10 seconds");
    let (_, v) = get(
        &server,
        "/cron/next?expr=0%200%209%20L%20*%20%3F&tz=America/New_York",
    )
    .await;
    assert_eq!(
        v["description"],
        "at 09:00 on the last day of the month, America/New_York"
    );
}

async fn api_token_guards_every_endpoint_but_health(db: Db) {
    let db = TestDb::new(db).await;
    let token = "test-token-0123456789";
    let mut env = fast_env();
    env.push(("API_TOKEN", token.into()));
    let server = Server::start(&db.url, &env);
    let job = uuid::Uuid::now_v7();
    let endpoints = [
        (reqwest::Method::POST, "/jobs".to_owned()),
        (reqwest::Method::GET, "/jobs".to_owned()),
        (reqwest::Method::GET, format!("/jobs/{job}")),
        (reqwest::Method::PATCH, format!("/jobs/{job}")),
        (reqwest::Method::DELETE, format!("/jobs/{job}")),
        (reqwest::Method::POST, format!("/jobs/{job}/pause")),
        (reqwest::Method::POST, format!("/jobs/{job}/resume")),
        (reqwest::Method::POST, format!("/jobs/{job}/trigger")),
        (reqwest::Method::GET, format!("/jobs/{job}/executions")),
        (
            reqwest::Method::GET,
            format!("/jobs/{job}/executions/{job}"),
        ),
        (
            reqwest::Method::GET,
            "/cron/next?expr=*%20*%20*%20*%20*".to_owned(),
        ),
        (reqwest::Method::GET, "/dummy".to_owned()),
        (reqwest::Method::GET, "/metrics".to_owned()),
        (reqwest::Method::GET, "/openapi.json".to_owned()),
        (reqwest::Method::GET, "/docs/".to_owned()),
        (reqwest::Method::GET, "/no/such/path".to_owned()),
    ];
    for (method, path) in &endpoints {
        for auth in [None, Some("Bearer wrong-token-0123456789"), Some(token)] {
            let mut req = client().request(method.clone(), server.url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {path} with {auth:?}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"]["code"], "unauthorized");
        }
    }
    let (s, _) = get(&server, "/health").await;
    assert_eq!(s, 200, "/health needs no token");
    let resp = client()
        .post(server.url("/jobs"))
        .bearer_auth(token)
        .json(&json!({"schedule": "0 0 * * * *", "api": "http://127.0.0.1:9/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // The scheme is matched in any case (RFC 9110, section 11.1).
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp = client()
            .get(server.url("/jobs"))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
    }
}

async fn forbid_skips_a_fire_while_the_previous_call_runs(db: Db) {
    let slow = Behaviour {
        delay: Duration::from_millis(2500),
        ..Behaviour::default()
    };
    let job = json!({"schedule": "* * * * * *", "concurrencyPolicy": "forbid"});
    let Setup {
        server,
        target,
        job: id,
        db: _db,
    } = setup(db, slow, &[], job).await;
    assert!(eventually(Duration::from_secs(15), || target.calls_of(&id).len() >= 3).await);
    assert_eq!(
        target.max_in_flight(),
        1,
        "calls of the job never overlapped"
    );
    let (_, history) = get(&server, &format!("/jobs/{id}/executions?limit=100")).await;
    let skipped: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["statusCode"].is_null())
        .collect();
    assert!(
        skipped.len() >= 3,
        "fires during each 2.5 s call were skipped: {history}"
    );
    let e = skipped[0]["id"].as_str().unwrap();
    let (_, d) = get(&server, &format!("/jobs/{id}/executions/{e}")).await;
    assert_eq!(d["state"], "skipped", "{d}");
    assert_eq!(d["success"], false);
    // Every fire was either called or recorded skipped, none both.
    let called: std::collections::HashSet<String> = target
        .calls_of(&id)
        .into_iter()
        .map(|c| c.scheduled_at)
        .collect();
    for s in &skipped {
        let (_, d) = get(
            &server,
            &format!("/jobs/{id}/executions/{}", s["id"].as_str().unwrap()),
        )
        .await;
        assert!(!called.contains(d["scheduledAt"].as_str().unwrap()), "{d}");
    }
}

async fn the_target_policy_blocks_loopback_unless_allowed(db: Db) {
    let db = TestDb::new(db).await;
    let target = Target::start(Behaviour::default()).await;
    let mut env = fast_env();
    env.push(("TARGET_POLICY", "public".into()));
    let server = Server::start(&db.url, &env);
    // An address the policy refuses is refused at creation, with no address revealed but
    // the one given; an IPv6 form carrying it too.
    for api in [
        target.url(),
        "http://[::ffff:127.0.0.1]:9/hook".to_owned(),
        "http://169.254.169.254/latest".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        "http://[fd00::1]/hook".to_owned(),
        // Every IPv6 form that carries an IPv4 address: NAT64, 6to4, IPv4-compatible,
        // IPv4-translated; and the deprecated site-local range.
        "http://[64:ff9b::a9fe:a9fe]/latest".to_owned(),
        "http://[2002:7f00:1::1]/hook".to_owned(),
        "http://[::127.0.0.1]/hook".to_owned(),
        "http://[::ffff:0:10.0.0.1]/hook".to_owned(),
        "http://[fec0::1]/hook".to_owned(),
    ] {
        let r = crate::common::client()
            .post(server.url("/jobs"))
            .json(&json!({"schedule": "* * * * * *", "api": api}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{api}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "target_refused", "{body}");
        assert_eq!(body["error"]["field"], "api", "{body}");
    }
    assert_eq!(crate::count_rows(&db.url, "jobs").await, 0);
    // A name that resolves to loopback is checked at each call, on the resolved address.
    let by_name = target.url().replace("127.0.0.1", "localhost");
    let jobs = vec![create_job(&server, json!({"schedule": "* * * * * *", "api": by_name})).await];
    for job in &jobs {
        let mut denied = Vec::new();
        assert!(
            crate::common::eventually_async(Duration::from_secs(10), || {
                let job = job.clone();
                let server = &server;
                async move { get(server, &format!("/jobs/{job}/executions")).await.1 != json!([]) }
            })
            .await
        );
        let (_, history) = get(&server, &format!("/jobs/{job}/executions")).await;
        for e in history.as_array().unwrap() {
            assert_eq!(e["statusCode"], Value::Null);
            assert_eq!(e["success"], false);
            let id = e["id"].as_str().unwrap();
            let (_, d) = get(&server, &format!("/jobs/{job}/executions/{id}")).await;
            assert_eq!(d["attempt"], 1, "a refused call is not retried: {d}");
            denied.push(d["error"].as_str().unwrap_or_default().to_owned());
        }
        // The error names the policy and the host, not what the host resolved to.
        assert!(
            denied
                .iter()
                .all(|e| e.contains("target policy") && !e.contains("127.0.0.1")),
            "{denied:?}"
        );
    }
    assert!(
        target.calls().is_empty(),
        "nothing reached the loopback target"
    );
    drop(server);

    // The allow-list makes an exception.
    let mut env = fast_env();
    env.push(("TARGET_POLICY", "public".into()));
    env.push(("TARGET_ALLOW", "127.0.0.0/8, localhost".into()));
    let server = Server::start(&db.url, &env);
    let allowed = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": target.url()}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || !target
            .calls_of(&allowed)
            .is_empty())
        .await
    );
}

async fn history_is_pruned_to_the_newest_k(db: Db) {
    let keep = [("HISTORY_KEEP", "3"), ("PRUNE_INTERVAL_MS", "200")];
    let Setup {
        server,
        target,
        job: id,
        db,
    } = setup(
        db,
        Behaviour::default(),
        &keep,
        json!({"schedule": "* * * * * *"}),
    )
    .await;
    assert!(eventually(Duration::from_secs(15), || target.calls_of(&id).len() >= 7).await);
    post(&server, &format!("/jobs/{id}/pause")).await;
    let calls = target.calls_of(&id).len();
    let path = format!("/jobs/{id}/executions?limit=100");
    assert!(
        crate::common::eventually_async(Duration::from_secs(10), || async {
            get(&server, &path)
                .await
                .1
                .as_array()
                .is_some_and(|a| a.len() == 3)
        })
        .await,
        "{} calls made; history kept: {}",
        calls,
        get(&server, &path).await.1
    );
    // The three kept are the newest calls.
    let (_, kept) = get(&server, &path).await;
    let newest: Vec<String> = {
        let mut c = target.calls_of(&id);
        c.sort_by_key(|c| c.at);
        c.iter()
            .rev()
            .take(3)
            .map(|c| c.execution_id.clone())
            .collect()
    };
    let kept: Vec<String> = kept
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept, newest);
    assert_eq!(crate::count_rows(&db.url, "executions").await, 3);
}

async fn openapi_document_and_docs_are_served_offline(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &fast_env());
    let (s, doc) = get(&server, "/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/jobs", "post"),
        ("/jobs", "get"),
        ("/jobs/{jobId}", "get"),
        ("/jobs/{jobId}", "patch"),
        ("/jobs/{jobId}", "delete"),
        ("/jobs/{jobId}/pause", "post"),
        ("/jobs/{jobId}/resume", "post"),
        ("/jobs/{jobId}/trigger", "post"),
        ("/jobs/{jobId}/executions", "get"),
        ("/jobs/{jobId}/executions/{executionId}", "get"),
        ("/cron/next", "get"),
        ("/health", "get"),
        ("/dummy", "post"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} documented");
        // One error model: every documented 4xx answers with the Error schema.
        for (status, response) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/Error",
                    "{method} {path} {status}"
                );
            }
        }
    }
    // The interactive docs and their assets come from the binary itself.
    let page = client().get(server.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains("swagger"), "{html}");
    for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"] {
        let r = client().get(server.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(
            r.bytes().await.unwrap().len() > 1000,
            "{asset} is served whole"
        );
    }
}

async fn a_job_timeout_cuts_a_slow_call(db: Db) {
    let slow = Behaviour {
        delay: Duration::from_millis(1500),
        ..Behaviour::default()
    };
    let job = json!({"schedule": "0 0 0 1 1 *", "timeoutMs": 300, "retry": {"maxAttempts": 1}});
    let Setup {
        server,
        job: id,
        db: _db,
        target: _target,
    } = setup(db, slow, &[], job).await;
    let (_, v) = post(&server, &format!("/jobs/{id}/trigger")).await;
    let execution = v["executionId"].as_str().unwrap().to_owned();
    let path = format!("/jobs/{id}/executions/{execution}");
    let detail = execution_in_state(&server, &path, "failed", Duration::from_secs(10)).await;
    assert_eq!(detail["state"], "failed", "{detail}");
    assert_eq!(detail["statusCode"], Value::Null);
    assert!(
        detail["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 300 ms"),
        "{detail}"
    );
    let took = detail["durationMs"].as_u64().unwrap();
    assert!(
        (300..1200).contains(&took),
        "cut at the job's timeout, not the target's 1.5 s: {took} ms"
    );
}

async fn max_call_timeout_caps_every_timeout(db: Db) {
    let slow = Behaviour {
        delay: Duration::from_millis(3000),
        ..Behaviour::default()
    };
    // The job allows ten minutes; the node's ceiling is 400 ms.
    let job = json!({"schedule": "0 0 0 1 1 *", "timeoutMs": 600000, "retry": {"maxAttempts": 1}});
    let Setup {
        server,
        job: id,
        db: _db,
        target: _target,
    } = setup(db, slow, &[("MAX_CALL_TIMEOUT_MS", "400")], job).await;
    let (_, v) = post(&server, &format!("/jobs/{id}/trigger")).await;
    let execution = v["executionId"].as_str().unwrap().to_owned();
    let path = format!("/jobs/{id}/executions/{execution}");
    let detail = execution_in_state(&server, &path, "failed", Duration::from_secs(10)).await;
    assert!(
        detail["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out after 400 ms"),
        "{detail}"
    );
    let took = detail["durationMs"].as_u64().unwrap();
    assert!((400..1500).contains(&took), "cut at the ceiling: {took} ms");
}

/// A schedule an earlier version stored and this one refuses (written here straight into
/// the database) leaves its job readable, listed and fixable, not every answer failing.
async fn a_stored_schedule_this_version_refuses_still_reads(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &fast_env());
    let id = create_job(
        &server,
        json!({"schedule": "0 0 9 * * *", "api": "http://127.0.0.1:9/hook", "enabled": false}),
    )
    .await;
    crate::common::exec(
        &db.url,
        "UPDATE jobs SET schedule = '0 0 9 * * MON-FRI-SAT'",
    )
    .await;

    let (s, job) = get(&server, &format!("/jobs/{id}")).await;
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["schedule"], "0 0 9 * * MON-FRI-SAT", "kept verbatim");
    assert_eq!(
        job["description"],
        cronhook::domain::schedule::NOT_PARSED,
        "{job}"
    );
    let (s, page) = get(&server, "/jobs").await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1), "{page}");
    // A change that keeps the schedule is refused as a new job would be, naming it.
    let (s, refused, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/jobs/{id}"),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_error(s, &refused, 400, Some("schedule"));
    // A new schedule mends it.
    let (s, mended, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/jobs/{id}"),
        Some(json!({"schedule": "0 0 9 * * MON-FRI", "enabled": true})),
    )
    .await;
    assert_eq!(s, 200, "{mended}");
    assert_eq!(mended["description"], "at 09:00 on weekdays");
    assert!(mended["nextRunAt"].is_string(), "{mended}");
}

/// `spreadMs`: every fire of a job is due one fixed offset after its instant, derived from
/// its id; the instant still names the fire; a new spread moves the next fires at once.
async fn a_spread_job_is_due_its_offset_after_each_instant(db: Db) {
    let db = TestDb::new(db).await;
    let target = Target::start(Behaviour::default()).await;
    let server = Server::start(&db.url, &fast_env());
    let id = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": target.url(), "spreadMs": 1000}),
    )
    .await;
    let offset = cronhook::domain::job::spread_offset_ms(id.parse().unwrap(), 1000);
    assert!((0..1000).contains(&offset));
    let (_, job) = get(&server, &format!("/jobs/{id}")).await;
    assert_eq!(job["spreadMs"], 1000);
    let next = instant(&job["nextRunAt"]);
    assert_eq!(
        i64::from(next.timestamp_subsec_millis()),
        offset,
        "nextRunAt is due the offset after a whole second: {next}"
    );
    assert!(
        eventually(Duration::from_secs(15), || target.calls_of(&id).len() >= 4).await,
        "4 calls within 15 s; got {}",
        target.calls_of(&id).len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The call names the scheduled instant, as without a spread.
    for call in target.calls_of(&id) {
        let scheduled = instant(&json!(call.scheduled_at));
        assert_eq!(scheduled.timestamp_subsec_millis(), 0, "{scheduled}");
        assert_eq!(call.key, format!("{id}:{}", scheduled.timestamp_millis()));
        assert_eq!(call.body["scheduledAt"], call.scheduled_at.as_str());
    }
    let (_, list) = get(&server, &format!("/jobs/{id}/executions")).await;
    let list = list.as_array().unwrap();
    assert!(list.len() >= 3, "{list:?}");
    for e in list {
        let (s, detail) = get(
            &server,
            &format!("/jobs/{id}/executions/{}", e["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(s, 200, "{detail}");
        let scheduled = instant(&detail["scheduledAt"]);
        let due = instant(&detail["dueAt"]);
        let executed = instant(&detail["executedAt"]);
        assert_eq!(scheduled.timestamp_subsec_millis(), 0, "{detail}");
        assert_eq!((due - scheduled).num_milliseconds(), offset, "{detail}");
        assert!(
            executed >= due,
            "called at or after its due instant: {detail}"
        );
        assert!(
            (executed - due).num_milliseconds() < 1000,
            "called within a second of its due instant: {detail}"
        );
    }

    // Back to no spread: the next fires are due on their instants at once.
    let (s, changed, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/jobs/{id}"),
        Some(json!({"spreadMs": 0})),
    )
    .await;
    assert_eq!(s, 200, "{changed}");
    assert_eq!(changed["spreadMs"], 0);
    assert_eq!(instant(&changed["nextRunAt"]).timestamp_subsec_millis(), 0);
    let changed_at = Utc::now();
    let on_instant = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| instant(&e["executedAt"]) > changed_at + chrono::Duration::milliseconds(100))
    };
    let mut newest = Value::Null;
    for _ in 0..50 {
        let (_, list) = get(&server, &format!("/jobs/{id}/executions")).await;
        if on_instant(&list) {
            newest = list[0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let newest_id = newest["id"].as_str().expect("a fire after the change");
    let (_, detail) = get(&server, &format!("/jobs/{id}/executions/{newest_id}")).await;
    assert_eq!(detail["dueAt"], detail["scheduledAt"], "{detail}");

    // Out of range: refused, and nothing changes.
    for bad in [json!(-1), json!(86_400_001), json!(0.5), json!("1000")] {
        let (s, v, _) = send(
            &server,
            reqwest::Method::PATCH,
            &format!("/jobs/{id}"),
            Some(json!({"spreadMs": bad})),
        )
        .await;
        assert_error(s, &v, 400, Some("spreadMs"));
        assert_eq!(v["error"]["code"], "invalid_spread", "{v}");
    }
    let (_, kept) = get(&server, &format!("/jobs/{id}")).await;
    assert_eq!(kept["spreadMs"], 0);
    assert_eq!(kept["version"], changed["version"]);
}
