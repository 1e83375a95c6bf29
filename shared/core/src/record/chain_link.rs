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
    /// How the next step's id is derived: 2 (every chain started now) from
    /// this job's id and creation time, 1 (chains started before) from its
    /// id alone. See [`JobId::next_in_chain`].
    #[serde(default = "id_scheme_of_older_chains")]
    pub id_scheme: u8,
}

/// The id scheme of a link written before links named theirs.
fn id_scheme_of_older_chains() -> u8 {
    1
}

/// The id scheme every new link gets.
pub const CHAIN_ID_SCHEME: u8 = 2;

impl ChainLink {
    /// The link of a chain's first job, `id`, followed by `then`.
    pub fn first(id: &JobId, then: Vec<ChainStep>) -> Self {
        ChainLink {
            chain_id: id.clone(),
            step: 0,
            previous_job_id: None,
            readable_results: Vec::new(),
            then,
            id_scheme: CHAIN_ID_SCHEME,
        }
    }
}
