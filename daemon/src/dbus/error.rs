//! The typed D-Bus errors, `org.ballast.Error.*`, one per [`ApiError`] kind; each carries the control
//! API's human message (what was wrong, what is allowed).

use crate::control_api::ApiError;

/// What a D-Bus method of ballast fails with.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.ballast.Error")]
pub enum Error {
    /// A failure of the D-Bus layer itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    UnknownNode(String),
    UnknownParam(String),
    OutOfRange(String),
    InvalidGraph(String),
    Busy(String),
    InvalidName(String),
    ModelUnavailable(String),
    WrongKind(String),
    InvalidInput(String),
    Failed(String),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        let m = e.message().to_string();
        match e {
            ApiError::UnknownNode { .. } => Error::UnknownNode(m),
            ApiError::UnknownParam { .. } => Error::UnknownParam(m),
            ApiError::OutOfRange { .. } => Error::OutOfRange(m),
            ApiError::InvalidGraph(_) => Error::InvalidGraph(m),
            ApiError::Busy(_) => Error::Busy(m),
            ApiError::InvalidName(_) => Error::InvalidName(m),
            ApiError::ModelUnavailable(_) => Error::ModelUnavailable(m),
            ApiError::WrongKind(_) => Error::WrongKind(m),
            ApiError::InvalidInput(_) => Error::InvalidInput(m),
            ApiError::Failed(_) => Error::Failed(m),
        }
    }
}
