//! Staging: copies of what a local tool needs, where its sandboxes can read them.
//!
//! When the gateway runs as root, each sandbox runs under an unprivileged uid of its own, and
//! bubblewrap opens the paths it binds as that uid. A checkout under a private folder (root's
//! home is `0700` on Debian) is out of those uids' reach, so the tool's executable, its
//! read-only paths and its tenant root could not be bound. Rather than refusing to start, the
//! gateway copies each such path, once at start, into a stage folder of its own and binds the
//! copy (read-only, at the same place in the sandbox as the original would have been).
//!
//! The stage folder is `<temp dir>/switchboard-stage-<pid>-<random>`, mode `0711`: other uids
//! may pass through it but not list it, and its name is not guessable. Inside it, folders are
//! `0755` and files `0644` (`0755` when the original is executable by its owner); set-id bits,
//! symbolic links, devices, sockets and fifos are never copied. The folder is removed when the
//! backend is dropped, and a stage folder whose gateway process is gone is removed at start.
//!
//! A copy is a snapshot: what changes in the original after the gateway started is not seen by
//! its sandboxes (keep a tenant root that changes while the gateway runs where the sandboxes'
//! uids can read it, and nothing is copied).

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The prefix of stage folders in the temporary folder.
const PREFIX: &str = "switchboard-stage-";
/// The most bytes one stage may hold; a tenant root larger than this is not copied.
pub const MAX_STAGE_BYTES: u64 = 1 << 30;

/// Why something could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("cannot create the stage folder {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot copy {path} into the stage folder: {source}")]
    Copy { path: PathBuf, source: io::Error },
    #[error(
        "cannot copy {path} into the stage folder: the stage would exceed {MAX_STAGE_BYTES} bytes"
    )]
    TooLarge { path: PathBuf },
}

/// One gateway's stage folder (removed on drop).
#[derive(Debug)]
pub struct Stage {
    root: PathBuf,
    next: std::sync::atomic::AtomicUsize,
    bytes: std::sync::atomic::AtomicU64,
}

impl Stage {
    /// Creates the stage folder in `parent` (the temporary folder), after removing the stage
    /// folders of gateways that are no longer running.
    pub fn new(parent: &Path) -> Result<Self, StageError> {
        remove_leftovers(parent);
        let root = parent.join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        DirBuilder::new()
            .mode(0o711)
            .create(&root)
            .and_then(|()| std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711)))
            .map_err(|source| StageError::Create {
                path: root.clone(),
                source,
            })?;
        Ok(Self {
            root,
            next: 0.into(),
            bytes: 0.into(),
        })
    }

    /// The stage folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Copies `path` (a file or a folder tree) into the stage and returns the copy's path, whose
    /// last component is the original's.
    pub fn place(&self, path: &Path) -> Result<PathBuf, StageError> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = self.root.join(n.to_string());
        let err = |source| StageError::Copy {
            path: path.to_path_buf(),
            source,
        };
        DirBuilder::new().mode(0o755).create(&slot).map_err(err)?;
        std::fs::set_permissions(&slot, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
        let name = path.file_name().unwrap_or(std::ffi::OsStr::new("root"));
        let copy = slot.join(name);
        self.copy(path, &copy)?;
        Ok(copy)
    }

    fn copy(&self, from: &Path, to: &Path) -> Result<(), StageError> {
        let err = |source| StageError::Copy {
            path: from.to_path_buf(),
            source,
        };
        let meta = std::fs::symlink_metadata(from).map_err(err)?;
        if meta.is_dir() {
            DirBuilder::new().mode(0o755).create(to).map_err(err)?;
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
            let mut entries: Vec<_> = std::fs::read_dir(from)
                .map_err(err)?
                .collect::<Result<_, _>>()
                .map_err(err)?;
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                self.copy(&entry.path(), &to.join(entry.file_name()))?;
            }
        } else if meta.is_file() {
            let total = self
                .bytes
                .fetch_add(meta.len(), std::sync::atomic::Ordering::Relaxed)
                + meta.len();
            if total > MAX_STAGE_BYTES {
                return Err(StageError::TooLarge {
                    path: from.to_path_buf(),
                });
            }
            std::fs::copy(from, to).map_err(err)?;
            let mode = if meta.permissions().mode() & 0o100 != 0 {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).map_err(err)?;
        }
        // Symbolic links, devices, sockets and fifos are left out.
        Ok(())
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Removes the stage folders in `parent` whose gateway process is gone.
fn remove_leftovers(parent: &Path) {
    for (path, pid) in switchboard_sandbox::paths::left_by_gone_processes(parent, PREFIX) {
        // Only folders this code made: owned by this uid.
        let ours = std::fs::symlink_metadata(&path)
            .is_ok_and(|m| Some(std::os::unix::fs::MetadataExt::uid(&m)) == own_uid());
        if ours && std::fs::remove_dir_all(&path).is_ok() {
            tracing::info!(
                "removed {}, the stage folder of gateway process {pid}, which is gone",
                path.display()
            );
        }
    }
}

/// The process's effective uid (`/proc/self` belongs to it).
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self")
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
    }

    #[test]
    fn a_private_tree_is_copied_readable_without_links_or_set_id_bits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("private");
        std::fs::create_dir_all(private.join("tree/sub")).expect("mkdir");
        std::fs::write(private.join("tree/sub/state.json"), b"{}").expect("write");
        std::fs::write(private.join("tool"), b"#!/bin/sh\n").expect("write");
        std::fs::set_permissions(
            private.join("tool"),
            std::fs::Permissions::from_mode(0o4700),
        )
        .expect("chmod");
        std::fs::set_permissions(
            private.join("tree/sub/state.json"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        std::os::unix::fs::symlink("/etc/passwd", private.join("tree/link")).expect("symlink");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let parent = dir.path().join("tmp");
        std::fs::create_dir(&parent).expect("mkdir");
        let stage = Stage::new(&parent).expect("stage");
        assert_eq!(mode(stage.root()), 0o711);
        let tool = stage.place(&private.join("tool")).expect("file");
        assert_eq!(tool.file_name(), Some(std::ffi::OsStr::new("tool")));
        assert_eq!(mode(&tool), 0o755, "executable, set-uid dropped");
        let tree = stage.place(&private.join("tree")).expect("tree");
        assert_eq!(mode(&tree), 0o755);
        assert_eq!(mode(&tree.join("sub/state.json")), 0o644);
        assert_eq!(
            std::fs::read(tree.join("sub/state.json")).expect("read"),
            b"{}"
        );
        assert!(!tree.join("link").exists(), "a symbolic link was copied");
        let root = stage.root().to_path_buf();
        drop(stage);
        assert!(!root.exists(), "the stage outlived its backend");
    }

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
        let stage = Stage::new(dir.path()).expect("stage");
        assert!(!dead.exists(), "a dead gateway's stage is left");
        assert!(live.exists() && other.exists());
        drop(stage);
    }
}
