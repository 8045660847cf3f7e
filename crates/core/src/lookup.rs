//! Lookup tables: rows a source publishes (the users inventory, say) and a
//! transform reads by key (`get_lookup` in VRL), so events can be enriched
//! with what another source knows. Tables live for the process, by name;
//! each publisher replaces only its own rows, so two sources filling one
//! table (two accounts) do not erase each other, and a source withdraws its
//! rows when it stops. A table nobody published answers every key with
//! nothing: enrichment is off until a source fills it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, RwLock};

use vrl::value::Value;

/// One publisher's rows, by key.
pub type Rows = HashMap<String, Value>;

type Tables = HashMap<String, BTreeMap<String, Arc<Rows>>>;

static TABLES: LazyLock<RwLock<Tables>> = LazyLock::new(RwLock::default);

/// Replace `publisher`'s rows of `table` with `rows`.
pub fn publish(table: &str, publisher: &str, rows: Rows) {
    let mut tables = TABLES.write().unwrap_or_else(|p| p.into_inner());
    tables.entry(table.to_owned()).or_default().insert(publisher.to_owned(), Arc::new(rows));
}

/// Remove `publisher`'s rows of `table`.
pub fn withdraw(table: &str, publisher: &str) {
    let mut tables = TABLES.write().unwrap_or_else(|p| p.into_inner());
    if let Some(publishers) = tables.get_mut(table) {
        publishers.remove(publisher);
        if publishers.is_empty() {
            tables.remove(table);
        }
    }
}

/// The row of `key` in `table`, from whichever publisher holds it.
pub fn get(table: &str, key: &str) -> Option<Value> {
    let tables = TABLES.read().unwrap_or_else(|p| p.into_inner());
    tables.get(table)?.values().find_map(|rows| rows.get(key).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishers_share_a_table_without_erasing_each_other() {
        let table = "test.lookup.people";
        assert_eq!(get(table, "u1"), None, "nothing published: nothing found");
        publish(table, "a", Rows::from([("u1".to_owned(), Value::from("one"))]));
        publish(table, "b", Rows::from([("u2".to_owned(), Value::from("two"))]));
        assert_eq!(get(table, "u1"), Some(Value::from("one")));
        assert_eq!(get(table, "u2"), Some(Value::from("two")));
        publish(table, "a", Rows::new());
        assert_eq!(get(table, "u1"), None, "a publisher replaces its own rows");
        withdraw(table, "b");
        assert_eq!(get(table, "u2"), None);
    }
}
