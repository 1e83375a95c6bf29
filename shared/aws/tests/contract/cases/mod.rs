//! The cases, each a plain async fn over a port, run by `contract!` on both
//! adapters.

mod chains;
mod endings;
mod io;
mod lifecycle;
mod limits;
mod lost_answers;
mod owners;
mod schedules;
mod streams;

pub(crate) use chains::*;
pub(crate) use endings::*;
pub(crate) use io::*;
pub(crate) use lifecycle::*;
pub(crate) use limits::*;
pub(crate) use lost_answers::*;
pub(crate) use owners::*;
pub(crate) use schedules::*;
pub(crate) use streams::*;
