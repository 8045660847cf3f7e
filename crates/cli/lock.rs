//! One data_dir, one owner: `sluice run` holds an exclusive lock on
//! `<data_dir>/.lock` (with its pid in it) for as long as it runs, so a
//! second `run` or a `checkpoint reset` on the same data_dir cannot
//! overwrite its checkpoints. The lock goes with the process, even on kill -9.
//! A lock file deleted under a running process (`rm -rf data_dir`) would let
//! a second one in: `sluice run` checks it again every second
//! ([`DataDirLock::recheck`]). data_dir is made 0700 and the lock 0600, so
//! another user can neither read what is in it nor take the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// The lock, held while this value lives.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    data_dir: PathBuf,
}

impl DataDirLock {
    /// Whether `<data_dir>/.lock` is still the file this lock holds. When it
    /// was deleted (with data_dir, say) and nobody took it meanwhile, it is
    /// taken again; `Err` when another process holds the new one.
    pub fn recheck(&mut self) -> Result<(), CliError> {
        let path = self.data_dir.join(".lock");
        let held = self.file.metadata()?;
        if let Ok(named) = std::fs::metadata(&path)
            && named.dev() == held.dev()
            && named.ino() == held.ino()
        {
            return Ok(());
        }
        tracing::warn!(data_dir = %self.data_dir.display(), "the data_dir lock file was removed while sluice runs; taking it again");
        *self = lock(&self.data_dir, "`sluice run`")?;
        Ok(())
    }
}

/// Take `<data_dir>/.lock`, creating the folder; `what` says who wants it.
pub fn lock(data_dir: &Path, what: &str) -> Result<DataDirLock, CliError> {
    sluice_core::checkpoint::create_private_dir(data_dir).map_err(|e| {
        CliError::usage(format!("cannot create data_dir {}: {e}", data_dir.display()))
    })?;
    let path = data_dir.join(".lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| CliError::usage(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()?;
            Ok(DataDirLock { file, data_dir: data_dir.to_owned() })
        }
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(CliError::usage(format!(
                "data_dir {} is locked by pid {} (a running `sluice run`); {what} needs it to itself: stop that process first, or give this config another data_dir",
                data_dir.display(),
                pid.trim()
            )))
        }
        Err(TryLockError::Error(e)) => {
            Err(CliError::usage(format!("cannot lock {}: {e}", path.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = lock(dir.path(), "run").expect("free");
        let Err(CliError::Invalid(message)) = lock(dir.path(), "checkpoint reset") else {
            panic!("a second lock must be refused");
        };
        assert!(message.contains(&format!("is locked by pid {}", std::process::id())), "{message}");
        assert!(message.contains("checkpoint reset needs it to itself"), "{message}");
        drop(held);
        lock(dir.path(), "run").expect("free again");
    }

    /// Review H2 (reliability 2026-12): deleting data_dir let a second
    /// process take a new lock beside a running one.
    #[test]
    fn a_deleted_lock_is_taken_again_or_refused_if_another_took_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut first = lock(&data, "run").expect("free");
        first.recheck().expect("still ours");
        std::fs::remove_dir_all(&data).expect("rm -rf data_dir");
        first.recheck().expect("nobody took it: taken again");
        assert!(lock(&data, "run").is_err(), "a second process is refused again");
        std::fs::remove_dir_all(&data).expect("rm -rf data_dir");
        let _second = lock(&data, "run").expect("a second process gets in first");
        let Err(CliError::Invalid(message)) = first.recheck() else {
            panic!("the first must learn that it lost data_dir");
        };
        assert!(message.contains("is locked by pid"), "{message}");
    }

    #[test]
    fn data_dir_and_lock_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let _held = lock(&data, "run").expect("free");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join(".lock")), 0o600);
    }
}
