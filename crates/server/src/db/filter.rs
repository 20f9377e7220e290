//! A `WHERE` clause built from the filters a request gives, and only
//! those: a filter written as `(:x IS NULL OR col = :x)` would keep SQLite
//! from using the index on `col`.

use rusqlite::types::ToSql;

/// Conditions joined by `AND`, each with its named parameters.
#[derive(Default)]
pub struct Filter {
    conditions: Vec<String>,
    params: Vec<(&'static str, Box<dyn ToSql + Send>)>,
}

impl Filter {
    /// Adds `condition`, which uses the parameter `name`, bound to `value`.
    pub fn push(
        &mut self,
        condition: impl Into<String>,
        name: &'static str,
        value: impl ToSql + Send + 'static,
    ) {
        self.conditions.push(condition.into());
        self.bind(name, value);
    }

    /// Binds one more parameter, used by a condition or elsewhere in the
    /// statement (a `LIMIT`, a second parameter of a condition).
    pub fn bind(&mut self, name: &'static str, value: impl ToSql + Send + 'static) {
        self.params.push((name, Box::new(value)));
    }

    /// Adds `column = name` when `value`, trimmed, is not empty.
    pub fn equal(&mut self, column: &str, name: &'static str, value: &str) {
        let value = value.trim();
        if !value.is_empty() {
            self.push(format!("{column} = {name}"), name, value.to_owned());
        }
    }

    /// The conditions, for after `WHERE` (`1` when there are none).
    pub fn sql(&self) -> String {
        if self.conditions.is_empty() {
            "1".into()
        } else {
            self.conditions.join(" AND ")
        }
    }

    /// The parameters, as `query_map` takes them.
    pub fn params(&self) -> Vec<(&str, &dyn ToSql)> {
        self.params
            .iter()
            .map(|(n, v)| (*n, v.as_ref() as &dyn ToSql))
            .collect()
    }
}
