//! A deterministic generator of realistic events (same seed, same events),
//! each with a hidden ingestion time later than its timestamp.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use crate::vocab::{self, PLACES};
use crate::{SimEvent, SimStream};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// 26 characters of base32 (RFC 4648 alphabet), as 1Password's ids.
pub fn base32_id(rng: &mut impl Rng, lower: bool) -> String {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..26)
        .map(|_| {
            let c = UPPER[rng.random_range(0..32)] as char;
            if lower { c.to_ascii_lowercase() } else { c }
        })
        .collect()
}

/// RFC 3339 in UTC with `Z` and 0 to 9 fractional digits, trailing zeros
/// trimmed, as Go's RFC3339Nano writes them.
pub fn format_timestamp(nanos: i64) -> String {
    let time = Utc.timestamp_nanos(nanos);
    let text = time.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let (head, fraction) = text.trim_end_matches('Z').split_once('.').unwrap_or((&text, ""));
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() { format!("{head}Z") } else { format!("{head}.{fraction}Z") }
}

/// A person of the simulated account.
#[derive(Clone, Debug)]
struct Person {
    uuid: String,
    name: String,
    email: String,
    external: bool,
}

/// Makes events.
#[derive(Debug)]
pub struct Generator {
    rng: ChaCha8Rng,
    account_uuid: String,
    people: Vec<Person>,
    vaults: Vec<String>,
    items: Vec<String>,
}

impl Generator {
    /// A generator for the account `account_uuid`, seeded with `seed`.
    pub fn new(seed: u64, account_uuid: &str) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let people = vocab::PEOPLE
            .iter()
            .enumerate()
            .map(|(i, (name, handle))| Person {
                uuid: base32_id(&mut rng, false),
                name: (*name).to_owned(),
                email: format!("{handle}@example.com"),
                external: i % 7 == 6,
            })
            .collect();
        let vaults = (0..6).map(|_| base32_id(&mut rng, true)).collect();
        let items = (0..40).map(|_| base32_id(&mut rng, true)).collect();
        Self { rng, account_uuid: account_uuid.to_owned(), people, vaults, items }
    }

    /// The account's people as the Users API lists them: uuid, email,
    /// name; the external ones (guests) first invited, so unspecified.
    pub fn people(&self) -> Vec<(String, String, String, bool)> {
        self.people
            .iter()
            .map(|p| (p.uuid.clone(), p.email.clone(), p.name.clone(), p.external))
            .collect()
    }

    /// The ingestion delay of an event of `stream`: sign-ins and audit events
    /// arrive within seconds; item usages wait for a client sync, minutes to hours.
    pub fn lag_nanos(&mut self, stream: SimStream) -> i64 {
        let secs: f64 = match stream {
            SimStream::ItemUsages => match self.rng.random_range(0..100) {
                0..70 => self.rng.random_range(1.0..60.0),
                70..95 => self.rng.random_range(60.0..3600.0),
                _ => self.rng.random_range(3600.0..6.0 * 3600.0),
            },
            _ => self.rng.random_range(0.05..5.0),
        };
        (secs * NANOS_PER_SEC as f64) as i64
    }

    /// A timestamp with a random number (0 to 9) of significant fractional digits.
    fn timestamp_nanos(&mut self, nanos: i64) -> i64 {
        let digits = self.rng.random_range(0..=9_u32);
        let unit = 10_i64.pow(9 - digits);
        nanos - nanos.rem_euclid(unit)
    }

    /// One event of `stream` that occurred at `occurred_nanos` and was
    /// ingested at `ingested_nanos`.
    pub fn event(
        &mut self,
        stream: SimStream,
        occurred_nanos: i64,
        ingested_nanos: i64,
    ) -> SimEvent {
        let occurred = self.timestamp_nanos(occurred_nanos);
        let uuid = base32_id(&mut self.rng, false);
        let mut body = match stream {
            SimStream::SigninAttempts => self.signin(),
            SimStream::ItemUsages => self.item_usage(),
            SimStream::AuditEvents => self.audit_event(occurred),
        };
        body.insert("uuid".into(), Value::from(uuid.clone()));
        body.insert("timestamp".into(), Value::from(format_timestamp(occurred)));
        body.insert("account_uuid".into(), Value::from(self.account_uuid.clone()));
        SimEvent {
            uuid,
            stream,
            occurred,
            ingested: ingested_nanos.max(occurred),
            body: Value::Object(body),
            raw: false,
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn person(&mut self) -> Person {
        self.people[self.rng.random_range(0..self.people.len())].clone()
    }

    fn user(&self, person: &Person) -> Value {
        let user_type = if person.external { "external_user" } else { "user" };
        json!({
            "uuid": person.uuid, "name": person.name, "email": person.email,
            "user_type": user_type, "user_account_uuid": self.account_uuid,
        })
    }

    fn client_and_place(&mut self, body: &mut Map<String, Value>) -> &'static str {
        let (app_name, app_version, platform_name, platform_version, os_name, os_version) =
            self.pick(vocab::CLIENTS);
        let place = self.pick(PLACES);
        body.insert(
            "client".into(),
            json!({
                "app_name": app_name, "app_version": app_version, "platform_name": platform_name,
                "platform_version": platform_version, "os_name": os_name, "os_version": os_version,
                "ip_address": place.0,
            }),
        );
        // The API omits `location` when it cannot place the address.
        if self.rng.random_bool(0.85) {
            body.insert("location".into(), location(place));
        }
        place.1
    }

    fn signin(&mut self) -> Map<String, Value> {
        let mut body = Map::new();
        let category =
            if self.rng.random_bool(0.7) { "success" } else { self.pick(vocab::SIGNIN_CATEGORIES) };
        let kind = self.pick(vocab::signin_types_for(category));
        body.insert("session_uuid".into(), Value::from(base32_id(&mut self.rng, false)));
        body.insert("category".into(), Value::from(category));
        // v2 adds `federated` sign-ins.
        let kind =
            if category == "success" && self.rng.random_bool(0.05) { "federated" } else { kind };
        body.insert("type".into(), Value::from(kind));
        let person = self.person();
        body.insert("target_user".into(), self.user(&person));
        let country = self.client_and_place(&mut body);
        body.insert("country".into(), Value::from(country_code(country)));
        let details = if category.starts_with("firewall") {
            json!({ "value": self.pick(vocab::FIREWALL_VALUES) })
        } else {
            Value::Null
        };
        body.insert("details".into(), details);
        body
    }

    fn item_usage(&mut self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("used_version".into(), Value::from(self.rng.random_range(1..30)));
        let vault = self.vaults[self.rng.random_range(0..self.vaults.len())].clone();
        let item = self.items[self.rng.random_range(0..self.items.len())].clone();
        body.insert("vault_uuid".into(), Value::from(vault));
        body.insert("item_uuid".into(), Value::from(item));
        // Old events (before Oct 2021 clients) have no `action`.
        if self.rng.random_bool(0.97) {
            body.insert("action".into(), Value::from(self.pick(vocab::ITEM_ACTIONS)));
        }
        let person = self.person();
        body.insert("user".into(), self.user(&person));
        self.client_and_place(&mut body);
        body
    }

    fn audit_event(&mut self, occurred: i64) -> Map<String, Value> {
        let mut body = Map::new();
        let actor = self.person();
        let (action, object_type) = if self.rng.random_bool(0.6) {
            self.pick(vocab::AUDIT_PAIRS)
        } else {
            (self.pick(vocab::AUDIT_ACTIONS), self.pick(vocab::AUDIT_OBJECT_TYPES))
        };
        body.insert("actor_uuid".into(), Value::from(actor.uuid.clone()));
        body.insert(
            "actor_details".into(),
            json!({"uuid": actor.uuid, "name": actor.name, "email": actor.email}),
        );
        body.insert(
            "actor_type".into(),
            Value::from(if actor.external { "external_user" } else { "user" }),
        );
        body.insert("actor_account_uuid".into(), Value::from(self.account_uuid.clone()));
        body.insert("action".into(), Value::from(action));
        body.insert("object_type".into(), Value::from(object_type));
        if object_type == "user" || object_type == "gm" {
            let object = self.person();
            body.insert("object_uuid".into(), Value::from(object.uuid.clone()));
            body.insert(
                "object_details".into(),
                json!({"uuid": object.uuid, "name": object.name, "email": object.email}),
            );
        } else {
            body.insert("object_uuid".into(), Value::from(base32_id(&mut self.rng, true)));
        }
        if object_type == "gm" {
            let member = self.person();
            body.insert("aux_id".into(), Value::from(self.rng.random_range(1_000_000..9_999_999)));
            body.insert("aux_uuid".into(), Value::from(member.uuid.clone()));
            body.insert(
                "aux_details".into(),
                json!({"uuid": member.uuid, "name": member.name, "email": member.email}),
            );
            body.insert("aux_info".into(), Value::from(self.pick(&["A", "R"])));
        }
        let place = self.pick(PLACES);
        let login = occurred
            - self.rng.random_range(60..86_400) * NANOS_PER_SEC
            - self.rng.random_range(0..NANOS_PER_SEC);
        body.insert(
            "session".into(),
            json!({
                "uuid": base32_id(&mut self.rng, false),
                "login_time": format_timestamp(login),
                "device_uuid": base32_id(&mut self.rng, true),
                "ip": place.0,
            }),
        );
        if self.rng.random_bool(0.85) {
            body.insert("location".into(), location(place));
        }
        body
    }
}

fn location(place: vocab::Place) -> Value {
    json!({"country": place.1, "region": place.2, "city": place.3, "latitude": place.4, "longitude": place.5})
}

fn country_code(country: &str) -> &'static str {
    match country {
        "Sweden" => "SE",
        "United Kingdom" => "GB",
        "United States" => "US",
        "China" => "CN",
        "Bhutan" => "BT",
        "Canada" => "CA",
        "Germany" => "DE",
        "Australia" => "AU",
        _ => "ZZ",
    }
}

/// The instant `nanos` as a chrono time.
pub fn to_time(nanos: i64) -> DateTime<Utc> {
    Utc.timestamp_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_trim_trailing_zeros_like_go() {
        assert_eq!(format_timestamp(1_600_000_000_000_000_000), "2020-09-13T12:26:40Z");
        assert_eq!(format_timestamp(1_600_000_000_246_459_830), "2020-09-13T12:26:40.24645983Z");
        assert_eq!(format_timestamp(1_600_000_000_000_000_001), "2020-09-13T12:26:40.000000001Z");
    }

    #[test]
    fn the_same_seed_makes_the_same_events() {
        let mut a = Generator::new(7, "ACCOUNT");
        let mut b = Generator::new(7, "ACCOUNT");
        for stream in SimStream::ALL {
            let (x, y) = (
                a.event(stream, 1_700_000_000_123_456_789, 0),
                b.event(stream, 1_700_000_000_123_456_789, 0),
            );
            assert_eq!(x.body, y.body);
            assert_eq!(x.uuid.len(), 26);
            assert!(x.uuid.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        }
    }

    #[test]
    fn item_usages_lag_up_to_hours_and_sign_ins_seconds() {
        let mut generator = Generator::new(1, "A");
        let item_lags: Vec<i64> =
            (0..2000).map(|_| generator.lag_nanos(SimStream::ItemUsages)).collect();
        assert!(
            item_lags.iter().any(|l| *l > 3600 * NANOS_PER_SEC),
            "some item usages lag over an hour"
        );
        assert!(item_lags.iter().any(|l| *l < 60 * NANOS_PER_SEC));
        let signin_max =
            (0..2000).map(|_| generator.lag_nanos(SimStream::SigninAttempts)).max().unwrap_or(0);
        assert!(signin_max < 5 * NANOS_PER_SEC);
    }
}
