//! Resends of one batch are delivered once. An edge whose push timed out
//! sends the same events again with the same `batch_id`; while the first
//! delivery is under way the resend waits for its answer, and for a while
//! after it finished the resend gets the answer it missed. Without this a
//! slow downstream (a sink retrying for minutes) would double every batch
//! in destinations that cannot deduplicate, like Splunk.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::proto::PushResponse;

/// A batch's answer: the response, or the gRPC error to send.
pub(crate) type Answer = Result<PushResponse, (tonic::Code, String)>;

/// How long a finished batch's answer is kept for a late resend.
const KEEP_DONE: Duration = Duration::from_secs(600);
/// The most answers kept.
const MAX_DONE: usize = 10_000;

/// What is known about a batch id.
pub(crate) enum Lookup {
    /// Delivered before: the answer.
    Done(PushResponse),
    /// Being delivered: wait for this.
    Running(watch::Receiver<Option<Answer>>),
    /// Never seen (or answered with an error): deliver it.
    New,
}

#[derive(Default)]
pub(crate) struct Joins {
    running: HashMap<Bytes, watch::Receiver<Option<Answer>>>,
    done: HashMap<Bytes, PushResponse>,
    order: VecDeque<(Instant, Bytes)>,
}

impl Joins {
    pub(crate) fn lookup(&mut self, id: &Bytes) -> Lookup {
        self.expire(Instant::now());
        if let Some(answer) = self.done.get(id) {
            return Lookup::Done(answer.clone());
        }
        match self.running.get(id) {
            Some(rx) => Lookup::Running(rx.clone()),
            None => Lookup::New,
        }
    }

    pub(crate) fn start(&mut self, id: Bytes, rx: watch::Receiver<Option<Answer>>) {
        self.running.insert(id, rx);
    }

    /// The batch is final; an error is forgotten so a resend delivers again.
    pub(crate) fn finish(&mut self, id: &Bytes, answer: &Answer) {
        self.running.remove(id);
        if let Ok(response) = answer {
            self.done.insert(id.clone(), response.clone());
            self.order.push_back((Instant::now(), id.clone()));
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, id)) = self.order.front() {
            if now.duration_since(*at) < KEEP_DONE && self.order.len() <= MAX_DONE {
                break;
            }
            self.done.remove(id);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::push_response::Status;

    #[test]
    fn a_resend_waits_then_gets_the_same_answer_and_errors_are_forgotten() {
        let mut joins = Joins::default();
        let id = Bytes::from_static(b"batch-1");
        assert!(matches!(joins.lookup(&id), Lookup::New));
        let (tx, rx) = watch::channel(None);
        joins.start(id.clone(), rx);
        assert!(matches!(joins.lookup(&id), Lookup::Running(_)));
        let delivered = PushResponse { status: Status::Delivered as i32, rejections: vec![] };
        let answer: Answer = Ok(delivered.clone());
        tx.send_replace(Some(answer.clone()));
        joins.finish(&id, &answer);
        assert!(matches!(joins.lookup(&id), Lookup::Done(r) if r == delivered));

        let other = Bytes::from_static(b"batch-2");
        let (_tx, rx) = watch::channel(None);
        joins.start(other.clone(), rx);
        joins.finish(&other, &Err((tonic::Code::Unavailable, "sinks failed".into())));
        assert!(matches!(joins.lookup(&other), Lookup::New), "a failed batch is delivered again");
    }

    #[test]
    fn answers_expire() {
        let mut joins = Joins::default();
        let id = Bytes::from_static(b"old");
        joins.finish(&id, &Ok(PushResponse::default()));
        joins.expire(Instant::now() + KEEP_DONE + Duration::from_secs(1));
        assert!(matches!(joins.lookup(&id), Lookup::New));
    }
}
