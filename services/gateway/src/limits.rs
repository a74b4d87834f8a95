//! Per-principal rate limits, deadlines (`grpc-timeout`), which methods are
//! streams and which may be retried, and W3C trace context.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message;
use prost_types::FileDescriptorSet;
use rand::RngCore;

/// A token bucket per principal subject.
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets kept before full (idle) ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    /// `rate` calls per second sustained, `burst` at once; a rate of zero or
    /// less disables the limit.
    pub(crate) fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call from `key`'s bucket, or says how long until one is there.
    pub(crate) fn check(&self, key: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 || !self.rate.is_finite() {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = match self.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (rate, burst) = (self.rate, self.burst);
        let refill = |bucket: &mut Bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
            bucket.updated = now;
        };
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            buckets.retain(|_, bucket| {
                refill(bucket);
                bucket.tokens < burst
            });
        }
        // The key is copied only for a new principal, not on every call.
        if !buckets.contains_key(key) {
            buckets.insert(
                key.to_owned(),
                Bucket {
                    tokens: burst,
                    updated: now,
                },
            );
        }
        let bucket = buckets
            .get_mut(key)
            .expect("the bucket exists: inserted above when missing");
        refill(bucket);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

/// The `grpc-timeout` header's value as a duration, if well formed.
pub(crate) fn parse_timeout(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `duration` as a `grpc-timeout` value (at most 8 digits).
pub(crate) fn format_timeout(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 100_000_000 {
        format!("{}m", millis.max(1))
    } else {
        format!("{}S", duration.as_secs().min(99_999_999))
    }
}

/// Streaming methods (from the contracts' descriptors) and retryable reads.
pub(crate) struct Methods {
    streaming: HashSet<String>,
}

/// Method name prefixes of reads: calling them again changes nothing.
const READ_PREFIXES: &[&str] = &["Get", "List", "Search", "Resolve", "Parse", "Watch"];

impl Methods {
    pub(crate) fn from_contracts() -> Self {
        let mut streaming = HashSet::new();
        if let Ok(set) = FileDescriptorSet::decode(dondoc_contracts::FILE_DESCRIPTOR_SET) {
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        if method.server_streaming() || method.client_streaming() {
                            streaming.insert(format!(
                                "/{}.{}/{}",
                                file.package(),
                                service.name(),
                                method.name()
                            ));
                        }
                    }
                }
            }
        }
        Self { streaming }
    }

    /// A streaming call: no default deadline, counted as an open stream.
    pub(crate) fn is_stream(&self, path: &str) -> bool {
        self.streaming.contains(path)
    }

    /// A read: retried on UNAVAILABLE before any response arrived.
    pub(crate) fn is_read(path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or_default();
        READ_PREFIXES.iter().any(|prefix| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        })
    }
}

/// The W3C trace context forwarded to the backend.
#[derive(Debug, Clone)]
pub(crate) struct TraceContext {
    /// 32 lowercase hex digits.
    pub(crate) trace_id: String,
    /// The gateway's own span id (16 hex digits), the backend's parent.
    pub(crate) span_id: String,
    flags: String,
}

impl TraceContext {
    /// Continues the caller's `traceparent`, or starts a trace.
    pub(crate) fn from_header(value: Option<&str>) -> Self {
        let span_id = random_hex(8);
        if let Some((trace_id, flags)) = value.and_then(parse_traceparent) {
            return Self {
                trace_id,
                span_id,
                flags,
            };
        }
        Self {
            trace_id: random_hex(16),
            span_id,
            flags: "01".into(),
        }
    }

    /// The context of the gateway's own OpenTelemetry span (a valid
    /// `traceparent` it produced), when tracing is on.
    pub(crate) fn from_span(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.split('-');
        let (_, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        parse_traceparent(traceparent)?;
        Some(Self {
            trace_id: trace.to_owned(),
            span_id: span.to_owned(),
            flags: flags.to_owned(),
        })
    }

    /// The `traceparent` value for the backend.
    pub(crate) fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then(|| (trace.to_owned(), flags.to_owned()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate() {
        let limiter = RateLimiter::new(10.0, 2);
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let wait = limiter.check("a").unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(limiter.check("b").is_ok(), "buckets are per principal");
        assert!(RateLimiter::new(0.0, 1).check("a").is_ok());
    }

    #[test]
    fn timeouts_round_trip() {
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("123456789S"), None);
        assert_eq!(parse_timeout("5s"), None);
        assert_eq!(format_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(format_timeout(Duration::from_secs(400_000)), "400000S");
    }

    #[test]
    fn reads_are_known_by_name() {
        assert!(Methods::is_read(
            "/dondoc.assignments.v1.TaskService/GetTask"
        ));
        assert!(Methods::is_read(
            "/dondoc.assignments.v1.StatisticsService/ListDirectiveRollups"
        ));
        assert!(!Methods::is_read(
            "/dondoc.assignments.v1.TaskService/CreateTask"
        ));
        assert!(!Methods::is_read("/x.Y/Gettysburg"));
        let methods = Methods::from_contracts();
        assert!(methods.is_stream("/dondoc.notifications.v1.NotificationService/Subscribe"));
        assert!(!methods.is_stream("/dondoc.assignments.v1.TaskService/GetTask"));
    }

    #[test]
    fn trace_context_continues_or_starts() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::from_header(Some(incoming));
        assert_eq!(context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(context.span_id, "00f067aa0ba902b7");
        assert!(
            context
                .header()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        let fresh = TraceContext::from_header(Some("garbage"));
        assert_eq!(fresh.trace_id.len(), 32);
        assert_eq!(fresh.header().len(), 55);
    }
}
