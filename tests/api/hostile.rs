//! Hostile input and a hostile environment: what the API refuses, how much of the input an
//! error quotes back, what `/health` reveals, and that `TARGET_POLICY=public` cannot be
//! bypassed through a proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Behaviour, Db, Server, Target, TestDb, client, create_job, fast_env};
use crate::{both_backends, count_rows};

both_backends!(
    control_characters_are_refused_on_both_stores,
    errors_quote_little_of_the_input,
    secrets_stay_out_of_logs_and_answers,
);

async fn post(server: &Server, body: Value) -> (u16, Value) {
    let r = client()
        .post(server.url("/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn control_characters_are_refused_on_both_stores(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &fast_env());
    let api = "http://127.0.0.1:9/hook";
    let cases = [
        (
            "name",
            json!({"schedule": "* * * * * *", "api": api, "name": "a\u{0}b"}),
        ),
        (
            "body",
            json!({"schedule": "* * * * * *", "api": api, "body": "a\u{0}b"}),
        ),
        ("schedule", json!({"schedule": "* * * * *\n*", "api": api})),
        ("schedule", json!({"schedule": "*\t* * * * *", "api": api})),
        (
            "api",
            json!({"schedule": "* * * * * *", "api": "http://127.0.0.1:9/a\nb"}),
        ),
        (
            "name",
            json!({"schedule": "* * * * * *", "api": api, "name": "two\r\nlines"}),
        ),
        ("schedule", json!({"schedule": "*".repeat(300), "api": api})),
        (
            "api",
            json!({"schedule": "* * * * * *", "api": format!("http://127.0.0.1:9/{}", "a".repeat(3000))}),
        ),
    ];
    // Valid creates sent at the same time all succeed: a refused one takes none with it.
    let url = server.url("/jobs");
    let send = |body: Value| {
        let url = url.clone();
        tokio::spawn(async move {
            let r = client().post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        })
    };
    let valid: Vec<_> = (0..20)
        .map(|_| send(json!({"schedule": "* * * * * *", "api": api})))
        .collect();
    let refused: Vec<_> = cases.iter().map(|(_, body)| send(body.clone())).collect();
    for task in valid {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    for ((field, _), task) in cases.iter().zip(refused) {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(body["error"]["field"], *field, "{body}");
    }
    // Only the valid jobs were stored.
    assert_eq!(count_rows(&db.url, "jobs").await, 20);
    // A body may hold line breaks and tabs.
    let (status, _) = post(
        &server,
        json!({"schedule": "* * * * * *", "api": api, "body": "line\n\tline\r\n"}),
    )
    .await;
    assert_eq!(status, 201);
}

async fn errors_quote_little_of_the_input(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &fast_env());
    let huge = "x".repeat(60_000);
    let api = "http://127.0.0.1:9/hook";
    let mut headers = serde_json::Map::new();
    headers.insert(huge.clone(), json!("v"));
    let bodies = [
        json!({"schedule": "* * * * * *", "api": api, huge.clone(): 1}),
        json!({"schedule": "* * * * * *", "api": api, "headers": headers}),
        json!({"schedule": "* * * * * *", "api": api, "timezone": huge.clone()}),
        json!({"schedule": "* * * * * *", "api": api, "type": huge.clone()}),
        json!({"schedule": "* * * * * *", "api": api, "method": huge.clone()}),
        json!({"schedule": "* * * * * *", "api": api, "retry": {huge.clone(): 1}}),
    ];
    for body in bodies {
        let r = client()
            .post(server.url("/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let text = r.text().await.unwrap();
        assert!(text.len() < 1000, "{} bytes: {}", text.len(), &text[..300]);
    }
    let paths = [
        format!("/jobs/{huge}"),
        format!("/jobs/{huge}/executions"),
        format!("/jobs?{huge}=1"),
    ];
    for path in paths {
        let r = client().get(server.url(&path)).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            text.len() < 1000,
            "{path:.40}: {status}, {} bytes",
            text.len()
        );
    }
}

/// Health says the database is unreachable, and nothing about which one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reveals_no_database_internals() {
    let db = TestDb::new(Db::Postgres).await;
    let server = Server::start(&db.url, &fast_env());
    // The database goes away under the running node.
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    drop(db);
    let health = || async {
        let r = client().get(server.url("/health")).send().await.unwrap();
        r.json::<Value>().await.unwrap_or(Value::Null)
    };
    let answered = crate::common::eventually_async(Duration::from_secs(15), || async {
        health().await["status"] == "unhealthy"
    })
    .await;
    let seen = health().await;
    assert!(answered, "{seen}");
    let reason = seen["reason"].as_str().unwrap();
    assert!(reason.starts_with("database unreachable"), "{reason}");
    assert!(
        !reason.contains(&name) && !reason.contains("postgres"),
        "{reason}"
    );
}

/// Under `TARGET_POLICY=public`, a proxy in the environment is not used: it would resolve and
/// connect out of the policy's sight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_does_not_bypass_the_public_policy() {
    let db = TestDb::new(Db::Sqlite).await;
    let target = Target::start(Behaviour::default()).await;
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let proxy_task = tokio::spawn(async move {
        while let Ok((socket, _)) = proxy.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let mut env = fast_env();
    env.push(("TARGET_POLICY", "public".into()));
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"] {
        env.push((var, proxy_url.clone()));
    }
    let server = Server::start(&db.url, &env);
    // A name that resolves to loopback: refused by the policy, unless a proxy resolves it.
    let by_name = target.url().replace("127.0.0.1", "localhost");
    let job = create_job(&server, json!({"schedule": "* * * * * *", "api": by_name})).await;
    let recorded = crate::common::eventually_async(Duration::from_secs(10), || {
        let server = &server;
        let job = job.clone();
        async move { !crate::common::executions_of(server, &job).await.is_empty() }
    })
    .await;
    assert!(recorded);
    let history = crate::common::executions_of(&server, &job).await;
    assert!(history.iter().all(|e| e["success"] == false), "{history:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the proxy was used");
    assert!(target.calls().is_empty());
    proxy_task.abort();
}

async fn secrets_stay_out_of_logs_and_answers(db: Db) {
    let db = TestDb::new(db).await;
    let server = Server::start(&db.url, &fast_env());
    let job = create_job(
        &server,
        json!({
            "schedule": "0 0 0 1 1 *",
            "api": "http://bob:pa55word@127.0.0.1:9/hook?apikey=k3yvalue&region=eu",
            "headers": {"Authorization": "Bearer t0kenvalue", "X-Api-Key": "k3yheader"}
        }),
    )
    .await;
    let mut answers = String::new();
    for path in [format!("/jobs/{job}"), "/jobs".to_owned()] {
        let r = client().get(server.url(&path)).send().await.unwrap();
        answers.push_str(&r.text().await.unwrap());
    }
    for secret in ["t0kenvalue", "k3yheader"] {
        assert!(
            !answers.contains(secret),
            "{secret} in an answer: {answers}"
        );
    }
    assert!(answers.contains(r#""Authorization":"***""#), "{answers}");
    // The URL is the owner's to read back; the log is not the place for its secrets.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log_text();
    assert!(log.contains("job created"), "{log}");
    for secret in ["pa55word", "k3yvalue", "t0kenvalue", "k3yheader"] {
        assert!(!log.contains(secret), "{secret} in the log: {log}");
    }
}

/// Raw connections for abusing the server.
mod raw {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub async fn connect(port: u16) -> TcpStream {
        TcpStream::connect(("127.0.0.1", port)).await.unwrap()
    }

    /// Reads until the server closes or answers; `None` if neither happens within `within`.
    pub async fn answer(s: &mut TcpStream, within: Duration) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Ok(Err(e)) => Some(format!("error: {e}")),
            Err(_) => None,
        }
    }

    /// Reads until the server closes the connection (at most `within`).
    pub async fn until_closed(s: &mut TcpStream, within: Duration) -> String {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(within, s.read_to_end(&mut got)).await;
        String::from_utf8_lossy(&got).into_owned()
    }

    pub async fn send(s: &mut TcpStream, bytes: &str) {
        let _ = s.write_all(bytes.as_bytes()).await;
    }
}

async fn timed_health(server: &Server) -> Duration {
    let started = std::time::Instant::now();
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(server.url("/health"))
        .send()
        .await
        .expect("/health answers");
    assert_eq!(r.status().as_u16(), 200);
    started.elapsed()
}

/// 300 silent sockets against a process allowed 200 descriptors: `/health` still answers at
/// once, because a new connection takes the place of the longest idle one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_cannot_exhaust_descriptors() {
    let db = TestDb::new(Db::Sqlite).await;
    let server = Server::start_with_fd_limit(&db.url, &fast_env(), 200);
    // 200 descriptors less the 64 kept for the database, calls and files.
    let bounded = crate::common::eventually(Duration::from_secs(3), || {
        server.log_text().contains(r#""max_connections":136"#)
    })
    .await;
    assert!(bounded, "{}", server.log_text());
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(raw::connect(server.port).await);
    }
    let mut took = Vec::new();
    for _ in 0..5 {
        took.push(timed_health(&server).await);
    }
    took.sort();
    assert!(took[2] < Duration::from_millis(100), "median {:?}", took[2]);
    assert!(
        !server.log_text().contains("Too many open files"),
        "{}",
        server.log_text()
    );
    drop(held);
}

/// Slow headers, silent connections and stalled bodies are cut off at their limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_at_the_limits() {
    let db = TestDb::new(Db::Sqlite).await;
    let mut env = fast_env();
    env.push(("HEADER_TIMEOUT_MS", "1000".into()));
    env.push(("BODY_TIMEOUT_MS", "1000".into()));
    env.push(("IDLE_TIMEOUT_MS", "1500".into()));
    let server = Server::start(&db.url, &env);
    let port = server.port;

    // Slowloris: a header line every 300 ms never completes; closed once headers are late.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = raw::connect(port).await;
        raw::send(&mut s, "GET /health HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(s);
    }
    let started = std::time::Instant::now();
    let mut closed = 0;
    while started.elapsed() < Duration::from_secs(4) && closed < slow.len() {
        closed = 0;
        for s in &mut slow {
            raw::send(s, "X-A: b\r\n").await;
            if raw::answer(s, Duration::from_millis(10)).await.is_some() {
                closed += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(closed, slow.len(), "slow headers cut off within 4 s");
    assert!(timed_health(&server).await < Duration::from_millis(500));

    // A silent connection is closed once idle too long.
    let mut silent = raw::connect(port).await;
    let closed = raw::answer(&mut silent, Duration::from_secs(4)).await;
    assert!(closed.is_some(), "an idle connection is closed");

    // A body announced over the limit is refused at once, before any of it is read.
    let mut big = raw::connect(port).await;
    raw::send(
        &mut big,
        "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n{\"sche",
    )
    .await;
    let answer = raw::answer(&mut big, Duration::from_millis(500)).await;
    let answer = answer.expect("answered at once");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");

    // A body that stops arriving gets 408 once the body timeout passes.
    let mut stalled = raw::connect(port).await;
    raw::send(
        &mut stalled,
        "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sche",
    )
    .await;
    let answer = raw::answer(&mut stalled, Duration::from_secs(3)).await;
    let answer = answer.expect("answered once the body timed out");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// `null` in a PATCH clears an optional field and is refused for one with a default; a body
/// in another charset than UTF-8 is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_and_charset_are_handled_consistently() {
    let db = TestDb::new(Db::Sqlite).await;
    let server = Server::start(&db.url, &fast_env());
    let job = create_job(
        &server,
        json!({"schedule": "0 0 0 1 1 *", "api": "http://127.0.0.1:9/hook", "name": "n",
               "type": "ATMOST_ONCE", "enabled": false}),
    )
    .await;
    let patch = |body: Value| {
        let url = server.url(&format!("/jobs/{job}"));
        async move {
            let r = client().patch(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for field in ["enabled", "type", "method", "schedule", "misfirePolicy"] {
        let (status, body) = patch(json!({ field: null })).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(body["error"]["code"], "null_not_allowed", "{body}");
    }
    let (status, body) = patch(json!({"name": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], Value::Null);
    // Nothing else moved: still paused, still ATMOST_ONCE.
    assert_eq!(
        (body["enabled"].clone(), body["type"].clone()),
        (json!(false), json!("ATMOST_ONCE"))
    );

    let r = client()
        .post(server.url("/jobs"))
        .header("content-type", "application/json; charset=utf-16")
        .body(r#"{"schedule": "* * * * * *", "api": "http://127.0.0.1:9/"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(count_rows(&db.url, "jobs").await, 1);
}

/// The server's own refusals have the JSON error shape: a request target or headers over
/// their bounds, and requests too malformed to reach the router.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_s_own_refusals_are_json() {
    let db = TestDb::new(Db::Sqlite).await;
    let server = Server::start(&db.url, &fast_env());
    let long_path = format!("/jobs?x={}", "a".repeat(10_000));
    let r = client().get(server.url(&long_path)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 414);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "uri_too_long", "{body}");
    let r = client()
        .get(server.url("/health"))
        .header("x-big", "b".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large", "{body}");

    let many_headers: String = (0..150).map(|i| format!("X-H{i}: a\r\n")).collect();
    for (request, status, code) in [
        ("GARBAGE\r\n\r\n".to_string(), 400, "malformed_request"),
        (
            "GET /he lth HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            400,
            "malformed_request",
        ),
        (
            "GET /health HTTP/1.1\r\nHo st: x\r\n\r\n".into(),
            400,
            "malformed_request",
        ),
        (
            format!("GET /health HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            format!(
                "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                "a".repeat(500_000)
            ),
            431,
            "headers_too_large",
        ),
    ] {
        let mut s = raw::connect(server.port).await;
        raw::send(&mut s, &request).await;
        let answer = raw::until_closed(&mut s, Duration::from_secs(3)).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
        assert!(head.contains("content-type: application/json"), "{answer}");
        let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    // The server still answers.
    assert!(timed_health(&server).await < Duration::from_millis(500));
}
