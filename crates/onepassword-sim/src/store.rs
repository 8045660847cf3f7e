//! Events per stream, sorted by (ingestion time, uuid), and the page query.

use std::sync::{Mutex, MutexGuard};

use crate::cursor::CursorState;
use crate::{ApiVersion, SimEvent, SimStream};

#[derive(Debug, Default)]
struct StreamEvents {
    events: Vec<SimEvent>,
    /// The latest `now` a page was served at: events inserted later must
    /// sort after every position a client may hold.
    served_until: i64,
}

/// All events.
#[derive(Debug, Default)]
pub struct Store {
    streams: [Mutex<StreamEvents>; 3],
}

/// One page.
#[derive(Debug)]
pub struct Page {
    /// Items as the API returns them.
    pub items: Vec<serde_json::Value>,
    /// The position of the last item, if any.
    pub last: Option<(i64, String)>,
    /// Whether more matching events are already visible.
    pub has_more: bool,
}

impl Store {
    fn lock(&self, stream: SimStream) -> MutexGuard<'_, StreamEvents> {
        self.streams[stream.index()].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add events generated in the past (ingestion times as given).
    pub fn extend(&self, stream: SimStream, mut events: Vec<SimEvent>) {
        let mut guard = self.lock(stream);
        guard.events.append(&mut events);
        guard.events.sort_by(|a, b| (a.ingested, &a.uuid).cmp(&(b.ingested, &b.uuid)));
    }

    /// Ingest one event now: its ingestion time is after anything served.
    pub fn ingest(&self, mut event: SimEvent, now: i64) -> i64 {
        let mut guard = self.lock(event.stream);
        event.ingested = now.max(guard.served_until + 1);
        let key = (event.ingested, event.uuid.clone());
        let at = guard.events.partition_point(|e| (e.ingested, &e.uuid) < (key.0, &key.1));
        guard.events.insert(at, event);
        key.0
    }

    /// The uuids of the events of `stream` visible at `now`, in paging order.
    pub fn visible_uuids(&self, stream: SimStream, now: i64) -> Vec<String> {
        self.lock(stream)
            .events
            .iter()
            .take_while(|e| e.ingested <= now)
            .map(|e| e.uuid.clone())
            .collect()
    }

    /// The items of `stream` visible at `now`, by uuid, as the v2 API serves them.
    pub fn visible_items(&self, stream: SimStream, now: i64) -> Vec<(String, serde_json::Value)> {
        self.lock(stream)
            .events
            .iter()
            .take_while(|e| e.ingested <= now)
            .map(|e| (e.uuid.clone(), e.render(crate::ApiVersion::V2)))
            .collect()
    }

    /// Events of `stream` visible at `now`.
    pub fn visible(&self, stream: SimStream, now: i64) -> usize {
        self.lock(stream).events.iter().take_while(|e| e.ingested <= now).count()
    }

    /// The page after `cursor`'s position, among events visible at `now`
    /// whose timestamp is in the cursor's window.
    pub fn page(&self, cursor: &CursorState, version: ApiVersion, now: i64) -> Page {
        let mut guard = self.lock(cursor.stream);
        guard.served_until = guard.served_until.max(now);
        let start = match &cursor.after {
            Some((ingested, uuid)) => {
                guard.events.partition_point(|e| (e.ingested, &e.uuid) <= (*ingested, uuid))
            }
            None => 0,
        };
        let in_window = |e: &&SimEvent| {
            e.occurred >= cursor.start && cursor.end.is_none_or(|end| e.occurred < end)
        };
        let mut matching =
            guard.events[start..].iter().take_while(|e| e.ingested <= now).filter(in_window);
        let chosen: Vec<&SimEvent> = matching.by_ref().take(usize::from(cursor.limit)).collect();
        let has_more = matching.next().is_some();
        Page {
            items: chosen.iter().map(|e| e.render(version)).collect(),
            last: chosen.last().map(|e| (e.ingested, e.uuid.clone())),
            has_more,
        }
    }
}
