//! The store's own failures and how they become [`StorageError`]s.

use eventmesh_storage::StorageError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What can go wrong talking to Kafka, before it is mapped to a [`StorageError`].
#[derive(Debug, thiserror::Error)]
pub enum KafkaStoreError {
    /// The options are invalid.
    #[error("invalid Kafka store options: {0}")]
    Config(String),
    /// The brokers cannot be reached or did not answer in time.
    #[error("Kafka at {brokers} is unavailable: {op}: {reason}")]
    Unavailable {
        /// The bootstrap brokers.
        brokers: String,
        /// What was being done.
        op: String,
        /// What went wrong.
        reason: String,
    },
    /// The client or a broker answered with another error.
    #[error("Kafka at {brokers}: {op} failed: {source}")]
    Client {
        /// The bootstrap brokers.
        brokers: String,
        /// What was being done.
        op: String,
        /// The client's error.
        #[source]
        source: Box<KafkaError>,
    },
}

impl KafkaStoreError {
    /// Classifies a client error of `op`.
    pub(crate) fn from_kafka(brokers: &str, op: &str, e: KafkaError) -> Self {
        if is_unavailable(&e) {
            KafkaStoreError::Unavailable {
                brokers: brokers.to_owned(),
                op: op.to_owned(),
                reason: e.to_string(),
            }
        } else {
            KafkaStoreError::Client {
                brokers: brokers.to_owned(),
                op: op.to_owned(),
                source: Box::new(e),
            }
        }
    }

    /// A timeout of `op`.
    pub(crate) fn timeout(brokers: &str, op: &str, after: std::time::Duration) -> Self {
        KafkaStoreError::Unavailable {
            brokers: brokers.to_owned(),
            op: op.to_owned(),
            reason: format!("no answer within {} ms", after.as_millis()),
        }
    }
}

/// The error codes that mean "the brokers cannot serve this now": retry later.
pub(crate) fn unavailable_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageTimedOut
            | C::RequestTimedOut
            | C::OperationTimedOut
            | C::AllBrokersDown
            | C::BrokerTransportFailure
            | C::BrokerNotAvailable
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::NetworkException
            | C::Resolve
            | C::TimedOutQueue
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::KafkaStorageError
            | C::BrokerDestroy
            | C::DestroyBroker
            | C::Fatal
            | C::PurgeQueue
            | C::PurgeInflight
            | C::NotController
    )
}

pub(crate) fn is_unavailable(e: &KafkaError) -> bool {
    e.rdkafka_error_code().is_some_and(unavailable_code)
}

/// Whether the error says the topic or partition does not exist.
pub(crate) fn is_unknown_topic(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
        )
    )
}

impl From<KafkaStoreError> for StorageError {
    fn from(e: KafkaStoreError) -> Self {
        match e {
            KafkaStoreError::Config(m) => StorageError::Invalid(m),
            e @ KafkaStoreError::Unavailable { .. } => StorageError::Unavailable(e.to_string()),
            KafkaStoreError::Client { ref source, .. }
                if matches!(
                    source.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::MessageSizeTooLarge
                            | RDKafkaErrorCode::InvalidMessageSize
                    )
                ) =>
            {
                StorageError::Invalid(e.to_string())
            }
            e @ KafkaStoreError::Client { .. } => StorageError::Backend(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_unavailable_and_name_kafka() {
        let e = KafkaStoreError::from_kafka(
            "h:1",
            "publish",
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        );
        let s = StorageError::from(e);
        assert!(
            matches!(&s, StorageError::Unavailable(m) if m.contains("Kafka at h:1")),
            "{s}"
        );
        let e = KafkaStoreError::from_kafka(
            "h:1",
            "publish",
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        );
        assert!(matches!(StorageError::from(e), StorageError::Invalid(_)));
        let e = KafkaStoreError::from_kafka(
            "h:1",
            "commit",
            KafkaError::ConsumerCommit(RDKafkaErrorCode::InvalidGroupId),
        );
        assert!(matches!(StorageError::from(e), StorageError::Backend(_)));
    }
}
