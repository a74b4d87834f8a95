//! Stream positions.

use std::fmt;

use sqlx::PgConnection;

/// A position on a gap-free stream: the writing transaction and the row id.
/// Everything at or before it has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    /// Writing transaction (`xid8`).
    pub tx: i64,
    /// Row id within the table.
    pub id: i64,
}

impl Cursor {
    /// Before everything.
    pub const START: Cursor = Cursor { tx: 0, id: 0 };

    /// Parses the opaque form; empty means [`Cursor::START`].
    pub fn parse(text: &str) -> Option<Cursor> {
        if text.is_empty() {
            return Some(Cursor::START);
        }
        let (tx, id) = text.split_once('-')?;
        let cursor = Cursor {
            tx: tx.parse().ok()?,
            id: id.parse().ok()?,
        };
        (cursor.tx >= 0 && cursor.id >= 0).then_some(cursor)
    }

    /// Parses a request field, naming it in the error.
    pub fn parse_field(text: &str, field: &str) -> Result<Cursor, dondoc_errors::Error> {
        Cursor::parse(text).ok_or_else(|| {
            dondoc_errors::Error::invalid(field, "not a cursor returned by this stream")
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.tx, self.id)
    }
}

/// What one read may serve: rows after `after` written by transactions below
/// `xmin`, all of which have finished. Bind it as `$1, $2, $3` into
/// `(tx_id, id) > ($1::text::xid8, $2) AND tx_id < $3::text::xid8`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Serve rows strictly after this.
    pub after: Cursor,
    /// The oldest transaction still running when the read began.
    pub xmin: i64,
}

/// The SQL condition that selects a [`Window`]'s rows, with the window bound
/// as `$1` (tx as text), `$2` (id) and `$3` (xmin as text).
pub const WINDOW_CONDITION: &str = "(tx_id, id) > ($1::text::xid8, $2) AND tx_id < $3::text::xid8";

impl Window {
    /// Opens a window after `after` on `conn`.
    pub async fn open(conn: &mut PgConnection, after: Cursor) -> Result<Window, sqlx::Error> {
        let xmin: String =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
                .fetch_one(conn)
                .await?;
        // xid8 values are 64-bit epoch-extended ids, far below i64::MAX in practice.
        let xmin = xmin
            .parse::<i64>()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Window { after, xmin })
    }

    /// The window's bind values: after.tx, after.id, xmin.
    pub fn binds(&self) -> (String, i64, String) {
        (
            self.after.tx.to_string(),
            self.after.id,
            self.xmin.to_string(),
        )
    }

    /// How far a read over this window has looked: the last row it returned
    /// when the page was full; otherwise everything below xmin, since no
    /// transaction below it can still add rows.
    pub fn scanned_to(&self, last: Option<Cursor>, page_full: bool) -> Cursor {
        match (last, page_full) {
            (Some(last), true) => last,
            _ => {
                let everything_below_xmin = Cursor {
                    tx: self.xmin - 1,
                    id: i64::MAX,
                };
                everything_below_xmin
                    .max(self.after)
                    .max(last.unwrap_or(Cursor::START))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_order_by_transaction_then_row() {
        let a = Cursor { tx: 10, id: 99 };
        let b = Cursor { tx: 11, id: 1 };
        assert!(a < b);
        assert_eq!(Cursor::parse(&a.to_string()), Some(a));
        assert_eq!(Cursor::parse(""), Some(Cursor::START));
        assert_eq!(Cursor::parse("x-1"), None);
        assert_eq!(Cursor::parse("-1-2"), None);
        assert_eq!(Cursor::parse("12"), None);
    }

    #[test]
    fn a_partial_page_has_scanned_everything_below_xmin() {
        let window = Window {
            after: Cursor { tx: 5, id: 3 },
            xmin: 20,
        };
        assert_eq!(
            window.scanned_to(None, false),
            Cursor {
                tx: 19,
                id: i64::MAX
            }
        );
        let last = Cursor { tx: 7, id: 8 };
        assert_eq!(window.scanned_to(Some(last), true), last);
    }
}
