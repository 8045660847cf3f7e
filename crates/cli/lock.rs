//! One data_dir, one owner: `sluice run` holds an exclusive lock on
//! `<data_dir>/.lock` (with its pid in it) for as long as it runs, so a
//! second `run` or a `checkpoint reset` on the same data_dir cannot
//! overwrite its checkpoints. The lock goes with the process, even on kill -9.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::CliError;

/// The lock, held while this value lives.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Take `<data_dir>/.lock`, creating the folder; `what` says who wants it.
pub fn lock(data_dir: &Path, what: &str) -> Result<DataDirLock, CliError> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        CliError::usage(format!("cannot create data_dir {}: {e}", data_dir.display()))
    })?;
    let path = data_dir.join(".lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| CliError::usage(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()?;
            Ok(DataDirLock { _file: file })
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
}
