//! Webhooks as the Standard Webhooks specification has them: the
//! `webhook-id`, `webhook-timestamp` and `webhook-signature` headers, secrets
//! `whsec_<base64>`, HMAC-SHA256 over `{id}.{timestamp}.{body}`, retries on a
//! growing schedule, `Retry-After`, and an allow-list of destinations.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a secret (`whsec_` optional).
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .map_err(|e| format!("not a webhook secret: {e}"))
}

/// One signature, `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = secret_key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per valid secret,
/// space-separated (the new secret first, then the previous one while it
/// is still valid).
pub fn signature_header(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let signatures = secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

/// What a receiver does: true when any signature in `header` is the one
/// `secret` makes, compared in constant time. (Receivers also refuse
/// timestamps too far from their clock, against replays.)
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Ok(key) = secret_key(secret) else {
        return false;
    };
    header.split(' ').any(|candidate| {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            return false;
        };
        let Ok(given) = STANDARD.decode(encoded) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
            return false;
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    })
}

/// When attempts happen: the delay before each attempt, the first
/// included (zero: at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    /// Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    fn default() -> Self {
        let m = 60;
        let h = 3600;
        Self(
            [0, 5, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// How many attempts in all.
    pub fn attempts(&self) -> u32 {
        self.0.len() as u32
    }

    /// The delay before the next attempt after `made` failed attempts;
    /// `None` when none is left (dead letter).
    pub fn after_failures(&self, made: u32) -> Option<Duration> {
        self.0.get(made as usize).copied()
    }

    /// The next attempt's time after `made` failures at `now`, with a
    /// receiver's `Retry-After` as a floor.
    pub fn next_attempt(
        &self,
        made: u32,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
    ) -> Option<DateTime<Utc>> {
        let delay = self.after_failures(made)?;
        let delay = retry_after.map_or(delay, |floor| delay.max(floor));
        Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(value).ok()?.into();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Destinations that may be called: URL prefixes such as
/// `https://` or `https://hooks.example.gov.vn/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList(pub Vec<String>);

impl Default for AllowList {
    /// Any HTTPS destination.
    fn default() -> Self {
        Self(vec!["https://".into()])
    }
}

impl AllowList {
    /// Parses a comma-separated list.
    pub fn parse(text: &str) -> Self {
        Self(
            text.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Why `url` may not be called, if it may not.
    pub fn check(&self, url: &str) -> Result<(), String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err("only http and https URLs".into()),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err("URLs with user information are not called".into());
        }
        let lower = url.to_ascii_lowercase();
        // A prefix matches whole components: "https://hooks.gov.vn" allows
        // "https://hooks.gov.vn/x" but not "https://hooks.gov.vn.evil.example".
        let matches = |prefix: &String| {
            let prefix = prefix.to_ascii_lowercase();
            lower.strip_prefix(&prefix).is_some_and(|rest| {
                prefix.ends_with(['/', ':']) || rest.is_empty() || rest.starts_with(['/', ':', '?'])
            })
        };
        if self.0.iter().any(matches) {
            Ok(())
        } else {
            Err(format!(
                "not on the configured allow-list of destinations ({})",
                self.0.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        // From the Standard Webhooks reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, id, 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, id, 1614265330, body, &signature));
        assert!(!verify(secret, id, 1614265331, body, &signature));
    }

    #[test]
    fn after_rotation_both_secrets_sign() {
        let old = generate_secret();
        let new = generate_secret();
        assert!(new.starts_with("whsec_"));
        assert_eq!(secret_key(&new).unwrap().len(), 32);
        let header = signature_header(&[&new, &old], "n1", 10, b"{}").unwrap();
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, "n1", 10, b"{}", &header));
        assert!(verify(&new, "n1", 10, b"{}", &header));
        assert!(!verify(&generate_secret(), "n1", 10, b"{}", &header));
    }

    #[test]
    fn retries_follow_the_growing_schedule_then_stop() {
        let schedule = RetrySchedule::default();
        let now = Utc.with_ymd_and_hms(2024, 9, 2, 1, 0, 0).unwrap();
        let delays: Vec<i64> = (1..8)
            .map(|made| (schedule.next_attempt(made, now, None).unwrap() - now).num_seconds())
            .collect();
        assert_eq!(delays, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(schedule.next_attempt(8, now, None), None);
        assert_eq!(schedule.attempts(), 8);
        // Retry-After is a floor, never a shortcut.
        let later = schedule.next_attempt(1, now, Some(Duration::from_secs(60)));
        assert_eq!((later.unwrap() - now).num_seconds(), 60);
        let sooner = schedule.next_attempt(2, now, Some(Duration::from_secs(60)));
        assert_eq!((sooner.unwrap() - now).num_seconds(), 300);
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_allowed_destinations_are_called() {
        let default = AllowList::default();
        assert!(default.check("https://hooks.so-tc.gov.vn/dondoc").is_ok());
        assert!(default.check("http://hooks.so-tc.gov.vn/dondoc").is_err());
        let tests = AllowList::parse("http://127.0.0.1:, https://hooks.gov.vn/");
        assert!(tests.check("http://127.0.0.1:8080/hook").is_ok());
        assert!(tests.check("https://hooks.gov.vn/a").is_ok());
        assert!(tests.check("https://evil.example/a").is_err());
        assert!(tests.check("ftp://127.0.0.1:/a").is_err());
        assert!(tests.check("http://127.0.0.1:80@evil.example/").is_err());
        let host = AllowList::parse("https://hooks.gov.vn");
        assert!(host.check("https://hooks.gov.vn/x").is_ok());
        assert!(host.check("https://hooks.gov.vn.evil.example/x").is_err());
    }
}
