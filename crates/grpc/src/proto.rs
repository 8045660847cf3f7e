//! The `sluice.v1` messages and service, generated from
//! `proto/sluice/v1/forward.proto`, plus the sender's wire form of a push.

#[allow(missing_docs, clippy::all, clippy::unwrap_used, missing_debug_implementations)]
mod generated {
    tonic::include_proto!("sluice.v1");
}

pub use generated::*;

/// The gRPC path of `Forward.Push`.
pub const PUSH_PATH: &str = "/sluice.v1.Forward/Push";

/// [`PushRequest`] as the sender builds it: each event already encoded (the
/// sink encodes an event once, and a retry or a split reuses the bytes). A
/// repeated message field and a repeated bytes field are the same on the
/// wire, so a receiver decodes this as a `PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequestWire {
    /// Each an encoded [`Event`].
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub events: Vec<bytes::Bytes>,
    /// See [`PushRequest::batch_id`].
    #[prost(bytes = "bytes", tag = "2")]
    pub batch_id: bytes::Bytes,
    /// See [`PushRequest::sender`].
    #[prost(string, tag = "3")]
    pub sender: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn the_senders_wire_form_decodes_as_a_push_request() {
        let events = [
            Event {
                stream: "signin_attempts".into(),
                source_id: "op".into(),
                raw: bytes::Bytes::from_static(br#"{"uuid":"a"}"#),
                document: bytes::Bytes::from_static(br#"{"uuid":"a","x":1}"#),
                dataset: "1password.signin_attempts".into(),
            },
            Event::default(),
        ];
        let wire = PushRequestWire {
            events: events.iter().map(|e| e.encode_to_vec().into()).collect(),
            batch_id: bytes::Bytes::from_static(b"0123456789abcdef"),
            sender: "edge-1".into(),
        };
        let decoded = PushRequest::decode(wire.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded.events, events);
        assert_eq!(&decoded.batch_id[..], b"0123456789abcdef");
        assert_eq!(decoded.sender, "edge-1");
    }

    #[test]
    fn unknown_fields_from_a_newer_peer_are_ignored() {
        let mut bytes = Event { stream: "item_usages".into(), ..Event::default() }.encode_to_vec();
        // Field 9 (reserved for a future version), a varint.
        bytes.extend_from_slice(&[9 << 3, 42]);
        let event = Event::decode(bytes.as_slice()).expect("tolerates unknown fields");
        assert_eq!(event.stream, "item_usages");
    }
}
