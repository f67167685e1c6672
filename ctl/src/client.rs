//! The D-Bus side: proxies matching `daemon/dbus/org.ballast.{Daemon1,Node1}.xml`, the connection
//! (session bus, `--system`, or an explicit `--address`), and what a failed call means for the user
//! ([`CtlError`], with its exit code).

use std::collections::HashMap;

use zbus::{Connection, OwnedObjectPath, OwnedVariant};

pub const BUS_NAME: &str = "org.ballast.Daemon1";
pub const ROOT_PATH: &str = "/org/ballast/Daemon1";

/// One `ListNodes` entry: (name, kind, object path, channels, bands, bypassed).
pub type NodeEntry = (String, String, OwnedObjectPath, u32, u32, bool);

#[zbus::proxy(
    interface = "org.ballast.Daemon1",
    default_service = "org.ballast.Daemon1",
    default_path = "/org/ballast/Daemon1"
)]
pub trait Daemon1 {
    fn status(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    fn list_nodes(&self) -> zbus::Result<Vec<NodeEntry>>;
    fn get(&self, node: &str, param: &str) -> zbus::Result<f64>;
    fn set(&self, node: &str, param: &str, value: f64) -> zbus::Result<f64>;
    fn bypass(&self, node: &str, on: bool) -> zbus::Result<()>;
    fn begin(&self) -> zbus::Result<()>;
    fn add_node(
        &self,
        name: &str,
        kind: &str,
        params: HashMap<&str, f64>,
        channels: u32,
        bands: u32,
    ) -> zbus::Result<()>;
    fn remove_node(&self, name: &str) -> zbus::Result<()>;
    fn connect(&self, from: &str, to: &str) -> zbus::Result<()>;
    fn disconnect(&self, from: &str, to: &str) -> zbus::Result<()>;
    fn commit(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    fn abort(&self) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    fn preset_save(&self, name: &str) -> zbus::Result<()>;
    fn preset_load(&self, name: &str) -> zbus::Result<()>;
    fn preset_list(&self) -> zbus::Result<Vec<String>>;
    fn preset_delete(&self, name: &str) -> zbus::Result<()>;
    fn meters(&self) -> zbus::Result<HashMap<String, HashMap<String, f64>>>;
    fn subscribe_meters(&self, rate_hz: f64) -> zbus::Result<()>;
    fn unsubscribe_meters(&self) -> zbus::Result<()>;
    fn learn(&self, node: &str, dry: &str, wet: &str) -> zbus::Result<HashMap<String, f64>>;
}

#[zbus::proxy(interface = "org.ballast.Node1", default_service = "org.ballast.Daemon1", assume_defaults = false)]
pub trait Node1 {
    fn describe(&self) -> zbus::Result<Vec<HashMap<String, OwnedVariant>>>;
}

/// Exit codes (documented in `--help`).
pub mod exit {
    /// The daemon refused the request (a typed `org.ballast.Error.*`, or the bus's AccessDenied).
    pub const REFUSED: u8 = 1;
    /// A wrong command line or input (bad value or unit, unreadable graph file contents).
    pub const USAGE: u8 = 2;
    /// No daemon on the bus, or no bus.
    pub const NO_DAEMON: u8 = 3;
    /// Reading a file or writing the output failed.
    pub const IO: u8 = 4;
}

/// Which bus, and which name on it.
#[derive(Clone, Debug)]
pub struct Target {
    pub system: bool,
    pub address: Option<String>,
    pub dest: String,
}

impl Target {
    fn describe(&self) -> String {
        match (&self.address, self.system) {
            (Some(a), _) => format!("the bus at {a}"),
            (None, true) => "the system bus".into(),
            (None, false) => "the session bus".into(),
        }
    }

    fn start_hint(&self) -> &'static str {
        if self.system {
            "is ballastd running? start it with `systemctl start ballastd` (or `ballastd --system`)"
        } else {
            "is ballastd running? start it with `ballastd` (or `systemctl --user start ballastd`)"
        }
    }
}

/// Why a command failed: one line for the user and an exit code.
#[derive(Debug)]
pub struct CtlError {
    pub code: u8,
    pub message: String,
}

impl CtlError {
    pub fn usage(message: impl Into<String>) -> CtlError {
        CtlError { code: exit::USAGE, message: message.into() }
    }

    pub fn io(message: impl Into<String>) -> CtlError {
        CtlError { code: exit::IO, message: message.into() }
    }

    pub fn refused(kind: &str, message: impl Into<String>) -> CtlError {
        CtlError { code: exit::REFUSED, message: format!("{kind}: {}", message.into()) }
    }
}

/// A connected client.
pub struct Client {
    pub conn: Connection,
    pub target: Target,
}

impl Client {
    pub fn connect(target: Target) -> Result<Client, CtlError> {
        let t = target.clone();
        let conn = zbus::block_on(async move {
            let builder = match (&t.address, t.system) {
                (Some(a), _) => zbus::connection::Builder::address(a.as_str()),
                (None, true) => zbus::connection::Builder::system(),
                (None, false) => zbus::connection::Builder::session(),
            };
            builder.build().await
        })
        .map_err(|e| CtlError {
            code: exit::NO_DAEMON,
            message: format!(
                "cannot reach {}: {} ({})",
                target.describe(),
                one_line(&e.to_string()),
                target.start_hint()
            ),
        })?;
        Ok(Client { conn, target })
    }

    pub fn daemon(&self) -> Result<Daemon1Proxy<'static>, CtlError> {
        let dest = self.target.dest.clone();
        let conn = self.conn.clone();
        zbus::block_on(async move {
            Daemon1Proxy::builder(&conn)
                .destination(dest)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
        })
        .map_err(|e| self.error(e))
    }

    pub fn node(&self, path: OwnedObjectPath) -> Result<Node1Proxy<'static>, CtlError> {
        let dest = self.target.dest.clone();
        let conn = self.conn.clone();
        zbus::block_on(async move {
            Node1Proxy::builder(&conn)
                .destination(dest)
                .path(path)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
        })
        .map_err(|e| self.error(e))
    }

    /// Runs one call to completion.
    pub fn call<T>(&self, f: impl std::future::Future<Output = zbus::Result<T>>) -> Result<T, CtlError> {
        zbus::block_on(f).map_err(|e| self.error(e))
    }

    /// What a failed call means: the daemon's typed refusal (exit 1), no daemon (exit 3), or else.
    pub fn error(&self, e: zbus::Error) -> CtlError {
        use zbus::DBusError;
        let (name, msg) = match e {
            zbus::Error::MethodError(name, msg, _) => (name.to_string(), msg.unwrap_or_default()),
            // Errors the bus names itself (ServiceUnknown, AccessDenied…) come typed.
            zbus::Error::FDO(e) => (e.name().to_string(), e.description().unwrap_or_default().to_string()),
            other => return self.transport_error(other),
        };
        let name = name.as_str();
        let msg = one_line(&msg);
        if let Some(kind) = name.strip_prefix("org.ballast.Error.") {
            CtlError::refused(kind, msg)
        } else if matches!(
            name,
            "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.NoReply"
                | "org.freedesktop.DBus.Error.Disconnected"
        ) {
            CtlError {
                code: exit::NO_DAEMON,
                message: format!(
                    "no {} on {} ({})",
                    self.target.dest,
                    self.target.describe(),
                    self.target.start_hint()
                ),
            }
        } else {
            let kind = name.rsplit('.').next().unwrap_or(name);
            CtlError::refused(kind, if msg.is_empty() { name.to_string() } else { msg })
        }
    }

    fn transport_error(&self, e: zbus::Error) -> CtlError {
        match e {
            zbus::Error::InputOutput(e) => CtlError {
                code: exit::NO_DAEMON,
                message: format!("lost {}: {e} ({})", self.target.describe(), self.target.start_hint()),
            },
            other => CtlError { code: exit::REFUSED, message: format!("D-Bus: {}", one_line(&other.to_string())) },
        }
    }
}

/// Messages are shown on one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A variant's value as f64 (any numeric D-Bus type).
pub fn number(v: &OwnedVariant) -> Option<f64> {
    use zbus::Variant as Value;
    match &**v {
        Value::F64(x) => Some(*x),
        Value::U32(x) => Some(*x as f64),
        Value::U64(x) => Some(*x as f64),
        Value::I32(x) => Some(*x as f64),
        Value::I64(x) => Some(*x as f64),
        Value::U16(x) => Some(*x as f64),
        Value::I16(x) => Some(*x as f64),
        Value::U8(x) => Some(*x as f64),
        _ => None,
    }
}

/// A variant as JSON: integers stay integers, non-finite floats become null.
pub fn json(v: &OwnedVariant) -> serde_json::Value {
    use serde_json::Value as J;
    use zbus::Variant as Value;
    match &**v {
        Value::U8(x) => J::from(*x),
        Value::U16(x) => J::from(*x),
        Value::U32(x) => J::from(*x),
        Value::U64(x) => J::from(*x),
        Value::I16(x) => J::from(*x),
        Value::I32(x) => J::from(*x),
        Value::I64(x) => J::from(*x),
        Value::F64(x) => J::from(*x),
        Value::Bool(b) => J::from(*b),
        Value::Str(s) => J::from(s.as_str()),
        _ => J::Null,
    }
}

pub fn string(v: &OwnedVariant) -> Option<String> {
    match &**v {
        zbus::Variant::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

pub fn boolean(v: &OwnedVariant) -> Option<bool> {
    match &**v {
        zbus::Variant::Bool(b) => Some(*b),
        _ => None,
    }
}

pub fn strings(v: &OwnedVariant) -> Vec<String> {
    match &**v {
        zbus::Variant::Array(a) => a
            .iter()
            .filter_map(|x| match x {
                zbus::Variant::Str(s) => Some(s.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
