//! The executor: makes one HTTP call for one attempt and reports its outcome.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use super::target_policy::{self, PolicyResolver, TargetPolicy};
use super::{WorkerStats, signing};
use crate::backoff;
use crate::clock::Clock;
use crate::domain::fire::{Fire, Outcome, Verdict};
use crate::domain::job::{ConcurrencyPolicy, HttpMethod};
use crate::domain::job::{Delivery, RetryPolicy};
use crate::scheduler::Held;
use crate::scheduler::gate::Gate;
use crate::scheduler::lease::Lease;
use crate::store::{DynStore, Exclusive};

/// Most of an answer's body read (and discarded) so the connection can be reused.
const MAX_BODY_READ: usize = 64 * 1024;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Calls targets and hands outcomes to the outcome writer.
pub struct Executor {
    /// The HTTP client (connection pool shared by all workers).
    pub client: reqwest::Client,
    /// Timeout of one call.
    pub timeout: Duration,
    /// The global retry defaults.
    pub retry: RetryPolicy,
    /// Marks ATMOST_ONCE attempts started.
    pub store: DynStore,
    /// This node's lease: fires of an older identity or a stale lease are not started.
    pub lease: Arc<Lease>,
    /// Outcomes go to the writer, with the lease epoch of their call.
    pub outcomes: UnboundedSender<(Outcome, u64)>,
    /// Fires that could not start yet go back to the timer.
    pub timer: UnboundedSender<Vec<Held>>,
    /// Active-call counter.
    pub stats: Arc<WorkerStats>,
    /// Drops fires of jobs changed or deleted since they were claimed.
    pub gate: Arc<Gate>,
    /// Signs every call of a job without its own secret, when set.
    pub signing_secret: Option<String>,
    /// Which addresses calls may reach.
    pub policy: Arc<TargetPolicy>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
}

/// What the target did with one request.
enum Answer {
    /// A status came back, with its `Retry-After` if any.
    Status(StatusCode, Option<Duration>),
    /// No answer: connection failure, timeout, broken response.
    Unanswered(String),
    /// Not sent: the target policy refuses the target's address. Not retried.
    Denied(String),
}

impl Executor {
    /// Builds the shared HTTP client; with a public-only policy its resolver refuses
    /// non-public addresses.
    pub fn client(policy: &Arc<TargetPolicy>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder();
        if policy.public_only {
            builder = builder.dns_resolver(Arc::new(PolicyResolver(policy.clone())));
        }
        builder
            .user_agent(concat!("cronhook/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client's settings are valid")
    }

    /// Runs one attempt, if it may still start.
    pub async fn run(&self, held: Held) {
        let epoch = held.epoch;
        // Counted before the check, so the epoch cannot be released between the two.
        self.lease.begin(epoch);
        if !self.lease.may_start(epoch) {
            tracing::info!(job_id = %held.fire.job_id, execution_id = %held.fire.execution_id,
                "not started: this node's lease lapsed; the fire is recovered from the store");
            self.lease.fence(epoch);
            self.lease.settle(epoch);
            return;
        }
        if !self.gate.allows(&held.fire) {
            tracing::info!(job_id = %held.fire.job_id, execution_id = %held.fire.execution_id,
                "not called: the job was changed or deleted after this fire was claimed");
            self.lease.settle(epoch);
            return;
        }
        self.stats.active.fetch_add(1, Ordering::AcqRel);
        let sent = self.attempt(held).await;
        self.stats.active.fetch_sub(1, Ordering::AcqRel);
        if !sent {
            self.lease.settle(epoch);
        }
    }

    /// Makes the call; returns whether an outcome went to the writer.
    async fn attempt(&self, held: Held) -> bool {
        let fire = held.fire;
        let exclusive = fire.call.concurrency == ConcurrencyPolicy::Forbid;
        if exclusive || fire.call.delivery == Delivery::AtMostOnce {
            let (node, _) = self.lease.node();
            let now = self.clock.now();
            let started = if exclusive {
                self.store
                    .start_exclusive(fire.execution_id, fire.job_id, &node, now)
                    .await
            } else {
                self.store
                    .mark_started(fire.execution_id, &node, now)
                    .await
                    .map(|ok| {
                        if ok {
                            Exclusive::Started
                        } else {
                            Exclusive::NotOurs
                        }
                    })
            };
            match started {
                Ok(Exclusive::Started) => {}
                Ok(Exclusive::Skipped) => {
                    tracing::info!(job_id = %fire.job_id, execution_id = %fire.execution_id,
                        "skipped: the job forbids overlapping calls and its previous call still runs");
                    return false;
                }
                Ok(Exclusive::NotOurs) => {
                    tracing::info!(job_id = %fire.job_id, execution_id = %fire.execution_id, "not started: the fire is no longer this node's");
                    return false;
                }
                Err(e) => {
                    // Nothing was sent; try again shortly rather than risk a second send.
                    tracing::warn!(job_id = %fire.job_id, execution_id = %fire.execution_id, error = %e,
                        "cannot mark the fire started; retrying in 1 s");
                    let mut fire = fire;
                    fire.due_at = self.clock.now() + chrono::Duration::seconds(1);
                    let _ = self.timer.send(vec![Held {
                        fire,
                        epoch: held.epoch,
                    }]);
                    return false;
                }
            }
        }
        let executed_at = self.clock.now();
        let started = Instant::now();
        let answer = self.call(&fire, executed_at).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (status_code, verdict, error, retry_after) = match &answer {
            Answer::Status(s, ra) if s.is_success() => {
                (Some(s.as_u16()), Verdict::Succeeded, None, *ra)
            }
            Answer::Status(s, ra) => (
                Some(s.as_u16()),
                Verdict::Failed,
                Some(format!("target answered {s}")),
                *ra,
            ),
            Answer::Unanswered(e) | Answer::Denied(e) => {
                (None, Verdict::Failed, Some(e.clone()), None)
            }
        };
        let lag_ms = (executed_at - fire.scheduled_at).num_milliseconds();
        tracing::info!(
            job_id = %fire.job_id,
            execution_id = %fire.execution_id,
            attempt = fire.attempt,
            status = status_code,
            duration_ms,
            lag_ms,
            success = verdict == Verdict::Succeeded,
            error = error.as_deref(),
            "call"
        );
        let retry = self.retry_of(&fire, &answer, retry_after);
        let outcome = Outcome {
            execution_id: fire.execution_id,
            executed_at,
            status_code,
            duration_ms,
            verdict,
            error,
            retry,
        };
        self.outcomes.send((outcome, held.epoch)).is_ok()
    }

    async fn call(&self, fire: &Fire, executed_at: DateTime<Utc>) -> Answer {
        let call = &*fire.call;
        if let Err(d) = self.policy.check_literal(&call.api) {
            return Answer::Denied(d.to_string());
        }
        let scheduled = fire
            .scheduled_at
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let body = match (&call.body, call.method) {
            (_, HttpMethod::Get) => None,
            (Some(body), _) => Some(body.clone()),
            (None, _) => Some(format!(
                r#"{{"jobId":"{}","executionId":"{}","scheduledAt":"{}","attempt":{},"sentAt":"{}"}}"#,
                fire.job_id,
                fire.execution_id,
                scheduled,
                fire.attempt,
                executed_at.to_rfc3339_opts(SecondsFormat::Millis, true)
            )),
        };
        let mut headers = HeaderMap::with_capacity(6 + call.headers.len());
        if body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(call.content_type));
        }
        for (name, value) in &call.headers {
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.insert(n, v);
            }
        }
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::try_from(value) {
                headers.insert(name, v);
            }
        };
        put("idempotency-key", fire.idempotency_key());
        put("x-cronhook-job-id", fire.job_id.to_string());
        put("x-cronhook-execution-id", fire.execution_id.to_string());
        put("x-cronhook-scheduled-at", scheduled);
        put("x-cronhook-attempt", fire.attempt.to_string());
        if let Some(secret) = call
            .signing_secret
            .as_ref()
            .or(self.signing_secret.as_ref())
        {
            let signed = signing::signature(
                secret,
                executed_at.timestamp_millis(),
                body.as_deref().unwrap_or("").as_bytes(),
            );
            if let Ok(v) = HeaderValue::try_from(signed) {
                headers.insert(signing::HEADER, v);
            }
        }
        let timeout = call.timeout_ms.map_or(self.timeout, Duration::from_millis);
        let method = match call.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let mut request = self
            .client
            .request(method, call.api.as_str())
            .headers(headers)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.body(body);
        }
        let sent = request.send().await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return match target_policy::denial_in(&e) {
                    Some(d) => Answer::Denied(d.to_string()),
                    None => Answer::Unanswered(describe(&e, timeout)),
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        let mut read = 0usize;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    read += c.len();
                    if read > MAX_BODY_READ {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Answer::Unanswered(format!(
                        "reading the answer failed: {}",
                        describe(&e, timeout)
                    ));
                }
            }
        }
        Answer::Status(status, retry_after)
    }

    /// The next attempt, when this one failed in a retryable way and attempts remain.
    fn retry_of(
        &self,
        fire: &Fire,
        answer: &Answer,
        retry_after: Option<Duration>,
    ) -> Option<Fire> {
        if fire.call.delivery != Delivery::AtLeastOnce {
            return None;
        }
        let retryable = match answer {
            Answer::Unanswered(_) => true,
            Answer::Denied(_) => false,
            Answer::Status(s, _) => {
                s.is_server_error()
                    || *s == StatusCode::REQUEST_TIMEOUT
                    || *s == StatusCode::TOO_MANY_REQUESTS
            }
        };
        let policy = self.retry.with(fire.call.retry);
        if !retryable || fire.attempt >= policy.max_attempts {
            return None;
        }
        let backoff = backoff::delay(
            Duration::from_millis(policy.backoff_ms),
            Duration::from_millis(policy.max_backoff_ms),
            fire.attempt - 1,
        );
        let honoured = match answer {
            Answer::Status(s, _)
                if *s == StatusCode::TOO_MANY_REQUESTS || *s == StatusCode::SERVICE_UNAVAILABLE =>
            {
                retry_after.map(|ra| ra.min(MAX_RETRY_AFTER))
            }
            _ => None,
        };
        let delay = honoured.map_or(backoff, |ra| ra.max(backoff));
        Some(Fire {
            execution_id: Uuid::now_v7(),
            attempt: fire.attempt + 1,
            due_at: self.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default(),
            ..fire.clone()
        })
    }
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("timed out after {} ms", timeout.as_millis())
    } else if e.is_connect() {
        let mut msg = String::from("connection failed");
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg = format!("connection failed: {s}");
            src = s.source();
        }
        msg
    } else {
        let mut msg = e.to_string();
        if let Some(s) = std::error::Error::source(e) {
            msg = format!("{msg}: {s}");
        }
        msg
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v.trim())
        .ok()?
        .with_timezone(&Utc);
    (at - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
