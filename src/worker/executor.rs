//! The executor: makes one HTTP call for one attempt and reports what it did to the outcome
//! writer. It never hands a fire back to the scheduler: an attempt that could not start is
//! reported postponed, and the writer hands it back to the store.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

use super::call_log::{CallLog, Line};
use super::outcomes::Report;
use super::target_policy::{self, PolicyResolver, TargetPolicy};
use super::{Held, WorkerStats, signing};
use crate::backoff;
use crate::clock::Clock;
use crate::domain::fire::{Fire, Outcome, Verdict};
use crate::domain::job::{ConcurrencyPolicy, HttpMethod};
use crate::domain::job::{Delivery, RetryPolicy};
use crate::gate::Gate;
use crate::lease::Lease;
use crate::meters::{self, CallResult};
use crate::store::{DynStore, Exclusive, Handback};

/// Most of an answer's body read (and discarded) so the connection can be reused.
const MAX_BODY_READ: usize = 64 * 1024;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How long an attempt that could not be marked started waits before it is claimed again.
const START_RETRY: Duration = Duration::from_secs(1);

/// The `Content-Type` of a JSON body.
const JSON: &str = "application/json";
/// The `Content-Type` of a job's body that is not JSON.
const TEXT: &str = "text/plain; charset=utf-8";

/// Calls targets and reports to the outcome writer.
pub struct Executor {
    /// The HTTP client (connection pool shared by all workers).
    pub client: reqwest::Client,
    /// Timeout of one call without its own.
    pub timeout: Duration,
    /// Ceiling on every call's timeout, the job's own included.
    pub max_timeout: Duration,
    /// The global retry defaults.
    pub retry: RetryPolicy,
    /// Marks ATMOST_ONCE and exclusive attempts started.
    pub store: DynStore,
    /// This node's lease: fires of an older identity or a stale lease are not started.
    pub lease: Arc<Lease>,
    /// What each attempt did goes to the outcome writer.
    pub reports: UnboundedSender<Report>,
    /// Active-call counter.
    pub stats: Arc<WorkerStats>,
    /// Drops fires of jobs changed or deleted since they were claimed.
    pub gate: Arc<Gate>,
    /// Most outcomes waiting to be stored: at the bound no call starts.
    pub max_unstored: usize,
    /// Signs every call of a job without its own secret, when set.
    pub signing_secret: Option<String>,
    /// Which addresses calls may reach.
    pub policy: Arc<TargetPolicy>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// Which calls get a line of their own; counts all for the summary.
    pub calls: Arc<CallLog>,
}

/// What the target did with one request.
enum Answer {
    /// A status came back, with its `Retry-After` if any.
    Status(StatusCode, Option<Duration>),
    /// No answer: connection failure, timeout (`true`), broken response.
    Unanswered(String, bool),
    /// Not sent: the target policy refuses the target's address. Not retried.
    Denied(String),
}

impl Executor {
    /// Builds the shared HTTP client; with a public-only policy its resolver refuses
    /// non-public addresses.
    pub fn client(policy: &Arc<TargetPolicy>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder();
        if policy.public_only {
            // A proxy would resolve and connect on the policy's behalf, out of its sight: under
            // a public-only policy, `HTTP_PROXY` and its kin are ignored.
            builder = builder
                .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
                .no_proxy();
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
        let fence = self.lease.fence_after();
        if !self.lease.may_start(epoch) || !self.gate.current(fence) {
            self.fenced(&held, "lease");
            return;
        }
        if self.stats.unstored.load(Ordering::Acquire) >= self.max_unstored {
            // The database has not taken the outcomes of the calls already made: rather than
            // hold more in memory, the node fences itself, as for a lapsed lease.
            self.fenced(&held, "unstored");
            return;
        }
        if !self.gate.remembers(held.claimed) {
            tracing::info!(job_id = %held.fire.job_id, execution_id = %held.fire.execution_id,
                "held too long to judge against job changes: handed back to the store");
            let _ = self.reports.send(Report::Postponed(vec![Handback {
                execution: held.fire.execution_id,
                node: held.node.clone(),
                due_at: self.clock.now(),
            }]));
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
        let reported = self.attempt(held).await;
        self.stats.active.fetch_sub(1, Ordering::AcqRel);
        if !reported {
            self.lease.settle(epoch);
        }
    }

    /// Does not start `held`: the node fenced itself (`reason`). The first fire of an
    /// identity fenced says so once; the identity is replaced at the next heartbeat. The fire
    /// is handed back to the store under the id that claimed it (the store takes it back
    /// only from that id, so a fire another node recovered meanwhile is left alone) and stays
    /// counted among this node's claimed fires until it is back, so fires dropped here never
    /// make room for the claimer while their rows are still claimed.
    fn fenced(&self, held: &Held, reason: &'static str) {
        meters::fenced(reason);
        if self.lease.fence(held.epoch) {
            tracing::warn!(
                reason,
                unstored = self.stats.unstored.load(Ordering::Acquire),
                "this node stopped starting calls (its lease lapsed, it could not read job changes, \
                 or too many outcomes wait for the database: MAX_UNSTORED_OUTCOMES); the fires it \
                 holds are handed back to the store"
            );
        }
        tracing::debug!(job_id = %held.fire.job_id, execution_id = %held.fire.execution_id, reason,
            "not started: handed back to the store");
        self.stats.claimed.fetch_add(1, Ordering::AcqRel);
        let back = Report::HandedBack(vec![Handback {
            execution: held.fire.execution_id,
            node: held.node.clone(),
            due_at: held.fire.due_at,
        }]);
        if self.reports.send(back).is_err() {
            // Shutting down: the store hands back everything not started.
            self.stats.claimed.fetch_sub(1, Ordering::AcqRel);
        }
        self.lease.settle(held.epoch);
    }

    /// Makes the call, if the store lets it start; returns whether an outcome went to the
    /// writer (which settles the epoch once it is stored).
    async fn attempt(&self, held: Held) -> bool {
        let Held {
            fire, epoch, node, ..
        } = held;
        if !self.start(&fire, &node).await {
            return false;
        }
        let executed_at = self.clock.now();
        let started = Instant::now();
        let answer = self.call(&fire, executed_at).await;
        let outcome = self.outcome(&fire, node, &answer, executed_at, started.elapsed());
        self.stats.unstored.fetch_add(1, Ordering::AcqRel);
        let sent = self.reports.send(Report::Outcome(outcome, epoch)).is_ok();
        if !sent {
            self.stats.unstored.fetch_sub(1, Ordering::AcqRel);
        }
        sent
    }

    /// Records the attempt started, durably, when its job needs that before the request
    /// leaves (ATMOST_ONCE, or calls that may not overlap). Returns whether to call.
    async fn start(&self, fire: &Fire, node: &Arc<str>) -> bool {
        let exclusive = fire.call.concurrency == ConcurrencyPolicy::Forbid;
        if !exclusive && fire.call.delivery != Delivery::AtMostOnce {
            return true;
        }
        let now = self.clock.now();
        let started = if exclusive {
            self.store
                .start_exclusive(fire.execution_id, fire.job_id, node, now)
                .await
        } else {
            self.store
                .mark_started(fire.execution_id, node, now)
                .await
                .map(|ok| {
                    if ok {
                        Exclusive::Started
                    } else {
                        Exclusive::NotOurs
                    }
                })
        };
        #[cfg(feature = "fault-injection")]
        let started = crate::faults::lose_start_reply(started);
        match started {
            Ok(Exclusive::Started) => true,
            Ok(Exclusive::Skipped) => {
                meters::not_sent(CallResult::Skipped, fire.call.delivery);
                tracing::info!(job_id = %fire.job_id, execution_id = %fire.execution_id,
                    "skipped: the job forbids overlapping calls and its previous call still runs");
                false
            }
            Ok(Exclusive::NotOurs) => {
                tracing::info!(job_id = %fire.job_id, execution_id = %fire.execution_id,
                    "not started: the fire is no longer this node's");
                false
            }
            Err(e) => {
                meters::db_error(meters::op::START);
                // Nothing was sent: the attempt goes back to the store rather than risk a
                // second send, and is claimed again once due.
                tracing::warn!(job_id = %fire.job_id, execution_id = %fire.execution_id, error = %e,
                    retry_in_ms = START_RETRY.as_millis() as u64, "cannot mark the fire started");
                let due_at = now + chrono::Duration::from_std(START_RETRY).unwrap_or_default();
                let _ = self.reports.send(Report::Postponed(vec![Handback {
                    execution: fire.execution_id,
                    node: node.clone(),
                    due_at,
                }]));
                false
            }
        }
    }

    /// The outcome of one call, with its retry when one is due; logged.
    fn outcome(
        &self,
        fire: &Fire,
        node: Arc<str>,
        answer: &Answer,
        executed_at: DateTime<Utc>,
        took: Duration,
    ) -> Outcome {
        let (status_code, verdict, error) = match answer {
            Answer::Status(s, _) if s.is_success() => (Some(s.as_u16()), Verdict::Succeeded, None),
            Answer::Status(s, _) => (
                Some(s.as_u16()),
                Verdict::Failed,
                Some(format!("target answered {s}")),
            ),
            Answer::Unanswered(e, _) | Answer::Denied(e) => {
                (None, Verdict::Failed, Some(e.clone()))
            }
        };
        let duration_ms = took.as_millis() as u64;
        let result = match answer {
            Answer::Status(s, _) if s.is_success() => CallResult::Succeeded,
            Answer::Status(..) => CallResult::FailedStatus,
            Answer::Unanswered(_, true) => CallResult::Timeout,
            Answer::Unanswered(_, false) => CallResult::ConnectError,
            Answer::Denied(_) => CallResult::Denied,
        };
        let retry = self.retry_of(fire, answer);
        let lag = (executed_at - fire.due_at).to_std().unwrap_or_default();
        meters::called(result, fire.call.delivery, lag, took, retry.is_some());
        macro_rules! call_line {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    job_id = %fire.job_id,
                    execution_id = %fire.execution_id,
                    attempt = fire.attempt,
                    status = status_code,
                    duration_ms,
                    lag_ms = (executed_at - fire.scheduled_at).num_milliseconds(),
                    success = verdict == Verdict::Succeeded,
                    error = error.as_deref(),
                    "call"
                )
            };
        }
        match self.calls.line(verdict == Verdict::Succeeded) {
            Line::Info => call_line!(tracing::Level::INFO),
            Line::Debug => call_line!(tracing::Level::DEBUG),
        }
        Outcome {
            execution_id: fire.execution_id,
            node,
            executed_at,
            status_code,
            duration_ms,
            verdict,
            // PostgreSQL text cannot hold NUL, whatever a target or its library writes.
            error: error.map(|e| e.replace('\0', "\u{FFFD}")),
            retry,
        }
    }

    /// Sends the request and reads the answer.
    async fn call(&self, fire: &Fire, executed_at: DateTime<Utc>) -> Answer {
        // A URL that does not parse has no literal host to refuse: the request reports it.
        let checked = fire.call.url.as_ref().map(|url| self.policy.check_url(url));
        if let Some(Err(d)) = checked {
            return Answer::Denied(d.to_string());
        }
        let timeout = fire
            .call
            .timeout_ms
            .map_or(self.timeout, Duration::from_millis)
            .min(self.max_timeout);
        let mut resp = match self.request(fire, executed_at, timeout).send().await {
            Ok(r) => r,
            Err(e) => {
                return match target_policy::denial_in(&e) {
                    Some(d) => {
                        // The address stays in the log: the execution only names the host.
                        tracing::warn!(job_id = %fire.job_id, host = %d.host, addr = %d.addr,
                            "the target policy refused the address the target resolved to");
                        Answer::Denied(d.to_string())
                    }
                    None => Answer::Unanswered(describe(&e, timeout), e.is_timeout()),
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        // The body is read (up to a bound) so the connection can be reused.
        let mut read = 0usize;
        while read <= MAX_BODY_READ {
            match resp.chunk().await {
                Ok(Some(c)) => read += c.len(),
                Ok(None) => break,
                Err(e) => {
                    return Answer::Unanswered(
                        format!("reading the answer failed: {}", describe(&e, timeout)),
                        e.is_timeout(),
                    );
                }
            }
        }
        Answer::Status(status, retry_after)
    }

    /// The request of one attempt: the job's method, headers and body (or cronhook's JSON
    /// description of the fire), the fire's identity headers and, with a secret, its
    /// signature.
    fn request(
        &self,
        fire: &Fire,
        executed_at: DateTime<Utc>,
        timeout: Duration,
    ) -> reqwest::RequestBuilder {
        let call = &*fire.call;
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
        let mut headers = HeaderMap::with_capacity(7 + call.headers.len());
        if body.is_some() {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(content_type(call.body.as_deref())),
            );
        }
        for (name, value) in &call.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name.as_str()),
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
            put(
                signing::HEADER,
                signing::signature(
                    secret,
                    executed_at.timestamp_millis(),
                    body.as_deref().unwrap_or("").as_bytes(),
                ),
            );
        }
        let method = match call.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let request = match &call.url {
            Some(url) => self.client.request(method, url.clone()),
            None => self.client.request(method, call.api.as_str()),
        };
        let request = request.headers(headers).timeout(timeout);
        match body {
            Some(body) => request.body(body),
            None => request,
        }
    }

    /// The next attempt, when this one failed in a retryable way and attempts remain.
    fn retry_of(&self, fire: &Fire, answer: &Answer) -> Option<Fire> {
        if fire.call.delivery != Delivery::AtLeastOnce {
            return None;
        }
        let retryable = match answer {
            Answer::Unanswered(..) => true,
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
            Answer::Status(s, retry_after)
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
        // The whole chain: the outermost messages ("client error (SendRequest)") say little.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            let text = s.to_string();
            if !msg.contains(&text) {
                msg = format!("{msg}: {text}");
            }
            src = s.source();
        }
        msg
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    at.duration_since(std::time::SystemTime::from(now)).ok()
}

/// The `Content-Type` of a call's body: JSON (cronhook's own description of the fire, or the
/// job's body when it parses as JSON), else text. Only a job's own body, at most 32 KiB, is
/// parsed.
fn content_type(own_body: Option<&str>) -> &'static str {
    match own_body {
        Some(b) if serde_json::from_str::<serde::de::IgnoredAny>(b).is_err() => TEXT,
        _ => JSON,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn only_a_job_s_own_body_that_is_not_json_is_sent_as_text() {
        assert_eq!(content_type(None), JSON);
        assert_eq!(content_type(Some(r#"{"a":1}"#)), JSON);
        assert_eq!(content_type(Some("[1, 2]")), JSON);
        assert_eq!(content_type(Some("plain words")), TEXT);
        assert_eq!(content_type(Some("")), TEXT);
    }

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
