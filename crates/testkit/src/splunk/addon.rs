//! What 1Password's Splunk add-on reads of each event, per sourcetype: its
//! field aliases, the fields its `EVAL-action` and dashboards use, and the
//! index macros its dashboards start with. The fixture
//! (`fixtures/splunk/onepassword_events_api-1.15.1.yml`) names the upstream
//! files; `docs/emulators.md` says how to refresh it.

use std::collections::BTreeMap;

use serde::Deserialize;

const FIXTURE: &str = include_str!("../../fixtures/splunk/onepassword_events_api-1.15.1.yml");

/// One sourcetype's reads.
#[derive(Debug, Deserialize)]
pub struct Sourcetype {
    /// The index macro of its dashboards.
    pub r#macro: String,
    /// `FIELDALIAS` sources.
    pub aliases: Vec<String>,
    /// Fields `EVAL-*` read.
    pub evals: Vec<String>,
    /// Fields the dashboards' searches use.
    pub dashboard: Vec<String>,
}

impl Sourcetype {
    /// Every field the add-on reads, once.
    pub fn fields(&self) -> Vec<String> {
        let mut all: Vec<String> =
            self.aliases.iter().chain(&self.evals).chain(&self.dashboard).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

#[derive(Deserialize)]
struct Fixture {
    sourcetypes: BTreeMap<String, Sourcetype>,
}

/// The add-on's sourcetypes by name.
pub fn sourcetypes() -> BTreeMap<String, Sourcetype> {
    serde_yaml_ng::from_str::<Fixture>(FIXTURE).expect("the add-on fixture is valid").sourcetypes
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fixture_names_the_three_sourcetypes_and_their_macros() {
        let all = super::sourcetypes();
        assert_eq!(all.len(), 3);
        for (name, sourcetype) in &all {
            let stream = name.strip_prefix("1password:insights:").expect("prefix");
            assert_eq!(sourcetype.r#macro, format!("1password_{stream}_index"));
            assert!(sourcetype.fields().contains(&"uuid".to_owned()));
        }
    }
}
