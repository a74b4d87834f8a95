//! The transaction of one mutation, with `request_id` idempotency: a retry
//! with the same id gets the first answer and changes nothing.

use dondoc_database::idempotency::{self, RequestKey};
use dondoc_database::{HotConnections, HotTransaction, storage_error};
use dondoc_errors::Error;
use sqlx::PgConnection;
use tracing::Instrument as _;

/// An open mutation.
#[derive(Debug)]
pub struct Mutation {
    tx: HotTransaction,
    key: Option<(String, String, String)>,
    previous: Option<Vec<u8>>,
    /// `db.transaction`, from begin to commit (or drop), under the call's
    /// server span.
    span: tracing::Span,
}

impl Mutation {
    /// Begins the mutation of `method` by `principal`. With a non-empty
    /// `request_id`, a stored answer is looked up (and the id locked).
    pub async fn begin(
        hot: &HotConnections,
        method: &str,
        principal: &str,
        request_id: &str,
    ) -> Result<Self, Error> {
        let span = tracing::info_span!(
            "db.transaction",
            otel.name = %format!("BEGIN {}", method.rsplit('/').next().unwrap_or(method)),
            otel.kind = "client",
            db.system = "postgresql",
            db.operation = "transaction",
        );
        let begun = Self::begin_in(hot, method, principal, request_id, span.clone());
        begun.instrument(span).await
    }

    async fn begin_in(
        hot: &HotConnections,
        method: &str,
        principal: &str,
        request_id: &str,
        span: tracing::Span,
    ) -> Result<Self, Error> {
        if request_id.len() > 128 {
            return Err(Error::invalid("request_id", "at most 128 characters"));
        }
        let mut tx = hot.begin().await.map_err(storage_error)?;
        let mut previous = None;
        let key = if request_id.is_empty() {
            None
        } else {
            previous = idempotency::recall(
                &mut tx,
                &RequestKey {
                    method,
                    principal,
                    request_id,
                },
            )
            .await
            .map_err(storage_error)?;
            Some((
                method.to_string(),
                principal.to_string(),
                request_id.to_string(),
            ))
        };
        Ok(Self {
            tx,
            key,
            previous,
            span,
        })
    }

    /// The first answer to this request, when it is a retry.
    pub fn previous<T: prost::Message + Default>(&self) -> Result<Option<T>, Error> {
        self.previous
            .as_deref()
            .map(|bytes| T::decode(bytes).map_err(Error::internal))
            .transpose()
    }

    /// The mutation's `db.transaction` span: instrument its statements with
    /// it to nest them under the transaction.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The transaction, for the mutation's own statements.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Stores the answer (when a request id was given) and commits.
    pub async fn commit<T: prost::Message>(self, response: &T) -> Result<(), Error> {
        let span = self.span.clone();
        self.commit_in(response).instrument(span).await
    }

    async fn commit_in<T: prost::Message>(mut self, response: &T) -> Result<(), Error> {
        if let Some((method, principal, request_id)) = &self.key {
            idempotency::remember(
                &mut self.tx,
                &RequestKey {
                    method,
                    principal,
                    request_id,
                },
                &response.encode_to_vec(),
            )
            .await
            .map_err(storage_error)?;
        }
        self.tx.commit().await.map_err(storage_error)
    }
}
