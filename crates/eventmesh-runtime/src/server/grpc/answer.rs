//! Answers: the string status code of a domain error (one mapping,
//! [`ErrorCode::grpc_status_code`](eventmesh_core::ErrorCode::grpc_status_code) via
//! [`StatusCode::of`]) and the answer messages of both packages.

use eventmesh_core::EventMeshError;
use eventmesh_protocol_grpc::convert::{self, ConvertError};
use eventmesh_protocol_grpc::legacy;
use eventmesh_protocol_grpc::status::StatusCode;
use eventmesh_protocol_grpc::v1;

use super::metrics;

/// Why a call failed: a status code and a message.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// A domain error, with its own code.
    pub(crate) fn of(e: &EventMeshError) -> Self {
        Failure::new(StatusCode::of(e.code), e.message.clone())
    }

    /// A domain error during an operation whose failures have their own code (subscribe: 17,
    /// batch: 10, …) unless the error is an overload, a stop or an access refusal.
    pub(crate) fn during(op: StatusCode, e: &EventMeshError) -> Self {
        let own = StatusCode::of(e.code);
        let status = match own {
            StatusCode::Overload | StatusCode::Stop | StatusCode::AclErr => own,
            _ => op,
        };
        Failure::new(status, e.message.clone())
    }
}

impl From<ConvertError> for Failure {
    fn from(e: ConvertError) -> Self {
        Failure::new(e.status(), e.to_string())
    }
}

/// The v1 answer of a call's outcome, counted under `method`.
pub(crate) fn v1_answer(method: &'static str, outcome: Result<String, Failure>) -> v1::CloudEvent {
    match outcome {
        Ok(msg) => {
            metrics::call(method, StatusCode::Success.code());
            convert::response(StatusCode::Success, &msg)
        }
        Err(f) => {
            metrics::call(method, f.status.code());
            tracing::debug!(message = "gRPC call refused.", method, status = f.status.code(), error = %f.message);
            convert::response(f.status, &format!("{}: {}", f.status.desc(), f.message))
        }
    }
}

/// The legacy answer of a call's outcome, counted under `method`.
pub(crate) fn legacy_answer(
    method: &'static str,
    outcome: Result<String, Failure>,
) -> legacy::Response {
    match outcome {
        Ok(msg) => {
            metrics::call(method, StatusCode::Success.code());
            convert::legacy_response(StatusCode::Success, &msg)
        }
        Err(f) => {
            metrics::call(method, f.status.code());
            tracing::debug!(message = "gRPC call refused.", method, status = f.status.code(), error = %f.message);
            convert::legacy_response(f.status, &format!("{}: {}", f.status.desc(), f.message))
        }
    }
}
