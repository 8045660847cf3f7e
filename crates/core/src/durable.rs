//! Durable appends to NDJSON files: the one writer behind the `file` sink and
//! every sink's dead letter.
//!
//! A write is acknowledged only after `write_all`, `flush` and `fsync`
//! succeeded. A write that fails half-way is cut off again, and a crash
//! during a write (kill -9, power loss) leaves at most one torn last line,
//! which [`DurableFile::open`] removes: it was never acknowledged, so its
//! source sends it again. The file therefore only ever holds whole lines.

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
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(io)?;
        self.size = repair_torn_tail(&mut file, &self.path).await.map_err(io)?;
        self.file = Some(file);
        Ok(())
    }

    /// Append `bytes` (whole lines, each ending in `\n`) and fsync. On an
    /// error nothing of `bytes` stays in the file, and the file is reopened
    /// at the next call.
    pub async fn append(&mut self, bytes: &[u8]) -> Result<(), AppendError> {
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
                Ok(())
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

/// Remove bytes after the last `\n` (a line torn by a crash); the new length.
async fn repair_torn_tail(file: &mut tokio::fs::File, path: &Path) -> std::io::Result<u64> {
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
    if end < len {
        tracing::warn!(path = %path.display(), bytes = len - end, "removing an incomplete last line left by a crash");
        file.set_len(end).await?;
        file.sync_data().await?;
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
        std::fs::write(&path, "no newline at all").expect("write");
        DurableFile::new(&path, None).open().await.expect("open");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
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
