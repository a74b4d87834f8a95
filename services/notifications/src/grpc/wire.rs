//! `Subscribe` in wire form, its hot path: a fan-out sends the same
//! notification to thousands of streams.
//!
//! * A notification is encoded once for every stream it goes to
//!   ([`StreamedNotification::wire`]).
//! * Whatever a stream has at once (the page the hub handed it) is framed
//!   with gRPC's five-byte prefix straight into one buffer and goes out as
//!   one HTTP/2 DATA frame. tonic's `EncodeBody` would poll a stream, clone
//!   and copy once per message, and keeps an 8 KiB buffer per stream: idle
//!   streams took 4.7 KB each in place of 13.4 KB, and with `Hub::pages` a
//!   delivery took about 0.6 of the CPU it did (BENCHMARKS.md, round 6).
//!
//! The rest is what tonic's `Grpc::server_streaming` does: the request is
//! decoded with prost, an error before the stream is a trailers-only
//! response, and the stream ends with its status in trailers. Compression
//! is neither offered nor accepted, as on every other route of this server.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use dondoc_contracts::common::v1::Checkpoint;
use dondoc_contracts::notifications::v1::subscribe_response::Item;
use dondoc_contracts::notifications::v1::{SubscribeRequest, SubscribeResponse};
use dondoc_events::{Cursor, Followed};
use dondoc_server::convert::timestamp;
use dondoc_time::Clock;
use futures::Stream;
use http::HeaderMap;
use http_body::Frame;
use prost::Message;
use tonic::codec::Streaming;
use tonic::metadata::GRPC_CONTENT_TYPE;
use tonic::{Request, Status};
use tonic_prost::ProstDecoder;

use crate::hub::{Notifications, StreamedNotification};
use crate::storage::notifications::StoredNotification;

/// What a `Subscribe` stream sends, before framing.
pub(crate) type Source =
    Pin<Box<dyn Stream<Item = Result<Followed<Notifications>, sqlx::Error>> + Send>>;

/// Where a DATA frame is cut when more is ready (tonic's yield threshold).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// gRPC's message prefix: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// The `SubscribeRequest` of an HTTP request, with its metadata and
/// extensions (the caller's principal), as tonic's generated server
/// decodes it.
pub(crate) async fn request(
    request: http::Request<tonic::body::Body>,
) -> Result<Request<SubscribeRequest>, Status> {
    let (parts, body) = request.into_parts();
    if let Some(encoding) = parts.headers.get("grpc-encoding")
        && encoding != "identity"
    {
        return Err(Status::unimplemented(format!(
            "Content is compressed with `{}` which isn't supported",
            String::from_utf8_lossy(encoding.as_bytes())
        )));
    }
    let mut messages = Streaming::new_request(
        ProstDecoder::<SubscribeRequest>::default(),
        body,
        None,
        None,
    );
    let message = messages
        .message()
        .await?
        .ok_or_else(|| Status::internal("Missing request message."))?;
    Ok(Request::from_http(http::Request::from_parts(
        parts, message,
    )))
}

/// The HTTP response of a `Subscribe` call: its stream, or the error that
/// refused it (trailers only).
pub(crate) fn response(
    opened: Result<Source, Status>,
    clock: Clock,
) -> http::Response<tonic::body::Body> {
    match opened {
        Ok(source) => {
            let mut response =
                http::Response::new(dondoc_server::body::status_body(SubscribeBody {
                    source,
                    clock,
                    end: None,
                    ended: false,
                }));
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, GRPC_CONTENT_TYPE);
            response
        }
        Err(status) => status.into_http(),
    }
}

/// The message of one notification.
pub(crate) fn notification_message(n: &StoredNotification) -> SubscribeResponse {
    SubscribeResponse {
        item: Some(Item::Notification(super::notifications::to_pb(n))),
    }
}

/// The message of a checkpoint at `cursor`, stamped with the clock.
pub(crate) fn checkpoint_message(cursor: Cursor, clock: &Clock) -> SubscribeResponse {
    SubscribeResponse {
        item: Some(Item::Checkpoint(Checkpoint {
            cursor: cursor.to_string(),
            time: Some(timestamp(clock.now())),
        })),
    }
}

/// A notification's encoded message, made by the first stream that sends
/// it and shared by the others.
pub(crate) fn encoded(n: &StreamedNotification) -> &Bytes {
    n.wire(|n| notification_message(n).encode_to_vec().into())
}

/// Appends `message` with its gRPC prefix.
fn put_framed(buf: &mut BytesMut, message: &[u8]) {
    buf.put_u8(0);
    // Messages are notifications and checkpoints: far below 4 GiB.
    buf.put_u32(message.len() as u32);
    buf.put_slice(message);
}

/// Appends what a stream yielded, framed.
fn put_item(buf: &mut BytesMut, item: &Followed<Notifications>, clock: &Clock) {
    match item {
        Followed::Item(_, items) => {
            buf.reserve(items.iter().map(|n| PREFIX + encoded(n).len()).sum());
            for n in items.iter() {
                put_framed(buf, encoded(n));
            }
        }
        Followed::Checkpoint(cursor) => {
            put_framed(buf, &checkpoint_message(*cursor, clock).encode_to_vec());
        }
    }
}

/// The response body of a `Subscribe` stream: what is ready, framed into
/// one DATA frame per poll (cut at [`YIELD_THRESHOLD`]), then the status in
/// trailers: OK when the stream ends (shutdown), the storage error's status
/// when a catch-up read fails.
struct SubscribeBody {
    source: Source,
    clock: Clock,
    /// The status to end with, once what was framed before it is sent.
    end: Option<Status>,
    ended: bool,
}

impl http_body::Body for SubscribeBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(status) = this.end.take() {
            this.ended = true;
            return Poll::Ready(Some(trailers(&status)));
        }
        let mut buf = BytesMut::new();
        // Every item frames at least one message, so the loop leaves with
        // something framed, an ending, or both.
        let end = loop {
            match this.source.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(item))) => {
                    put_item(&mut buf, &item, &this.clock);
                    if buf.len() >= YIELD_THRESHOLD {
                        break None;
                    }
                }
                Poll::Ready(Some(Err(e))) => break Some(dondoc_database::storage_error(e).into()),
                Poll::Ready(None) => break Some(Status::ok("")),
                Poll::Pending if buf.is_empty() => return Poll::Pending,
                Poll::Pending => break None,
            }
        };
        this.end = end;
        if !buf.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(buf.freeze()))));
        }
        this.ended = true;
        Poll::Ready(this.end.take().map(|status| trailers(&status)))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

fn trailers(status: &Status) -> Result<Frame<Bytes>, Status> {
    let mut map = HeaderMap::new();
    status.add_header(&mut map)?;
    Ok(Frame::trailers(map))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Buf;
    use chrono::{TimeZone, Utc};
    use http_body::Body as _;
    use http_body_util::BodyExt;

    use super::*;

    fn stored(id: i64) -> Arc<StreamedNotification> {
        StreamedNotification::new(StoredNotification {
            cursor: Cursor { tx: 900, id },
            id,
            notification_id: uuid::Uuid::now_v7(),
            kind: "DUE_SOON".into(),
            recipient: "so-ldtbxh".into(),
            task_id: Some(42),
            directive_number: "534/TB-UBND".into(),
            directive: "directives/3".into(),
            lead_agency: "so-ldtbxh".into(),
            due_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 4),
            key_task: true,
            title: format!("Nhiệm vụ sắp đến hạn {id}"),
            body: "Còn 3 ngày làm việc.".into(),
            notified_at: Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap(),
            read: false,
        })
    }

    fn clock() -> Clock {
        Clock::manual(Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap())
    }

    /// The messages of gRPC-framed bytes, checking every prefix.
    fn unframe(mut data: Bytes) -> Vec<SubscribeResponse> {
        let mut messages = Vec::new();
        while data.has_remaining() {
            assert_eq!(data.get_u8(), 0, "not compressed");
            let len = data.get_u32() as usize;
            messages.push(SubscribeResponse::decode(data.split_to(len)).unwrap());
        }
        messages
    }

    #[test]
    fn a_page_is_framed_as_its_messages_each_encoded_once() {
        let clock = clock();
        let (first, second) = (stored(7), stored(8));
        let checkpoint = Cursor { tx: 901, id: 0 };
        let mut buf = BytesMut::new();
        let page: Notifications = vec![first.clone(), second.clone()].into();
        put_item(&mut buf, &Followed::Item(second.cursor, page), &clock);
        put_item(&mut buf, &Followed::Checkpoint(checkpoint), &clock);
        assert_eq!(
            unframe(buf.freeze()),
            [
                notification_message(&first),
                notification_message(&second),
                checkpoint_message(checkpoint, &clock),
            ]
        );
        // The notification's bytes are kept and shared, not encoded again.
        assert_eq!(encoded(&first).as_ptr(), encoded(&first).as_ptr());
    }

    async fn frames(source: Source) -> (Vec<SubscribeResponse>, HeaderMap, usize) {
        let mut body = SubscribeBody {
            source,
            clock: clock(),
            end: None,
            ended: false,
        };
        let (mut messages, mut data_frames) = (Vec::new(), 0);
        loop {
            let frame = body.frame().await.expect("trailers end the body").unwrap();
            match frame.into_data() {
                Ok(data) => {
                    data_frames += 1;
                    messages.extend(unframe(data));
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().unwrap();
                    assert!(body.is_end_stream());
                    assert!(body.frame().await.is_none(), "nothing after the trailers");
                    return (messages, trailers, data_frames);
                }
            }
        }
    }

    fn http_request(body: tonic::body::Body) -> http::Request<tonic::body::Body> {
        let mut request = http::Request::new(body);
        request.extensions_mut().insert("the caller's principal");
        request
    }

    #[tokio::test]
    async fn the_request_is_decoded_with_its_extensions_or_refused_precisely() {
        let wanted = SubscribeRequest {
            agency: "agencies/so-ldtbxh".into(),
            ..Default::default()
        };
        let mut framed = BytesMut::new();
        put_framed(&mut framed, &wanted.encode_to_vec());
        let body = http_body_util::Full::new(framed.freeze());
        let decoded = request(http_request(tonic::body::Body::new(body)))
            .await
            .unwrap();
        assert_eq!(decoded.get_ref(), &wanted);
        assert_eq!(
            decoded.extensions().get::<&str>(),
            Some(&"the caller's principal")
        );

        let missing = request(http_request(tonic::body::Body::empty()))
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Internal);

        let mut compressed = http_request(tonic::body::Body::empty());
        compressed
            .headers_mut()
            .insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
        let refused = request(compressed).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unimplemented);
        assert!(refused.message().contains("gzip"), "{refused:?}");
    }

    #[tokio::test]
    async fn what_is_ready_goes_in_one_data_frame_then_the_status_in_trailers() {
        let (a, b, c) = (stored(1), stored(2), stored(3));
        let ready = vec![
            Ok(Followed::Item(b.cursor, vec![a.clone(), b.clone()].into())),
            Ok(Followed::Item(c.cursor, vec![c.clone()].into())),
        ];
        let (messages, trailers, data_frames) =
            frames(Box::pin(futures::stream::iter(ready))).await;
        assert_eq!(data_frames, 1);
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[2], notification_message(&c));
        assert_eq!(trailers["grpc-status"], "0");

        // A failed read ends the stream with its status, after what was
        // framed before it.
        let failing = vec![
            Ok(Followed::Item(a.cursor, vec![a.clone()].into())),
            Err(sqlx::Error::PoolTimedOut),
        ];
        let (messages, trailers, _) = frames(Box::pin(futures::stream::iter(failing))).await;
        assert_eq!(messages, [notification_message(&a)]);
        let status = Status::from_header_map(&trailers).unwrap();
        let expected: Status = dondoc_database::storage_error(sqlx::Error::PoolTimedOut).into();
        assert_eq!(status.code(), expected.code());
        assert_ne!(status.code(), tonic::Code::Ok);
    }

    /// The generated `subscribe`, which the service trait requires but the
    /// server never routes to, sends what the wire form sends, message for
    /// message: the same notifications, then the same checkpoint.
    #[tokio::test]
    async fn the_generated_subscribe_sends_what_the_wire_form_sends() {
        use dondoc_contracts::notifications::v1::notification_service_server::NotificationService;
        use dondoc_identity::{Principal, Role};
        use futures::StreamExt;
        use tower::Service;

        use crate::grpc::notifications::{NotificationRoutes, Notifications, SUBSCRIBE_PATH};
        use crate::storage::notifications::{NewNotification, insert};

        let (_database, pool) = dondoc_testing::migrated(
            "notifications",
            &crate::schema(),
            &crate::storage::MIGRATIONS,
        )
        .await;
        let mut tx = pool.begin().await.unwrap();
        // Three for the caller's agency and one for another, which neither
        // form sends.
        for (key, recipient) in [
            ("a", "so-ldtbxh"),
            ("b", "so-yte"),
            ("c", "so-ldtbxh"),
            ("d", "so-ldtbxh"),
        ] {
            let n = NewNotification {
                dedupe_key: key.into(),
                kind: "DUE_SOON".into(),
                recipient: recipient.into(),
                task_id: Some(42),
                directive_number: "534/TB-UBND".into(),
                directive: "directives/3".into(),
                lead_agency: recipient.into(),
                due_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 4),
                key_task: true,
                title: format!("Nhiệm vụ sắp đến hạn {key}"),
                body: "Còn 3 ngày làm việc.".into(),
                notified_at: Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap(),
            };
            assert!(insert(&mut tx, &n).await.unwrap());
        }
        tx.commit().await.unwrap();
        let hub = crate::hub::Hub::start(pool.clone(), Default::default(), 1024)
            .await
            .unwrap();
        let state = Arc::new(crate::State {
            hot: dondoc_database::HotConnections::new(pool),
            clock: clock(),
            notifications: dondoc_events::Wake::new(),
            hub,
            shutdown: Default::default(),
            delivery: Default::default(),
        });
        let principal = Principal {
            subject: "users/lan".into(),
            agency: Some("so-ldtbxh".into()),
            roles: vec![Role::Agency],
        };
        let wanted = SubscribeRequest {
            agency: "agencies/so-ldtbxh".into(),
            ..Default::default()
        };
        let is_checkpoint = |m: &SubscribeResponse| matches!(m.item, Some(Item::Checkpoint(_)));
        let in_time = std::time::Duration::from_secs(10);

        let mut request = Request::new(wanted.clone());
        request.extensions_mut().insert(principal.clone());
        let mut generated = Notifications(state.clone())
            .subscribe(request)
            .await
            .unwrap()
            .into_inner();
        let mut by_message: Vec<SubscribeResponse> = Vec::new();
        while !by_message.iter().any(is_checkpoint) {
            let next = tokio::time::timeout(in_time, generated.next()).await;
            by_message.push(next.expect("in time").expect("open").unwrap());
        }

        let mut framed = BytesMut::new();
        put_framed(&mut framed, &wanted.encode_to_vec());
        let mut http = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(
            framed.freeze(),
        )));
        *http.uri_mut() = http::Uri::from_static(SUBSCRIBE_PATH);
        http.extensions_mut().insert(principal);
        let mut body = NotificationRoutes::new(state)
            .call(http)
            .await
            .unwrap()
            .into_body();
        let mut by_frame = Vec::new();
        while !by_frame.iter().any(is_checkpoint) {
            let frame = tokio::time::timeout(in_time, body.frame()).await;
            let data = frame.expect("in time").expect("open").unwrap();
            by_frame.extend(unframe(data.into_data().expect("a DATA frame")));
        }

        let titles: Vec<_> = by_message
            .iter()
            .filter_map(|m| match &m.item {
                Some(Item::Notification(n)) => Some(n.title.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            titles,
            [
                "Nhiệm vụ sắp đến hạn a",
                "Nhiệm vụ sắp đến hạn c",
                "Nhiệm vụ sắp đến hạn d"
            ]
        );
        assert!(is_checkpoint(&by_message[3]));
        assert_eq!(by_frame, by_message);
    }
}
