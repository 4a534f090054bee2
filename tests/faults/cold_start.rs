//! Started before its database: the service listens at once, answers `/health` with 503
//! `starting` while it retries the connection (each attempt logged), and serves within
//! seconds of the database coming up, with no restart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Server, client, create_job};
use crate::pg::PrivatePg;
use crate::{SERIAL, health};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_before_its_database_it_waits_and_then_serves() {
    let _serial = SERIAL.lock().await;
    let pg = PrivatePg::start();
    pg.down();
    let mut server = Server::start(&pg.url(), &[]);

    // While the database is down: 503 starting on /health, 503 in the error shape elsewhere.
    let (status, body) = health(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "starting", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("waiting for the database")
    );
    let r = client().get(server.url("/jobs")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "starting", "{v}");

    // Twenty seconds of waiting, every attempt logged; the process stays up.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "{}",
        server.log_text()
    );
    assert_eq!(health(&server).await.1["status"], "starting");
    let attempts = server
        .log_text()
        .matches("the database does not answer yet")
        .count();
    assert!(attempts >= 3, "{attempts} attempts logged");

    pg.up();
    let up = Instant::now();
    let mut serving = false;
    while up.elapsed() < Duration::from_secs(10) {
        if health(&server).await.0 == 200 {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = up.elapsed();
    assert!(
        serving,
        "not serving 10 s after the database came up:\n{}",
        server.log_text()
    );
    assert!(
        took <= Duration::from_secs(2),
        "serving {took:?} after the database came up"
    );
    // It migrated and serves everything.
    create_job(
        &server,
        json!({"schedule": "0 0 0 1 1 *", "api": "http://127.0.0.1:9/hook"}),
    )
    .await;
}
