//! Response bodies as tonic's [`Body`] with nothing in between.

use bytes::Bytes;
use http_body_util::BodyExt as _;
use tonic::Status;
use tonic::body::Body;

/// `body`, whose errors are already statuses, as a tonic [`Body`].
/// [`Body::new`] keeps a boxed body of statuses as it is, but wraps any other
/// body in a layer that maps its errors to statuses again, and every frame
/// of every call passes through it: twice on a service's responses (the
/// handler's body, then the observing layer's), once more on the gateway's.
/// tonic's server adds one of its own, which is out of reach.
pub fn status_body<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes, Error = Status> + Send + 'static,
{
    Body::new(body.boxed_unsync())
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;
    use http_body_util::{BodyExt as _, Full};

    use super::*;

    #[tokio::test]
    async fn frames_and_errors_pass_as_they_are() {
        let body = status_body(Full::new(Bytes::from_static(b"framed")).map_err(|e| match e {}));
        assert_eq!(
            body.collect().await.unwrap().to_bytes(),
            Bytes::from_static(b"framed")
        );
        let failing = http_body_util::StreamBody::new(futures::stream::iter([Err::<
            http_body::Frame<Bytes>,
            Status,
        >(
            Status::data_loss("cut"),
        )]));
        let error = status_body(failing).collect().await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (tonic::Code::DataLoss, "cut")
        );
        assert!(status_body(http_body_util::Empty::new().map_err(|e| match e {})).is_end_stream());
    }
}
