//! DirectiveEventService: the gap-free change stream.

use std::sync::Arc;

use dondoc_contracts::common::v1::Checkpoint;
use dondoc_contracts::directives::v1::directive_event_service_server::DirectiveEventService;
use dondoc_contracts::directives::v1::{
    DirectiveEvent, WatchEventsRequest, WatchEventsResponse, watch_events_response::Item,
};
use dondoc_errors::Error;
use dondoc_events::Followed;
use dondoc_identity::principal;
use dondoc_server::convert::timestamp;
use dondoc_server::streams::{ResponseStream, watch_outbox};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::State;
use crate::domain::access;

/// DirectiveEventService over the shared state.
pub struct Events(pub Arc<State>);

#[tonic::async_trait]
impl DirectiveEventService for Events {
    type WatchEventsStream = ResponseStream<WatchEventsResponse>;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let principal = principal(&request)?;
        access::may_watch_events(&principal)?;
        let stream = watch_outbox(
            &self.0.streams,
            &request.get_ref().after_cursor,
            |item, now| {
                Ok(WatchEventsResponse {
                    item: Some(match item {
                        Followed::Item(cursor, stored) => {
                            let mut event = DirectiveEvent::decode(stored.payload.as_slice())
                                .map_err(|e| {
                                    Error::internal(format!("undecodable outbox row: {e}"))
                                })?;
                            event.cursor = cursor.to_string();
                            event.event_id = stored.event_id.to_string();
                            event.occur_time = Some(timestamp(stored.created_at));
                            Item::Event(event)
                        }
                        Followed::Checkpoint(cursor) => Item::Checkpoint(Checkpoint {
                            cursor: cursor.to_string(),
                            time: Some(timestamp(now)),
                        }),
                    }),
                })
            },
        )
        .await?;
        Ok(Response::new(stream))
    }
}
