//! Durable appends to NDJSON files: the one writer behind the `file` sink and
//! every sink's dead letter.
//!
//! A write is acknowledged only after `write_all`, `flush` and `fsync`
//! succeeded. A write that fails half-way is cut off again, and a crash
//! during a write (kill -9, power loss) leaves at most one torn last line,
//! which [`DurableFile::open`] removes: it was never acknowledged, so its
//! source sends it again. The file therefore only ever holds whole lines.
//!
//! Before a write counts, the path must still name the file written to: a
//! file deleted under the writer (`rm`) is created again and the lines
//! written once more; one moved away (rotation by `mv`) keeps what it got,
//! and the next write opens a new file at the path. Files are created 0600
//! and folders 0700 whatever the umask: they hold raw events.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The write would take the file past its size limit.
    #[error("{} is full: {size} bytes, limit {limit}; move or remove it to go on", path.display())]
    Full {
        /// The file.
        path: PathBuf,
        /// Its size now.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The file ends with something that is not a torn NDJSON line: it is
    /// not a file this writer made, and cutting its tail would destroy data.
    #[error("{} ends with {bytes} bytes that are not an NDJSON line; it is not a file sluice wrote: point `path` at another file", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// The bytes after its last newline.
        bytes: u64,
    },
    /// The filesystem refused.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// An append-only file of whole lines, opened on first use.
#[derive(Debug)]
pub struct DurableFile {
    path: PathBuf,
    max_bytes: Option<u64>,
    file: Option<tokio::fs::File>,
    size: u64,
}

impl DurableFile {
    /// A file at `path` (its folder is created on the first write), at most
    /// `max_bytes` long when set.
    pub fn new(path: impl Into<PathBuf>, max_bytes: Option<u64>) -> Self {
        Self { path: path.into(), max_bytes, file: None, size: 0 }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open (creating the folder and the file) and cut off a torn last line.
    pub async fn open(&mut self) -> Result<(), AppendError> {
        let io = |source| AppendError::Io { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::checkpoint::create_private_dir(dir).map_err(io)?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .await
            .map_err(io)?;
        self.size = repair_torn_tail(&mut file, &self.path).await?;
        self.file = Some(file);
        Ok(())
    }

    /// Whether `path` still names `file`: `Ok(true)` it does, `Ok(false)`
    /// the file was moved (its lines are kept there), `Err` deleted.
    async fn still_named(file: &tokio::fs::File, path: &Path) -> std::io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let open = file.metadata().await?;
        if open.nlink() == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "deleted while open"));
        }
        Ok(match tokio::fs::metadata(path).await {
            Ok(named) => named.dev() == open.dev() && named.ino() == open.ino(),
            Err(_) => false,
        })
    }

    /// Append `bytes` (whole lines, each ending in `\n`) and fsync. On an
    /// error nothing of `bytes` stays in the file, and the file is reopened
    /// at the next call.
    pub async fn append(&mut self, bytes: &[u8]) -> Result<(), AppendError> {
        // A file deleted under the writer gets the lines again in a new one,
        // once: a path deleted as fast as it is made is an error.
        for _ in 0..2 {
            if self.write_once(bytes).await? {
                return Ok(());
            }
        }
        Err(AppendError::Io {
            path: self.path.clone(),
            source: std::io::Error::other("the file was deleted again while being written"),
        })
    }

    /// One append; `Ok(false)` when the file turned out deleted (nothing
    /// of `bytes` is kept anywhere: write them again).
    async fn write_once(&mut self, bytes: &[u8]) -> Result<bool, AppendError> {
        if self.file.is_none() {
            self.open().await?;
        }
        if let Some(limit) = self.max_bytes
            && self.size.saturating_add(bytes.len() as u64) > limit
        {
            // Reopened at the next call, so an operator who moved or emptied
            // the file lets the writer go on.
            self.file = None;
            return Err(AppendError::Full { path: self.path.clone(), size: self.size, limit });
        }
        let Some(file) = self.file.as_mut() else {
            return Err(AppendError::Io {
                path: self.path.clone(),
                source: std::io::Error::other("not open"),
            });
        };
        let before = self.size;
        let result = async {
            file.write_all(bytes).await?;
            file.flush().await?;
            file.sync_data().await
        }
        .await;
        match result {
            Ok(()) => {
                self.size = before + bytes.len() as u64;
                match Self::still_named(file, &self.path).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(path = %self.path.display(), "the file was moved away; writing to a new one at the path");
                        self.file = None;
                    }
                    Err(_deleted) => {
                        tracing::warn!(path = %self.path.display(), "the file was deleted while sluice wrote to it; writing its lines again to a new one");
                        self.file = None;
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Err(source) => {
                // Cut off a partial write so the file holds only whole lines;
                // the next call opens it again in case the handle is broken.
                let _ = file.set_len(before).await;
                self.file = None;
                Err(AppendError::Io { path: self.path.clone(), source })
            }
        }
    }
}

/// The longest tail after the last `\n` taken for a line torn by a crash
/// (a line is at most an event's size; sinks write far smaller ones).
const MAX_TORN_TAIL: u64 = 64 * 1024 * 1024;

/// Remove bytes after the last `\n` (a line torn by a crash); the new length.
/// A tail that cannot be a torn NDJSON line (it does not start as a JSON
/// value does) is another program's file, refused rather than cut.
async fn repair_torn_tail(file: &mut tokio::fs::File, path: &Path) -> Result<u64, AppendError> {
    let io = |source| AppendError::Io { path: path.to_owned(), source };
    let end = torn_tail_start(file).await.map_err(io)?;
    let len = file.metadata().await.map_err(io)?.len();
    if end < len {
        let mut first = [0_u8; 1];
        file.seek(std::io::SeekFrom::Start(end)).await.map_err(io)?;
        file.read_exact(&mut first).await.map_err(io)?;
        if !b"{[\"-0123456789tfn".contains(&first[0]) || len - end > MAX_TORN_TAIL {
            return Err(AppendError::Foreign { path: path.to_owned(), bytes: len - end });
        }
        tracing::warn!(path = %path.display(), bytes = len - end, "removing an incomplete last line left by a crash");
        file.set_len(end).await.map_err(io)?;
        file.sync_data().await.map_err(io)?;
    }
    Ok(end)
}

/// Where the bytes after the last `\n` begin (the length when there are none).
async fn torn_tail_start(file: &mut tokio::fs::File) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let len = file.metadata().await?.len();
    let mut end = len;
    let mut buffer = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        buffer.resize((end - start) as usize, 0);
        file.seek(std::io::SeekFrom::Start(start)).await?;
        file.read_exact(&mut buffer).await?;
        if let Some(newline) = buffer.iter().rposition(|b| *b == b'\n') {
            end = start + newline as u64 + 1;
            break;
        }
        end = start;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_cuts_off_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/x.ndjson");
        let mut file = DurableFile::new(&path, None);
        file.open().await.expect("creates folder and file");
        std::fs::write(&path, "{\"a\":1}\n{\"a\":2}\n{\"a\":").expect("write");
        let mut file = DurableFile::new(&path, None);
        file.append(b"{\"a\":3}\n").await.expect("append");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"
        );
        std::fs::write(&path, "{\"torn before any newline").expect("write");
        DurableFile::new(&path, None).open().await.expect("open");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
    }

    /// Review L4 (reliability 2026-12): a mistyped `path` naming another
    /// program's file is refused, never cut after its last newline.
    #[tokio::test]
    async fn a_file_that_is_not_ndjson_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "a: 1\nb: 2").expect("write");
        let error = DurableFile::new(&path, None).append(b"{}\n").await.expect_err("refused");
        assert!(matches!(error, AppendError::Foreign { bytes: 4, .. }), "{error:?}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a: 1\nb: 2");
    }

    /// Review H1 (reliability 2026-12): lines written to a file deleted
    /// under the writer would be acknowledged into an unlinked inode.
    #[tokio::test]
    async fn a_deleted_file_is_made_again_with_the_lines_in_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.ndjson");
        let mut file = DurableFile::new(&path, None);
        file.append(b"{\"n\":1}\n").await.expect("append");
        std::fs::remove_file(&path).expect("rm");
        file.append(b"{\"n\":2}\n").await.expect("append");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"n\":2}\n");
        // Moved away (rotation): the moved file keeps its lines, new ones go to the path.
        std::fs::rename(&path, dir.path().join("out.ndjson.1")).expect("mv");
        file.append(b"{\"n\":3}\n").await.expect("append");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.ndjson.1")).expect("read"),
            "{\"n\":2}\n{\"n\":3}\n"
        );
        file.append(b"{\"n\":4}\n").await.expect("append");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"n\":4}\n");
    }

    /// Review M2: raw events are not readable by other users, whatever the umask.
    #[tokio::test]
    async fn files_and_folders_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dead/letter.ndjson");
        DurableFile::new(&path, None).append(b"{}\n").await.expect("append");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("folder")), 0o700);
    }

    #[tokio::test]
    async fn a_full_file_refuses_the_append_and_keeps_what_it_has() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dead.ndjson");
        std::fs::write(&path, "0123456789\n").expect("write");
        let mut file = DurableFile::new(&path, Some(20));
        file.append(b"abcdefgh\n").await.expect("fits: 11 + 9 = 20");
        let error = file.append(b"x\n").await.expect_err("full");
        assert!(matches!(error, AppendError::Full { size: 20, limit: 20, .. }), "{error:?}");
        assert!(error.to_string().contains("is full: 20 bytes, limit 20"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "0123456789\nabcdefgh\n");
        std::fs::rename(&path, dir.path().join("dead.ndjson.1")).expect("the operator moves it");
        file.append(b"x\n").await.expect("a new file has room");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "x\n");
    }
}
