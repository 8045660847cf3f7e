//! GeoIP lookups as VRL functions, backed by MaxMind databases, producing
//! the fields of Elasticsearch's `geoip` processor:
//!
//! - `geoip_city(ip)`: `{city_name, continent_name, country_iso_code,
//!   country_name, location: {lat, lon}, region_iso_code, region_name}`;
//! - `geoip_asn(ip)`: `{number, organization: {name}}`.
//!
//! An IP that is absent, unparsable or not in the database gives `null`,
//! never an error; without a configured database, so does every lookup.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use maxminddb::Reader;
use serde::Deserialize;
use vrl::compiler::prelude::*;
use vrl::value::ObjectMap;

/// Lookups kept before the cache starts over: 1Password activity comes from
/// a modest set of addresses, so most lookups repeat.
const CACHE_ENTRIES: usize = 10_000;

/// The databases a transform was configured with.
#[derive(Default)]
pub struct GeoIpDatabases {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
    cache: Mutex<HashMap<(Lookup, IpAddr), Option<Value>, foldhash::fast::RandomState>>,
}

impl std::fmt::Debug for GeoIpDatabases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIpDatabases")
            .field("city", &self.city.is_some())
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

fn open(path: &Path) -> Result<Reader<Vec<u8>>, String> {
    Reader::open_readfile(path)
        .map_err(|e| format!("cannot open the MaxMind database {}: {e}", path.display()))
}

impl GeoIpDatabases {
    /// Open the given databases.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<Self, String> {
        Ok(Self {
            city: city.map(open).transpose()?,
            asn: asn.map(open).transpose()?,
            cache: Mutex::default(),
        })
    }

    fn lookup(&self, kind: Lookup, ip: IpAddr) -> Option<Value> {
        let configured = match kind {
            Lookup::City => self.city.is_some(),
            Lookup::Asn => self.asn.is_some(),
        };
        if !configured {
            return None;
        }
        // The lock is held only to copy a cached answer or store a new one:
        // the transform's workers share the cache.
        if let Some(found) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&(kind, ip)) {
            return found.clone();
        }
        let found = match kind {
            Lookup::City => self.city(ip),
            Lookup::Asn => self.asn(ip),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert((kind, ip), found.clone());
        found
    }

    /// The `geoip_city` fields of `ip`, if the database knows it.
    pub fn city(&self, ip: IpAddr) -> Option<Value> {
        let record: CityRecord = self.city.as_ref()?.lookup(ip).ok()?.decode().ok()??;
        let mut fields = ObjectMap::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                fields.insert(key.into(), value);
            }
        };
        put("city_name", record.city.and_then(|c| c.names.english()));
        put("continent_name", record.continent.and_then(|c| c.names.english()));
        let country_code = record.country.as_ref().and_then(|c| c.iso_code.clone());
        put("country_iso_code", country_code.clone().map(Value::from));
        put("country_name", record.country.and_then(|c| c.names.english()));
        if let Some(location) = record.location
            && let (Some(lat), Some(lon)) = (location.latitude, location.longitude)
        {
            let mut point = ObjectMap::new();
            point.insert("lat".into(), Value::from_f64_or_zero(lat));
            point.insert("lon".into(), Value::from_f64_or_zero(lon));
            put("location", Some(Value::Object(point)));
        }
        if let Some(region) = record.subdivisions.and_then(|s| s.into_iter().next()) {
            if let (Some(country), Some(code)) = (&country_code, &region.iso_code) {
                put("region_iso_code", Some(Value::from(format!("{country}-{code}"))));
            }
            put("region_name", region.names.english());
        }
        (!fields.is_empty()).then_some(Value::Object(fields))
    }

    /// The `geoip_asn` fields of `ip`, if the database knows it.
    pub fn asn(&self, ip: IpAddr) -> Option<Value> {
        let record: AsnRecord = self.asn.as_ref()?.lookup(ip).ok()?.decode().ok()??;
        let mut fields = ObjectMap::new();
        if let Some(number) = record.autonomous_system_number {
            fields.insert("number".into(), Value::from(i64::from(number)));
        }
        if let Some(name) = record.autonomous_system_organization {
            let mut organization = ObjectMap::new();
            organization.insert("name".into(), Value::from(name));
            fields.insert("organization".into(), Value::Object(organization));
        }
        (!fields.is_empty()).then_some(Value::Object(fields))
    }
}

/// Localised names; the geoip processor reports the English one.
type Names = BTreeMap<String, String>;

trait English {
    fn english(self) -> Option<Value>;
}

impl English for Names {
    fn english(self) -> Option<Value> {
        self.get("en").map(|name| Value::from(name.as_str()))
    }
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    names: Names,
    #[serde(default)]
    iso_code: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct CityRecord {
    city: Option<Named>,
    continent: Option<Named>,
    country: Option<Named>,
    location: Option<Location>,
    subdivisions: Option<Vec<Named>>,
}

#[derive(Deserialize)]
struct AsnRecord {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<String>,
}

/// Which lookup a function does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Lookup {
    City,
    Asn,
}

/// `geoip_city` or `geoip_asn`.
#[derive(Clone, Debug)]
pub struct GeoIpFunction {
    kind: Lookup,
    databases: Arc<GeoIpDatabases>,
}

impl GeoIpFunction {
    /// Both functions over `databases`.
    pub fn all(databases: Arc<GeoIpDatabases>) -> Vec<Box<dyn Function>> {
        vec![
            Box::new(Self { kind: Lookup::City, databases: databases.clone() }),
            Box::new(Self { kind: Lookup::Asn, databases }),
        ]
    }
}

const PARAMETERS: &[Parameter] = &[Parameter::required(
    "value",
    kind::ANY,
    "The IP address (a string); anything else gives null.",
)];

impl Function for GeoIpFunction {
    fn identifier(&self) -> &'static str {
        match self.kind {
            Lookup::City => "geoip_city",
            Lookup::Asn => "geoip_asn",
        }
    }

    fn usage(&self) -> &'static str {
        match self.kind {
            Lookup::City => {
                "Looks the IP address up in the transform's GeoIP City database: the fields of Elasticsearch's geoip processor, or null."
            }
            Lookup::Asn => {
                "Looks the IP address up in the transform's GeoIP ASN database: {number, organization: {name}}, or null."
            }
        }
    }

    fn category(&self) -> &'static str {
        "Enrich"
    }

    fn return_kind(&self) -> u16 {
        kind::OBJECT | kind::NULL
    }

    fn examples(&self) -> &'static [Example] {
        &[]
    }

    fn parameters(&self) -> &'static [Parameter] {
        PARAMETERS
    }

    fn compile(
        &self,
        _state: &state::TypeState,
        _ctx: &mut FunctionCompileContext,
        arguments: ArgumentList,
    ) -> Compiled {
        let value = arguments.required("value");
        Ok(GeoIpCall { function: self.clone(), value }.as_expr())
    }
}

#[derive(Debug, Clone)]
struct GeoIpCall {
    function: GeoIpFunction,
    value: Box<dyn Expression>,
}

impl FunctionExpression for GeoIpCall {
    fn resolve(&self, ctx: &mut Context) -> Resolved {
        let value = self.value.resolve(ctx)?;
        let ip = match &value {
            Value::Bytes(_) | Value::String(_) => {
                value.to_string_lossy().trim().parse::<IpAddr>().ok()
            }
            _ => None,
        };
        let found = ip.and_then(|ip| self.function.databases.lookup(self.function.kind, ip));
        Ok(found.unwrap_or(Value::Null))
    }

    fn type_def(&self, _: &TypeState) -> TypeDef {
        TypeDef::object(Collection::any()).or_null().infallible()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_give_elastic_fields_and_repeat_from_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (city, asn) = crate::testing::write_databases(dir.path());
        let databases = GeoIpDatabases::open(Some(&city), Some(&asn)).expect("open");
        let ip: IpAddr = "89.160.20.156".parse().expect("ip");
        for _ in 0..2 {
            let city = serde_json::to_value(databases.lookup(Lookup::City, ip).expect("known"))
                .expect("json");
            assert_eq!(city["region_iso_code"], "SE-E");
            assert_eq!(city["location"], serde_json::json!({"lat": 58.4167, "lon": 15.6167}));
            let asn = serde_json::to_value(databases.lookup(Lookup::Asn, ip).expect("known"))
                .expect("json");
            assert_eq!(
                asn,
                serde_json::json!({"number": 29518, "organization": {"name": "Bredband2 AB"}})
            );
        }
        assert_eq!(databases.lookup(Lookup::City, "1.1.1.1".parse().expect("ip")), None);
        assert_eq!(
            databases.lookup(Lookup::City, "1.1.1.1".parse().expect("ip")),
            None,
            "a miss is cached too"
        );
        assert_eq!(
            GeoIpDatabases::default().lookup(Lookup::Asn, ip),
            None,
            "no database, no fields"
        );
    }
}
