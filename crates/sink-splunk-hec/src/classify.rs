//! HEC's answers sorted into the delivery layer's classes. Only codes about
//! the event itself (6 invalid data format, 12 and 13 no or blank event, 15
//! bad indexed fields) are rejections; token, index and channel problems
//! wait for the operator, busy and failing servers are retried.

use serde::Deserialize;
use sluice_core::sink::{Failure, ItemOutcome, RequestError};

/// A HEC reply body.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Answer {
    /// Splunk's text.
    #[serde(default)]
    pub text: String,
    /// Splunk's reply code.
    pub code: Option<u16>,
    /// The ack id, when the token has acks on.
    #[serde(rename = "ackId")]
    pub ack_id: Option<u64>,
    /// The first event not indexed (events before it are).
    #[serde(rename = "invalid-event-number")]
    pub invalid_event: Option<usize>,
}

/// Codes caused by the event itself.
const EVENT_CODES: [u16; 4] = [6, 12, 13, 15];

/// Codes about settings: token, index, channel, query-string auth, acks.
const SETTING_CODES: [u16; 9] = [1, 2, 3, 4, 7, 10, 11, 14, 16];

/// A machine word for a HEC code.
pub fn kind_of(code: Option<u16>) -> &'static str {
    match code {
        Some(0) => "success",
        Some(1) => "token_disabled",
        Some(2) => "token_required",
        Some(3) => "invalid_authorization",
        Some(4) => "invalid_token",
        Some(5) => "no_data",
        Some(6) => "invalid_data_format",
        Some(7) => "incorrect_index",
        Some(8) => "internal_server_error",
        Some(9) => "server_busy",
        Some(10) => "data_channel_missing",
        Some(11) => "invalid_data_channel",
        Some(12) => "event_field_required",
        Some(13) => "event_field_blank",
        Some(14) => "ack_disabled",
        Some(15) => "indexed_fields_error",
        Some(16) => "query_string_auth_disabled",
        Some(18..=20) => "hec_unhealthy",
        _ => "http_error",
    }
}

fn failure(status: u16, answer: &Answer) -> Failure {
    let reason = match answer.code {
        Some(code) => format!("{} (code {code})", answer.text),
        None => answer.text.clone(),
    };
    Failure::new(status, kind_of(answer.code), reason)
}

/// The request-level class of a failed answer.
fn request_error(status: u16, answer: &Answer) -> RequestError {
    let failure = failure(status, answer);
    let setting = answer.code.is_some_and(|c| SETTING_CODES.contains(&c));
    match status {
        400 if setting => RequestError::Refused(failure),
        400 if answer.code.is_some_and(|c| EVENT_CODES.contains(&c)) => {
            RequestError::Invalid(failure)
        }
        // 404 is a rolling restart here, retried like 429, 5xx (busy,
        // unhealthy), code 5 and anything unknown.
        _ => RequestError::from_http_status(status, failure),
    }
}

/// What a non-200 answer means for each of `count` items. With
/// `invalid-event-number` n, events before n are indexed (delivered), event
/// n is judged by its code and the rest are sent again.
pub fn failed(
    status: u16,
    answer: &Answer,
    count: usize,
) -> Result<Vec<ItemOutcome>, RequestError> {
    let error = request_error(status, answer);
    let Some(n) = answer.invalid_event.filter(|n| *n < count) else { return Err(error) };
    let event_fault = status == 400 && answer.code.is_some_and(|c| EVENT_CODES.contains(&c));
    if n == 0 && !event_fault {
        return Err(error);
    }
    let rest = match &error {
        RequestError::Refused(f) => ItemOutcome::Refused(f.clone()),
        other => ItemOutcome::Retry(other.failure().clone()),
    };
    let mut outcomes = vec![ItemOutcome::Delivered; n];
    outcomes.push(if event_fault {
        ItemOutcome::Rejected(failure(status, answer))
    } else {
        rest.clone()
    });
    let not_processed =
        Failure::new(status, "not_processed", "after an event HEC refused; sent again");
    outcomes.extend((n + 1..count).map(|_| match &rest {
        ItemOutcome::Refused(_) => rest.clone(),
        _ => ItemOutcome::Retry(not_processed.clone()),
    }));
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Answer {
        serde_json::from_str(body).expect("answer")
    }

    #[test]
    fn an_invalid_event_number_delivers_the_prefix_and_judges_one_event() {
        let outcomes = failed(
            400,
            &answer(r#"{"text":"Invalid data format","code":6,"invalid-event-number":5}"#),
            10,
        )
        .expect("per item");
        assert_eq!(outcomes[..5], vec![ItemOutcome::Delivered; 5][..]);
        assert!(
            matches!(&outcomes[5], ItemOutcome::Rejected(f) if f.to_string() == "400 invalid_data_format: Invalid data format (code 6)")
        );
        assert!(outcomes[6..].iter().all(|o| matches!(o, ItemOutcome::Retry(_))), "{outcomes:?}");

        let index = failed(
            400,
            &answer(r#"{"text":"Incorrect index","code":7,"invalid-event-number":2}"#),
            4,
        )
        .expect("per item");
        assert!(
            matches!(index[2], ItemOutcome::Refused(_))
                && matches!(index[3], ItemOutcome::Refused(_)),
            "{index:?}"
        );

        let busy = failed(
            503,
            &answer(r#"{"text":"Server is busy","code":9,"invalid-event-number":0}"#),
            4,
        );
        assert!(matches!(busy, Err(RequestError::Retry(_))));
    }

    #[test]
    fn token_and_setting_problems_are_refusals() {
        for (status, body) in [
            (401, r#"{"text":"Token is required","code":2}"#),
            (401, r#"{"text":"Invalid authorization","code":3}"#),
            (403, r#"{"text":"Invalid token","code":4}"#),
            (403, r#"{"text":"Token disabled","code":1}"#),
            (400, r#"{"text":"Data channel is missing","code":10}"#),
            (400, r#"{"text":"Incorrect index","code":7}"#),
        ] {
            assert!(
                matches!(failed(status, &answer(body), 3), Err(RequestError::Refused(_))),
                "{body}"
            );
        }
        assert!(matches!(
            failed(500, &answer(r#"{"text":"Internal server error","code":8}"#), 3),
            Err(RequestError::Retry(_))
        ));
        assert!(matches!(failed(404, &Answer::default(), 3), Err(RequestError::Retry(_))));
        assert!(matches!(failed(413, &Answer::default(), 3), Err(RequestError::TooLarge(_))));
        assert!(matches!(
            failed(400, &answer(r#"{"text":"Invalid data format","code":6}"#), 3),
            Err(RequestError::Invalid(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any HEC answer (a reply body of any shape, any status, any
        /// `invalid-event-number`): outcomes for exactly the events sent, or
        /// a request error; never a panic, and a rejection only for a 400
        /// whose code is about the event.
        #[test]
        fn any_hec_answer_is_classified_without_a_panic(
            status in 100_u16..600,
            code in proptest::option::of(0_u16..25),
            invalid in proptest::option::of(0_usize..8),
            text in "[ -!#-~]{0,20}",
            count in 0_usize..6,
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60),
            well_formed in proptest::prelude::any::<bool>(),
        ) {
            let body = if well_formed {
                let mut fields = vec![format!(r#""text":"{text}""#)];
                fields.extend(code.map(|c| format!(r#""code":{c}"#)));
                fields.extend(invalid.map(|n| format!(r#""invalid-event-number":{n}"#)));
                format!("{{{}}}", fields.join(",")).into_bytes()
            } else {
                garbage
            };
            let parsed: Answer = serde_json::from_slice(&body).unwrap_or_default();
            match failed(status, &parsed, count) {
                Ok(outcomes) => {
                    proptest::prop_assert_eq!(outcomes.len(), count);
                    for outcome in outcomes {
                        if let ItemOutcome::Rejected(failure) = outcome {
                            proptest::prop_assert_eq!(failure.status, Some(400));
                            proptest::prop_assert!(parsed.code.is_some_and(|c| EVENT_CODES.contains(&c)));
                        }
                    }
                }
                Err(error) => {
                    let _ = error.failure().to_string();
                }
            }
        }
    }
}
