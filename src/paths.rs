//! Where a path really points, for the checks that refuse a run whose outputs would overwrite
//! an input or each other. An output's path may not exist yet, nor its folders (`--out` is
//! created when missing), so the canonical form is worked out from the part that exists. This
//! module only reads the file system; it never creates anything.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// How many symbolic links one path may pass through before it is taken for a loop.
const MAX_LINKS: usize = 40;

/// The canonical form of `p`, which need not exist (`None` for a loop of links): its longest part that exists, made
/// canonical, then the rest, with `.` dropped and `..` stepping back (a folder that does not
/// exist is no link, and creating the missing folders, as a run does, resolves `..` so). A
/// dangling symbolic link is followed to where it points.
pub fn canonical(p: &Path) -> Option<PathBuf> {
    resolve(p, 0)
}

fn resolve(p: &Path, links: usize) -> Option<PathBuf> {
    if links > MAX_LINKS {
        return None;
    }
    let mut rest: Vec<Component> = Vec::new();
    let mut at = p;
    loop {
        let probe = if at.as_os_str().is_empty() {
            Path::new(".")
        } else {
            at
        };
        if let Ok(found) = fs::canonicalize(probe) {
            return Some(append(found, &rest));
        }
        let is_link = fs::symlink_metadata(probe).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            let target = fs::read_link(probe).ok()?;
            let beside = probe.parent().unwrap_or(Path::new("."));
            return Some(append(resolve(&beside.join(target), links + 1)?, &rest));
        }
        let last = at.components().next_back()?;
        match last {
            Component::Normal(_) | Component::ParentDir => rest.push(last),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
        at = at.parent()?;
    }
}

/// `base` followed by `rest` (collected last first), `..` stepping back.
fn append(mut base: PathBuf, rest: &[Component]) -> PathBuf {
    for part in rest.iter().rev() {
        match part {
            Component::ParentDir => {
                base.pop();
            }
            other => base.push(other),
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_do_not_exist_yet_resolve_as_a_run_would_create_them() {
        let dir = std::env::temp_dir().join(format!("icp-audit-paths-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("real")).unwrap();
        let dir = fs::canonicalize(&dir).unwrap();
        let at = |p: &str| canonical(&dir.join(p)).unwrap();
        assert_eq!(at("out/issued.csv"), dir.join("out/issued.csv"));
        assert_eq!(at("x/../out/issued.csv"), dir.join("out/issued.csv"));
        assert_eq!(at("x/./y/../../out"), dir.join("out"));
        assert_eq!(at("real/../real/a.csv"), dir.join("real/a.csv"));
        #[cfg(unix)]
        {
            // A link to a folder that exists, and one to a folder that does not yet.
            std::os::unix::fs::symlink(dir.join("real"), dir.join("linked")).unwrap();
            std::os::unix::fs::symlink("later", dir.join("dangling")).unwrap();
            assert_eq!(at("linked/issued.csv"), dir.join("real/issued.csv"));
            assert_eq!(at("dangling/issued.csv"), dir.join("later/issued.csv"));
            std::os::unix::fs::symlink("loop-b", dir.join("loop-a")).unwrap();
            std::os::unix::fs::symlink("loop-a", dir.join("loop-b")).unwrap();
            assert_eq!(
                canonical(&dir.join("loop-a/x.csv")),
                None,
                "a loop of links"
            );
        }
        assert_eq!(at("a/../b.csv"), at("b.csv"));
        assert_ne!(at("a.csv"), at("b.csv"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
