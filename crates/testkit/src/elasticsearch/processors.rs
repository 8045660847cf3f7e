//! Running ingest pipelines on a document, as Elasticsearch does, for the
//! processors the 1Password integration's pipelines and Fleet's final
//! pipeline use (`fixtures/elastic/` names their upstream files): `rename`,
//! `json`, `drop`, `set`, `append`, `remove`, `date`, `geoip`, `pipeline`,
//! `set_security_user` and Fleet's two `script`s (known by their `tag`).
//! Conditions (`if`) are the Painless subset those files use (see
//! `condition.rs`). Anything else is an error naming what the testkit does
//! not model, so a fixture can never pass by being half run.
//!
//! Semantics follow the ingest node reference
//! (https://www.elastic.co/guide/en/elasticsearch/reference/current/ingest.html):
//! a processor's `ignore_failure` and `on_failure` handle its error; a
//! pipeline's `on_failure` runs instead of the rest of that pipeline and
//! the document is indexed; a failure nobody handles fails the item; `drop`
//! ends every pipeline and the item answers `noop`. The emulator has no
//! GeoIP database: `geoip` checks its field and adds nothing.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::condition;
use super::document::{self, get, set};

/// What running the pipelines did to a document.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Index this document.
    Index(Map<String, Value>),
    /// A `drop` processor removed it.
    Dropped,
}

/// Nested `pipeline` processors deeper than this are an error (Elasticsearch
/// detects cycles; this bounds them).
const MAX_DEPTH: usize = 16;

/// Run `ids` in order on `doc`; the ids of every pipeline that ran (nested
/// ones included) are pushed to `runs`.
pub(crate) fn run(
    pipelines: &BTreeMap<String, Value>,
    ids: &[String],
    doc: Map<String, Value>,
    runs: &mut Vec<String>,
) -> Result<Outcome, String> {
    let now = chrono::Utc::now();
    let mut runner = Runner { pipelines, runs, now, failure: None };
    let mut doc = Value::Object(doc);
    for id in ids {
        if runner.pipeline(id, &mut doc, 0)? == Flow::Drop {
            return Ok(Outcome::Dropped);
        }
    }
    match doc {
        Value::Object(map) => Ok(Outcome::Index(map)),
        _ => Err("the document is no longer an object".into()),
    }
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Flow {
    Continue,
    Drop,
}

struct Runner<'a> {
    pipelines: &'a BTreeMap<String, Value>,
    runs: &'a mut Vec<String>,
    now: chrono::DateTime<chrono::Utc>,
    /// `_ingest.on_failure_message` while an `on_failure` block runs.
    failure: Option<String>,
}

impl Runner<'_> {
    fn pipeline(&mut self, id: &str, doc: &mut Value, depth: usize) -> Result<Flow, String> {
        if depth > MAX_DEPTH {
            return Err(format!("pipeline [{id}]: pipelines nested more than {MAX_DEPTH} deep"));
        }
        let Some(pipeline) = self.pipelines.get(id) else {
            return Err(format!("pipeline with id [{id}] does not exist"));
        };
        self.runs.push(id.to_owned());
        let processors = pipeline["processors"].as_array().cloned().unwrap_or_default();
        for processor in &processors {
            match self.processor(processor, doc, depth) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Drop) => return Ok(Flow::Drop),
                Err(message) => {
                    let Some(handlers) = pipeline["on_failure"].as_array() else {
                        return Err(message);
                    };
                    return self.on_failure(handlers.clone(), message, doc, depth);
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn on_failure(
        &mut self,
        handlers: Vec<Value>,
        message: String,
        doc: &mut Value,
        depth: usize,
    ) -> Result<Flow, String> {
        let outer = self.failure.replace(message);
        let mut flow = Ok(Flow::Continue);
        for handler in &handlers {
            match self.processor(handler, doc, depth) {
                Ok(Flow::Continue) => {}
                other => {
                    flow = other;
                    break;
                }
            }
        }
        self.failure = outer;
        flow
    }

    fn processor(
        &mut self,
        processor: &Value,
        doc: &mut Value,
        depth: usize,
    ) -> Result<Flow, String> {
        let Some((kind, config)) = processor.as_object().and_then(|p| p.iter().next()) else {
            return Err(format!("a processor must be an object with one key: {processor}"));
        };
        if let Some(test) = config["if"].as_str() {
            match condition::eval(test, doc) {
                Ok(true) => {}
                Ok(false) => return Ok(Flow::Continue),
                Err(error) => return self.handle(config, Err(error), doc, depth),
            }
        }
        let result = self.apply(kind, config, doc, depth);
        self.handle(config, result, doc, depth)
    }

    fn handle(
        &mut self,
        config: &Value,
        result: Result<Flow, String>,
        doc: &mut Value,
        depth: usize,
    ) -> Result<Flow, String> {
        match result {
            Err(_) if config["ignore_failure"] == Value::Bool(true) => Ok(Flow::Continue),
            Err(message) => match config["on_failure"].as_array() {
                Some(handlers) => self.on_failure(handlers.clone(), message, doc, depth),
                None => Err(message),
            },
            ok => ok,
        }
    }

    fn apply(
        &mut self,
        kind: &str,
        config: &Value,
        doc: &mut Value,
        depth: usize,
    ) -> Result<Flow, String> {
        let field = config["field"].as_str().unwrap_or_default();
        let ignore_missing = config["ignore_missing"] == Value::Bool(true);
        match kind {
            "rename" => {
                let target = config["target_field"].as_str().unwrap_or_default();
                document::rename(doc, field, target, ignore_missing)?;
            }
            "json" => document::json(doc, field, config["target_field"].as_str().unwrap_or(field))?,
            "drop" => return Ok(Flow::Drop),
            "set" => {
                let value = match config.get("copy_from").and_then(Value::as_str) {
                    Some(from) => get(doc, from).cloned().unwrap_or(Value::Null),
                    None => self.render_value(&config["value"], doc),
                };
                let empty = value.is_null() || value == Value::String(String::new());
                if empty && config["ignore_empty_value"] == Value::Bool(true) {
                    return Ok(Flow::Continue);
                }
                if config["override"] == Value::Bool(false)
                    && get(doc, field).is_some_and(|v| !v.is_null())
                {
                    return Ok(Flow::Continue);
                }
                set(doc, field, value)?;
            }
            "append" => {
                let values = self.render_value(&config["value"], doc);
                let duplicates = config["allow_duplicates"] != Value::Bool(false);
                document::append(doc, field, values, duplicates)?;
            }
            "remove" => document::remove_fields(doc, &config["field"], ignore_missing)?,
            "date" => document::date(doc, field, config)?,
            "geoip" => {
                if get(doc, field).is_none() && !ignore_missing {
                    return Err(format!("field [{field}] not present as part of path [{field}]"));
                }
            }
            "pipeline" => {
                let name = self.render(config["name"].as_str().unwrap_or_default(), doc);
                if !self.pipelines.contains_key(&name) {
                    return if config["ignore_missing_pipeline"] == Value::Bool(true) {
                        Ok(Flow::Continue)
                    } else {
                        Err(format!(
                            "Pipeline processor configured for non-existent pipeline [{name}]"
                        ))
                    };
                }
                return self.pipeline(&name, doc, depth + 1);
            }
            "set_security_user" => {
                set(doc, field, serde_json::json!({"authentication_type": "REALM"}))?
            }
            "script" => self.script(config, doc)?,
            other => return Err(format!("the testkit does not model the [{other}] processor")),
        }
        Ok(Flow::Continue)
    }

    /// Fleet's scripts, by their tag (the Painless is in the fixture).
    fn script(&self, config: &Value, doc: &mut Value) -> Result<(), String> {
        match config["tag"].as_str() {
            Some("truncate-subseconds-event-ingested") => {
                let now = self.now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
                set(doc, "event.ingested", Value::String(now))
            }
            Some("agent-id-status") => {
                // No agent.id: "missing"; sluice has no agent API key metadata either.
                let status = if get(doc, "agent.id").is_some() {
                    "auth_metadata_missing"
                } else {
                    "missing"
                };
                set(doc, "event.agent_id_status", Value::String(status.into()))
            }
            other => Err(format!("the testkit does not run this script (tag {other:?})")),
        }
    }

    fn render_value(&self, value: &Value, doc: &Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.render(text, doc)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.render_value(v, doc)).collect())
            }
            other => other.clone(),
        }
    }

    /// Mustache as ingest uses it: `{{{path}}}` and `{{path}}` by the field's value.
    fn render(&self, template: &str, doc: &Value) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let triple = rest[start..].starts_with("{{{");
            let (open, close) = if triple { (3, "}}}") } else { (2, "}}") };
            let Some(end) = rest[start + open..].find(close) else {
                out.push_str(&rest[start..]);
                return out;
            };
            let path = rest[start + open..start + open + end].trim();
            out.push_str(&self.lookup(path, doc));
            rest = &rest[start + open + end + close.len()..];
        }
        out.push_str(rest);
        out
    }

    fn lookup(&self, path: &str, doc: &Value) -> String {
        match path {
            "_ingest.on_failure_message" => self.failure.clone().unwrap_or_default(),
            "_ingest.timestamp" => self.now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            _ => match get(doc, path) {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pipelines(list: &[(&str, Value)]) -> BTreeMap<String, Value> {
        list.iter().map(|(id, p)| ((*id).to_owned(), p.clone())).collect()
    }

    fn doc(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn processors_change_the_document_as_elasticsearch_does() {
        let p = pipelines(&[(
            "p",
            json!({"processors": [
                {"rename": {"field": "message", "target_field": "event.original", "if": "ctx.event?.original == null"}},
                {"json": {"field": "event.original", "target_field": "onepassword"}},
                {"append": {"field": "related.user", "value": "{{{onepassword.name}}}", "allow_duplicates": false}},
                {"append": {"field": "related.user", "value": "{{{onepassword.name}}}", "allow_duplicates": false}},
                {"set": {"field": "user.name", "copy_from": "onepassword.name"}},
                {"set": {"field": "user.none", "copy_from": "onepassword.absent", "ignore_empty_value": true}},
                {"date": {"field": "onepassword.timestamp", "formats": ["ISO8601"]}},
                {"remove": {"field": ["onepassword.timestamp", "onepassword.gone"], "ignore_missing": true}},
            ]}),
        )]);
        let mut runs = Vec::new();
        let input = doc(
            json!({"message": r#"{"name":"Ada","timestamp":"2026-11-20T08:14:03.123456Z"}"#, "@timestamp": "x"}),
        );
        let Outcome::Index(out) = run(&p, &["p".into()], input, &mut runs).expect("runs") else {
            panic!("dropped")
        };
        assert_eq!(
            out["event"]["original"],
            r#"{"name":"Ada","timestamp":"2026-11-20T08:14:03.123456Z"}"#
        );
        assert_eq!(out["related"]["user"], json!(["Ada"]));
        assert_eq!(out["user"], json!({"name": "Ada"}));
        assert_eq!(out["@timestamp"], "2026-11-20T08:14:03.123Z");
        assert_eq!(out["onepassword"], json!({"name": "Ada"}));
        assert!(!out.contains_key("message"));
        assert_eq!(runs, ["p"]);
    }

    #[test]
    fn failures_go_to_on_failure_or_fail_the_item_and_drop_drops() {
        let p = pipelines(&[
            (
                "handled",
                json!({"processors": [{"rename": {"field": "a", "target_field": "b"}}, {"set": {"field": "never", "value": 1}}],
                "on_failure": [{"set": {"field": "error.message", "value": "{{ _ingest.on_failure_message }}"}}]}),
            ),
            ("unhandled", json!({"processors": [{"remove": {"field": "a"}}]})),
            (
                "ignored",
                json!({"processors": [{"remove": {"field": "a", "ignore_failure": true}}, {"drop": {"if": "ctx?.x == null"}}]}),
            ),
            ("unknown", json!({"processors": [{"grok": {"field": "a"}}]})),
        ]);
        let mut runs = Vec::new();
        let Outcome::Index(out) =
            run(&p, &["handled".into()], Map::new(), &mut runs).expect("handled")
        else {
            panic!("dropped")
        };
        assert_eq!(out["error"]["message"], "field [a] doesn't exist");
        assert!(!out.contains_key("never"));
        assert_eq!(
            run(&p, &["unhandled".into()], Map::new(), &mut runs),
            Err("field [a] doesn't exist".into())
        );
        assert_eq!(run(&p, &["ignored".into()], Map::new(), &mut runs), Ok(Outcome::Dropped));
        let error = run(&p, &["unknown".into()], Map::new(), &mut runs).expect_err("not modelled");
        assert!(error.contains("[grok]"), "{error}");
    }

    #[test]
    fn the_pipeline_processor_renders_its_name_and_may_ignore_a_missing_one() {
        let p = pipelines(&[
            (
                "outer",
                json!({"processors": [
                    {"pipeline": {"name": "global@custom", "ignore_missing_pipeline": true}},
                    {"pipeline": {"name": "logs-{{{data_stream.dataset}}}@custom", "ignore_missing_pipeline": true}},
                ]}),
            ),
            (
                "logs-1password.audit_events@custom",
                json!({"processors": [{"set": {"field": "labels.team", "value": "secops"}}]}),
            ),
            ("strict", json!({"processors": [{"pipeline": {"name": "absent"}}]})),
        ]);
        let mut runs = Vec::new();
        let input = doc(json!({"data_stream": {"dataset": "1password.audit_events"}}));
        let Outcome::Index(out) = run(&p, &["outer".into()], input, &mut runs).expect("runs")
        else {
            panic!("dropped")
        };
        assert_eq!(out["labels"]["team"], "secops");
        assert_eq!(runs, ["outer", "logs-1password.audit_events@custom"]);
        let error = run(&p, &["strict".into()], Map::new(), &mut runs).expect_err("missing");
        assert_eq!(error, "Pipeline processor configured for non-existent pipeline [absent]");
    }
}
