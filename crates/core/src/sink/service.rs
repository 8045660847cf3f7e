//! What a batching sink gives the delivery layer, and what the delivery
//! tasks of one sink share: the [`Encoded`] item, the [`BatchService`] that
//! sends items, and [`Shared`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use crate::metrics::ComponentMetrics;
use crate::sink::adaptive::Limiter;
use crate::sink::config::DriverSettings;
use crate::sink::dead_letter::DeadLetter;
use crate::sink::outcome::{ItemOutcome, RequestError};
use crate::sink::progress::Progress;

/// One event, encoded for its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// What this item adds to a request body (ES: the action and document lines).
    pub payload: Bytes,
    /// The document as JSON, for the dead letter (often a slice of `payload`).
    pub document: Bytes,
    /// Where it goes (an index, a sourcetype), for logs and the dead letter.
    pub destination: Arc<str>,
}

/// The part of a sink that talks to its destination: send encoded items,
/// say what happened to each.
pub trait BatchService: Send + Sync + 'static {
    /// Send `items` in one request: one outcome per item, in order, or a
    /// failure of the whole request.
    fn send(
        &self,
        items: &[Encoded],
    ) -> impl Future<Output = Result<Vec<ItemOutcome>, RequestError>> + Send;
}

/// What every delivery task of one sink shares.
pub(crate) struct Shared<S> {
    pub(crate) service: S,
    pub(crate) settings: DriverSettings,
    pub(crate) dead_letter: DeadLetter,
    pub(crate) progress: Progress,
    pub(crate) metrics: ComponentMetrics,
    pub(crate) id: String,
    pub(crate) destination: String,
    /// Requests in flight, learned or fixed.
    pub(crate) limiter: Arc<Limiter>,
    /// Source receipt → delivered, per event.
    pub(crate) latency: metrics::Histogram,
}
