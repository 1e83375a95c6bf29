//! Where a job stands in its chain (see `crate::chain` for how steps follow
//! one another).

use longrun_types::api::ChainStep;
use serde::{Deserialize, Serialize};

use super::JobId;

/// Where a job stands in its chain. Only jobs of a chain have one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The chain's first job: its id names the chain.
    pub chain_id: JobId,
    /// 0 for the first job, then 1, 2, …
    pub step: u32,
    /// The step before this one; `None` for the first job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_job_id: Option<JobId>,
    /// Object keys of the previous step's results that this step's input
    /// names: the only keys outside its owner's inputs it may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readable_results: Vec<String>,
    /// The steps after this one, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<ChainStep>,
}

impl ChainLink {
    /// The link of a chain's first job, `id`, followed by `then`.
    pub fn first(id: &JobId, then: Vec<ChainStep>) -> Self {
        ChainLink {
            chain_id: id.clone(),
            step: 0,
            previous_job_id: None,
            readable_results: Vec::new(),
            then,
        }
    }
}
