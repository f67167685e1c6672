//! The D-Bus service: `org.ballast.Daemon1` at [`ROOT_PATH`] ([`root`]), and one object per node at
//! `ROOT_PATH/node/NAME` ([`node`]). zbus 6 runs the connection on its own runtime; method handlers
//! never touch the engine: they send a [`Request`] with a reply channel to the control thread (the
//! only owner of the `Controller`) and wait for the answer on a pool thread (`zruntime::unblock`), so
//! the connection keeps serving meanwhile.
//!
//! ```text
//!  clients ─► zbus handlers ──(Request, reply tx)──► control thread: Answerer over the Controller
//!                 │   ▲                                   │
//!                 ▼   └──────────── answer ◄──────────────┘
//!          events thread: node objects added/removed, GraphChanged / ParamChanged / Xrun / Meters
//!          signals, PropertiesChanged, transactions and subscriptions of vanished clients dropped
//! ```
//!
//! The control thread plugs in with one `select!` arm on the request receiver (see [`serve`]) and tells
//! the service about changes it made itself through [`DbusHandle`] (reload, xruns).

mod error;
mod events;
pub mod node;
pub mod root;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use zbus::fdo::{RequestNameFlags, RequestNameReply};

pub use error::Error;

use crate::control_api::{Answer, ApiError, GraphOp, Request};

/// The well-known bus name.
pub const BUS_NAME: &str = "org.ballast.Daemon1";
/// The root object.
pub const ROOT_PATH: &str = "/org/ballast/Daemon1";
/// Node objects live under this path, one element per node ([`node_path`]).
pub const NODE_PATH_PREFIX: &str = "/org/ballast/Daemon1/node";
pub const ROOT_INTERFACE: &str = "org.ballast.Daemon1";
pub const NODE_INTERFACE: &str = "org.ballast.Node1";

/// How long a handler waits for the control thread before answering `Busy`.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a `Learn` or `Estimate` handler waits for its result: reading two long files and running the
/// model on a loaded machine takes seconds, and the control thread answers when the worker is done.
pub const MODEL_REPLY_TIMEOUT: Duration = Duration::from_secs(120);
/// The most operations one transaction may collect.
pub const MAX_TRANSACTION_OPS: usize = 1024;
/// Meter subscription rates accepted, in Hz.
pub const METER_RATES_HZ: std::ops::RangeInclusive<f64> = 0.1..=60.0;

/// What the control thread answers with.
pub type Reply = Result<Answer, ApiError>;
/// How handlers reach the control thread.
pub type RequestSender = Sender<(Request, Sender<Reply>)>;

/// Which bus to serve on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusKind {
    /// `DBUS_SESSION_BUS_ADDRESS` (the default).
    Session,
    /// `--system`.
    System,
    /// An explicit address (tests, private buses).
    Address(String),
}

impl BusKind {
    fn describe(&self) -> String {
        match self {
            BusKind::Session => "the session bus".into(),
            BusKind::System => "the system bus".into(),
            BusKind::Address(a) => format!("the bus at {a}"),
        }
    }
}

/// Why [`serve`] could not start.
#[derive(Debug)]
pub enum ServeError {
    /// Another process owns the bus name (and, with `--replace`, did not allow replacement).
    NameTaken { bus: String, replace: bool },
    /// The bus could not be reached or refused us.
    Bus(String),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::NameTaken { bus, replace: false } => write!(
                f,
                "{BUS_NAME} is already owned on {bus}: another ballastd is running (stop it, or start this one \
                 with --replace to take over)"
            ),
            ServeError::NameTaken { bus, replace: true } => {
                write!(f, "{BUS_NAME} is owned on {bus} by a process that does not allow replacement")
            }
            ServeError::Bus(e) => write!(f, "cannot serve on D-Bus: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// What the events thread is told.
#[derive(Debug)]
pub(crate) enum Notification {
    /// Bring the node objects in line with the graph; `announce` emits `GraphChanged`.
    Sync {
        announce: bool,
    },
    ParamChanged {
        node: String,
        param: String,
        value: f64,
    },
    BypassChanged {
        node: String,
    },
    Xruns(u64),
    /// Re-plan the meter schedule (a subscription changed).
    Wake,
    Stop,
}

/// One client's meter subscription.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subscription {
    pub period: Duration,
    pub due: Instant,
}

/// State the interfaces share (all `Send + Sync`).
pub(crate) struct Shared {
    requests: RequestSender,
    pub notes: Sender<Notification>,
    /// Open transactions by the caller's unique bus name.
    pub transactions: Mutex<HashMap<String, Vec<GraphOp>>>,
    /// Meter subscriptions by the caller's unique bus name.
    pub subscriptions: Mutex<HashMap<String, Subscription>>,
    /// Set when the handle is dropped: the events thread stops waiting for the control thread (which
    /// may be the very thread dropping the handle).
    stopping: AtomicBool,
}

impl Shared {
    /// Sends `req` to the control thread and waits (on a pool thread) for the answer.
    pub async fn ask(&self, req: Request) -> Result<Answer, Error> {
        self.ask_within(req, REPLY_TIMEOUT).await
    }

    /// [`Shared::ask`] with its own patience, for requests the control thread answers only once a
    /// worker is done.
    pub async fn ask_within(&self, req: Request, timeout: Duration) -> Result<Answer, Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.requests.send((req, tx)).map_err(|_| Error::Failed("the daemon is shutting down".into()))?;
        let reply = zruntime::unblock(move || rx.recv_timeout(timeout)).await;
        Self::reply(reply, timeout)
    }

    /// [`Shared::ask`] for the events thread; gives up at once when the service stops.
    pub fn ask_blocking(&self, req: Request) -> Result<Answer, Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.requests.send((req, tx)).map_err(|_| Error::Failed("the daemon is shutting down".into()))?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if self.stopping.load(Ordering::Relaxed) {
                        return Err(Error::Failed("the D-Bus service is stopping".into()));
                    }
                }
                other => return Self::reply(other, REPLY_TIMEOUT),
            }
        }
    }

    fn reply(reply: Result<Reply, RecvTimeoutError>, timeout: Duration) -> Result<Answer, Error> {
        match reply {
            Ok(answer) => answer.map_err(Error::from),
            Err(RecvTimeoutError::Timeout) => Err(Error::Busy(format!(
                "the daemon's control thread did not answer within {} s; try again",
                timeout.as_secs()
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Failed("the daemon is shutting down".into())),
        }
    }

    pub fn note(&self, n: Notification) {
        // Unbounded: never blocks; fails only once the events thread is gone (shutting down).
        let _ = self.notes.send(n);
    }
}

/// The object path of node `name`: `NODE_PATH_PREFIX/` + the name with every byte outside `[A-Za-z0-9]`
/// written `_xx` (lower-case hex), as sd-bus escapes path labels, so `-`, `.` and `_` in node names
/// stay unambiguous.
pub fn node_path(name: &str) -> String {
    let mut p = String::with_capacity(NODE_PATH_PREFIX.len() + 1 + name.len() * 3);
    p.push_str(NODE_PATH_PREFIX);
    p.push('/');
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(b as char);
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

/// The running service. Dropping it stops the events thread, releases the name and closes the
/// connection.
pub struct DbusHandle {
    conn: zbus::Connection,
    shared: Arc<Shared>,
    name_lost: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DbusHandle {
    /// Our unique name on the bus.
    pub fn unique_name(&self) -> String {
        self.conn.unique_name().map(|n| n.to_string()).unwrap_or_default()
    }

    /// The control thread changed the graph itself (reload, SIGHUP): node objects follow, and
    /// `GraphChanged` is emitted.
    pub fn graph_changed(&self) {
        self.shared.note(Notification::Sync { announce: true });
    }

    /// The control thread changed a parameter itself: `ParamChanged` and the node's `Params` change.
    pub fn param_changed(&self, node: &str, param: &str, value: f64) {
        self.shared.note(Notification::ParamChanged { node: node.into(), param: param.into(), value });
    }

    /// The backend's xrun counter; `Xrun(total)` is emitted when it grew. Call it from the control
    /// thread's tick.
    pub fn xruns(&self, total: u64) {
        self.shared.note(Notification::Xruns(total));
    }

    /// Clients with a transaction open now.
    pub fn open_transactions(&self) -> usize {
        self.shared.transactions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Clients subscribed to meters now.
    pub fn meter_subscribers(&self) -> usize {
        self.shared.subscriptions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True once another process took the name over (`--replace`): this daemon no longer gets calls.
    pub fn name_lost(&self) -> bool {
        self.name_lost.load(Ordering::Relaxed)
    }
}

impl Drop for DbusHandle {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.note(Notification::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let conn = self.conn.clone();
        let _ = zbus::block_on(async move { conn.release_name(BUS_NAME).await });
    }
}

/// Connects to `bus`, serves the root object, takes the name [`BUS_NAME`] (`replace`: take it over from
/// a running daemon that allows it, as every ballastd does) and starts the events thread. Requests go
/// to `requests`; the control thread answers each with the reply channel that comes with it:
///
/// ```text
/// recv(dbus_requests) -> msg => if let Ok((req, reply)) = msg {
///     let answer = Answerer { controller: &mut self.controller, status: self.status_info(),
///                             presets: &self.presets, bypassed: &mut self.bypassed }.answer(req);
///     let answer = match answer { Ok(Answer::Reload) => self.reload_for_client(), other => other };
///     let _ = reply.send(answer);   // bounded(1), never blocks
/// }
/// ```
///
/// The control thread also: saves the state file after a successful `Set`, `Bypass`, `Commit` or
/// `PresetLoad` (run-time edits persist); calls [`DbusHandle::xruns`] from its tick and
/// [`DbusHandle::graph_changed`] after a SIGHUP reload; and stops when [`DbusHandle::name_lost`]
/// turns true. Call `serve` after SIGINT/SIGTERM/SIGHUP are blocked: zbus's threads start here and
/// inherit the mask.
///
/// Must not be called from inside a zbus task. Node objects appear once the control thread has
/// answered the first `ListNodes` (the events thread asks; `serve` itself never waits for the
/// control thread, so the control thread may call it).
pub fn serve(bus: BusKind, replace: bool, requests: RequestSender) -> Result<DbusHandle, ServeError> {
    let (notes_tx, notes_rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared {
        requests,
        notes: notes_tx,
        transactions: Mutex::new(HashMap::new()),
        subscriptions: Mutex::new(HashMap::new()),
        stopping: AtomicBool::new(false),
    });
    let root = root::Daemon { shared: shared.clone() };
    let describe = bus.describe();
    let conn = zbus::block_on(async move {
        let builder = match &bus {
            BusKind::Session => zbus::connection::Builder::session(),
            BusKind::System => zbus::connection::Builder::system(),
            BusKind::Address(a) => zbus::connection::Builder::address(a.as_str()),
        };
        let conn = builder.serve_at(ROOT_PATH, root).build().await.map_err(|e| ServeError::Bus(e.to_string()))?;
        let mut flags = RequestNameFlags::DO_NOT_QUEUE | RequestNameFlags::ALLOW_REPLACEMENT;
        if replace {
            flags |= RequestNameFlags::REPLACE_EXISTING;
        }
        match conn.request_name_with_flags(BUS_NAME, flags).await {
            Ok(RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner) => Ok(conn),
            Ok(RequestNameReply::Exists | RequestNameReply::InQueue) | Err(zbus::Error::NameTaken) => {
                Err(ServeError::NameTaken { bus: bus.describe(), replace })
            }
            Err(e) => Err(ServeError::Bus(format!("cannot own {BUS_NAME}: {e}"))),
        }
    })?;
    tracing::info!("serving {BUS_NAME} on {describe} as {}", conn.unique_name().map(|n| n.as_str()).unwrap_or("?"));

    let name_lost = Arc::new(AtomicBool::new(false));
    shared.note(Notification::Sync { announce: false });
    let thread = events::spawn(conn.clone(), shared.clone(), notes_rx, name_lost.clone())
        .map_err(|e| ServeError::Bus(format!("cannot start the D-Bus events thread: {e}")))?;
    Ok(DbusHandle { conn, shared, name_lost, thread: Some(thread) })
}

/// A pair for the control thread's mailbox: handlers send on the first, the control thread receives
/// on the second.
pub fn request_channel() -> (RequestSender, Receiver<(Request, Sender<Reply>)>) {
    crossbeam_channel::unbounded()
}
