//! A small builder for the update and condition expressions of an
//! `UpdateItem` request, so each attribute is named once: an action such as
//! `set("status", value)` writes `#status = :status` into the update
//! expression and registers both placeholders with it.
//!
//! Placeholders follow one rule: `#name` always stands for the attribute
//! `name` (the expression attribute names are collected from the rendered
//! expressions, so none is missing or unused), and an action's value is
//! `:name`. A condition refers to attributes the same way and binds its own
//! values with [`Update::value`]; binding one placeholder to two different
//! values is a bug and panics rather than letting one overwrite the other.
//!
//! It covers what the job store writes (`SET`, `if_not_exists`, counters,
//! `ADD` to a set, `REMOVE`, one condition), not DynamoDB's whole
//! expression language.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

/// An update of one item: its actions, its condition and the values they use.
#[derive(Clone, Debug, Default)]
pub(super) struct Update {
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    condition: Option<String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// `SET #name = :name`.
    pub(super) fn set(mut self, name: &str, value: AttributeValue) -> Self {
        self.set.push(format!("#{name} = :{name}"));
        self.value(&format!(":{name}"), value)
    }

    /// `SET #name = if_not_exists(#name, :name)`: written only when absent.
    pub(super) fn set_if_not_exists(mut self, name: &str, value: AttributeValue) -> Self {
        self.set.push(format!("#{name} = if_not_exists(#{name}, :{name})"));
        self.value(&format!(":{name}"), value)
    }

    /// `SET #name = if_not_exists(#name, :zero) + :name`: a number attribute
    /// changed by `by` (negative to count down), counted from 0 when absent
    /// (a record written before the counter existed).
    pub(super) fn increment(mut self, name: &str, by: i64) -> Self {
        self.set
            .push(format!("#{name} = if_not_exists(#{name}, :zero) + :{name}"));
        self.value(":zero", AttributeValue::N("0".into()))
            .value(&format!(":{name}"), AttributeValue::N(by.to_string()))
    }

    /// `ADD #name :name`: `value`'s members added to the set `name` (made
    /// when absent).
    pub(super) fn add_to_set(mut self, name: &str, value: AttributeValue) -> Self {
        self.add.push(format!("#{name} :{name}"));
        self.value(&format!(":{name}"), value)
    }

    /// `REMOVE #name`.
    pub(super) fn remove(mut self, name: &str) -> Self {
        self.remove.push(format!("#{name}"));
        self
    }

    /// The condition the item must meet for the update to apply. Its `#name`
    /// placeholders stand for the attributes `name`; its values are bound
    /// with [`value`](Self::value). An update has at most one condition.
    pub(super) fn condition(mut self, expression: &str) -> Self {
        assert!(self.condition.is_none(), "an update has one condition");
        self.condition = Some(expression.to_owned());
        self
    }

    /// Binds `placeholder` (`:queued`) to `value` for the condition.
    ///
    /// # Panics
    /// When `placeholder` is already bound to a different value.
    pub(super) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        match self.values.get(placeholder) {
            Some(bound) => assert!(*bound == value, "placeholder {placeholder} bound to two values"),
            None => {
                self.values.insert(placeholder.to_owned(), value);
            }
        }
        self
    }

    /// Puts the update expression, the condition (if any) and every name and
    /// value they use on `builder`, replacing any it had.
    pub(super) fn apply(self, builder: UpdateItemFluentBuilder) -> UpdateItemFluentBuilder {
        let expression = self.update_expression();
        let names = self.names(&expression);
        builder
            .update_expression(expression)
            .set_condition_expression(self.condition)
            .set_expression_attribute_names(Some(names).filter(|n| !n.is_empty()))
            .set_expression_attribute_values(Some(self.values).filter(|v| !v.is_empty()))
    }

    /// The same update as one action of a `TransactWriteItems` request on
    /// the item `pk` of `table`.
    pub(super) fn into_transact(
        self,
        table: &str,
        pk: AttributeValue,
    ) -> Result<aws_sdk_dynamodb::types::Update, String> {
        let expression = self.update_expression();
        let names = self.names(&expression);
        aws_sdk_dynamodb::types::Update::builder()
            .table_name(table)
            .key("pk", pk)
            .update_expression(expression)
            .set_condition_expression(self.condition)
            .set_expression_attribute_names(Some(names).filter(|n| !n.is_empty()))
            .set_expression_attribute_values(Some(self.values).filter(|v| !v.is_empty()))
            .build()
            .map_err(|e| e.to_string())
    }

    /// `SET a, b ADD c REMOVE d, e`, leaving out an empty clause.
    fn update_expression(&self) -> String {
        let mut clauses = Vec::new();
        if !self.set.is_empty() {
            clauses.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.add.is_empty() {
            clauses.push(format!("ADD {}", self.add.join(", ")));
        }
        if !self.remove.is_empty() {
            clauses.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        clauses.join(" ")
    }

    /// Every `#name` placeholder in the update expression and the condition,
    /// mapped to the attribute it stands for.
    fn names(&self, update_expression: &str) -> HashMap<String, String> {
        let expressions = [update_expression, self.condition.as_deref().unwrap_or("")];
        let mut names = HashMap::new();
        for expression in expressions {
            for (start, _) in expression.match_indices('#') {
                let name: String = expression[start + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.insert(format!("#{name}"), name);
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::super::item::{n, s};
    use super::*;

    fn names(pairs: &[&str]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|name| (format!("#{name}"), (*name).to_owned()))
            .collect()
    }

    #[test]
    fn actions_render_one_expression_with_their_names_and_values() {
        let update = Update::new()
            .set("status", s("RUNNING"))
            .set_if_not_exists("started_at", n(7))
            .increment("attempts", 1)
            .increment("retries_left", -1)
            .remove("lease_owner")
            .remove("due_shard");
        let expression = update.update_expression();
        assert_eq!(
            expression,
            "SET #status = :status, #started_at = if_not_exists(#started_at, :started_at), \
             #attempts = if_not_exists(#attempts, :zero) + :attempts, \
             #retries_left = if_not_exists(#retries_left, :zero) + :retries_left \
             REMOVE #lease_owner, #due_shard"
        );
        assert_eq!(
            update.names(&expression),
            names(&[
                "status",
                "started_at",
                "attempts",
                "retries_left",
                "lease_owner",
                "due_shard"
            ])
        );
        assert_eq!(
            update.values,
            HashMap::from([
                (":status".to_owned(), s("RUNNING")),
                (":started_at".to_owned(), n(7)),
                (":attempts".to_owned(), n(1)),
                (":retries_left".to_owned(), n(-1)),
                (":zero".to_owned(), n(0)),
            ])
        );
    }

    #[test]
    fn an_update_may_only_set_only_add_or_only_remove() {
        assert_eq!(Update::new().set("a", n(1)).update_expression(), "SET #a = :a");
        assert_eq!(Update::new().remove("a").update_expression(), "REMOVE #a");
        let ids = AttributeValue::Ss(vec!["x".into()]);
        let added = Update::new().add_to_set("active", ids.clone());
        assert_eq!(added.update_expression(), "ADD #active :active");
        assert_eq!(added.values, HashMap::from([(":active".to_owned(), ids)]));
        assert_eq!(
            Update::new()
                .set("a", n(1))
                .add_to_set("b", AttributeValue::Ss(vec!["y".into()]))
                .remove("c")
                .update_expression(),
            "SET #a = :a ADD #b :b REMOVE #c"
        );
    }

    #[test]
    fn conditions_share_the_names_and_bind_their_own_values() {
        let update = Update::new()
            .set("status", s("RUNNING"))
            .condition("#status = :queued AND (attribute_not_exists(#run_at) OR #run_at <= :now)")
            .value(":queued", s("QUEUED"))
            .value(":now", n(5))
            .value(":now", n(5));
        let expression = update.update_expression();
        assert_eq!(update.names(&expression), names(&["status", "run_at"]));
        assert_eq!(update.values.len(), 3);
        assert_eq!(update.values[":queued"], s("QUEUED"));
        assert_eq!(update.values[":now"], n(5));
    }

    #[test]
    #[should_panic(expected = "placeholder :status bound to two values")]
    fn a_placeholder_cannot_be_bound_twice() {
        let _ = Update::new()
            .set("status", s("RUNNING"))
            .condition("#status <> :status")
            .value(":status", s("QUEUED"));
    }

    #[test]
    fn apply_fills_the_request() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let request = Update::new()
            .set("status", s("CANCELLED"))
            .increment("version", 1)
            .remove("due_at")
            .condition("#status = :queued")
            .value(":queued", s("QUEUED"))
            .apply(client.update_item());
        assert_eq!(
            request.get_update_expression().as_deref(),
            Some("SET #status = :status, #version = if_not_exists(#version, :zero) + :version REMOVE #due_at")
        );
        assert_eq!(request.get_condition_expression().as_deref(), Some("#status = :queued"));
        assert_eq!(
            request.get_expression_attribute_names().as_ref(),
            Some(&names(&["status", "version", "due_at"]))
        );
        assert_eq!(
            request.get_expression_attribute_values().as_ref(),
            Some(&HashMap::from([
                (":status".to_owned(), s("CANCELLED")),
                (":version".to_owned(), n(1)),
                (":zero".to_owned(), n(0)),
                (":queued".to_owned(), s("QUEUED")),
            ]))
        );

        let unconditional = Update::new().remove("due_at").apply(client.update_item());
        assert_eq!(unconditional.get_condition_expression(), &None);
        assert_eq!(unconditional.get_expression_attribute_values(), &None);
    }
}
