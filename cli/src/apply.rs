//! `bramble apply -f`: checks the manifests here (errors name file, document and line), then
//! sends each object to the coordinator, which says whether it was created, configured or
//! unchanged.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::client::Client;
use crate::manifest_files;

pub fn run(
    client: &Client,
    filenames: &[PathBuf],
    recursive: bool,
    namespace: &str,
) -> anyhow::Result<ExitCode> {
    let Some(manifests) = manifest_files::read_valid(filenames, recursive) else {
        return Ok(ExitCode::FAILURE);
    };
    for item in &manifests.objects {
        let body = serde_json::to_vec(&item.object)?;
        let query = [("namespace", namespace), ("source", item.source.as_str())];
        let answer = client.post("/apis/bramble.dev/v1/apply", &query, &body)?;
        for result in answer["items"].as_array().into_iter().flatten() {
            println!(
                "{} {}",
                result["object"].as_str().unwrap_or("?"),
                result["result"].as_str().unwrap_or("?")
            );
        }
        for warning in answer["warnings"].as_array().into_iter().flatten() {
            eprintln!("Warning: {}", warning.as_str().unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}
