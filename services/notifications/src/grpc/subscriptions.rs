//! SubscriptionService: saved subscriptions, webhook secrets, deliveries.
//!
//! Scope: an agency or subscriber principal manages only its own agency's
//! subscriptions, whose filters may name only its own agency; the office and
//! admins manage any. Someone else's subscription is NOT_FOUND, not
//! PERMISSION_DENIED: its existence is not told.

use std::sync::Arc;

use dondoc_contracts::notifications::v1::subscription::Channel;
use dondoc_contracts::notifications::v1::subscription_service_server::SubscriptionService;
use dondoc_contracts::notifications::v1::{self as pb, *};
use dondoc_errors::{Error, Violations};
use dondoc_identity::{Principal, principal};
use dondoc_server::convert::{agency_code, resource_id, stamp, timestamp};
use dondoc_server::listing::{Op, PageSize, decode_page_token, paginate, parse_filter};
use dondoc_server::mutation::Mutation;
use tonic::{Request, Response, Status};

use crate::State;
use crate::domain::subscription::Scope;
use crate::domain::webhook;
use crate::storage::deliveries::{self, StoredDelivery};
use crate::storage::subscriptions::{self, NewSubscription, StoredSubscription};

pub struct Subscriptions(pub Arc<State>);

const PAGE: PageSize = PageSize {
    default: 50,
    max: 500,
};

fn storage(e: sqlx::Error) -> Error {
    dondoc_database::storage_error(e)
}

/// The caller's scope.
pub(crate) fn scope_of(p: &Principal) -> Scope {
    Scope::of(p.reads_all(), p.agency.as_deref())
}

/// The kind names of a filter.
pub(crate) fn kind_names(kinds: &[i32], field: &str) -> Result<Vec<String>, Error> {
    let mut v = Violations::new();
    let mut names = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        match pb::NotificationKind::try_from(*k) {
            Ok(pb::NotificationKind::Unspecified) | Err(_) => {
                v.add(format!("{field}[{i}]"), "not a notification kind")
            }
            Ok(kind) => names.push(
                kind.as_str_name()
                    .trim_start_matches("NOTIFICATION_KIND_")
                    .to_string(),
            ),
        }
    }
    v.finish()?;
    Ok(names)
}

fn kind_values(names: &[String]) -> Vec<i32> {
    names
        .iter()
        .filter_map(|n| pb::NotificationKind::from_str_name(&format!("NOTIFICATION_KIND_{n}")))
        .map(|k| k as i32)
        .collect()
}

/// The subscription as the caller sees it; the webhook secret only when
/// `secret` (creation).
fn to_pb(s: &StoredSubscription, secret: bool) -> Subscription {
    let channel = match s.channel.as_str() {
        "WEBHOOK" => Channel::Webhook(WebhookChannel {
            url: s.webhook_url.clone().unwrap_or_default(),
            secret: if secret {
                s.secret.clone().unwrap_or_default()
            } else {
                String::new()
            },
            disabled: s.disabled,
        }),
        "EMAIL" => Channel::Email(EmailChannel {
            addresses: s.email_addresses.clone(),
        }),
        _ => Channel::Stream(StreamChannel {}),
    };
    Subscription {
        name: format!("subscriptions/{}", s.id),
        subscriber: format!("agencies/{}", s.subscriber),
        filter: Some(SubscriptionFilter {
            agencies: s.agencies.iter().map(|a| format!("agencies/{a}")).collect(),
            kinds: kind_values(&s.kinds),
            key_tasks_only: s.key_tasks_only,
            directive: s.directive.clone(),
        }),
        channel: Some(channel),
        create_stamp: Some(stamp(
            &s.created_by,
            s.created_agency.as_deref(),
            s.created_at,
        )),
    }
}

fn delivery_to_pb(d: &StoredDelivery) -> Delivery {
    Delivery {
        name: format!("subscriptions/{}/deliveries/{}", d.subscription_id, d.id),
        notification: format!("notifications/{}", d.notification_id),
        state: match d.state.as_str() {
            "PENDING" => DeliveryState::Pending,
            "DELIVERED" => DeliveryState::Delivered,
            "DEAD_LETTER" => DeliveryState::DeadLetter,
            _ => DeliveryState::Unspecified,
        } as i32,
        attempts: d.attempts,
        last_result: d.last_result.clone(),
        next_attempt_time: (d.state == "PENDING").then(|| timestamp(d.next_attempt_at)),
        update_stamp: Some(stamp("services/notifications", None, d.updated_at)),
    }
}

/// True when the caller may see and manage `s`.
pub(crate) fn may_manage(p: &Principal, s: &StoredSubscription) -> bool {
    p.reads_all() || p.agency.as_deref() == Some(s.subscriber.as_str())
}

impl Subscriptions {
    /// Reads a subscription the caller may manage; NOT_FOUND otherwise.
    async fn visible(
        &self,
        p: &Principal,
        name: &str,
        field: &str,
    ) -> Result<StoredSubscription, Error> {
        let id = resource_id(name, "subscriptions", field)
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let saved = self
            .0
            .hot
            .run(async |conn| subscriptions::get(conn, id).await)
            .await?;
        match saved {
            Some(s) if may_manage(p, &s) => Ok(s),
            _ => Err(Error::NotFound {
                resource: "subscription",
                name: name.to_string(),
            }),
        }
    }
}

#[tonic::async_trait]
impl SubscriptionService for Subscriptions {
    async fn create_subscription(
        &self,
        request: Request<CreateSubscriptionRequest>,
    ) -> Result<Response<CreateSubscriptionResponse>, Status> {
        let p = principal(&request)?;
        let request = request.into_inner();
        let Some(sub) = request.subscription else {
            return Err(Error::invalid("subscription", "required").into());
        };
        let mut v = Violations::new();
        // The subscriber: the caller's own agency unless it reads everything.
        let subscriber = if sub.subscriber.is_empty() {
            match &p.agency {
                Some(own) => Some(own.clone()),
                None => {
                    v.add("subscription.subscriber", "name the subscribing agency");
                    None
                }
            }
        } else {
            match agency_code(&sub.subscriber, "subscription.subscriber") {
                Ok(code) => Some(code),
                Err(e) => {
                    v.extend_under("", vec![e]);
                    None
                }
            }
        };
        let filter = sub.filter.unwrap_or_default();
        let mut agencies = Vec::new();
        for (i, a) in filter.agencies.iter().enumerate() {
            match agency_code(a, &format!("subscription.filter.agencies[{i}]")) {
                Ok(code) => agencies.push(code),
                Err(e) => v.extend_under("", vec![e]),
            }
        }
        let kinds = match kind_names(&filter.kinds, "subscription.filter.kinds") {
            Ok(k) => k,
            Err(Error::InvalidArgument(vs)) => {
                v.extend_under("", vs);
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        if !filter.directive.is_empty()
            && let Err(e) = resource_id(
                &filter.directive,
                "directives",
                "subscription.filter.directive",
            )
        {
            v.extend_under("", vec![e]);
        }
        let settings = &self.0.delivery;
        let (channel, webhook_url, secret, addresses) = match sub.channel {
            None | Some(Channel::Stream(_)) => ("STREAM", None, None, Vec::new()),
            Some(Channel::Webhook(w)) => {
                if w.url.is_empty() {
                    v.add("subscription.webhook.url", "required");
                } else if let Err(why) = settings.allow_list.check(&w.url) {
                    v.add("subscription.webhook.url", why);
                }
                let secret = if w.secret.is_empty() {
                    webhook::generate_secret()
                } else {
                    match webhook::secret_key(&w.secret) {
                        Ok(key)
                            if w.secret.starts_with(webhook::SECRET_PREFIX)
                                && (24..=64).contains(&key.len()) =>
                        {
                            w.secret.clone()
                        }
                        _ => {
                            v.add(
                                "subscription.webhook.secret",
                                "leave empty, or give whsec_ and the base64 of 24 to 64 random bytes",
                            );
                            String::new()
                        }
                    }
                };
                ("WEBHOOK", Some(w.url), Some(secret), Vec::new())
            }
            Some(Channel::Email(e)) => {
                if settings.smtp.is_none() {
                    return Err(Error::precondition(
                        "EMAIL_NOT_CONFIGURED",
                        "email is not configured: this deployment has no SMTP server",
                    )
                    .into());
                }
                if e.addresses.is_empty() {
                    v.add("subscription.email.addresses", "at least one address");
                }
                for (i, a) in e.addresses.iter().enumerate() {
                    if a.parse::<lettre::Address>().is_err() {
                        v.add(
                            format!("subscription.email.addresses[{i}]"),
                            "not an e-mail address",
                        );
                    }
                }
                ("EMAIL", None, None, e.addresses)
            }
        };
        v.finish()?;
        let subscriber = subscriber.unwrap_or_default();
        let caller = scope_of(&p);
        if !caller.allows(&subscriber) {
            return Err(Error::denied(
                "AGENCY_OUT_OF_SCOPE",
                format!("agencies/{subscriber} is outside your scope"),
            )
            .into());
        }
        // The subscription's scope is the subscriber's: everything only when
        // a reading role subscribes for its own agency.
        let scope_all = p.reads_all() && p.agency.as_deref() == Some(subscriber.as_str());
        let scope = if scope_all {
            Scope::All
        } else {
            Scope::Agency(subscriber.clone())
        };
        if let Err(i) = scope.check_agencies(&agencies) {
            return Err(Error::denied(
                "AGENCY_OUT_OF_SCOPE",
                format!(
                    "subscription.filter.agencies[{i}]: agencies/{} is outside the subscriber's scope",
                    agencies[i]
                ),
            )
            .into());
        }
        let mut m = Mutation::begin(
            &self.0.hot,
            "CreateSubscription",
            &p.subject,
            &request.request_id,
        )
        .await?;
        if let Some(previous) = m.previous::<CreateSubscriptionResponse>()? {
            return Ok(Response::new(previous));
        }
        let stored = subscriptions::create(
            m.conn(),
            &NewSubscription {
                subscriber,
                scope_all,
                agencies,
                kinds,
                key_tasks_only: filter.key_tasks_only,
                directive: filter.directive,
                channel,
                webhook_url,
                secret,
                email_addresses: addresses,
                created_by: p.subject.clone(),
                created_agency: p.agency.clone(),
                created_at: self.0.clock.now(),
            },
        )
        .await?;
        let response = CreateSubscriptionResponse {
            subscription: Some(to_pb(&stored, true)),
        };
        m.commit(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_subscription(
        &self,
        request: Request<GetSubscriptionRequest>,
    ) -> Result<Response<GetSubscriptionResponse>, Status> {
        let p = principal(&request)?;
        let s = self.visible(&p, &request.get_ref().name, "name").await?;
        Ok(Response::new(GetSubscriptionResponse {
            subscription: Some(to_pb(&s, false)),
        }))
    }

    async fn list_subscriptions(
        &self,
        request: Request<ListSubscriptionsRequest>,
    ) -> Result<Response<ListSubscriptionsResponse>, Status> {
        let p = principal(&request)?;
        let request = request.into_inner();
        let limit = PAGE.resolve(request.page_size)?;
        // The caller's own agency's; every one for a reading role acting for none.
        let subscriber = match (&p.agency, p.reads_all()) {
            (Some(own), _) => Some(own.clone()),
            (None, true) => None,
            (None, false) => {
                return Ok(Response::new(ListSubscriptionsResponse::default()));
            }
        };
        let query = format!("subscriptions|{}", subscriber.clone().unwrap_or_default());
        let after: i64 = decode_page_token(&query, &request.page_token)?.unwrap_or(0);
        let rows = self
            .0
            .hot
            .run(async |conn| {
                subscriptions::list(conn, subscriber.as_deref(), after, limit + 1).await
            })
            .await?;
        let (page, next_page_token) = paginate(rows, limit, &query, |last| last.id);
        Ok(Response::new(ListSubscriptionsResponse {
            subscriptions: page.iter().map(|s| to_pb(s, false)).collect(),
            next_page_token,
        }))
    }

    async fn delete_subscription(
        &self,
        request: Request<DeleteSubscriptionRequest>,
    ) -> Result<Response<DeleteSubscriptionResponse>, Status> {
        let p = principal(&request)?;
        let s = self.visible(&p, &request.get_ref().name, "name").await?;
        let mut tx = self.0.hot.begin().await.map_err(storage)?;
        subscriptions::delete(&mut tx, s.id, self.0.clock.now()).await?;
        tx.commit().await.map_err(storage)?;
        Ok(Response::new(DeleteSubscriptionResponse {}))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<RotateWebhookSecretRequest>,
    ) -> Result<Response<RotateWebhookSecretResponse>, Status> {
        let p = principal(&request)?;
        let s = self.visible(&p, &request.get_ref().name, "name").await?;
        if s.channel != "WEBHOOK" {
            return Err(Error::precondition(
                "NOT_A_WEBHOOK",
                "only webhook subscriptions have a secret",
            )
            .into());
        }
        let secret = webhook::generate_secret();
        let until = self.0.clock.now()
            + chrono::Duration::from_std(self.0.delivery.secret_overlap)
                .unwrap_or(chrono::Duration::zero());
        let mut tx = self.0.hot.begin().await.map_err(storage)?;
        subscriptions::rotate_secret(&mut tx, s.id, &secret, until).await?;
        tx.commit().await.map_err(storage)?;
        Ok(Response::new(RotateWebhookSecretResponse {
            secret,
            previous_valid_until: Some(timestamp(until)),
        }))
    }

    async fn list_deliveries(
        &self,
        request: Request<ListDeliveriesRequest>,
    ) -> Result<Response<ListDeliveriesResponse>, Status> {
        let p = principal(&request)?;
        let request = request.into_inner();
        let s = self.visible(&p, &request.parent, "parent").await?;
        let limit = PAGE.resolve(request.page_size)?;
        let mut state = None;
        for c in parse_filter(&request.filter, &["state"])? {
            let value = c.value.trim_start_matches("DELIVERY_STATE_");
            match (c.op, value) {
                (Op::Eq, "PENDING" | "DELIVERED" | "DEAD_LETTER") => {
                    state = Some(value.to_string())
                }
                _ => {
                    return Err(Error::invalid(
                        "filter",
                        "state takes = PENDING, DELIVERED or DEAD_LETTER",
                    )
                    .into());
                }
            }
        }
        let query = format!("deliveries|{}|{}", s.id, request.filter);
        let after: i64 = decode_page_token(&query, &request.page_token)?.unwrap_or(0);
        let rows = self
            .0
            .hot
            .run(async |conn| {
                deliveries::list(conn, s.id, state.as_deref(), after, limit + 1).await
            })
            .await?;
        let (page, next_page_token) = paginate(rows, limit, &query, |last| last.id);
        Ok(Response::new(ListDeliveriesResponse {
            deliveries: page.iter().map(delivery_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn replay_deliveries(
        &self,
        request: Request<ReplayDeliveriesRequest>,
    ) -> Result<Response<ReplayDeliveriesResponse>, Status> {
        let p = principal(&request)?;
        let request = request.into_inner();
        let s = self.visible(&p, &request.parent, "parent").await?;
        let mut ids = Vec::new();
        let mut v = Violations::new();
        for (i, name) in request.names.iter().enumerate() {
            let id = name
                .strip_prefix(&format!("subscriptions/{}/deliveries/", s.id))
                .and_then(|id| id.parse::<i64>().ok());
            match id {
                Some(id) => ids.push(id),
                None => v.add(
                    format!("names[{i}]"),
                    format!("{name:?} is not a delivery of {}", request.parent),
                ),
            }
        }
        v.finish()?;
        let now = self.0.clock.now();
        let mut tx = self.0.hot.begin().await.map_err(storage)?;
        // A replay is the owner saying the endpoint works again.
        subscriptions::enable(&mut tx, s.id).await?;
        let replayed = deliveries::replay(
            &mut tx,
            s.id,
            (!ids.is_empty()).then_some(ids.as_slice()),
            now,
        )
        .await?;
        tx.commit().await.map_err(storage)?;
        self.0.notifications.wake();
        Ok(Response::new(ReplayDeliveriesResponse {
            replayed: replayed as i32,
        }))
    }
}
