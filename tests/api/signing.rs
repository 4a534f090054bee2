//! Signed calls verify with the README's own verification code.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::common::{Behaviour, Db, Server, Target, TestDb, create_job, eventually, fast_env};

both_backends!(calls_verify_with_the_readme_example);

const GLOBAL: &str = "global-secret-0123456789";
const OWN: &str = "job-own-secret-0123456789";

/// The Python block of README.md between the signature-example markers.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- signature-example -->")
        .expect("start marker");
    let end = readme
        .find("<!-- /signature-example -->")
        .expect("end marker");
    let block = &readme[start..end];
    let code = block
        .split("```python")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a python block");
    code.to_owned()
}

/// Runs the README's `verify` on each (secret, header, body) and returns its answers.
fn verify_with_readme(cases: &[(&str, String, String)]) -> Vec<bool> {
    let cases: Vec<_> = cases
        .iter()
        .map(|(s, h, b)| json!({"secret": s, "header": h, "body": b}))
        .collect();
    let script = format!(
        "{}\nimport json, sys\nfor c in json.load(sys.stdin):\n    print(verify(c['secret'], c['header'], c['body'].encode()))\n",
        readme_example()
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l == "True")
        .collect()
}

async fn calls_verify_with_the_readme_example(db: Db) {
    let db = TestDb::new(db).await;
    let target = Target::start(Behaviour::default()).await;
    let mut env = fast_env();
    env.push(("SIGNING_SECRET", GLOBAL.into()));
    let server = Server::start(&db.url, &env);
    let global = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": target.url()}),
    )
    .await;
    let own = create_job(
        &server,
        json!({"schedule": "* * * * * *", "api": target.url(), "method": "PUT",
               "body": "{\"hello\":\"world\"}", "signingSecret": OWN}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || {
            !target.calls_of(&global).is_empty() && !target.calls_of(&own).is_empty()
        })
        .await
    );
    let sig = |c: &crate::common::Call| {
        c.headers["x-cronhook-signature"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let a = target.calls_of(&global)[0].clone();
    let b = target.calls_of(&own)[0].clone();
    assert_eq!(b.raw_body, "{\"hello\":\"world\"}");
    let answers = verify_with_readme(&[
        (GLOBAL, sig(&a), a.raw_body.clone()),
        (OWN, sig(&b), b.raw_body.clone()),
        (GLOBAL, sig(&b), b.raw_body.clone()),
        (GLOBAL, sig(&a), a.raw_body.replace("jobId", "jobID")),
        (GLOBAL, "t=1,v1=00".into(), a.raw_body.clone()),
    ]);
    assert_eq!(
        answers,
        vec![true, true, false, false, false],
        "right secrets verify; a wrong secret, a changed body and an old timestamp do not"
    );
    // The job's view says it has its own secret without showing it.
    let v: serde_json::Value = crate::common::client()
        .get(server.url(&format!("/jobs/{own}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["hasSigningSecret"], true);
    assert!(v.get("signingSecret").is_none(), "{v}");
}
