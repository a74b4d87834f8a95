//! `request_id` support: a mutation that carries one stores its answer in the
//! same transaction as its effects; a retry with the same id (from the same
//! principal, to the same method) gets that first answer back and changes
//! nothing.

use sqlx::PgConnection;

/// Identifies one idempotent request.
#[derive(Debug, Clone)]
pub struct RequestKey<'a> {
    /// Full gRPC method, e.g. "/dondoc.directives.v1.DirectiveService/IssueDirective".
    pub method: &'a str,
    /// The caller's subject: two callers' ids never collide.
    pub principal: &'a str,
    /// The caller's request id.
    pub request_id: &'a str,
}

/// Claims the key for this transaction, or returns the answer stored by the
/// transaction that claimed it first. A concurrent duplicate waits here
/// until the first one commits (then gets its answer) or aborts (then
/// claims the key itself).
///
/// The claim is the key's row, inserted without an answer: its primary key
/// is the lock, and a first request costs one statement.
pub async fn recall(
    tx: &mut PgConnection,
    key: &RequestKey<'_>,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (method, principal, request_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(key.method)
    .bind(key.principal)
    .bind(key.request_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        return Ok(None);
    }
    // Committed by another transaction, which stored its answer with it.
    let stored: Option<Option<Vec<u8>>> = sqlx::query_scalar(
        "SELECT response FROM idempotency_keys WHERE method = $1 AND principal = $2 AND request_id = $3",
    )
    .bind(key.method)
    .bind(key.principal)
    .bind(key.request_id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(stored.flatten())
}

/// Stores the answer to a request, claimed by [`recall`] in the same
/// transaction, with its effects.
pub async fn remember(
    tx: &mut PgConnection,
    key: &RequestKey<'_>,
    response: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET response = $4 WHERE method = $1 AND principal = $2 AND request_id = $3",
    )
    .bind(key.method)
    .bind(key.principal)
    .bind(key.request_id)
    .bind(response)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
