//! Paths on the host: finding executables, and checking that a sandbox running under another,
//! unprivileged uid can reach what is bound into it.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The first executable file named `name` in the folders of `search_path` (a `PATH` value).
pub fn find_executable(name: &str, search_path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Others' permission bits needed on a folder to list and enter it.
pub const LIST: u32 = 0o005;
/// Others' permission bits needed on a file to read it.
pub const READ: u32 = 0o004;
/// Others' permission bits needed on a folder to pass through it.
pub const SEARCH: u32 = 0o001;

/// The first component of `path` that a process of another, unprivileged uid could not pass (a
/// folder without search permission for others), or `path` itself when others lack the
/// permission bits `needs` on it. `None` when it is reachable, or does not exist.
pub fn unreachable_part(path: &Path, needs: u32) -> Option<PathBuf> {
    let mut current = PathBuf::from("/");
    for component in path.components().skip(1) {
        let mode = std::fs::metadata(&current).ok()?.permissions().mode();
        if mode & SEARCH == 0 {
            return Some(current);
        }
        current.push(component);
    }
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & needs != needs).then(|| path.to_path_buf())
}

/// [`unreachable_part`] for a path to be opened: a folder must be listed, a file read.
pub fn unreadable_part(path: &Path) -> Option<PathBuf> {
    let needs = if std::fs::metadata(path).ok()?.is_dir() {
        LIST
    } else {
        READ
    };
    unreachable_part(path, needs)
}

/// The folders in `dir` named `<prefix><pid>` or `<prefix><pid>-<anything>` whose process is
/// gone, with that pid: what a gateway killed before it could clean up leaves behind. A folder
/// whose pid names a live process is not listed, whoever that process is (a reused pid only
/// delays the removal), nor this process's own, nor a symbolic link.
pub fn left_by_gone_processes(dir: &Path, prefix: &str) -> Vec<(PathBuf, u32)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let rest = name.to_str()?.strip_prefix(prefix)?;
            let pid: u32 = rest.split('-').next()?.parse().ok()?;
            let gone = pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists();
            let folder = entry.file_type().is_ok_and(|t| t.is_dir());
            (gone && folder).then(|| (entry.path(), pid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_folder_on_the_way_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let private = dir.path().join("private");
        std::fs::create_dir(&private).expect("mkdir");
        let file = private.join("file");
        std::fs::write(&file, b"x").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(unreadable_part(&file), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(unreadable_part(&file), Some(file.clone()));
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        assert_eq!(unreadable_part(&file), Some(private.clone()));
        assert_eq!(unreachable_part(&private, LIST), Some(private));
    }

    #[test]
    fn executables_are_found_on_the_search_path() {
        let found = find_executable("sh", OsStr::new("/nonexistent:/usr/bin:/bin"));
        assert!(found.is_some_and(|p| p.is_absolute()));
        assert_eq!(find_executable("sh", OsStr::new("/nonexistent")), None);
    }
}
