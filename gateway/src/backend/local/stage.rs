//! Staging: copies of what a local tool needs, where its sandboxes can read them.
//!
//! When the gateway runs as root, each sandbox runs under an unprivileged uid of its own, and
//! bubblewrap opens the paths it binds as that uid. A checkout under a private folder (root's
//! home is `0700` on Debian) is out of those uids' reach, so the tool's executable, its
//! read-only paths and its tenant root could not be bound. Rather than refusing to start, the
//! gateway copies each such path, once at start, into a stage folder of its own and binds the
//! copy (read-only, at the same place in the sandbox as the original would have been; which
//! paths, is the tool's plan, `plan.rs`).
//!
//! The copying, the folder's modes and its removal are `switchboard_sandbox::stage`, shared with
//! the LocalStack Lambda host. The gateway's stage folder is
//! `<temp dir>/switchboard-stage-<pid>-<random>`; it is removed when the backend is dropped, and
//! a stage folder whose gateway process is gone is removed at start.
//!
//! A copy is a snapshot: what changes in the original after the gateway started is not seen by
//! its sandboxes (keep a tenant root that changes while the gateway runs where the sandboxes'
//! uids can read it, and nothing is copied).

use std::path::Path;

pub use switchboard_sandbox::stage::{Stage, StageError};

/// The prefix of the gateway's stage folders in the temporary folder.
pub const PREFIX: &str = "switchboard-stage-";

/// Creates the gateway's stage folder in `parent` (the temporary folder), after removing the
/// stage folders of gateways that are no longer running, and says which it removed.
pub fn open(parent: &Path) -> Result<Stage, StageError> {
    let stage = Stage::new(parent, PREFIX)?;
    for (path, pid) in stage.removed_leftovers() {
        tracing::info!(
            "removed {}, the stage folder of gateway process {pid}, which is gone",
            path.display()
        );
    }
    Ok(stage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_gateways_stage_is_removed_and_a_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 4194304 is above the kernel's largest pid; the test's own pid is alive.
        let dead = dir.path().join(format!("{PREFIX}4194304-deadbeef"));
        let live = dir
            .path()
            .join(format!("{PREFIX}{}-cafe", std::process::id()));
        let other = dir.path().join("switchboard-other");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("0")).expect("mkdir");
        }
        let stage = open(dir.path()).expect("stage");
        assert!(!dead.exists(), "a dead gateway's stage is left");
        assert!(live.exists() && other.exists());
        let root = stage.root().to_path_buf();
        assert!(
            root.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{PREFIX}{}-", std::process::id())))
        );
        drop(stage);
        assert!(!root.exists(), "the stage outlived its backend");
    }
}
