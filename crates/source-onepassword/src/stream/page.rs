//! One API page turned into events: each item parsed once (its text kept
//! for `event.original`), an item that cannot be an event passed on as a
//! `pipeline_error` with its raw text, every event tagged with the stream's
//! dataset and the source id (the polling kit gives them the page's
//! finalizer).

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sluice_core::Event;
use sluice_core::metrics::{ComponentMetrics, Stage};

use crate::streams::Stream;

/// A page's events, its newest timestamp and its bytes.
pub(super) struct PageEvents {
    pub(super) events: Vec<Event>,
    pub(super) newest: Option<DateTime<Utc>>,
    pub(super) bytes: usize,
}

/// The events of `items` (those at `not_utf8` were not UTF-8).
pub(super) fn events_of(
    items: Vec<Bytes>,
    not_utf8: &[usize],
    source_id: &str,
    stream: Stream,
    component: &ComponentMetrics,
) -> PageEvents {
    let source: Arc<str> = source_id.into();
    let dataset: Arc<str> = stream.dataset().into();
    let mut events = Vec::with_capacity(items.len());
    let mut newest: Option<DateTime<Utc>> = None;
    let mut bytes = 0;
    for (n, raw) in items.into_iter().enumerate() {
        bytes += raw.len();
        let parsed = if not_utf8.contains(&n) {
            Err("the item is not valid UTF-8 (shown with U+FFFD in place of the invalid bytes)"
                .to_owned())
        } else {
            Event::from_json(raw.clone()).map_err(|e| e.to_string())
        };
        let mut event = match parsed {
            Ok(event) => event,
            // One item the API sent that cannot be an event (a number out
            // of range, say) must not stop the stream: it goes on as a
            // `pipeline_error` event with its raw text, and the rest of the
            // page is delivered.
            Err(err) => {
                component.error(Stage::Receiving, "parse_failed");
                tracing::error!(%stream, error = %err, "an item of the page is not a usable event; it goes on as a pipeline_error event with its raw text");
                let meta = sluice_core::EventMetadata {
                    raw: Some(raw),
                    dataset: Some(dataset.clone()),
                    ..Default::default()
                };
                let message = format!("the item is not a usable event: {err}");
                Event::pipeline_error(meta, "parse_failed", message, source_id)
            }
        };
        if let Some(ts) = timestamp_of(&event) {
            newest = Some(newest.map_or(ts, |n| n.max(ts)));
        }
        event.meta.dataset = Some(dataset.clone());
        event.meta.source_id = Some(source.clone());
        events.push(event);
    }
    PageEvents { events, newest, bytes }
}

/// The event's `timestamp`, when it is RFC 3339.
fn timestamp_of(event: &Event) -> Option<DateTime<Utc>> {
    let vrl::value::Value::Object(map) = &event.value else { return None };
    let text = match map.get("timestamp")? {
        value @ (vrl::value::Value::Bytes(_) | vrl::value::Value::String(_)) => {
            value.to_string_lossy()
        }
        _ => return None,
    };
    DateTime::parse_from_rfc3339(&text).ok().map(|t| t.with_timezone(&Utc))
}
