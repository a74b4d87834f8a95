//! The error every dondoc service speaks, and its single mapping to
//! `tonic::Status` with `google.rpc.ErrorInfo` and `BadRequest` details.
//!
//! Domain and storage code build an [`Error`] (plain Rust, no tonic in its
//! shape); only the gRPC edge turns it into a status, through
//! `impl From<Error> for tonic::Status` below. Internal failures are logged
//! here and reach the caller as a bare INTERNAL without their text, so
//! nothing of the inside leaks.

#![forbid(unsafe_code)]

use std::fmt;

use tonic_types::{ErrorDetails, StatusExt};

/// The `google.rpc.ErrorInfo.domain` of every dondoc error.
pub const ERROR_DOMAIN: &str = "dondoc.gov.vn";

/// One offending field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `directive.items[2].lead_agencies`.
    pub field: String,
    /// What is wrong with it, in terms the caller can act on.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation under a parent path, e.g. `items[2]` + `.text`.
    pub fn under(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// A failure a service reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; nothing was changed.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The named resource does not exist, or the caller may not know it does.
    #[error("{resource} {name} not found")]
    NotFound {
        /// Kind of resource, e.g. "directive".
        resource: &'static str,
        /// Its name.
        name: String,
    },
    /// A resource with the same identity already exists.
    #[error("{resource} {name} already exists")]
    AlreadyExists {
        /// Kind of resource.
        resource: &'static str,
        /// Its name.
        name: String,
    },
    /// The resource is not in a state that allows the operation.
    #[error("{message}")]
    FailedPrecondition {
        /// Machine-readable reason, UPPER_SNAKE_CASE, e.g. "DIRECTIVE_ALREADY_ISSUED".
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The etag given does not match: someone else changed the resource.
    #[error("{resource} {name} was changed by someone else: read it again")]
    Aborted {
        /// Kind of resource.
        resource: &'static str,
        /// Its name.
        name: String,
    },
    /// A position outside what is kept, e.g. a stream cursor older than retention.
    #[error("{message}")]
    OutOfRange {
        /// Machine-readable reason.
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The caller is known but may not do this.
    #[error("{message}")]
    PermissionDenied {
        /// Machine-readable reason, e.g. "AGENCY_OUT_OF_SCOPE".
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The caller did not prove who it is.
    #[error("{message}")]
    Unauthenticated {
        /// Machine-readable reason, e.g. "MISSING_ASSERTION".
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// A dependency (database, upstream service) is unavailable; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The operation exists in the contract but this release does not serve it.
    #[error("{0} is not available in this release")]
    Unimplemented(&'static str),
    /// Anything else: a bug or an unexpected failure. Its text is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// A failed precondition.
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    /// A refusal on authorization grounds.
    pub fn denied(reason: &'static str, message: impl Into<String>) -> Self {
        Self::PermissionDenied {
            reason,
            message: message.into(),
        }
    }

    /// An unexpected failure.
    pub fn internal(error: impl fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    /// The `ErrorInfo.reason` of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::NotFound { .. } => "NOT_FOUND",
            Error::AlreadyExists { .. } => "ALREADY_EXISTS",
            Error::FailedPrecondition { reason, .. }
            | Error::OutOfRange { reason, .. }
            | Error::PermissionDenied { reason, .. }
            | Error::Unauthenticated { reason, .. } => reason,
            Error::Aborted { .. } => "ETAG_MISMATCH",
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::Unimplemented(_) => "UNIMPLEMENTED",
            Error::Internal(_) => "INTERNAL",
        }
    }
}

/// Accumulates field violations so that a request reports all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records the violations of a nested part under its path.
    pub fn extend_under(&mut self, parent: &str, nested: Vec<FieldViolation>) {
        self.0.extend(nested.into_iter().map(|v| v.under(parent)));
    }

    /// Takes the value of a parse, recording its violations on failure.
    pub fn check<T>(&mut self, parent: &str, result: Result<T, Vec<FieldViolation>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(nested) => {
                self.extend_under(parent, nested);
                None
            }
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, else INVALID_ARGUMENT with every violation.
    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }

    /// The violations recorded.
    pub fn into_inner(self) -> Vec<FieldViolation> {
        self.0
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        use tonic::Code;
        let reason = error.reason();
        let mut details = ErrorDetails::new();
        let (code, message) = match &error {
            Error::InvalidArgument(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                (Code::InvalidArgument, error.to_string())
            }
            Error::NotFound { .. } => (Code::NotFound, error.to_string()),
            Error::AlreadyExists { .. } => (Code::AlreadyExists, error.to_string()),
            Error::FailedPrecondition { .. } => (Code::FailedPrecondition, error.to_string()),
            Error::Aborted { .. } => (Code::Aborted, error.to_string()),
            Error::OutOfRange { .. } => (Code::OutOfRange, error.to_string()),
            Error::PermissionDenied { .. } => (Code::PermissionDenied, error.to_string()),
            Error::Unauthenticated { .. } => (Code::Unauthenticated, error.to_string()),
            Error::Unavailable(_) => (Code::Unavailable, error.to_string()),
            Error::Unimplemented(_) => (Code::Unimplemented, error.to_string()),
            Error::Internal(text) => {
                tracing::error!(error = %text, "internal error");
                (Code::Internal, "internal error".to_string())
            }
        };
        details.set_error_info(
            reason,
            ERROR_DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        );
        tonic::Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_every_field_and_the_reason() {
        let mut v = Violations::new();
        v.add("directive.subject", "must not be empty");
        v.extend_under(
            "directive.items[1]",
            vec![FieldViolation::new(
                "lead_agencies",
                "at least one lead agency",
            )],
        );
        let status = tonic::Status::from(v.finish().unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|f| f.field.clone())
            .collect();
        assert_eq!(
            fields,
            ["directive.subject", "directive.items[1].lead_agencies"]
        );
        assert_eq!(details.error_info().unwrap().reason, "INVALID_ARGUMENT");
        assert_eq!(details.error_info().unwrap().domain, ERROR_DOMAIN);
    }

    #[test]
    fn internal_errors_do_not_leak_their_text() {
        let status = tonic::Status::from(Error::internal("password=hunter2 in connection string"));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
