//! Reading the jobs for a [`Tally`]: a Scan of the table, or Queries of an
//! owner's partitions of the owner indexes, filtered by status and type,
//! either to the end (the CLI) or up to a budget of items (the dashboard,
//! which must answer quickly on a table of any size), leaving a [`Cursor`]
//! where it stopped.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use longrun_aws::{describe, owner_shards, LEGACY_OWNER_INDEX, OWNER_INDEX};
use longrun_core::JobStatus;
use serde_json::{json, Map, Value};

use super::{JobRow, Tally};

/// Which jobs to read and list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter<'a> {
    /// Only this owner's jobs (the owner indexes), else the whole table.
    pub owner: Option<&'a str>,
    /// List the newest jobs in this status (all are counted).
    pub status: Option<JobStatus>,
    /// Only jobs of this type, counted and listed.
    pub job_type: Option<&'a str>,
}

/// Where a read stopped: the partition (0 for the table; for an owner, the
/// index shard in [`partitions`]' order) and the last key read in it (none:
/// from the partition's start).
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    partition: usize,
    key: HashMap<String, AttributeValue>,
}

impl Cursor {
    /// The cursor as URL-safe text: hex of a small JSON object (the key's
    /// string and number attributes, all a jobs key or index key has).
    pub fn encode(&self) -> String {
        let key: Map<String, Value> = self
            .key
            .iter()
            .filter_map(|(name, value)| {
                let typed = match value {
                    AttributeValue::S(s) => json!({"S": s}),
                    AttributeValue::N(n) => json!({"N": n}),
                    _ => return None,
                };
                Some((name.clone(), typed))
            })
            .collect();
        let text = json!({"p": self.partition, "k": key}).to_string();
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// A cursor [`Cursor::encode`] made, or `None` for anything else.
    pub fn parse(text: &str) -> Option<Cursor> {
        if !text.len().is_multiple_of(2) || text.len() > 4_096 {
            return None;
        }
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        let value: Value = serde_json::from_slice(&bytes).ok()?;
        let partition = usize::try_from(value["p"].as_u64()?).ok()?;
        let mut key = HashMap::new();
        for (name, typed) in value["k"].as_object()? {
            let attribute = match (typed["S"].as_str(), typed["N"].as_str()) {
                (Some(s), None) => AttributeValue::S(s.to_owned()),
                (None, Some(n)) if n.parse::<f64>().is_ok() => AttributeValue::N(n.to_owned()),
                _ => return None,
            };
            key.insert(name.clone(), attribute);
        }
        Some(Cursor { partition, key })
    }
}

/// What to read: the whole table (`None`), or each partition of the
/// owner's jobs: the shards of the owner index, then the legacy index's
/// records of before.
fn partitions(owner: Option<&str>) -> Vec<Option<(&'static str, &'static str, String)>> {
    match owner {
        None => vec![None],
        Some(owner) => owner_shards(owner)
            .map(|key| Some((OWNER_INDEX, "owner_shard", key)))
            .chain([Some((LEGACY_OWNER_INDEX, "owner", owner.to_owned()))])
            .collect(),
    }
}

/// Items read per request when a budget is set.
const PAGE_ITEMS: i32 = 1_000;

/// Reads the jobs `filter` selects and tallies them, from `from` (or the
/// start), until the end or, with `budget`, once about that many items
/// have been read (the tally's `next` then says where to go on).
pub async fn tally(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    filter: &Filter<'_>,
    limit: usize,
    from: Option<Cursor>,
    budget: Option<usize>,
) -> Result<Tally, String> {
    let listing = filter.status.is_some();
    let mut names: Vec<&str> = vec!["status", "job_type"];
    let projection = if listing {
        names.extend(["pk", "owner", "owner_id", "queue", "created_at", "updated_at"]);
        "#pk, #owner, #owner_id, #job_type, #status, #queue, #created_at, #updated_at"
    } else {
        "#status"
    };
    let mut condition = "attribute_exists(#job_type)".to_owned();
    let mut values = HashMap::new();
    if let Some(job_type) = filter.job_type {
        condition.push_str(" AND #job_type = :job_type");
        values.insert(":job_type".to_owned(), AttributeValue::S(job_type.to_owned()));
    }
    let mut tally = Tally::new(filter.status, limit);
    let partitions = partitions(filter.owner);
    let (first, mut start_key) = match from {
        None => (0, None),
        Some(cursor) if cursor.partition < partitions.len() => {
            (cursor.partition, Some(cursor.key).filter(|key| !key.is_empty()))
        }
        Some(_) => return Err("that cursor is not one of this listing's".into()),
    };
    let mut read = 0usize;
    for (index, partition) in partitions.iter().enumerate().skip(first) {
        loop {
            let page_limit = budget.map(|budget| {
                let left = budget.saturating_sub(read).max(1);
                i32::try_from(left).map_or(PAGE_ITEMS, |left| left.min(PAGE_ITEMS))
            });
            let page = match partition {
                None => {
                    let mut scan = dynamodb
                        .scan()
                        .table_name(table)
                        .projection_expression(projection)
                        .filter_expression(&condition)
                        .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
                        .set_limit(page_limit)
                        .set_exclusive_start_key(start_key.take());
                    for name in &names {
                        scan = scan.expression_attribute_names(format!("#{name}"), *name);
                    }
                    scan.send()
                        .await
                        .map(|o| (o.items, o.last_evaluated_key, o.scanned_count))
                        .map_err(|e| format!("scan {table}: {}", describe(&e)))?
                }
                Some((index_name, key_attribute, key)) => {
                    let mut query = dynamodb
                        .query()
                        .table_name(table)
                        .index_name(*index_name)
                        .key_condition_expression("#key = :key")
                        .expression_attribute_names("#key", *key_attribute)
                        .set_expression_attribute_values(Some(values.clone()))
                        .expression_attribute_values(":key", AttributeValue::S(key.clone()))
                        .projection_expression(projection)
                        .filter_expression(&condition)
                        .set_limit(page_limit)
                        .set_exclusive_start_key(start_key.take());
                    for name in &names {
                        query = query.expression_attribute_names(format!("#{name}"), *name);
                    }
                    query
                        .send()
                        .await
                        .map(|o| (o.items, o.last_evaluated_key, o.scanned_count))
                        .map_err(|e| format!("query {index_name} of {table}: {}", describe(&e)))?
                }
            };
            let (items, next, scanned) = page;
            for item in items.unwrap_or_default() {
                let Some(status) = item.get("status").and_then(|v| v.as_s().ok()).cloned() else {
                    continue;
                };
                let row = if listing { row_from(&item) } else { None };
                tally.add(&status, row);
            }
            read += usize::try_from(scanned).unwrap_or(0);
            start_key = next.filter(|k| !k.is_empty());
            let spent = budget.is_some_and(|budget| read >= budget);
            if spent {
                tally.next = match start_key.take() {
                    Some(key) => Some(Cursor { partition: index, key }),
                    None if index + 1 < partitions.len() => Some(Cursor {
                        partition: index + 1,
                        key: HashMap::new(),
                    }),
                    None => None,
                };
                tally.settle();
                return Ok(tally);
            }
            if start_key.is_none() {
                break;
            }
        }
    }
    tally.settle();
    Ok(tally)
}

fn row_from(item: &HashMap<String, AttributeValue>) -> Option<JobRow> {
    let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let n = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
    Some(JobRow {
        id: s("pk")?,
        owner: s("owner_id").or_else(|| s("owner")).unwrap_or_default(),
        job_type: s("job_type").unwrap_or_default(),
        status: s("status")?,
        queue: s("queue").unwrap_or_default(),
        created_at: n("created_at").unwrap_or(0),
        updated_at: n("updated_at").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_made_and_nothing_else_reads_as_one() {
        let key = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("0190-\"x\"".into())),
            ("created_at".to_owned(), AttributeValue::N("1700000000000".into())),
        ]);
        for cursor in [
            Cursor { partition: 3, key },
            Cursor {
                partition: 1,
                key: HashMap::new(),
            },
        ] {
            let text = cursor.encode();
            assert!(text.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
            assert_eq!(Cursor::parse(&text), Some(cursor));
        }
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        let cases = [
            ("empty", String::new()),
            ("odd length", "abc".to_owned()),
            ("not hex", "zz".to_owned()),
            ("not JSON", hex("nope")),
            ("no partition", hex(r#"{"k":{}}"#)),
            ("negative partition", hex(r#"{"p":-1,"k":{}}"#)),
            ("a binary attribute", hex(r#"{"p":0,"k":{"pk":{"B":"AA=="}}}"#)),
            ("a number that is not", hex(r#"{"p":0,"k":{"n":{"N":"x"}}}"#)),
            ("too long", "00".repeat(3_000)),
        ];
        for (case, text) in cases {
            assert_eq!(Cursor::parse(&text), None, "{case}");
        }
    }
}
