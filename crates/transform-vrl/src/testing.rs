//! GeoIP test databases written with mmdb-writer, holding what the
//! documentation gives for 89.160.20.128/25 in MaxMind's test data
//! (Linköping, Sweden; AS29518 Bredband2 AB). For tests and benchmarks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mmdb_writer::Writer;
use mmdb_writer::ipnet::IpNet;
use serde::Serialize;

#[derive(Serialize)]
struct Named {
    #[serde(skip_serializing_if = "Option::is_none")]
    iso_code: Option<&'static str>,
    names: BTreeMap<&'static str, &'static str>,
}

fn named(iso_code: Option<&'static str>, en: &'static str) -> Named {
    Named { iso_code, names: BTreeMap::from([("en", en), ("de", "nicht englisch")]) }
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
    time_zone: &'static str,
}

#[derive(Serialize)]
struct City {
    city: Named,
    continent: Named,
    country: Named,
    location: Location,
    subdivisions: Vec<Named>,
}

#[derive(Serialize)]
struct Asn {
    autonomous_system_number: u32,
    autonomous_system_organization: &'static str,
}

/// Write a City and an ASN database into `dir`; their paths.
pub fn write_databases(dir: &Path) -> (PathBuf, PathBuf) {
    let network: IpNet = "89.160.20.128/25".parse().expect("a network");
    let mut city = Writer::new("GeoLite2-City");
    let record = City {
        city: named(None, "Linköping"),
        continent: named(Some("EU"), "Europe"),
        country: named(Some("SE"), "Sweden"),
        location: Location { latitude: 58.4167, longitude: 15.6167, time_zone: "Europe/Stockholm" },
        subdivisions: vec![named(Some("E"), "Östergötland County")],
    };
    city.insert(network, &record).expect("a city record");
    let mut asn = Writer::new("GeoLite2-ASN");
    let record =
        Asn { autonomous_system_number: 29518, autonomous_system_organization: "Bredband2 AB" };
    asn.insert(network, &record).expect("an ASN record");
    let (city_path, asn_path) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    std::fs::write(&city_path, city.to_bytes().expect("city bytes"))
        .expect("write the city database");
    std::fs::write(&asn_path, asn.to_bytes().expect("asn bytes")).expect("write the ASN database");
    (city_path, asn_path)
}
