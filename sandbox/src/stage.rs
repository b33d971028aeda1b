//! Staging: copies of what a sandbox needs, where its unprivileged uid can read them.
//!
//! A process running as root starts each sandbox under an unprivileged uid of its own, and
//! bubblewrap opens the paths it binds as that uid. Whatever sits under a private folder (root's
//! home is `0700` on Debian, and so is a CI runner's checkout, often) is out of that uid's reach.
//! Rather than refusing to start, the caller copies each such path, once, into a stage folder of
//! its own and binds the copy (read-only) in its place. What is staged, and what the copy is bound
//! as, is the caller's layout; this module only makes the copies and cleans up after them.
//!
//! The stage folder is `<parent>/<prefix><pid>-<random>` (the caller's prefix, usually in the
//! temporary folder), mode `0711`: other uids may pass through it but not list it, and its name
//! is not guessable. Inside it, folders are `0755` and files `0644` (`0755` when the original is
//! executable by its owner); set-id bits, symbolic links, devices, sockets and fifos are never
//! copied. The folder is removed when the [`Stage`] is dropped, and a stage folder with the same
//! prefix whose process is gone is removed when the next one is made.
//!
//! A copy is a snapshot: what changes in the original after it was staged is not seen.

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The most bytes one stage may hold; a tree larger than this is not copied.
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

/// One process's stage folder (removed on drop).
#[derive(Debug)]
pub struct Stage {
    root: PathBuf,
    next: std::sync::atomic::AtomicUsize,
    bytes: std::sync::atomic::AtomicU64,
    removed: Vec<(PathBuf, u32)>,
}

impl Stage {
    /// Creates the stage folder `<parent>/<prefix><pid>-<random>`, after removing the stage
    /// folders with the same prefix in `parent` whose processes are gone
    /// ([`Stage::removed_leftovers`] names them, for the caller's log).
    pub fn new(parent: &Path, prefix: &str) -> Result<Self, StageError> {
        let removed = remove_leftovers(parent, prefix);
        let root = parent.join(format!(
            "{prefix}{}-{}",
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
            removed,
        })
    }

    /// The stage folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stage folders of processes that are gone, removed when this one was made: (the
    /// folder, the pid it was named for).
    pub fn removed_leftovers(&self) -> &[(PathBuf, u32)] {
        &self.removed
    }

    /// A new empty folder `name` in the stage (`0755`), for what cannot be copied but must be
    /// reached: a Unix socket the caller binds there, say.
    pub fn folder(&self, name: &str) -> Result<PathBuf, StageError> {
        let dir = self.slot(Path::new(name))?.join(name);
        let err = |source| StageError::Create {
            path: dir.clone(),
            source,
        };
        DirBuilder::new().mode(0o755).create(&dir).map_err(err)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
        Ok(dir)
    }

    /// Copies `path` (a file or a folder tree) into the stage and returns the copy's path, whose
    /// last component is the original's.
    pub fn place(&self, path: &Path) -> Result<PathBuf, StageError> {
        let slot = self.slot(path)?;
        let name = path.file_name().unwrap_or(std::ffi::OsStr::new("root"));
        let copy = slot.join(name);
        self.copy(path, &copy)?;
        Ok(copy)
    }

    /// A new numbered folder (`0755`) in the stage, for one placed path.
    fn slot(&self, path: &Path) -> Result<PathBuf, StageError> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = self.root.join(n.to_string());
        let err = |source| StageError::Copy {
            path: path.to_path_buf(),
            source,
        };
        DirBuilder::new().mode(0o755).create(&slot).map_err(err)?;
        std::fs::set_permissions(&slot, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
        Ok(slot)
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

/// Removes the stage folders in `parent` named with `prefix` whose process is gone, and names
/// them.
fn remove_leftovers(parent: &Path, prefix: &str) -> Vec<(PathBuf, u32)> {
    crate::paths::left_by_gone_processes(parent, prefix)
        .into_iter()
        .filter(|(path, _)| {
            // Only folders this code made: owned by this uid.
            let ours = std::fs::symlink_metadata(path)
                .is_ok_and(|m| Some(std::os::unix::fs::MetadataExt::uid(&m)) == own_uid());
            ours && std::fs::remove_dir_all(path).is_ok()
        })
        .collect()
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

    const PREFIX: &str = "test-stage-";

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
        let stage = Stage::new(&parent, PREFIX).expect("stage");
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
        let folder = stage.folder("sockets").expect("folder");
        assert_eq!(folder.file_name(), Some(std::ffi::OsStr::new("sockets")));
        assert_eq!(mode(&folder), 0o755);
        assert_eq!(std::fs::read_dir(&folder).expect("list").count(), 0);
        let root = stage.root().to_path_buf();
        drop(stage);
        assert!(!root.exists(), "the stage outlived its owner");
    }

    #[test]
    fn a_dead_processs_stage_is_removed_and_a_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 4194304 is above the kernel's largest pid; the test's own pid is alive.
        let dead = dir.path().join(format!("{PREFIX}4194304-deadbeef"));
        let live = dir
            .path()
            .join(format!("{PREFIX}{}-cafe", std::process::id()));
        let other = dir.path().join("other-stage-4194304-deadbeef");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("0")).expect("mkdir");
        }
        let stage = Stage::new(dir.path(), PREFIX).expect("stage");
        assert!(!dead.exists(), "a dead process's stage is left");
        assert_eq!(stage.removed_leftovers(), [(dead, 4_194_304)]);
        assert!(live.exists(), "a live process's stage was removed");
        assert!(other.exists(), "another prefix's folder was removed");
        drop(stage);
    }
}
