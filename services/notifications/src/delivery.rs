//! The delivery worker: sends queued notifications to webhook and e-mail
//! subscriptions. Any number of replicas run it: each claims due deliveries
//! with `FOR UPDATE SKIP LOCKED` under a lease, sends, and records the
//! attempt in one transaction that first checks its fencing token. A replica
//! that dies after sending and before recording leaves a lease that expires:
//! the delivery is sent again with the same `webhook-id`, which receivers
//! use to drop repeats (Standard Webhooks: at least once).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use dondoc_errors::Error;
use dondoc_events::Wake;
use dondoc_time::Clock;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::message;
use crate::domain::webhook::{self, AllowList, RetrySchedule};
use crate::storage::deliveries::{self, Attempt, ClaimedDelivery};
use crate::storage::notifications::{self, NewNotification, StoredNotification};
use crate::storage::subscriptions::{self, StoredSubscription};

/// SMTP: where e-mail goes, and from whom.
#[derive(Clone)]
pub struct SmtpSettings {
    /// `smtp://host:port` (plain), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465` (TLS), as lettre reads it.
    pub url: String,
    /// The sender, e.g. `Đôn đốc <dondoc@ubnd.gov.vn>`.
    pub from: String,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: show only its scheme and host.
        let shown = self
            .url
            .split_once("://")
            .map(|(scheme, rest)| {
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                format!("{scheme}://{host}")
            })
            .unwrap_or_default();
        f.debug_struct("SmtpSettings")
            .field("url", &shown)
            .field("from", &self.from)
            .finish()
    }
}

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Destinations that may be called.
    pub allow_list: AllowList,
    /// When attempts happen.
    pub retry: RetrySchedule,
    /// One attempt's limit (keep it well below the lease).
    pub timeout: Duration,
    /// How long a claim holds a delivery before another replica may rescue it.
    pub lease: Duration,
    /// Deliveries per claim.
    pub batch: i64,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Check for due deliveries at least this often.
    pub poll_interval: Duration,
    /// Disable an endpoint after this many dead letters in a row.
    pub disable_after_dead_letters: i32,
    /// …or after failing for this long without a success.
    pub disable_after_failing: Duration,
    /// How long the previous secret still signs after a rotation.
    pub secret_overlap: Duration,
    /// E-mail; `None` refuses e-mail subscriptions.
    pub smtp: Option<SmtpSettings>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            allow_list: AllowList::default(),
            retry: RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            lease: Duration::from_secs(60),
            batch: 50,
            concurrency: 8,
            poll_interval: Duration::from_secs(1),
            disable_after_dead_letters: 5,
            disable_after_failing: Duration::from_secs(5 * 24 * 3600),
            secret_overlap: Duration::from_secs(24 * 3600),
            smtp: None,
        }
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// What went wrong, if anything.
    pub error: String,
    /// `Retry-After`, as sent.
    pub retry_after: Option<String>,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.error.is_empty() && self.status.is_none_or(|s| (200..300).contains(&s))
    }

    fn gone(&self) -> bool {
        self.status == Some(410)
    }

    fn describe(&self) -> String {
        match (self.status, self.error.is_empty()) {
            (Some(status), true) => format!("HTTP {status}"),
            (Some(status), false) => format!("HTTP {status}: {}", self.error),
            (None, true) => "sent".into(),
            (None, false) => self.error.clone(),
        }
    }

    fn failed(error: impl Into<String>) -> Self {
        Outcome {
            status: None,
            error: error.into(),
            retry_after: None,
        }
    }
}

/// The webhook body: the notification, as JSON.
pub fn payload(n: &StoredNotification) -> serde_json::Value {
    let kind = format!("NOTIFICATION_KIND_{}", n.kind);
    serde_json::json!({
        "type": format!("notification.{}", n.kind.to_ascii_lowercase()),
        "timestamp": n.notified_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "name": format!("notifications/{}", n.notification_id),
            "notification_id": n.notification_id.to_string(),
            "kind": kind,
            "recipient": format!("agencies/{}", n.recipient),
            "task": n.task_id.map(|t| format!("tasks/{t}")).unwrap_or_default(),
            "directive": n.directive,
            "directive_number": n.directive_number,
            "lead_agency": if n.lead_agency.is_empty() { String::new() } else { format!("agencies/{}", n.lead_agency) },
            "due_date": n.due_date.map(|d| d.to_string()).unwrap_or_default(),
            "key_task": n.key_task,
            "title": n.title,
            "body": n.body,
            "create_time": n.notified_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    })
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            // ring supports the default protocol versions: a start-up invariant.
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

async fn exchange<I>(io: I, request: http::Request<Full<Bytes>>) -> Result<Outcome, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Read (and drop) a little of the answer so the exchange completes.
    let _ = tokio::time::timeout(Duration::from_secs(1), response.into_body().collect()).await;
    Ok(Outcome {
        status: Some(status),
        error: String::new(),
        retry_after,
    })
}

/// POSTs a signed body to a webhook URL, once, within `timeout`.
pub async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Outcome {
    let attempt = async {
        let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .ok_or("the URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut request = http::Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "dondoc-notifications");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("request: {e}"))?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => Outcome::failed(error),
        Err(_) => Outcome::failed(format!("no answer within {timeout:?}")),
    }
}

/// Sends one notification by e-mail to each address.
pub async fn email(smtp: &SmtpSettings, to: &[String], n: &StoredNotification) -> Outcome {
    use lettre::message::header::ContentType;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let attempt = async {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp.url)
            .map_err(|e| format!("SMTP configuration: {e}"))?
            .build();
        let from = smtp
            .from
            .parse()
            .map_err(|e| format!("sender {:?}: {e}", smtp.from))?;
        let mut builder = Message::builder()
            .from(from)
            .subject(n.title.clone())
            .message_id(Some(format!("<{}@dondoc>", n.notification_id)))
            .header(ContentType::TEXT_PLAIN);
        for address in to {
            builder = builder.to(address
                .parse()
                .map_err(|e| format!("address {address:?}: {e}"))?);
        }
        let mut text = n.body.clone();
        text.push_str("\n\n--\n");
        if let Some(task) = n.task_id {
            text.push_str(&format!("Nhiệm vụ: tasks/{task}\n"));
        }
        if !n.directive_number.is_empty() {
            text.push_str(&format!("Văn bản: {}\n", n.directive_number));
        }
        if !n.lead_agency.is_empty() {
            text.push_str(&format!("Đơn vị chủ trì: agencies/{}\n", n.lead_agency));
        }
        if let Some(due) = n.due_date {
            text.push_str(&format!("Thời hạn: {}\n", message::vn_date(due)));
        }
        text.push_str(&format!("Mã thông báo: {}\n", n.notification_id));
        let message = builder.body(text).map_err(|e| format!("message: {e}"))?;
        transport
            .send(message)
            .await
            .map_err(|e| format!("SMTP: {e}"))?;
        Ok::<_, String>(())
    };
    match tokio::time::timeout(Duration::from_secs(60), attempt).await {
        Ok(Ok(())) => Outcome {
            status: None,
            error: String::new(),
            retry_after: None,
        },
        Ok(Err(error)) => Outcome::failed(error),
        Err(_) => Outcome::failed("SMTP: no answer within 60 s"),
    }
}

/// The worker.
#[derive(Debug, Clone)]
pub struct Deliverer {
    /// Pool.
    pub pool: PgPool,
    /// Injected clock: attempts are due by it.
    pub clock: Clock,
    /// Woken when notifications are written; woken in turn when an
    /// ENDPOINT_DISABLED notification is.
    pub notifications: Wake,
    /// Settings.
    pub settings: DeliverySettings,
    /// Counts `dondoc_webhook_deliveries_total{outcome}` when set.
    pub metrics: Option<dondoc_server::metrics::SharedMetrics>,
}

impl Deliverer {
    fn count(&self, outcome: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.count(
                "dondoc_webhook_deliveries_total",
                "Delivery attempts of notifications to webhook and e-mail subscriptions, by outcome (delivered, retry, dead_letter, gone).",
                ("outcome", outcome),
            );
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut clock_moves = self.clock.changes();
        loop {
            let written = self.notifications.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            let claimed = match self.tick().await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(%error, "delivery claim failed; retrying");
                    0
                }
            };
            if claimed as i64 >= self.settings.batch {
                continue;
            }
            tokio::select! {
                _ = clock_moves.changed() => {}
                _ = &mut written => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Claims and attempts one batch of due deliveries; returns how many
    /// were claimed.
    pub async fn tick(&self) -> Result<usize, Error> {
        let claimed = deliveries::claim(
            &self.pool,
            self.clock.now(),
            self.settings.batch,
            self.settings.lease,
        )
        .await?;
        let count = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(self.settings.concurrency.max(1), |d| async move {
                if let Err(error) = self.attempt(&d).await {
                    // The lease expires and the delivery is claimed again.
                    tracing::warn!(delivery = d.id, %error, "delivery failed; it will be retried");
                }
            })
            .await;
        Ok(count)
    }

    /// Makes one attempt of a claimed delivery and records it.
    pub async fn attempt(&self, d: &ClaimedDelivery) -> Result<(), Error> {
        let storage = dondoc_database::storage_error;
        let mut conn = self.pool.acquire().await.map_err(storage)?;
        let subscription = subscriptions::get(&mut conn, d.subscription_id).await?;
        let notification = notifications::get(&mut conn, d.notification_id).await?;
        drop(conn);
        let (Some(subscription), Some(notification)) = (subscription, notification) else {
            let mut tx = self.pool.begin().await.map_err(storage)?;
            if deliveries::still_mine(&mut tx, d).await? {
                let now = self.clock.now();
                deliveries::settle(
                    &mut tx,
                    d.id,
                    "DEAD_LETTER",
                    d.attempts,
                    "the subscription or the notification is no longer kept",
                    None,
                    now,
                )
                .await?;
            }
            return tx.commit().await.map_err(storage);
        };
        let now = self.clock.now();
        let started = Instant::now();
        let outcome = self.send(&subscription, &notification, now).await;
        let duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let attempt = d.attempts + 1;
        tracing::info!(
            delivery = d.id,
            subscription = subscription.id,
            notification = %notification.notification_id,
            attempt,
            result = %outcome.describe(),
            duration_ms,
            "delivery attempt"
        );

        let mut tx = self.pool.begin().await.map_err(storage)?;
        if !deliveries::still_mine(&mut tx, d).await? {
            // Rescued by another replica meanwhile: its record stands.
            return Ok(());
        }
        let now = self.clock.now();
        deliveries::record_attempt(
            &mut tx,
            d.id,
            &Attempt {
                attempt,
                attempted_at: now,
                status_code: outcome.status.map(i32::from),
                error: outcome.error.clone(),
                duration_ms,
            },
        )
        .await?;
        let result = outcome.describe();
        let mut disabled: Option<String> = None;
        if outcome.ok() {
            self.count("delivered");
            deliveries::settle(&mut tx, d.id, "DELIVERED", attempt, &result, None, now).await?;
            subscriptions::record_success(&mut tx, subscription.id).await?;
        } else if outcome.gone() {
            self.count("gone");
            deliveries::settle(&mut tx, d.id, "DEAD_LETTER", attempt, &result, None, now).await?;
            disabled = Some("máy nhận trả lời 410 Gone (không còn nhận)".into());
        } else {
            let retry_after = outcome
                .retry_after
                .as_deref()
                .and_then(|v| webhook::parse_retry_after(v, now));
            let next = self
                .settings
                .retry
                .next_attempt(attempt as u32, now, retry_after);
            let dead = next.is_none();
            self.count(if dead { "dead_letter" } else { "retry" });
            match next {
                Some(at) => {
                    deliveries::settle(&mut tx, d.id, "PENDING", attempt, &result, Some(at), now)
                        .await?
                }
                None => {
                    deliveries::settle(&mut tx, d.id, "DEAD_LETTER", attempt, &result, None, now)
                        .await?
                }
            }
            if let Some(s) =
                subscriptions::record_failure(&mut tx, subscription.id, dead, now).await?
            {
                let window = chrono::Duration::from_std(self.settings.disable_after_failing)
                    .unwrap_or(chrono::Duration::MAX);
                if s.consecutive_dead_letters >= self.settings.disable_after_dead_letters {
                    disabled = Some(format!(
                        "{} thông báo liên tiếp không gửi được sau mọi lần thử lại",
                        s.consecutive_dead_letters
                    ));
                } else if s.failing_since.is_some_and(|since| now - since >= window) {
                    disabled = Some(format!(
                        "không gửi được thông báo nào từ {}",
                        s.failing_since
                            .map(|t| t
                                .with_timezone(&dondoc_time::vietnam())
                                .format("%H:%M %d/%m/%Y")
                                .to_string())
                            .unwrap_or_default()
                    ));
                }
            }
        }
        let mut notified = false;
        if let Some(reason) = disabled
            && subscriptions::disable(&mut tx, subscription.id, &reason, now).await?
        {
            tracing::warn!(subscription = subscription.id, %reason, "endpoint disabled");
            let name = format!("subscriptions/{}", subscription.id);
            let url = subscription
                .webhook_url
                .clone()
                .unwrap_or_else(|| subscription.email_addresses.join(", "));
            let text = message::endpoint_disabled(&name, &url, &reason);
            notified = notifications::insert(
                &mut tx,
                &NewNotification {
                    dedupe_key: format!(
                        "endpoint_disabled:{}:{}:{}",
                        subscription.id, d.id, d.lease_token
                    ),
                    kind: "ENDPOINT_DISABLED".into(),
                    recipient: subscription.subscriber.clone(),
                    task_id: None,
                    directive_number: String::new(),
                    directive: String::new(),
                    lead_agency: String::new(),
                    due_date: None,
                    key_task: false,
                    title: text.title,
                    body: text.body,
                    notified_at: now,
                },
            )
            .await?;
        }
        tx.commit().await.map_err(storage)?;
        if notified {
            self.notifications.wake();
        }
        Ok(())
    }

    async fn send(
        &self,
        s: &StoredSubscription,
        n: &StoredNotification,
        now: DateTime<Utc>,
    ) -> Outcome {
        match s.channel.as_str() {
            "WEBHOOK" => {
                let Some(url) = s.webhook_url.as_deref() else {
                    return Outcome::failed("the subscription has no URL");
                };
                if let Err(why) = self.settings.allow_list.check(url) {
                    return Outcome::failed(format!("destination refused: {why}"));
                }
                let body = payload(n).to_string().into_bytes();
                let id = n.notification_id.to_string();
                let timestamp = now.timestamp();
                let mut secrets: Vec<&str> = s.secret.as_deref().into_iter().collect();
                if let (Some(previous), Some(until)) =
                    (s.previous_secret.as_deref(), s.previous_valid_until)
                    && now < until
                {
                    secrets.push(previous);
                }
                let signature = match webhook::signature_header(&secrets, &id, timestamp, &body) {
                    Ok(signature) => signature,
                    Err(error) => return Outcome::failed(format!("signing: {error}")),
                };
                let headers = [
                    ("webhook-id", id),
                    ("webhook-timestamp", timestamp.to_string()),
                    ("webhook-signature", signature),
                ];
                post(url, &headers, body, self.settings.timeout).await
            }
            "EMAIL" => match &self.settings.smtp {
                Some(smtp) => email(smtp, &s.email_addresses, n).await,
                None => Outcome::failed("e-mail is not configured (no SMTP server)"),
            },
            other => Outcome::failed(format!("channel {other} is not delivered")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_settings_never_show_the_password() {
        let smtp = SmtpSettings {
            url: "smtps://dondoc:hunter2@mail.ubnd.gov.vn:465".into(),
            from: "dondoc@ubnd.gov.vn".into(),
        };
        let shown = format!("{smtp:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("mail.ubnd.gov.vn:465"), "{shown}");
    }

    #[test]
    fn outcomes_read_as_success_gone_or_failure() {
        let ok = Outcome {
            status: Some(204),
            error: String::new(),
            retry_after: None,
        };
        assert!(ok.ok());
        let gone = Outcome {
            status: Some(410),
            ..ok.clone()
        };
        assert!(!gone.ok() && gone.gone());
        assert_eq!(
            Outcome::failed("connect: refused").describe(),
            "connect: refused"
        );
    }
}
