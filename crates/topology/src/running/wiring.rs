//! Who sends to whom: one bounded channel per transform and sink input, one
//! [`Fanout`] per output, and the rule that joins them. Kept while the
//! topology runs, so that a config reload can give a running output new
//! consumers and a running consumer new producers.

use std::collections::BTreeMap;

use sluice_core::component::{Fanout, FanoutLink, Outputs};
use sluice_core::metrics::ComponentMetrics;
use sluice_core::queue::{BufferConfig, QueueReceiver, QueueSender, WeakQueueSender};
use sluice_core::tap::Taps;

/// The channels and fanouts of a running topology.
#[derive(Debug, Default)]
pub(super) struct Wiring {
    /// Each consumer's inputs (`id` or `id.port`) and the sending end of its
    /// channel, weak: a channel closes when the producers that feed it are
    /// done, and the consumer then ends.
    consumers: BTreeMap<String, (Vec<String>, WeakQueueSender)>,
    /// The consumers that are sinks, as `<id> (<type>)`.
    sinks: BTreeMap<String, String>,
    /// New channels' sending ends, kept until the next rewire hands them out.
    pub(super) pending: Vec<QueueSender>,
    /// Each output (`id` or `id.port`) of a producer, weak: the producer
    /// owns it, and its consumers' channels close when it ends.
    outputs: BTreeMap<String, FanoutLink>,
}

impl Wiring {
    /// A new input channel for consumer `id`, replacing the one it had: the
    /// old channel closes once the producers that still hold it let go.
    pub(super) fn consumer(
        &mut self,
        id: &str,
        inputs: &[String],
        buffer: BufferConfig,
        metrics: &ComponentMetrics,
    ) -> QueueReceiver {
        let (tx, rx) = sluice_core::queue::queue(buffer, metrics.labels());
        self.consumers.insert(id.to_owned(), (inputs.to_vec(), tx.downgrade()));
        match metrics.kind_and_type() {
            ("sink", type_name) => self.sinks.insert(id.to_owned(), format!("{id} ({type_name})")),
            _ => self.sinks.remove(id),
        };
        self.pending.push(tx);
        rx
    }

    /// Consumer `id` is gone.
    pub(super) fn remove_consumer(&mut self, id: &str) {
        self.consumers.remove(id);
        self.sinks.remove(id);
    }

    /// The sinks that events of producer `id` reach now, through any
    /// transforms, as `<id> (<type>)`, sorted.
    pub(super) fn sinks_reached_from(&self, id: &str) -> Vec<String> {
        let mut reached = std::collections::BTreeSet::new();
        let mut seen = std::collections::BTreeSet::from([id.to_owned()]);
        let mut producers = vec![id.to_owned()];
        while let Some(producer) = producers.pop() {
            let port = format!("{producer}.");
            for (consumer, (inputs, _)) in &self.consumers {
                if !inputs.iter().any(|i| *i == producer || i.starts_with(&port)) {
                    continue;
                }
                match self.sinks.get(consumer) {
                    Some(sink) => {
                        reached.insert(sink.clone());
                    }
                    None if seen.insert(consumer.clone()) => producers.push(consumer.clone()),
                    None => {}
                }
            }
        }
        reached.into_iter().collect()
    }

    /// New outputs for producer `id` (its default output and `ports`). An
    /// instance it replaces keeps its own, which reach the consumers of the
    /// moment it was replaced until it stops.
    pub(super) fn producer(
        &mut self,
        id: &str,
        ports: &[String],
        taps: &Taps,
        metrics: &ComponentMetrics,
    ) -> Outputs {
        self.remove_producer(id);
        let mut fanout = |name: String| {
            let mut fanout = Fanout::default();
            fanout.set_tap(taps.point(&name));
            self.outputs.insert(name, fanout.link());
            fanout
        };
        let default = fanout(id.to_owned());
        let named = ports.iter().map(|p| (p.clone(), fanout(format!("{id}.{p}")))).collect();
        Outputs::new(default, named, metrics.clone())
    }

    /// Producer `id` is gone (its running instance keeps its outputs until it stops).
    pub(super) fn remove_producer(&mut self, id: &str) {
        let prefix = format!("{id}.");
        self.outputs.retain(|name, _| name != id && !name.starts_with(&prefix));
    }

    /// Give every output the consumers that name it now. Outputs whose
    /// producer has ended are forgotten. Returns the consumers whose channel
    /// closed although the config still names them, with the output that
    /// could not reach them: what such an output sends is marked errored,
    /// and the caller reports the consumer unhealthy.
    pub(super) fn rewire(&mut self) -> Vec<(String, String)> {
        let consumers = &self.consumers;
        let mut lost = Vec::new();
        self.outputs.retain(|name, link| {
            let mut gone = Vec::new();
            let mut senders = Vec::new();
            for (id, (inputs, tx)) in consumers {
                if !inputs.iter().any(|i| i == name) {
                    continue;
                }
                match tx.upgrade() {
                    Some(tx) => senders.push(tx),
                    None => gone.push((id.clone(), name.clone())),
                }
            }
            let running = link.set_consumers(senders, !gone.is_empty());
            if running {
                lost.extend(gone);
            }
            running
        });
        self.pending.clear();
        lost
    }
}
