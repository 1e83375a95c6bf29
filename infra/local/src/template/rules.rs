//! The design's rules a template could break, checked on every load so the
//! local stack refuses what AWS would accept but the design does not. For
//! every SQS event source of a function:
//!
//! - the queue is one of the template's;
//! - its visibility timeout is at least 6 × the function's timeout;
//! - it reports batch item failures
//!   (`FunctionResponseTypes: [ReportBatchItemFailures]`);
//! - a work queue (read by the worker) has a `RedrivePolicy`;
//! - the function's `MAX_ATTEMPTS_LIMIT` (5 when unset) is below the queue's
//!   `maxReceiveCount`, so the dead-letter queue only catches crashes and
//!   poison.

use longrun_bootstrap::Function;

use super::{invalid, NoResources, Template, TemplateError};

impl Template {
    /// The design's rules, checked on every load; the first one broken is the error.
    pub(super) fn check_rules(&self) -> Result<(), TemplateError> {
        let queues = self.queues()?;
        for function in self.functions()? {
            for source in &function.sqs_sources {
                let queue = queues
                    .iter()
                    .find(|q| q.logical_id == source.queue_logical_id)
                    .ok_or_else(|| {
                        invalid(format!(
                            "{} reads unknown queue {}",
                            function.logical_id, source.queue_logical_id
                        ))
                    })?;
                if queue.visibility_timeout < 6 * function.timeout_seconds {
                    return Err(invalid(format!(
                        "queue {} has VisibilityTimeout {} s, below 6 x {}'s Timeout of {} s",
                        queue.logical_id, queue.visibility_timeout, function.logical_id, function.timeout_seconds
                    )));
                }
                if !source.report_batch_item_failures {
                    return Err(invalid(format!(
                        "{}'s SQS event source must set FunctionResponseTypes: [ReportBatchItemFailures]",
                        function.logical_id
                    )));
                }
                let Some((_, max_receive)) = queue.redrive else {
                    if function.function == Function::Worker.as_str() {
                        return Err(invalid(format!("work queue {} has no RedrivePolicy", queue.logical_id)));
                    }
                    continue;
                };
                let limit = function
                    .environment
                    .get("MAX_ATTEMPTS_LIMIT")
                    .map(|v| self.resolve(v, &NoResources))
                    .transpose()?
                    .and_then(|v| {
                        v.as_str()
                            .and_then(|s| s.parse::<u32>().ok())
                            .or(v.as_u64().map(|n| n as u32))
                    })
                    .unwrap_or(5);
                if limit >= max_receive {
                    return Err(invalid(format!(
                        "MAX_ATTEMPTS_LIMIT {limit} must be below queue {}'s maxReceiveCount {max_receive}",
                        queue.logical_id
                    )));
                }
            }
        }
        Ok(())
    }
}
