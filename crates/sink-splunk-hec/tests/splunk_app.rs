//! docker/splunk/sluice_onepassword, the Splunk app that completes
//! 1Password's add-on: it defines every index macro the add-on's dashboards
//! use (the testkit's fixture of the add-on), CIM Authentication eventtypes
//! and tags for sign-ins on the add-on's sourcetype, and exports them.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A .conf file: stanza → key → value (Splunk's INI dialect, `#` comments).
fn conf(name: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docker/splunk/sluice_onepassword")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut stanzas = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(stanza) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = stanza.to_owned();
            stanzas.entry(current.clone()).or_insert_with(BTreeMap::new);
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{name}: {line}"));
        stanzas
            .entry(current.clone())
            .or_insert_with(BTreeMap::new)
            .insert(key.trim().to_owned(), value.trim().to_owned());
    }
    stanzas
}

#[test]
fn every_index_macro_of_the_addons_dashboards_is_defined() {
    let macros = conf("default/macros.conf");
    for (sourcetype, addon) in sluice_testkit::splunk::addon::sourcetypes() {
        let definition = macros
            .get(&addon.r#macro)
            .and_then(|m| m.get("definition"))
            .unwrap_or_else(|| panic!("no macro {} for {sourcetype}", addon.r#macro));
        assert_eq!(definition, "index=onepassword", "the index pipelines/splunk.yaml writes");
    }
}

#[test]
fn sign_ins_are_cim_authentication_events_on_the_addons_sourcetype() {
    let eventtypes = conf("default/eventtypes.conf");
    let tags = conf("default/tags.conf");
    let addon = sluice_testkit::splunk::addon::sourcetypes();
    let signin = &addon["1password:insights:signin_attempts"];
    for (name, stanza) in &eventtypes {
        let search = &stanza["search"];
        assert!(search.starts_with(&format!("`{}`", signin.r#macro)), "{name}: {search}");
        assert!(search.contains(r#"sourcetype="1password:insights:signin_attempts""#), "{search}");
        let tagged = &tags[&format!("eventtype={name}")];
        assert_eq!(tagged.get("authentication").map(String::as_str), Some("enabled"), "{name}");
    }
    assert!(eventtypes.contains_key("onepassword_signin_attempts"));
    let meta = conf("metadata/default.meta");
    assert_eq!(meta[""]["export"], "system", "the add-on's dashboards must see the macros");
}
