//! Listings: a typed filter language (a subset of AIP-160: comparisons
//! joined by AND) and opaque keyset page tokens bound to their query.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dondoc_errors::Error;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// One `field op value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Field name.
    pub field: String,
    /// Operator.
    pub op: Op,
    /// Value, unquoted.
    pub value: String,
}

/// Parses `a = "x" AND b >= 3`. An empty filter has no conditions.
/// `allowed` lists the fields this listing knows; others are refused.
pub fn parse_filter(filter: &str, allowed: &[&str]) -> Result<Vec<Condition>, Error> {
    let invalid = |description: String| Error::invalid("filter", description);
    let mut tokens = tokenize(filter).map_err(invalid)?.into_iter().peekable();
    let mut conditions = Vec::new();
    while tokens.peek().is_some() {
        if !conditions.is_empty() {
            match tokens.next() {
                Some(Token::Word(w)) if w == "AND" => {}
                other => {
                    return Err(invalid(format!(
                        "expected AND between conditions, found {}",
                        describe(other.as_ref())
                    )));
                }
            }
        }
        let field = match tokens.next() {
            Some(Token::Word(w)) => w,
            other => {
                return Err(invalid(format!(
                    "expected a field name, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        if !allowed.contains(&field.as_str()) {
            return Err(invalid(format!(
                "unknown field {field:?}; filterable fields are {}",
                allowed.join(", ")
            )));
        }
        let op = match tokens.next() {
            Some(Token::Op(op)) => op,
            other => {
                return Err(invalid(format!(
                    "expected a comparison after {field}, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        let value = match tokens.next() {
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => w,
            other => {
                return Err(invalid(format!(
                    "expected a value for {field}, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        conditions.push(Condition { field, op, value });
    }
    Ok(conditions)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(Op),
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the filter".into(),
        Some(Token::Word(w)) => format!("{w:?}"),
        Some(Token::Quoted(q)) => format!("\"{q}\""),
        Some(Token::Op(op)) => format!("{:?}", op.sql()),
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err("unterminated string".into()),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let next_is_eq = chars.peek() == Some(&'=');
                let op = match (c, next_is_eq) {
                    ('=', _) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    ('>', true) => Op::Ge,
                    ('>', false) => Op::Gt,
                    _ => return Err("'!' must be followed by '='".into()),
                };
                if next_is_eq && c != '=' {
                    chars.next();
                }
                tokens.push(Token::Op(op));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '=' | '!' | '<' | '>' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Default and maximum page sizes of a listing.
#[derive(Debug, Clone, Copy)]
pub struct PageSize {
    /// Used when the request says 0.
    pub default: i64,
    /// Larger requests are clamped to this.
    pub max: i64,
}

impl PageSize {
    /// The effective page size of a request; negative is INVALID_ARGUMENT.
    pub fn resolve(self, requested: i32) -> Result<i64, Error> {
        match requested {
            n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
            0 => Ok(self.default),
            n => Ok(i64::from(n).min(self.max)),
        }
    }
}

fn fingerprint(query: &str) -> String {
    let digest = Sha256::digest(query.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TokenBody<K> {
    q: String,
    k: K,
}

/// Encodes the key after which the next page starts, bound to `query`
/// (the filter and anything else that shapes the listing).
pub fn encode_page_token<K: Serialize>(query: &str, last_key: &K) -> String {
    let body = TokenBody {
        q: fingerprint(query),
        k: last_key,
    };
    // A plain struct of strings and numbers always serializes.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

/// Decodes a page token; empty is `None`. A token from another query, or
/// one that was tampered with, is INVALID_ARGUMENT on `page_token`.
pub fn decode_page_token<K: DeserializeOwned>(
    query: &str,
    token: &str,
) -> Result<Option<K>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        Error::invalid(
            "page_token",
            "not a page token of this query: start again without it",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let body: TokenBody<K> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body.q != fingerprint(query) {
        return Err(invalid());
    }
    Ok(Some(body.k))
}

/// Cuts a page from rows read with `limit + 1`: the first `limit` rows, and
/// the token of the next page (empty on the last), keyed by the last row.
pub fn paginate<T, K: Serialize>(
    mut rows: Vec<T>,
    limit: i64,
    query: &str,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, String) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() <= limit {
        return (rows, String::new());
    }
    rows.truncate(limit);
    let token = rows
        .last()
        .map(|last| encode_page_token(query, &key(last)))
        .unwrap_or_default();
    (rows, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_into_conditions() {
        let conditions = parse_filter(
            r#"state = "ISSUED" AND issue_date >= "2024-01-01" AND key_task=true"#,
            &["state", "issue_date", "key_task"],
        )
        .unwrap();
        assert_eq!(conditions.len(), 3);
        assert_eq!(conditions[1].op, Op::Ge);
        assert_eq!(conditions[1].value, "2024-01-01");
        assert_eq!(conditions[2].value, "true");
        assert!(parse_filter("", &[]).unwrap().is_empty());
    }

    #[test]
    fn bad_filters_name_the_problem() {
        let unknown = parse_filter("colour = red", &["state"]).unwrap_err();
        assert!(unknown.to_string().contains("unknown field \"colour\""));
        assert!(parse_filter("state =", &["state"]).is_err());
        assert!(parse_filter("state = \"x", &["state"]).is_err());
        assert!(parse_filter("state = a state = b", &["state"]).is_err());
    }

    #[test]
    fn page_tokens_are_bound_to_their_query() {
        let token = encode_page_token("state = ISSUED", &(42i64,));
        assert_eq!(
            decode_page_token::<(i64,)>("state = ISSUED", &token).unwrap(),
            Some((42,))
        );
        assert!(decode_page_token::<(i64,)>("state = DRAFT", &token).is_err());
        assert!(decode_page_token::<(i64,)>("", "garbage").is_err());
        assert_eq!(decode_page_token::<(i64,)>("x", "").unwrap(), None);
    }

    #[test]
    fn a_page_is_cut_from_one_extra_row() {
        let (page, token) = paginate(vec![1, 2, 3], 2, "q", |last| *last);
        assert_eq!(page, [1, 2]);
        assert_eq!(decode_page_token::<i32>("q", &token).unwrap(), Some(2));
        let (page, token) = paginate(vec![1, 2], 2, "q", |last| *last);
        assert_eq!(page, [1, 2]);
        assert!(token.is_empty());
    }

    #[test]
    fn page_sizes_default_clamp_and_refuse_negatives() {
        let sizes = PageSize {
            default: 50,
            max: 500,
        };
        assert_eq!(sizes.resolve(0).unwrap(), 50);
        assert_eq!(sizes.resolve(9000).unwrap(), 500);
        assert!(sizes.resolve(-1).is_err());
    }
}
