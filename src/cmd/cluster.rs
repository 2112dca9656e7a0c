//! `tollgate crd` and the in-cluster side of `tollgate webhook --in-cluster`.

use std::process::ExitCode;

use anyhow::Context as _;

/// `tollgate crd`: the TollgatePolicy CRD, generated from the Rust type.
pub fn print_crd() -> anyhow::Result<ExitCode> {
    let yaml = tollgate_cluster::crd::crd_yaml().context("cannot render the CRD")?;
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
}
