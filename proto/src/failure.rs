//! What a typed step failure means for whoever reads it: whether another attempt can help.

use crate::v1::{Failure, FailureCause};

impl FailureCause {
    /// Whether the same request fails the same way until an operator changes something (a
    /// key, a route, a provider's configuration): the coordinator makes no further attempt.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            FailureCause::Auth
                | FailureCause::UnknownModel
                | FailureCause::UnknownProvider
                | FailureCause::BadRequest
                | FailureCause::UnknownKind
        )
    }

    /// A short lowercase name (`auth`, `timeout`...), as in logs and metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            FailureCause::Unspecified => "unspecified",
            FailureCause::Timeout => "timeout",
            FailureCause::ServerError => "server_error",
            FailureCause::RateLimited => "rate_limited",
            FailureCause::Connection => "connection",
            FailureCause::Auth => "auth",
            FailureCause::UnknownModel => "unknown_model",
            FailureCause::UnknownProvider => "unknown_provider",
            FailureCause::BadRequest => "bad_request",
            FailureCause::UnknownKind => "unknown_kind",
            FailureCause::ContextExceeded => "context_exceeded",
            FailureCause::Refused => "refused",
            FailureCause::Crashed => "crashed",
        }
    }
}

impl Failure {
    /// A failure of `cause` with `message`.
    pub fn new(cause: FailureCause, message: impl Into<String>) -> Failure {
        Failure { cause: cause as i32, message: message.into(), ..Default::default() }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_an_operator_must_fix_is_permanent() {
        for c in [FailureCause::Auth, FailureCause::UnknownModel, FailureCause::UnknownProvider] {
            assert!(c.is_permanent(), "{c:?}");
        }
        for c in [
            FailureCause::Unspecified,
            FailureCause::Timeout,
            FailureCause::ServerError,
            FailureCause::RateLimited,
            FailureCause::Connection,
            FailureCause::ContextExceeded,
            FailureCause::Refused,
            FailureCause::Crashed,
        ] {
            assert!(!c.is_permanent(), "{c:?}");
        }
        // An unknown value from a newer peer decodes to Unspecified: retried, never stuck.
        let f = Failure { cause: 99, ..Default::default() };
        assert_eq!(f.cause(), FailureCause::Unspecified);
    }
}
