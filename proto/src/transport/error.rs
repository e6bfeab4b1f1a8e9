//! Transport errors, sorted into failures worth retrying (NATS unreachable or not ready) and
//! refusals that repeat (an invalid key, a conflicting configuration, a message too large).
//!
//! async-nats reports each operation with its own error kind and wraps lower-level errors as
//! sources (a KV put wraps a JetStream publish error, which may wrap a server API error): the
//! classification walks that chain and stops at the first level that decides. A failure nothing
//! in the chain recognises counts as transient: retrying it within a budget is what the
//! transport did for every failure before, and it is bounded.

use async_nats::jetstream::{self, ErrorCode};
use std::error::Error as StdError;

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// NATS is unreachable or not ready right now (connection lost, timeout, no responders,
    /// JetStream unavailable or electing a leader): the same operation may succeed later.
    #[error("{op}: nats unavailable: {detail}")]
    Unavailable {
        /// The operation and what it was applied to (`kv put scriptorium_books`).
        op: String,
        /// What NATS said.
        detail: String,
    },
    /// NATS refused the operation, or would: repeating it fails the same way.
    #[error("{op}: {rejection}: {detail}")]
    Rejected {
        /// The operation and what it was applied to.
        op: String,
        /// Why, as a kind callers can branch on.
        rejection: Rejection,
        /// What NATS said.
        detail: String,
    },
    /// A source was opened twice where only one reader may exist.
    #[error("queue {0} already has a reader in this process")]
    AlreadyOpen(String),
    /// The bus was shut down.
    #[error("bus closed")]
    Closed,
    /// The in-process bus cannot answer this (it keeps no consumer state, and has no server to
    /// measure): only the NATS transport can.
    #[error("{op} is only available over NATS")]
    OnlyOverNats {
        /// What was asked (`queue state`).
        op: String,
    },
}

/// Why NATS refused an operation for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A key-value key or id that NATS does not accept (see [`crate::names::valid_key`]).
    InvalidKey,
    /// A subject NATS does not accept.
    InvalidSubject,
    /// A stream or consumer exists with settings that conflict with the requested ones, or the
    /// requested settings are not possible (replicas on a single server, backoff longer than
    /// `max_deliver`).
    ConfigConflict,
    /// An optimistic write lost: the key exists, or its revision moved on.
    Conflict,
    /// The message is larger than the server or the stream accepts.
    TooLarge,
    /// The stream, consumer or message does not exist.
    NotFound,
    /// The account may not do this (authorization, JetStream disabled for the account).
    Permission,
    /// The account or server ran out of a resource limit (streams, consumers, storage).
    Limits,
    /// Anything else NATS refused (a malformed request or URL, TLS setup).
    Other,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejection::InvalidKey => "invalid key",
            Rejection::InvalidSubject => "invalid subject",
            Rejection::ConfigConflict => "configuration conflict",
            Rejection::Conflict => "write conflict",
            Rejection::TooLarge => "message too large",
            Rejection::NotFound => "not found",
            Rejection::Permission => "not permitted",
            Rejection::Limits => "resource limits exceeded",
            Rejection::Other => "refused",
        })
    }
}

impl BusError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BusError::Unavailable { .. })
    }

    /// Why NATS refused the operation, when it did.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            BusError::Rejected { rejection, .. } => Some(*rejection),
            _ => None,
        }
    }

    /// Classifies a NATS error of operation `op`.
    pub(crate) fn nats(op: impl Into<String>, err: &(dyn StdError + 'static)) -> Self {
        let op = op.into();
        let detail = err.to_string();
        match classify(err) {
            Class::Transient => BusError::Unavailable { op, detail },
            Class::Permanent(rejection) => BusError::Rejected { op, rejection, detail },
        }
    }

    /// A refusal found before any I/O.
    pub(crate) fn rejected(op: impl Into<String>, rejection: Rejection, detail: String) -> Self {
        BusError::Rejected { op: op.into(), rejection, detail }
    }

    /// The error for `key`, which NATS would refuse.
    pub(crate) fn invalid_key(op: impl Into<String>, key: &str) -> Self {
        // Keys come from the wire: show a bounded, printable prefix only.
        let shown: String = key.chars().take(64).flat_map(char::escape_debug).collect();
        Self::rejected(op, Rejection::InvalidKey, format!("key \"{shown}\" is not a valid key"))
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Retry within the budget.
    Transient,
    /// Give up at once.
    Permanent(Rejection),
}

use Class::{Permanent, Transient};

/// Classifies `err` by the first level of its source chain that decides.
pub(crate) fn classify(err: &(dyn StdError + 'static)) -> Class {
    let mut level = Some(err);
    while let Some(e) = level {
        if let Some(class) = classify_one(e) {
            return class;
        }
        level = e.source();
    }
    Transient
}

/// Classifies one level of a chain; `None` when this level only wraps its source.
fn classify_one(e: &(dyn StdError + 'static)) -> Option<Class> {
    use async_nats::jetstream::{context, kv, stream};

    if let Some(e) = e.downcast_ref::<jetstream::Error>() {
        return Some(api(e));
    }
    if let Some(e) = e.downcast_ref::<context::PublishError>() {
        use context::PublishErrorKind as K;
        return match e.kind() {
            // No responders: no stream leader right now (restart, election) or no stream at
            // all; the budget bounds the second case.
            K::StreamNotFound | K::TimedOut | K::BrokenPipe | K::MaxAckPending => Some(Transient),
            K::MaxPayloadExceeded => Some(Permanent(Rejection::TooLarge)),
            K::WrongLastMessageId | K::WrongLastSequence => Some(Permanent(Rejection::Conflict)),
            K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<context::RequestError>() {
        use context::RequestErrorKind as K;
        return match e.kind() {
            K::NoResponders | K::TimedOut => Some(Transient),
            K::InvalidSubject => Some(Permanent(Rejection::InvalidSubject)),
            K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<async_nats::RequestError>() {
        use async_nats::RequestErrorKind as K;
        return match e.kind() {
            K::NoResponders | K::TimedOut => Some(Transient),
            K::InvalidSubject => Some(Permanent(Rejection::InvalidSubject)),
            K::MaxPayloadExceeded => Some(Permanent(Rejection::TooLarge)),
            K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<async_nats::PublishError>() {
        use async_nats::PublishErrorKind as K;
        return Some(match e.kind() {
            K::MaxPayloadExceeded => Permanent(Rejection::TooLarge),
            K::InvalidSubject => Permanent(Rejection::InvalidSubject),
            K::Send => Transient,
        });
    }
    if let Some(e) = e.downcast_ref::<async_nats::SubscribeError>() {
        use async_nats::SubscribeErrorKind as K;
        return match e.kind() {
            K::InvalidSubject | K::InvalidQueueName => Some(Permanent(Rejection::InvalidSubject)),
            K::Other => None,
        };
    }
    if e.downcast_ref::<async_nats::SubjectError>().is_some() {
        return Some(Permanent(Rejection::InvalidSubject));
    }
    if e.downcast_ref::<async_nats::client::FlushError>().is_some() {
        return Some(Transient);
    }
    if let Some(e) = e.downcast_ref::<async_nats::ConnectError>() {
        use async_nats::ConnectErrorKind as K;
        return Some(match e.kind() {
            K::Authentication | K::AuthorizationViolation => Permanent(Rejection::Permission),
            K::ServerParse | K::Tls => Permanent(Rejection::Other),
            // DNS names of a cluster appear while its pods start.
            K::Dns | K::TimedOut | K::Io | K::MaxReconnects => Transient,
        });
    }
    if let Some(e) = e.downcast_ref::<context::CreateStreamError>() {
        use context::CreateStreamErrorKind as K;
        return match e.kind() {
            K::EmptyStreamName | K::InvalidStreamName | K::DomainAndExternalSet => {
                Some(Permanent(Rejection::Other))
            }
            K::JetStreamUnavailable | K::TimedOut => Some(Transient),
            K::JetStream(api_err) => Some(api(&api_err)),
            K::NotFound => Some(Permanent(Rejection::NotFound)),
            K::Response | K::ResponseParse => None,
        };
    }
    if let Some(e) = e.downcast_ref::<context::GetStreamError>() {
        use context::GetStreamErrorKind as K;
        return match e.kind() {
            K::EmptyName | K::InvalidStreamName => Some(Permanent(Rejection::Other)),
            K::JetStream(api_err) => Some(api(&api_err)),
            K::Request => None,
        };
    }
    if let Some(e) = e.downcast_ref::<context::KeyValueError>() {
        use context::KeyValueErrorKind as K;
        return match e.kind() {
            K::InvalidStoreName => Some(Permanent(Rejection::Other)),
            K::GetBucket | K::JetStream => None,
        };
    }
    if let Some(e) = e.downcast_ref::<context::ConsumerInfoError>() {
        use context::ConsumerInfoErrorKind as K;
        return match e.kind() {
            K::InvalidName => Some(Permanent(Rejection::Other)),
            K::Offline | K::TimedOut | K::NoResponders => Some(Transient),
            K::NotFound | K::StreamNotFound => Some(Permanent(Rejection::NotFound)),
            K::JetStream(api_err) => Some(api(&api_err)),
            K::Request => None,
        };
    }
    if let Some(e) = e.downcast_ref::<stream::ConsumerError>() {
        use stream::ConsumerErrorKind as K;
        return match e.kind() {
            K::TimedOut => Some(Transient),
            K::InvalidConsumerType | K::InvalidName => Some(Permanent(Rejection::ConfigConflict)),
            K::JetStream(api_err) => Some(api(&api_err)),
            K::Request | K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<stream::DirectGetError>() {
        use stream::DirectGetErrorKind as K;
        return match e.kind() {
            K::NotFound => Some(Permanent(Rejection::NotFound)),
            K::InvalidSubject => Some(Permanent(Rejection::InvalidKey)),
            K::TimedOut => Some(Transient),
            K::ErrorResponse(status, _) => Some(status_class(status.as_u16())),
            K::Request | K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<stream::LastRawMessageError>() {
        use stream::LastRawMessageErrorKind as K;
        return match e.kind() {
            K::NoMessageFound => Some(Permanent(Rejection::NotFound)),
            K::InvalidSubject => Some(Permanent(Rejection::InvalidKey)),
            K::JetStream(api_err) => Some(api(&api_err)),
            K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<stream::PurgeError>() {
        use stream::PurgeErrorKind as K;
        return match e.kind() {
            K::TimedOut => Some(Transient),
            K::JetStream(api_err) => Some(api(&api_err)),
            K::Request => None,
        };
    }
    if let Some(e) = e.downcast_ref::<stream::DeleteMessageError>() {
        use stream::DeleteMessageErrorKind as K;
        return match e.kind() {
            K::TimedOut => Some(Transient),
            K::JetStream(api_err) => Some(api(&api_err)),
            K::Request => None,
        };
    }
    if let Some(e) = e.downcast_ref::<kv::PutError>() {
        return match e.kind() {
            kv::PutErrorKind::InvalidKey => Some(Permanent(Rejection::InvalidKey)),
            kv::PutErrorKind::Publish | kv::PutErrorKind::Ack => None,
        };
    }
    if let Some(e) = e.downcast_ref::<kv::EntryError>() {
        return match e.kind() {
            kv::EntryErrorKind::InvalidKey => Some(Permanent(Rejection::InvalidKey)),
            kv::EntryErrorKind::TimedOut => Some(Transient),
            kv::EntryErrorKind::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<kv::CreateError>() {
        use kv::CreateErrorKind as K;
        return match e.kind() {
            K::AlreadyExists => Some(Permanent(Rejection::Conflict)),
            K::InvalidKey => Some(Permanent(Rejection::InvalidKey)),
            K::Publish | K::Ack | K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<kv::UpdateError>() {
        use kv::UpdateErrorKind as K;
        return match e.kind() {
            K::InvalidKey => Some(Permanent(Rejection::InvalidKey)),
            K::TimedOut => Some(Transient),
            K::WrongLastRevision => Some(Permanent(Rejection::Conflict)),
            K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<kv::WatchError>() {
        use kv::WatchErrorKind as K;
        return match e.kind() {
            K::InvalidKey => Some(Permanent(Rejection::InvalidKey)),
            K::TimedOut => Some(Transient),
            K::ConsumerCreate | K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<jetstream::consumer::StreamError>() {
        return match e.kind() {
            jetstream::consumer::StreamErrorKind::TimedOut => Some(Transient),
            jetstream::consumer::StreamErrorKind::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<jetstream::consumer::pull::MessagesError>() {
        use jetstream::consumer::pull::MessagesErrorKind as K;
        return match e.kind() {
            K::MissingHeartbeat | K::NoResponders | K::Pull => Some(Transient),
            K::ConsumerDeleted => Some(Permanent(Rejection::NotFound)),
            K::PushBasedConsumer | K::RequestLimitExceeded => {
                Some(Permanent(Rejection::ConfigConflict))
            }
            K::Other => None,
        };
    }
    if let Some(e) = e.downcast_ref::<jetstream::consumer::pull::OrderedError>() {
        use jetstream::consumer::pull::OrderedErrorKind as K;
        return match e.kind() {
            K::MissingHeartbeat | K::NoResponders | K::Pull | K::Recreate => Some(Transient),
            K::ConsumerDeleted => Some(Permanent(Rejection::NotFound)),
            K::PushBasedConsumer | K::RequestLimitExceeded => {
                Some(Permanent(Rejection::ConfigConflict))
            }
            K::Other => None,
        };
    }
    if e.downcast_ref::<std::io::Error>().is_some()
        || e.downcast_ref::<tokio::time::error::Elapsed>().is_some()
    {
        return Some(Transient);
    }
    None
}

/// Classifies a status code of a JetStream reply (HTTP-like).
fn status_class(status: u16) -> Class {
    match status {
        404 => Permanent(Rejection::NotFound),
        413 => Permanent(Rejection::TooLarge),
        408 | 503 => Transient,
        s if s >= 500 => Transient,
        _ => Permanent(Rejection::Other),
    }
}

/// Classifies an error answer of the JetStream API by its error code, then its status.
pub(crate) fn api(e: &jetstream::Error) -> Class {
    let code = e.error_code();
    const TRANSIENT: &[ErrorCode] = &[
        ErrorCode::CLUSTER_NOT_AVAILABLE,
        ErrorCode::CLUSTER_NOT_LEADER,
        ErrorCode::CLUSTER_NOT_ACTIVE,
        ErrorCode::CLUSTER_NOT_ASSIGNED,
        ErrorCode::CLUSTER_INCOMPLETE,
        // No peers for placement: a node of the cluster is down (or the cluster is too small
        // for the replicas; the budget bounds that case).
        ErrorCode::CLUSTER_NO_PEERS,
        ErrorCode::RAFT_GENERAL,
        ErrorCode::STREAM_OFFLINE,
        ErrorCode::CONSUMER_OFFLINE,
        ErrorCode::STREAM_OFFLINE_REASON,
        ErrorCode::CONSUMER_OFFLINE_REASON,
        ErrorCode::STREAM_TOO_MANY_REQUESTS,
        ErrorCode::STREAM_MOVE_IN_PROGRESS,
        ErrorCode::CLUSTER_SERVER_MEMBER_CHANGE_INFLIGHT,
        ErrorCode::INSUFFICIENT_RESOURCES,
        ErrorCode::JETSTREAM_NOT_ENABLED,
    ];
    const NOT_FOUND: &[ErrorCode] = &[
        ErrorCode::STREAM_NOT_FOUND,
        ErrorCode::CONSUMER_NOT_FOUND,
        ErrorCode::CONSUMER_DOES_NOT_EXIST,
        ErrorCode::NO_MESSAGE_FOUND,
        ErrorCode::SEQUENCE_NOT_FOUND,
    ];
    const TOO_LARGE: &[ErrorCode] =
        &[ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM, ErrorCode::STREAM_HEADER_EXCEEDS_MAXIMUM];
    const CONFIG: &[ErrorCode] = &[
        ErrorCode::STREAM_NAME_EXIST,
        ErrorCode::STREAM_SUBJECT_OVERLAP,
        ErrorCode::STREAM_INVALID_CONFIG,
        ErrorCode::STREAM_INVALID,
        ErrorCode::STREAM_REPLICAS_NOT_UPDATABLE,
        ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED,
        ErrorCode::STREAM_MIRROR_NOT_UPDATABLE,
        ErrorCode::STREAM_UPDATE,
        ErrorCode::STREAM_MAX_BYTES_REQUIRED,
        ErrorCode::CONSUMER_NAME_EXIST,
        ErrorCode::CONSUMER_ALREADY_EXISTS,
        ErrorCode::CONSUMER_CREATE,
        ErrorCode::CONSUMER_MAX_DELIVER_BACKOFF,
        ErrorCode::CONSUMER_WQ_REQUIRES_EXPLICIT_ACK,
        ErrorCode::CONSUMER_WQ_MULTIPLE_UNFILTERED,
        ErrorCode::CONSUMER_WQ_CONSUMER_NOT_UNIQUE,
        ErrorCode::CONSUMER_WQ_CONSUMER_NOT_DELIVER_ALL,
        ErrorCode::CONSUMER_REPLICAS_EXCEEDS_STREAM,
        ErrorCode::CONSUMER_FILTER_NOT_SUBSET,
        ErrorCode::CONSUMER_INVALID_POLICY,
        ErrorCode::CONSUMER_CREATE_FILTER_SUBJECT_MISMATCH,
        ErrorCode::CONSUMER_MAX_PENDING_ACK_EXCESS,
        ErrorCode::CONSUMER_ACK_WAIT_NEGATIVE,
        ErrorCode::CONSUMER_BACKOFF_NEGATIVE,
    ];
    const CONFLICT: &[ErrorCode] =
        &[ErrorCode::STREAM_WRONG_LAST_SEQUENCE, ErrorCode::STREAM_WRONG_LAST_MESSAGE_ID];
    const LIMITS: &[ErrorCode] = &[
        ErrorCode::ACCOUNT_RESOURCES_EXCEEDED,
        ErrorCode::MAXIMUM_CONSUMERS_LIMIT,
        ErrorCode::MAXIMUM_STREAMS_LIMIT,
        ErrorCode::STORAGE_RESOURCES_EXCEEDED,
        ErrorCode::MEMORY_RESOURCES_EXCEEDED,
        ErrorCode::STREAM_MAX_STREAM_BYTES_EXCEEDED,
    ];
    const PERMISSION: &[ErrorCode] =
        &[ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT, ErrorCode::NO_ACCOUNT];
    if TRANSIENT.contains(&code) {
        Transient
    } else if NOT_FOUND.contains(&code) {
        Permanent(Rejection::NotFound)
    } else if TOO_LARGE.contains(&code) {
        Permanent(Rejection::TooLarge)
    } else if CONFIG.contains(&code) {
        Permanent(Rejection::ConfigConflict)
    } else if CONFLICT.contains(&code) {
        Permanent(Rejection::Conflict)
    } else if LIMITS.contains(&code) {
        Permanent(Rejection::Limits)
    } else if PERMISSION.contains(&code) {
        Permanent(Rejection::Permission)
    } else {
        status_class(u16::try_from(e.code()).unwrap_or(500))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::context::{
        CreateStreamError, CreateStreamErrorKind, PublishError, PublishErrorKind,
    };
    use async_nats::jetstream::kv::{
        CreateError, CreateErrorKind, EntryError, EntryErrorKind, PutError, PutErrorKind,
    };
    use async_nats::jetstream::stream::{
        ConsumerError, ConsumerErrorKind, DirectGetError, DirectGetErrorKind,
    };

    /// A JetStream API error answer as the server sends it.
    fn api_error(code: u16, err_code: u64) -> jetstream::Error {
        serde_json::from_value(serde_json::json!({
            "code": code, "err_code": err_code, "description": "from the server"
        }))
        .unwrap()
    }

    fn class_of(e: &(dyn StdError + 'static)) -> Class {
        classify(e)
    }

    #[test]
    fn connection_trouble_and_unready_jetstream_are_transient() {
        for kind in [
            PublishErrorKind::StreamNotFound,
            PublishErrorKind::TimedOut,
            PublishErrorKind::BrokenPipe,
            PublishErrorKind::MaxAckPending,
        ] {
            assert_eq!(class_of(&PublishError::new(kind)), Transient, "{kind:?}");
        }
        assert_eq!(class_of(&EntryError::new(EntryErrorKind::TimedOut)), Transient);
        assert_eq!(
            class_of(&CreateStreamError::new(CreateStreamErrorKind::JetStreamUnavailable)),
            Transient
        );
        // JetStream answers 503 while a stream elects its leader or the cluster forms.
        for code in [10008, 10009, 10118, 10119] {
            let e = CreateStreamError::new(CreateStreamErrorKind::JetStream(api_error(503, code)));
            assert_eq!(class_of(&e), Transient, "err_code {code}");
        }
        // An unknown 5xx error code is still the server's trouble.
        assert_eq!(api(&api_error(500, 99999)), Transient);
    }

    #[test]
    fn refusals_are_permanent_with_their_kind() {
        assert_eq!(
            class_of(&PutError::new(PutErrorKind::InvalidKey)),
            Permanent(Rejection::InvalidKey)
        );
        assert_eq!(
            class_of(&EntryError::new(EntryErrorKind::InvalidKey)),
            Permanent(Rejection::InvalidKey)
        );
        assert_eq!(
            class_of(&PublishError::new(PublishErrorKind::MaxPayloadExceeded)),
            Permanent(Rejection::TooLarge)
        );
        assert_eq!(
            class_of(&CreateError::new(CreateErrorKind::AlreadyExists)),
            Permanent(Rejection::Conflict)
        );
        let stream_exists = CreateStreamError::new(CreateStreamErrorKind::JetStream(api_error(
            400,
            ErrorCode::STREAM_NAME_EXIST.0,
        )));
        assert_eq!(class_of(&stream_exists), Permanent(Rejection::ConfigConflict));
        let consumer = ConsumerError::new(ConsumerErrorKind::JetStream(api_error(
            400,
            ErrorCode::CONSUMER_MAX_DELIVER_BACKOFF.0,
        )));
        assert_eq!(class_of(&consumer), Permanent(Rejection::ConfigConflict));
        let replicas = CreateStreamError::new(CreateStreamErrorKind::JetStream(api_error(
            500,
            ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED.0,
        )));
        assert_eq!(
            class_of(&replicas),
            Permanent(Rejection::ConfigConflict),
            "an error code that decides wins over a 5xx status"
        );
        assert_eq!(
            api(&api_error(404, ErrorCode::STREAM_NOT_FOUND.0)),
            Permanent(Rejection::NotFound)
        );
        assert_eq!(
            api(&api_error(400, ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM.0)),
            Permanent(Rejection::TooLarge)
        );
        assert_eq!(
            api(&api_error(503, ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT.0)),
            Permanent(Rejection::Permission)
        );
        assert_eq!(api(&api_error(400, ErrorCode::BAD_REQUEST.0)), Permanent(Rejection::Other));
    }

    #[test]
    fn a_wrapper_is_classified_by_its_source() {
        // A KV put that failed in its publish: the publish error decides.
        let timed_out = PutError::with_source(
            PutErrorKind::Publish,
            PublishError::new(PublishErrorKind::TimedOut),
        );
        assert_eq!(class_of(&timed_out), Transient);
        let too_large = PutError::with_source(
            PutErrorKind::Ack,
            PublishError::with_source(
                PublishErrorKind::Other,
                api_error(400, ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM.0),
            ),
        );
        assert_eq!(class_of(&too_large), Permanent(Rejection::TooLarge));
        // A KV read over direct get whose answer was 503 (no stream leader yet).
        let no_leader = EntryError::with_source(
            EntryErrorKind::Other,
            DirectGetError::new(DirectGetErrorKind::ErrorResponse(
                async_nats::StatusCode::NO_RESPONDERS,
                "no responders".into(),
            )),
        );
        assert_eq!(class_of(&no_leader), Transient);
        // Nothing in the chain decides: retried, as before.
        let unknown = EntryError::with_source(EntryErrorKind::Other, "something odd");
        assert_eq!(class_of(&unknown), Transient);
    }

    #[test]
    fn the_bus_error_keeps_the_operation_and_the_kind() {
        let e =
            BusError::nats("kv put scriptorium_books", &PutError::new(PutErrorKind::InvalidKey));
        assert!(!e.is_transient());
        assert_eq!(e.rejection(), Some(Rejection::InvalidKey));
        assert!(e.to_string().starts_with("kv put scriptorium_books: invalid key"), "{e}");
        let e = BusError::nats("publish", &PublishError::new(PublishErrorKind::TimedOut));
        assert!(e.is_transient());
        assert_eq!(e.rejection(), None);
        assert!(e.to_string().starts_with("publish: nats unavailable"), "{e}");
        let e = BusError::invalid_key("kv get", "a b\n");
        assert_eq!(e.rejection(), Some(Rejection::InvalidKey));
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
