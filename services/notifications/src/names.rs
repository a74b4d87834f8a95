//! Agency names for notification bodies, asked of the directives service
//! with this service's identity and cached. A lookup that fails falls back
//! to the agency's resource name: a notification is never held back for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dondoc_contracts::directives::v1::GetAgencyRequest;
use dondoc_contracts::directives::v1::agency_service_client::AgencyServiceClient;
use dondoc_identity::ServiceCredentials;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// How long an agency the directory does not know is not asked about again:
/// a burst of reminders for it makes one lookup, not one each, and an agency
/// added later is named within this time.
const UNKNOWN_FOR: Duration = Duration::from_secs(60);

/// Cached agency display names.
#[derive(Debug, Clone)]
pub struct AgencyNames {
    client: Option<AgencyServiceClient<InterceptedService<Channel, ServiceCredentials>>>,
    cache: Arc<Mutex<HashMap<String, String>>>,
    unknown: Arc<Mutex<HashMap<String, Instant>>>,
}

impl AgencyNames {
    /// Names looked up through `client`.
    pub fn new(
        client: AgencyServiceClient<InterceptedService<Channel, ServiceCredentials>>,
    ) -> Self {
        Self {
            client: Some(client),
            cache: Arc::default(),
            unknown: Arc::default(),
        }
    }

    /// Names never looked up: resource names are used as they are.
    pub fn offline() -> Self {
        Self {
            client: None,
            cache: Arc::default(),
            unknown: Arc::default(),
        }
    }

    /// The display name of agency `code`.
    pub async fn name(&self, code: &str) -> String {
        if let Some(name) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(code)
        {
            return name.clone();
        }
        let fallback = format!("agencies/{code}");
        let Some(mut client) = self.client.clone() else {
            return fallback;
        };
        let known_unknown = self
            .unknown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(code)
            .is_some_and(|since| since.elapsed() < UNKNOWN_FOR);
        if known_unknown {
            return fallback;
        }
        let request = GetAgencyRequest {
            name: fallback.clone(),
        };
        match tokio::time::timeout(Duration::from_secs(2), client.get_agency(request)).await {
            Ok(Ok(response)) => {
                let name = response
                    .into_inner()
                    .agency
                    .map(|a| a.display_name)
                    .unwrap_or(fallback);
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(code.to_string(), name.clone());
                name
            }
            Ok(Err(status)) => {
                tracing::warn!(code, %status, "agency name lookup failed");
                if status.code() == tonic::Code::NotFound {
                    self.unknown
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(code.to_string(), Instant::now());
                }
                fallback
            }
            Err(_) => {
                tracing::warn!(code, "agency name lookup timed out");
                fallback
            }
        }
    }

    /// The display names of several agencies, joined for a sentence.
    pub async fn names(&self, codes: &[String]) -> String {
        let mut names = Vec::with_capacity(codes.len());
        for code in codes {
            names.push(self.name(code).await);
        }
        names.join(", ")
    }
}
