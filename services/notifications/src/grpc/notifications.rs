//! NotificationService: the stream, the inbox, read state.

use std::sync::Arc;

use dondoc_contracts::notifications::v1::notification_service_server::NotificationService;
use dondoc_contracts::notifications::v1::{self as pb, *};
use dondoc_errors::Error;
use dondoc_events::{Cursor, Followed};
use dondoc_identity::{Principal, principal};
use dondoc_server::convert::{agency_code, opt_date_to_pb, resource_id, timestamp};
use dondoc_server::listing::{Op, PageSize, decode_page_token, paginate, parse_filter};
use dondoc_server::streams::ResponseStream;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use dondoc_contracts::notifications::v1::notification_service_server::NotificationServiceServer;
use dondoc_contracts::service_names;
use futures::StreamExt;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::wire;
use crate::State;
use crate::domain::subscription::{self, Filter, Scope};
use crate::storage::notifications::{self, StoredNotification, StreamFilter};
use crate::storage::subscriptions;

pub struct Notifications(pub Arc<State>);

const PAGE: PageSize = PageSize {
    default: 50,
    max: 500,
};

fn kind_to_pb(kind: &str) -> i32 {
    pb::NotificationKind::from_str_name(&format!("NOTIFICATION_KIND_{kind}"))
        .unwrap_or(pb::NotificationKind::Unspecified) as i32
}

pub(super) fn to_pb(n: &StoredNotification) -> Notification {
    Notification {
        name: format!("notifications/{}", n.notification_id),
        notification_id: n.notification_id.to_string(),
        kind: kind_to_pb(&n.kind),
        recipient: format!("agencies/{}", n.recipient),
        task: n.task_id.map(|t| format!("tasks/{t}")).unwrap_or_default(),
        directive_number: n.directive_number.clone(),
        lead_agency: if n.lead_agency.is_empty() {
            String::new()
        } else {
            format!("agencies/{}", n.lead_agency)
        },
        due_date: opt_date_to_pb(n.due_date),
        key_task: n.key_task,
        title: n.title.clone(),
        body: n.body.clone(),
        create_time: Some(timestamp(n.notified_at)),
        read: n.read,
        cursor: n.cursor.to_string(),
    }
}

/// The agency whose notifications the caller asks for, within its scope:
/// agencies and subscribers only their own; reading roles any.
fn scoped_agency(principal: &Principal, requested: &str, field: &str) -> Result<String, Error> {
    let own = principal.agency.clone();
    let wanted = if requested.is_empty() {
        own.clone()
            .ok_or_else(|| Error::invalid(field, "name the agency: the caller acts for none"))?
    } else {
        agency_code(requested, field).map_err(|v| Error::InvalidArgument(vec![v]))?
    };
    if principal.reads_all() || own.as_deref() == Some(wanted.as_str()) {
        Ok(wanted)
    } else {
        Err(Error::denied(
            "AGENCY_OUT_OF_SCOPE",
            format!("agencies/{wanted} is outside your scope"),
        ))
    }
}

impl Notifications {
    /// The stream a Subscribe call asks for: its filter within the caller's
    /// scope, started at a resume point checked against the horizon.
    async fn open_stream(&self, request: Request<SubscribeRequest>) -> Result<wire::Source, Error> {
        let principal = principal(&request)?;
        let request = request.into_inner();
        let filter = if request.subscription.is_empty() {
            let agency = scoped_agency(&principal, &request.agency, "agency")?;
            StreamFilter {
                recipients: Some(vec![agency]),
                ..Default::default()
            }
        } else {
            self.saved_filter(&principal, &request.subscription, &request.agency)
                .await?
        };
        let after = Cursor::parse_field(&request.after_cursor, "after_cursor")?;
        let state = &self.0;
        let start = state.hub.resume_point(after).await?;
        Ok(Box::pin(state.hub.pages(filter, start)))
    }

    /// The stream filter of a saved subscription: its filter within the
    /// subscriber's scope, within the caller's (and within `agency`, when
    /// named). Someone else's subscription is NOT_FOUND.
    async fn saved_filter(
        &self,
        principal: &Principal,
        name: &str,
        agency: &str,
    ) -> Result<StreamFilter, Error> {
        let id = resource_id(name, "subscriptions", "subscription")
            .map_err(|v| Error::InvalidArgument(vec![v]))?;
        let saved = self
            .0
            .hot
            .run(async |conn| subscriptions::get(conn, id).await)
            .await?
            .filter(|s| crate::grpc::subscriptions::may_manage(principal, s))
            .ok_or_else(|| Error::NotFound {
                resource: "subscription",
                name: name.to_string(),
            })?;
        let scope = if saved.scope_all && principal.reads_all() {
            Scope::All
        } else {
            Scope::Agency(saved.subscriber.clone())
        };
        let mut recipients = subscription::recipients(
            &scope,
            &Filter {
                agencies: saved.agencies.clone(),
                kinds: saved.kinds.clone(),
                key_tasks_only: saved.key_tasks_only,
                directive: saved.directive.clone(),
            },
        );
        if !agency.is_empty() {
            let only = scoped_agency(principal, agency, "agency")?;
            recipients = Some(match recipients {
                None => vec![only],
                Some(list) => list.into_iter().filter(|a| *a == only).collect(),
            });
        }
        Ok(StreamFilter {
            recipients,
            kinds: saved.kinds,
            key_tasks_only: saved.key_tasks_only,
            directive: saved.directive,
        })
    }
}

#[tonic::async_trait]
impl NotificationService for Notifications {
    type SubscribeStream = ResponseStream<SubscribeResponse>;

    /// Served by [`NotificationRoutes`] in wire form; this is the same
    /// stream message by message, for callers of the generated server (a
    /// test in `wire.rs` checks that the two send the same).
    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let clock = self.0.clock.clone();
        let pages = self.open_stream(request).await?;
        let stream = crate::hub::one_at_a_time(pages).map(move |item| match item {
            Ok(Followed::Item(_, n)) => Ok(wire::notification_message(&n)),
            Ok(Followed::Checkpoint(cursor)) => Ok(wire::checkpoint_message(cursor, &clock)),
            Err(e) => Err(Status::from(dondoc_database::storage_error(e))),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_notifications(
        &self,
        request: Request<ListNotificationsRequest>,
    ) -> Result<Response<ListNotificationsResponse>, Status> {
        let principal = principal(&request)?;
        let request = request.into_inner();
        let agency = scoped_agency(&principal, &request.parent, "parent")?;
        let limit = PAGE.resolve(request.page_size)?;
        let mut unread_only = false;
        for c in parse_filter(&request.filter, &["read"])? {
            match (c.op, c.value.as_str()) {
                (Op::Eq, "false") => unread_only = true,
                (Op::Eq, "true") => {
                    return Err(Error::invalid("filter", "only read = false is supported").into());
                }
                _ => return Err(Error::invalid("filter", "read takes = false").into()),
            }
        }
        let scope = format!("{}|{agency}", request.filter);
        let before: Option<(String, i64)> = decode_page_token(&scope, &request.page_token)?;
        let (rows, latest) = self
            .0
            .hot
            .run(async |conn| {
                let rows =
                    notifications::inbox(conn, &agency, unread_only, before, limit + 1).await?;
                // The cursor to subscribe after: everything visible now has been listed.
                let latest: Option<String> = sqlx::query_scalar(
                    "SELECT tx_id::text || '-' || id FROM notifications WHERE recipient = $1 ORDER BY tx_id DESC, id DESC LIMIT 1",
                )
                .bind(&agency)
                .fetch_optional(conn)
                .await
                .map_err(dondoc_database::storage_error)?;
                Ok((rows, latest))
            })
            .await?;
        let (page, next_page_token) = paginate(rows, limit, &scope, |last| {
            (last.cursor.tx.to_string(), last.cursor.id)
        });
        Ok(Response::new(ListNotificationsResponse {
            notifications: page.iter().map(to_pb).collect(),
            next_page_token,
            latest_cursor: latest.unwrap_or_default(),
        }))
    }

    async fn mark_notifications_read(
        &self,
        request: Request<MarkNotificationsReadRequest>,
    ) -> Result<Response<MarkNotificationsReadResponse>, Status> {
        let principal = principal(&request)?;
        let mut ids = Vec::new();
        for (i, name) in request.get_ref().names.iter().enumerate() {
            let id = name
                .strip_prefix("notifications/")
                .and_then(|id| id.parse::<uuid::Uuid>().ok())
                .ok_or_else(|| {
                    Error::invalid(
                        format!("names[{i}]"),
                        format!("{name:?} is not notifications/{{id}}"),
                    )
                })?;
            ids.push(id);
        }
        let own = if principal.reads_all() {
            None
        } else {
            Some(
                principal
                    .agency
                    .clone()
                    .ok_or_else(|| Error::denied("NO_AGENCY", "the caller acts for no agency"))?,
            )
        };
        let now = self.0.clock.now();
        let updated = self
            .0
            .hot
            .run(async |conn| notifications::mark_read(conn, own.as_deref(), &ids, now).await)
            .await?;
        Ok(Response::new(MarkNotificationsReadResponse {
            updated: updated as i32,
        }))
    }
}

/// The NotificationService routes, with `Subscribe` served in wire form:
/// the same handler as the generated one, but each notification is encoded
/// once for every stream it goes to (by far the most common message).
#[derive(Clone)]
pub(crate) struct NotificationRoutes {
    generated: NotificationServiceServer<Notifications>,
    state: Arc<State>,
}

impl NotificationRoutes {
    pub(crate) fn new(state: Arc<State>) -> Self {
        Self {
            generated: NotificationServiceServer::new(Notifications(state.clone())),
            state,
        }
    }
}

impl NamedService for NotificationRoutes {
    const NAME: &'static str = service_names::NOTIFICATION;
}

pub(crate) const SUBSCRIBE_PATH: &str = "/dondoc.notifications.v1.NotificationService/Subscribe";

impl tower::Service<http::Request<tonic::body::Body>> for NotificationRoutes {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != SUBSCRIBE_PATH {
            return Box::pin(self.generated.call(request));
        }
        let handler = Notifications(self.state.clone());
        Box::pin(async move {
            let opened = match wire::request(request).await {
                Ok(request) => handler.open_stream(request).await.map_err(Status::from),
                Err(status) => Err(status),
            };
            Ok(wire::response(opened, handler.0.clock.clone()))
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
