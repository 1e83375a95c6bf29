//! Creates the template's tables, queues and buckets on the emulator, or
//! brings existing ones in line with the template (queue attributes, TTL),
//! so the local stack always matches `template.yaml`. Physical names are
//! `<stack>-<LogicalId>` (lower case for buckets).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use longrun_aws::AwsClients;
use serde::Serialize;

use crate::template::{ResourceLookup, TableSpec, Template};

/// The resources as created: what `!Ref` and `!GetAtt …Arn` resolve to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Deployed {
    /// The region the resources are in.
    pub region: String,
    /// Logical id → table name, queue URL or bucket name.
    pub refs: BTreeMap<String, String>,
    /// Logical id → ARN.
    pub arns: BTreeMap<String, String>,
    /// What `!GetAtt <Function>Url.FunctionUrl` resolves to: the local
    /// runtime's own address (it serves function URLs beside the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_url: Option<String>,
}

impl ResourceLookup for Deployed {
    fn reference(&self, logical_id: &str) -> Option<String> {
        self.refs.get(logical_id).cloned()
    }
    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<String> {
        match attribute {
            "Arn" => self.arns.get(logical_id).cloned(),
            "QueueUrl" => self.refs.get(logical_id).cloned(),
            "FunctionUrl" => self
                .function_url
                .as_ref()
                .map(|base| format!("{}/", base.trim_end_matches('/'))),
            "QueueName" | "BucketName" => self
                .refs
                .get(logical_id)
                .map(|r| r.rsplit('/').next().unwrap_or(r).to_owned()),
            _ => None,
        }
    }
    fn region(&self) -> String {
        self.region.clone()
    }
}

/// What setting up the local stack may fail with.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Creates (or updates) every table, queue and bucket of the template.
pub async fn deploy(template: &Template, clients: &AwsClients, stack: &str, region: &str) -> Result<Deployed, Error> {
    let mut deployed = Deployed {
        region: region.to_owned(),
        ..Default::default()
    };
    for table in template.tables()? {
        let name = format!("{stack}-{}", table.logical_id);
        let arn = ensure_table(clients, &name, &table).await?;
        deployed.refs.insert(table.logical_id.clone(), name);
        deployed.arns.insert(table.logical_id.clone(), arn);
    }
    // Dead-letter queues first: the others' redrive policies name their ARNs.
    let mut queues = template.queues()?;
    queues.sort_by_key(|q| q.redrive.is_some());
    for queue in queues {
        let name = format!("{stack}-{}", queue.logical_id);
        let mut attributes = BTreeMap::from([
            (
                QueueAttributeName::VisibilityTimeout,
                queue.visibility_timeout.to_string(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                queue.message_retention.to_string(),
            ),
        ]);
        if let Some((dlq, max_receive)) = &queue.redrive {
            let dlq_arn = deployed
                .arns
                .get(dlq)
                .ok_or_else(|| format!("queue {}: dead-letter queue {dlq} is not a queue", queue.logical_id))?;
            attributes.insert(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}).to_string(),
            );
        }
        let url = match clients.sqs.get_queue_url().queue_name(&name).send().await {
            Ok(found) => {
                let url = found.queue_url.unwrap_or_default();
                clients
                    .sqs
                    .set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attributes.into_iter().collect()))
                    .send()
                    .await?;
                url
            }
            Err(_) => clients
                .sqs
                .create_queue()
                .queue_name(&name)
                .set_attributes(Some(attributes.into_iter().collect()))
                .send()
                .await?
                .queue_url
                .unwrap_or_default(),
        };
        let arn = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or("queue has no ARN")?;
        deployed.refs.insert(queue.logical_id.clone(), url);
        deployed.arns.insert(queue.logical_id.clone(), arn);
    }
    for logical_id in template.buckets() {
        let name = format!("{stack}-{logical_id}").to_lowercase();
        if clients.s3.head_bucket().bucket(&name).send().await.is_err() {
            let mut create = clients.s3.create_bucket().bucket(&name);
            if region != "us-east-1" {
                create = create.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                        .build(),
                );
            }
            create.send().await?;
        }
        deployed.arns.insert(logical_id.clone(), format!("arn:aws:s3:::{name}"));
        deployed.refs.insert(logical_id, name);
    }
    Ok(deployed)
}

async fn ensure_table(clients: &AwsClients, name: &str, table: &TableSpec) -> Result<String, Error> {
    let key_schema = |pairs: &[(String, String)]| -> Result<Vec<KeySchemaElement>, Error> {
        pairs
            .iter()
            .map(|(attribute, kind)| {
                Ok(KeySchemaElement::builder()
                    .attribute_name(attribute)
                    .key_type(KeyType::from(kind.as_str()))
                    .build()?)
            })
            .collect()
    };
    if clients.dynamodb.describe_table().table_name(name).send().await.is_err() {
        let mut create = clients
            .dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&table.key_schema)?));
        for (attribute, kind) in &table.attributes {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(ScalarAttributeType::from(kind.as_str()))
                    .build()?,
            );
        }
        for index in &table.indexes {
            create = create.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(key_schema(&index.key_schema)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(index.projection.as_str()))
                            .build(),
                    )
                    .build()?,
            );
        }
        create.send().await?;
    }
    if let Some(attribute) = &table.ttl_attribute {
        // The emulator never expires items, but the setting is kept in line.
        let _ = clients
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await;
    }
    let description = clients.dynamodb.describe_table().table_name(name).send().await?;
    Ok(description
        .table
        .and_then(|t| t.table_arn)
        .unwrap_or_else(|| format!("arn:aws:dynamodb:us-east-1:123456789012:table/{name}")))
}
