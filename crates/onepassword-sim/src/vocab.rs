//! The vocabularies of the Events API, as documented (OpenAPI 1.2.0, the
//! item usage action reference, the changelog), plus plausible clients,
//! people and places for generated events.

/// Sign-in `category` values.
pub const SIGNIN_CATEGORIES: &[&str] = &[
    "success",
    "credentials_failed",
    "mfa_failed",
    "sso_failed",
    "modern_version_failed",
    "firewall_failed",
    "firewall_reported_success",
];

/// Sign-in `type` values that go with a successful category.
pub const SIGNIN_TYPES_OK: &[&str] = &["credentials_ok", "mfa_ok"];

/// Sign-in `type` values by failed category.
pub fn signin_types_for(category: &str) -> &'static [&'static str] {
    match category {
        "success" | "firewall_reported_success" => SIGNIN_TYPES_OK,
        "credentials_failed" => &[
            "password_secret_bad",
            "platform_secret_bad",
            "platform_secret_disabled",
            "platform_secret_proxy",
        ],
        "mfa_failed" => &[
            "mfa_missing",
            "totp_disabled",
            "totp_bad",
            "totp_timeout",
            "u2f_disabled",
            "u2f_bad",
            "u2f_timout",
            "duo_disabled",
            "duo_bad",
            "duo_timeout",
            "duo_native_bad",
            "code_disabled",
            "code_bad",
            "code_timeout",
        ],
        "sso_failed" => &["service_account_sso_denied", "non_sso_user", "sso_user_mismatch"],
        "modern_version_failed" => &["modern_version_missing", "modern_version_old"],
        _ => &[
            "ip_blocked",
            "continent_blocked",
            "country_blocked",
            "anonymous_blocked",
            "all_blocked",
        ],
    }
}

/// Item usage `action` values (`other` comes from clients older than 8.4.0).
pub const ITEM_ACTIONS: &[&str] = &[
    "enter-item-edit-mode",
    "export",
    "fill",
    "other",
    "reveal",
    "secure-copy",
    "select-sso-provider",
    "server-create",
    "server-fetch",
    "server-update",
    "share",
];

/// Audit `action` values of the OpenAPI 1.2.0 enum.
pub const AUDIT_ACTIONS: &[&str] = &[
    "activate", "update", "delete", "convert", "enblduo", "updatduo", "disblduo", "rdmchild",
    "detchild", "dlgsess", "create", "deolddev", "dealldev", "reauth", "begin", "complete",
    "propose", "updatfw", "join", "leave", "role", "purge", "view", "export", "replace", "grant",
    "revoke", "share", "delshare", "uisas", "enblmfa", "updatmfa", "disblmfa", "musercom",
    "muserdec", "sendpkg", "resendts", "prsndall", "trename", "tverify", "trevoke", "ssotknv",
    "enblsso", "disblsso", "chngpsso", "chngasso", "chngdsso", "delgsso", "addgsso", "tdvcsso",
    "sdvcsso", "trvlaway", "trvlback", "changeks", "changemp", "changesk", "changenm", "changela",
    "updatea", "upguest", "verify", "reactive", "suspend", "beginr", "completr", "cancelr",
    "provsn", "cancel", "patch", "unknown", "hide", "unhide", "sendts", "vrfydmn", "uvrfydmn",
    "dvrfydmn",
];

/// Audit `object_type` values of the OpenAPI 1.2.0 enum (`cred`, reported
/// for passkeys since Nov 2023 by a third-party summary only, is left out).
pub const AUDIT_OBJECT_TYPES: &[&str] = &[
    "account", "card", "dlgdsess", "ec", "famchild", "file", "gm", "group", "gva", "invite",
    "item", "itemhist", "items", "miguser", "pm", "report", "sa", "satoken", "slackapp", "sso",
    "ssotkn", "sub", "template", "user", "uva", "vault", "vaultkey", "device",
];

/// Realistic (action, object type) pairs that detections look for.
pub const AUDIT_PAIRS: &[(&str, &str)] = &[
    ("enblsso", "sso"),
    ("disblsso", "sso"),
    ("chngpsso", "sso"),
    ("addgsso", "sso"),
    ("enblmfa", "user"),
    ("disblmfa", "user"),
    ("suspend", "user"),
    ("reactive", "user"),
    ("create", "satoken"),
    ("trename", "satoken"),
    ("trevoke", "satoken"),
    ("export", "vault"),
    ("grant", "uva"),
    ("revoke", "gva"),
    ("join", "gm"),
    ("leave", "gm"),
    ("create", "vault"),
    ("delete", "item"),
    ("create", "invite"),
    ("updatfw", "account"),
    ("begin", "user"),
];

/// A client application: (app_name, app_version, platform_name, platform_version, os_name, os_version).
pub type Client =
    (&'static str, &'static str, &'static str, &'static str, &'static str, &'static str);

/// Clients seen in the wild.
pub const CLIENTS: &[Client] = &[
    ("1Password Browser Extension", "81028002", "Chrome", "131.0.6778.86", "MacOSX", "14.6.1"),
    ("1Password Browser Extension", "81028002", "Firefox", "133.0", "Windows", "10.0.22631"),
    ("1Password for Mac", "81028002", "Apple", "MacBookPro18,3", "MacOSX", "14.6.1"),
    ("1Password for Windows", "81028002", "Dell Inc.", "XPS 15 9520", "Windows", "10.0.22631"),
    ("1Password for Linux", "81028002", "LENOVO", "ThinkPad X1 Carbon", "Ubuntu", "24.04"),
    ("1Password for iOS", "81028002", "Apple", "iPhone15,2", "iOS", "18.1"),
    ("1Password for Android", "81027020", "Google", "Pixel 8", "Android", "15"),
    ("1Password for Web", "1962", "Chrome", "131.0.6778.86", "MacOSX", "14.6.1"),
    ("1Password CLI", "2300101", "go", "1.23.2", "linux", "6.8.0"),
    ("1Password SCIM Bridge", "2090101", "go", "1.22.5", "linux", "5.15.0"),
    ("1Password SDK", "1000100", "Rust", "1.81.0", "linux", "6.1.0"),
];

/// A place: (ip, country, region, city, latitude, longitude). The first
/// addresses are ones MaxMind's GeoIP2/GeoLite2 test databases know.
pub type Place = (&'static str, &'static str, &'static str, &'static str, f64, f64);

/// Places with plausible, correctly ordered coordinates.
pub const PLACES: &[Place] = &[
    ("89.160.20.156", "Sweden", "Östergötland", "Linköping", 58.4167, 15.6167),
    ("89.160.20.128", "Sweden", "Östergötland", "Linköping", 58.4167, 15.6167),
    ("81.2.69.142", "United Kingdom", "England", "London", 51.5142, -0.0931),
    ("216.160.83.56", "United States", "Washington", "Milton", 47.2513, -122.3149),
    ("175.16.199.1", "China", "Jilin Sheng", "Changchun", 43.88, 125.3228),
    ("67.43.156.1", "Bhutan", "Thimphu", "Thimphu", 27.5, 90.5),
    ("2001:480::1", "United States", "California", "San Diego", 32.7157, -117.1611),
    ("203.0.113.45", "Canada", "Ontario", "Toronto", 43.6532, -79.3832),
    ("198.51.100.23", "Germany", "Berlin", "Berlin", 52.52, 13.405),
    ("192.0.2.77", "Australia", "New South Wales", "Sydney", -33.8688, 151.2093),
];

/// Firewall rule values for blocked sign-ins (`details.value`).
pub const FIREWALL_VALUES: &[&str] =
    &["Europe", "Asia", "Bhutan", "China", "anonymous proxy", "all"];

/// Names for generated people.
pub const PEOPLE: &[(&str, &str)] = &[
    ("Ada Lovelace", "ada"),
    ("Grace Hopper", "grace"),
    ("Alan Turing", "alan"),
    ("Katherine Johnson", "katherine"),
    ("Edsger Dijkstra", "edsger"),
    ("Barbara Liskov", "barbara"),
    ("Donald Knuth", "donald"),
    ("Margaret Hamilton", "margaret"),
    ("Ken Thompson", "ken"),
    ("Radia Perlman", "radia"),
    ("Leslie Lamport", "leslie"),
    ("Frances Allen", "frances"),
];
