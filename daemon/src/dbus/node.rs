//! `org.ballast.Node1`, one object per node at `/org/ballast/Daemon1/node/NAME`: its kind and name,
//! whether it is bypassed, every parameter's value as the `Params` property (`a{sd}`: all values are
//! numbers in the descriptor's unit, choices as indices, switches 0/1), and `Describe()` for each
//! parameter's descriptor. D-Bus interfaces are static in zbus, so parameters are one typed map rather
//! than one property each.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::object_server::SignalEmitter;
use zbus::{interface, OwnedVariant, Str};

use super::{Error, Notification, Shared};
use crate::control_api::{Answer, Request};

/// One node's object.
pub struct Node {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) shared: Arc<Shared>,
}

fn s(v: &str) -> OwnedVariant {
    OwnedVariant::from(Str::from(v.to_string()))
}

fn fdo(e: Error) -> zbus::fdo::Error {
    match e {
        Error::ZBus(e) => zbus::fdo::Error::ZBus(e),
        Error::UnknownNode(m) => zbus::fdo::Error::UnknownObject(m),
        Error::Busy(m) => zbus::fdo::Error::LimitsExceeded(m),
        other => zbus::fdo::Error::Failed(format!("{other:?}")),
    }
}

#[interface(name = "org.ballast.Node1")]
impl Node {
    /// The node kind (`compressor`, `multiband`…).
    #[zbus(property(emits_changed_signal = "const"))]
    fn kind(&self) -> String {
        self.kind.clone()
    }

    /// The node's name in the graph.
    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Whether the node is bypassed (its input, latency-aligned, is passed on).
    #[zbus(property)]
    async fn bypassed(&self) -> zbus::fdo::Result<bool> {
        match self.shared.ask(Request::ListNodes).await.map_err(fdo)? {
            Answer::Nodes(nodes) => nodes
                .iter()
                .find(|n| n.name == self.name)
                .map(|n| n.bypassed)
                .ok_or_else(|| zbus::fdo::Error::UnknownObject(format!("node {} is gone", self.name))),
            _ => Err(zbus::fdo::Error::Failed("unexpected answer to ListNodes".into())),
        }
    }

    /// Every parameter's current value, by key (per band `band2.threshold_db`).
    #[zbus(property)]
    async fn params(&self) -> zbus::fdo::Result<HashMap<String, f64>> {
        match self.shared.ask(Request::Params { node: self.name.clone() }).await.map_err(fdo)? {
            Answer::Params(params) => Ok(params.into_iter().map(|p| (p.key, p.value)).collect()),
            _ => Err(zbus::fdo::Error::Failed("unexpected answer to Params".into())),
        }
    }

    /// Each parameter's descriptor, in descriptor order: key (s), name (s), unit (s), min (d), max (d),
    /// default (d), scale (s: linear, log), doc (s), choices (as: a choice's options, the value is the
    /// index), boolean (b: a 0/1 switch), value (d).
    #[zbus(out_args("params"))]
    async fn describe(&self) -> Result<Vec<HashMap<String, OwnedVariant>>, Error> {
        let Answer::Params(params) = self.shared.ask(Request::Params { node: self.name.clone() }).await? else {
            return Err(Error::Failed("unexpected answer to Params".into()));
        };
        params
            .into_iter()
            .map(|p| {
                let choices = OwnedVariant::try_from(zbus::Variant::from(p.choices)).map_err(Error::ZBus)?;
                Ok(HashMap::from([
                    ("key".to_string(), s(&p.key)),
                    ("name".to_string(), s(&p.name)),
                    ("unit".to_string(), s(&p.unit)),
                    ("min".to_string(), OwnedVariant::from(p.min)),
                    ("max".to_string(), OwnedVariant::from(p.max)),
                    ("default".to_string(), OwnedVariant::from(p.default)),
                    ("scale".to_string(), s(&p.scale)),
                    ("doc".to_string(), s(&p.doc)),
                    ("choices".to_string(), choices),
                    ("boolean".to_string(), OwnedVariant::from(p.boolean)),
                    ("value".to_string(), OwnedVariant::from(p.value)),
                ]))
            })
            .collect()
    }

    /// A parameter's value.
    #[zbus(out_args("value"))]
    async fn get(&self, param: &str) -> Result<f64, Error> {
        match self.shared.ask(Request::Get { node: self.name.clone(), param: param.into() }).await? {
            Answer::Value(v) => Ok(v),
            a => Err(Error::Failed(format!("unexpected answer: {a:?}"))),
        }
    }

    /// Sets a parameter (validated); returns the value in effect. Emits the root's `ParamChanged` and
    /// this object's `Params` change.
    #[zbus(out_args("value"))]
    async fn set(&self, param: &str, value: f64) -> Result<f64, Error> {
        match self.shared.ask(Request::Set { node: self.name.clone(), param: param.into(), value }).await? {
            Answer::Value(v) => {
                self.shared.note(Notification::ParamChanged { node: self.name.clone(), param: param.into(), value: v });
                Ok(v)
            }
            a => Err(Error::Failed(format!("unexpected answer: {a:?}"))),
        }
    }

    /// Bypasses the node, or un-bypasses it.
    async fn bypass(&self, on: bool, #[zbus(signal_emitter)] emitter: SignalEmitter<'_>) -> Result<(), Error> {
        self.shared.ask(Request::Bypass { node: self.name.clone(), on }).await?;
        self.bypassed_changed(&emitter).await?;
        Ok(())
    }
}
