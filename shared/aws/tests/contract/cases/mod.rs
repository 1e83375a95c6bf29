//! The cases, each a plain async fn over a port, run by `contract!` on both
//! adapters.

mod chains;
mod endings;
mod io;
mod lifecycle;
mod owners;

pub use chains::*;
pub use endings::*;
pub use io::*;
pub use lifecycle::*;
pub use owners::*;
