//! XML-RPC fault codes. Every fault agent-monitor returns carries one of these codes; the
//! fault string says what was wrong in words. The table is repeated in docs/protocol.md.

use dxr::Fault;

/// Documented fault codes. The numbers are part of the protocol: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum FaultCode {
    /// Parameters have the wrong count, type, a missing required member or an unknown member.
    InvalidParams = 1,
    /// A project or viewer name is not in the allowed character set or length.
    InvalidName = 2,
    /// No instance exists for the pair (or the named generation).
    UnknownInstance = 3,
    /// The report names a generation that is no longer the pair's current one.
    StaleGeneration = 4,
    /// The requested state change is not allowed from the current state.
    IllegalTransition = 5,
    /// A stored archive does not match its checksum (or is not valid base64).
    BadChecksum = 6,
    /// The request body is larger than the documented limit.
    RequestTooLarge = 7,
    /// Missing or wrong credentials, or a role that may not call this method.
    NotAuthorised = 8,
    /// The body is not a well-formed XML-RPC call (or not UTF-8).
    MalformedRequest = 9,
    /// No such method.
    UnknownMethod = 10,
    /// The daemon could not complete the request (storage failure); nothing was changed.
    Internal = 11,
    /// The daemon is shutting down and accepts no new work.
    ShuttingDown = 12,
}

impl FaultCode {
    pub const ALL: [FaultCode; 12] = [
        FaultCode::InvalidParams,
        FaultCode::InvalidName,
        FaultCode::UnknownInstance,
        FaultCode::StaleGeneration,
        FaultCode::IllegalTransition,
        FaultCode::BadChecksum,
        FaultCode::RequestTooLarge,
        FaultCode::NotAuthorised,
        FaultCode::MalformedRequest,
        FaultCode::UnknownMethod,
        FaultCode::Internal,
        FaultCode::ShuttingDown,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<FaultCode> {
        FaultCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// A fault on its way to the caller: a code and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (fault {})", code.code())]
pub struct RpcError {
    pub code: FaultCode,
    pub message: String,
}

impl RpcError {
    pub fn new(code: FaultCode, message: impl Into<String>) -> RpcError {
        RpcError { code, message: message.into() }
    }

    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::new(FaultCode::InvalidParams, message)
    }
}

impl From<RpcError> for Fault {
    fn from(e: RpcError) -> Fault {
        Fault::new(e.code.code(), e.message)
    }
}

impl From<crate::names::NameError> for RpcError {
    fn from(e: crate::names::NameError) -> RpcError {
        RpcError::new(FaultCode::InvalidName, e.to_string())
    }
}

impl From<dxr::Error> for RpcError {
    fn from(e: dxr::Error) -> RpcError {
        RpcError::invalid_params(e.to_string())
    }
}
