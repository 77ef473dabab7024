//! Where `vdsctl` finds the API's bearer token (BEHAVIOUR.md §11), first match wins:
//! `--token`, then `VDS_TOKEN`, then the file `api-token` the daemon wrote into its data dir
//! (`VDS_DATA_DIR`, else `./vds-data`).

use std::path::{Path, PathBuf};

use crate::error::CliError;

/// The token file's name in the data dir (the same name `vdsd` writes).
pub const TOKEN_FILE: &str = "api-token";

/// The token to send, or `None` when no source has one (the API will then answer 401).
pub fn find(
    flag: Option<&str>,
    env_token: Option<&str>,
    env_data_dir: Option<&Path>,
) -> Result<Option<String>, CliError> {
    if let Some(t) = flag.or(env_token).map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(Some(t.to_string()));
    }
    let dir: PathBuf = env_data_dir.map_or_else(|| PathBuf::from("./vds-data"), Path::to_path_buf);
    let path = dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let t = text.trim();
            if t.is_empty() {
                return Err(CliError::Usage(format!(
                    "{} holds no token",
                    path.display()
                )));
            }
            Ok(Some(t.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // Present but unreadable (another user's daemon): say so rather than send nothing.
        Err(e) => Err(CliError::Usage(format!(
            "cannot read the API token {}: {e} (give --token or VDS_TOKEN)",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_env_then_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(TOKEN_FILE), "from-file-0123456789\n").unwrap();
        let dir = Some(d.path());
        assert_eq!(
            find(Some("flag"), Some("env"), dir).unwrap().as_deref(),
            Some("flag")
        );
        assert_eq!(
            find(None, Some("env"), dir).unwrap().as_deref(),
            Some("env")
        );
        assert_eq!(
            find(None, None, dir).unwrap().as_deref(),
            Some("from-file-0123456789")
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(find(None, None, Some(empty.path())).unwrap(), None);
        assert_eq!(find(Some(""), None, Some(empty.path())).unwrap(), None);
    }
}
