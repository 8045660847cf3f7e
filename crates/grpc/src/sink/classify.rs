//! The aggregator's answers → the delivery layer's classes. Only an event
//! the aggregator rejected for good is a rejection; credentials and TLS
//! refusals are refused (`/health`, retried slowly); everything else,
//! including answers this version does not know, is retried.

use sluice_core::error::error_chain;
use sluice_core::sink::{Failure, ItemOutcome, RequestError};
use tonic::Code;

use crate::proto::PushResponse;
use crate::proto::push_response::Status;

/// The canonical gRPC name of a code, as `grpc-status` documents it.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A status as one line: its message and every cause (a TLS alert, a
/// refused connection), never its metadata.
pub(crate) fn describe(status: &tonic::Status) -> String {
    let message = status.message();
    match std::error::Error::source(status).map(error_chain) {
        Some(chain) if message.is_empty() || chain.starts_with(message) => chain,
        Some(chain) => format!("{message}: {chain}"),
        None => message.to_owned(),
    }
}

/// What a TLS failure means for the operator, if it is one.
fn tls_hint(reason: &str) -> Option<&'static str> {
    if reason.contains("CertificateRequired") {
        Some("the aggregator requires a client certificate: set tls.crt_file and tls.key_file")
    } else if reason.contains("alert: UnknownCA") || reason.contains("alert: BadCertificate") {
        Some("the aggregator does not trust this edge's client certificate")
    } else if reason.contains("invalid peer certificate") {
        Some("this edge does not trust the aggregator's certificate: set tls.ca_file to its CA")
    } else if reason.contains("HandshakeFailure") || reason.contains("certificate") {
        Some("the TLS handshake failed")
    } else {
        None
    }
}

/// A request that got a gRPC error status.
pub(crate) fn status(status: &tonic::Status) -> RequestError {
    let reason = describe(status);
    let failure = Failure::without_status(code_name(status.code()), reason.clone());
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied | Code::Unimplemented | Code::NotFound => {
            RequestError::Refused(failure)
        }
        Code::OutOfRange => RequestError::TooLarge(failure),
        Code::InvalidArgument => RequestError::Invalid(failure),
        // The aggregator's TLS refused this edge (no client certificate, an
        // untrusted one) or this edge refused the aggregator's certificate:
        // settings, not a passing fault.
        Code::Unavailable | Code::Unknown => match tls_hint(&reason) {
            Some(hint) => {
                RequestError::Refused(Failure::without_status("TLS", format!("{hint} ({reason})")))
            }
            None => RequestError::Retry(failure),
        },
        _ => RequestError::Retry(failure),
    }
}

fn malformed(reason: String) -> RequestError {
    RequestError::Retry(Failure::without_status("malformed_answer", reason))
}

/// An answer to a push of `len` events: one outcome per event.
pub(crate) fn response(answer: PushResponse, len: usize) -> Result<Vec<ItemOutcome>, RequestError> {
    match Status::try_from(answer.status) {
        Ok(Status::Delivered) if answer.rejections.is_empty() => {
            Ok(vec![ItemOutcome::Delivered; len])
        }
        Ok(Status::Delivered) => Err(malformed("DELIVERED with rejections; sending again".into())),
        Ok(Status::Rejected) if !answer.rejections.is_empty() => {
            let mut outcomes = vec![ItemOutcome::Delivered; len];
            for rejection in answer.rejections {
                let index = rejection.index as usize;
                let Some(slot) = outcomes.get_mut(index) else {
                    return Err(malformed(format!(
                        "a rejection names event {index} of a batch of {len}"
                    )));
                };
                let kind =
                    if rejection.kind.is_empty() { "rejected".into() } else { rejection.kind };
                *slot = ItemOutcome::Rejected(Failure::without_status(
                    kind,
                    format!("the aggregator rejected it: {}", rejection.reason),
                ));
            }
            Ok(outcomes)
        }
        _ => Err(malformed(format!(
            "status {} is not one this version knows (a newer aggregator?); sending again",
            answer.status
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Rejection;

    fn answer(status: Status, rejections: Vec<(u32, &str)>) -> PushResponse {
        PushResponse {
            status: status as i32,
            rejections: rejections
                .into_iter()
                .map(|(index, kind)| Rejection { index, kind: kind.into(), reason: "bad".into() })
                .collect(),
        }
    }

    #[test]
    fn delivered_acknowledges_every_event() {
        assert_eq!(
            response(answer(Status::Delivered, vec![]), 3),
            Ok(vec![ItemOutcome::Delivered; 3])
        );
    }

    #[test]
    fn rejections_reject_those_events_only() {
        let outcomes =
            response(answer(Status::Rejected, vec![(1, "invalid_document")]), 3).expect("answer");
        assert_eq!(outcomes[0], ItemOutcome::Delivered);
        assert_eq!(outcomes[2], ItemOutcome::Delivered);
        let ItemOutcome::Rejected(failure) = &outcomes[1] else { panic!("{outcomes:?}") };
        assert_eq!(failure.kind, "invalid_document");
        assert!(failure.reason.contains("the aggregator rejected it: bad"));
    }

    #[test]
    fn unknown_or_contradictory_answers_are_sent_again() {
        for bad in [
            answer(Status::Unspecified, vec![]),
            PushResponse { status: 7, rejections: vec![] },
            answer(Status::Rejected, vec![]),
            answer(Status::Rejected, vec![(3, "x")]),
            answer(Status::Delivered, vec![(0, "x")]),
        ] {
            assert!(matches!(response(bad.clone(), 3), Err(RequestError::Retry(_))), "{bad:?}");
        }
    }

    #[test]
    fn credentials_are_refusals_overload_and_outages_are_retried() {
        let refused = [Code::Unauthenticated, Code::PermissionDenied, Code::Unimplemented];
        for code in refused {
            assert!(matches!(status(&tonic::Status::new(code, "no")), RequestError::Refused(_)));
        }
        for code in [
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::Cancelled,
        ] {
            assert!(
                matches!(status(&tonic::Status::new(code, "later")), RequestError::Retry(_)),
                "{code:?}"
            );
        }
        assert!(matches!(
            status(&tonic::Status::out_of_range("too big")),
            RequestError::TooLarge(_)
        ));
        assert!(matches!(
            status(&tonic::Status::invalid_argument("bad")),
            RequestError::Invalid(_)
        ));
        let tls = tonic::Status::unavailable(
            "transport error: received fatal alert: CertificateRequired",
        );
        let RequestError::Refused(failure) = status(&tls) else {
            panic!("a TLS refusal is a setting")
        };
        assert_eq!(
            failure.to_string(),
            "TLS: the aggregator requires a client certificate: set tls.crt_file and tls.key_file (transport error: received fatal alert: CertificateRequired)"
        );
    }
}
