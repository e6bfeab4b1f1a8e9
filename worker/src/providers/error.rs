//! Why a model call failed, and what kind of failure that is for the coordinator (transient,
//! permanent, the answer's own), read from the status and the body's fields, never from text.

use crate::redact::redact;
use scriptorium_proto::v1::{Failure, FailureCause};

/// Why a model call failed. Every message is redacted before it leaves [`Models`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// The route names a provider that is not configured.
    #[error("unknown provider '{0}' (configure it or use one of: {1})")]
    UnknownProvider(String, String),
    /// The provider's key variable is not set.
    #[error("provider '{provider}' needs the environment variable {var}")]
    MissingKey {
        /// Provider name.
        provider: String,
        /// Variable name.
        var: String,
    },
    /// The provider's configuration breaks a rule.
    #[error("{0}")]
    InvalidConfig(String),
    /// The server answered with a status that is not retried.
    #[error("provider '{provider}' rejected {route}: HTTP {status}: {message}")]
    Rejected {
        /// Provider name.
        provider: String,
        /// The route.
        route: String,
        /// HTTP status.
        status: u16,
        /// Server's message, redacted.
        message: String,
    },
    /// Retries were exhausted on a retryable failure.
    #[error("{route}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// The route.
        route: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
        /// What the last failure was (timeout, connection, rate limit, server error).
        cause: FailureCause,
    },
    /// The answer had no usable content.
    #[error("{route}: {message}")]
    BadAnswer {
        /// The route.
        route: String,
        /// What was wrong.
        message: String,
    },
    /// The server answered that the request does not fit its context window (read from the
    /// status and the error body's fields, never from its message text).
    #[error(
        "provider '{provider}' rejected {route}: the request exceeds the context window: {message}"
    )]
    ContextExceeded {
        /// Provider name.
        provider: String,
        /// The route.
        route: String,
        /// The prompt's tokens as the server counted them, when it says.
        prompt_tokens: Option<u64>,
        /// The server's context window, when it says.
        window: Option<u64>,
        /// Server's message, redacted.
        message: String,
    },
}

impl ModelError {
    /// The same error with every text field passed through [`redact`].
    pub fn redacted(self) -> Self {
        match self {
            ModelError::UnknownProvider(p, known) => {
                ModelError::UnknownProvider(redact(&p), redact(&known))
            }
            ModelError::MissingKey { provider, var } => {
                ModelError::MissingKey { provider: redact(&provider), var }
            }
            ModelError::InvalidConfig(m) => ModelError::InvalidConfig(redact(&m)),
            ModelError::Rejected { provider, route, status, message } => ModelError::Rejected {
                provider: redact(&provider),
                route: redact(&route),
                status,
                message: redact(&message),
            },
            ModelError::Exhausted { route, attempts, last, cause } => ModelError::Exhausted {
                route: redact(&route),
                attempts,
                last: redact(&last),
                cause,
            },
            ModelError::BadAnswer { route, message } => {
                ModelError::BadAnswer { route: redact(&route), message: redact(&message) }
            }
            ModelError::ContextExceeded { provider, route, prompt_tokens, window, message } => {
                ModelError::ContextExceeded {
                    provider: redact(&provider),
                    route: redact(&route),
                    prompt_tokens,
                    window,
                    message: redact(&message),
                }
            }
        }
    }
}

impl ModelError {
    /// What kind of failure this is, for the coordinator: transient ones are tried again,
    /// permanent ones (a refused key, an unknown model or provider, a request the server will
    /// never take) are not.
    pub fn cause(&self) -> FailureCause {
        match self {
            ModelError::UnknownProvider(..) => FailureCause::UnknownProvider,
            ModelError::MissingKey { .. } => FailureCause::Auth,
            ModelError::InvalidConfig(_) => FailureCause::BadRequest,
            ModelError::Rejected { status, .. } => rejected_cause(*status),
            ModelError::Exhausted { cause, .. } => *cause,
            ModelError::BadAnswer { .. } => FailureCause::Refused,
            ModelError::ContextExceeded { .. } => FailureCause::ContextExceeded,
        }
    }

    /// The typed failure of this error: its cause, its message and the server's status.
    pub fn failure(&self) -> Failure {
        let http_status = match self {
            ModelError::Rejected { status, .. } => u32::from(*status),
            _ => 0,
        };
        Failure { http_status, ..Failure::new(self.cause(), self.to_string()) }
    }
}

/// What a status that is not retried says (read from the status alone, never from message
/// text): 401/402/403 are the key or the account, 404 a model the server does not serve, any
/// other 4xx a request it will never take (servers that answer 400 for an unknown model land
/// here: permanent all the same). A 5xx here was handed back at once (a dialect refusal with no
/// dialect left to try): a server error, transient.
fn rejected_cause(status: u16) -> FailureCause {
    match status {
        401..=403 => FailureCause::Auth,
        404 => FailureCause::UnknownModel,
        400..=499 => FailureCause::BadRequest,
        _ => FailureCause::ServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_error_has_its_cause() {
        let rejected = |status| ModelError::Rejected {
            provider: "p".into(),
            route: "p/m".into(),
            status,
            message: "no".into(),
        };
        assert_eq!(rejected(401).cause(), FailureCause::Auth);
        assert_eq!(rejected(403).cause(), FailureCause::Auth);
        assert_eq!(rejected(404).cause(), FailureCause::UnknownModel);
        assert_eq!(rejected(400).cause(), FailureCause::BadRequest);
        assert_eq!(rejected(422).cause(), FailureCause::BadRequest);
        assert_eq!(rejected(500).cause(), FailureCause::ServerError);
        assert_eq!(rejected(401).failure().http_status, 401);
        let missing = ModelError::MissingKey { provider: "p".into(), var: "P_KEY".into() };
        assert_eq!(missing.cause(), FailureCause::Auth);
        assert!(FailureCause::Auth.is_permanent() && !FailureCause::ServerError.is_permanent());
    }
}
