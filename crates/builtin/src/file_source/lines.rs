//! Reading lines out of the file in large chunks: a batch of lines is read
//! by one blocking call (not one thread-pool hop per 8 KiB), and each line
//! is a slice of its chunk, not a copy: the text an event keeps for
//! `event.original` is the bytes read from the file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use bytes::{Bytes, BytesMut};

/// How much is read from the file at once.
const CHUNK: usize = 256 * 1024;

/// A line read: where it starts, the bytes kept (without the line ending),
/// its whole length in the file (with the line ending and any bytes beyond
/// the limit), and whether bytes were left out.
#[derive(Debug)]
pub(super) struct Line {
    pub(super) offset: u64,
    pub(super) bytes: Bytes,
    pub(super) len: u64,
    pub(super) truncated: bool,
}

/// A file read line by line from a position.
#[derive(Debug)]
pub(super) struct LineReader {
    file: File,
    /// Bytes read and not yet handed out: the start of an unfinished line.
    buf: BytesMut,
    /// Offset of the unfinished line (after the last line handed out).
    position: u64,
    /// While a line longer than the limit is read: its first bytes, and the
    /// bytes read of it so far that are no longer in `buf`.
    overlong: Option<(Bytes, u64)>,
    max_line: usize,
}

/// What [`LineReader::read_batch`] found.
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) lines: Vec<Line>,
    /// The end of the file was reached (what is left is an unfinished line).
    pub(super) at_end: bool,
}

impl LineReader {
    pub(super) fn open(file: File, position: u64, max_line: usize) -> std::io::Result<Self> {
        let mut reader = Self { file, buf: BytesMut::new(), position: 0, overlong: None, max_line };
        reader.seek(position)?;
        Ok(reader)
    }

    /// Offset after the last complete line handed out.
    pub(super) fn position(&self) -> u64 {
        self.position
    }

    /// Forget what was read and go on from `offset`.
    pub(super) fn seek(&mut self, offset: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.buf.clear();
        self.overlong = None;
        self.position = offset;
        Ok(())
    }

    /// Up to `max` complete lines. With `eof_ends_line`, an unfinished last
    /// line at the end of the file counts as complete (a finished file needs
    /// no final newline).
    pub(super) fn read_batch(&mut self, max: usize, eof_ends_line: bool) -> std::io::Result<Batch> {
        let mut lines = Vec::new();
        while lines.len() < max {
            if let Some(line) = self.next_line() {
                lines.push(line);
                continue;
            }
            if self.fill()? == 0 {
                if eof_ends_line && (!self.buf.is_empty() || self.overlong.is_some()) {
                    let len = self.buf.len();
                    lines.push(self.take(len, len));
                }
                return Ok(Batch { lines, at_end: true });
            }
        }
        Ok(Batch { lines, at_end: false })
    }

    /// The next complete line already in `buf`.
    fn next_line(&mut self) -> Option<Line> {
        if let Some(at) = memchr::memchr(b'\n', &self.buf) {
            return Some(self.take(at + 1, at));
        }
        if self.buf.len() > self.max_line {
            // An overlong line: keep its first bytes, count the rest.
            let len = self.buf.len();
            let read = self.buf.split_to(len).freeze();
            match &mut self.overlong {
                Some((_, counted)) => *counted += len as u64,
                None => self.overlong = Some((read.slice(..self.max_line), len as u64)),
            }
        }
        None
    }

    /// Hand out `buf[..consumed]` as a line whose text is `buf[..text]`.
    fn take(&mut self, consumed: usize, text: usize) -> Line {
        let read = self.buf.split_to(consumed).freeze();
        let offset = self.position;
        let line = match self.overlong.take() {
            Some((kept, counted)) => {
                Line { offset, bytes: kept, len: counted + consumed as u64, truncated: true }
            }
            None => {
                let mut end = text;
                while end > 0 && read[end - 1] == b'\r' {
                    end -= 1;
                }
                let truncated = end > self.max_line;
                let bytes = read.slice(..end.min(self.max_line));
                Line { offset, bytes, len: consumed as u64, truncated }
            }
        };
        self.position += line.len;
        line
    }

    /// Read one more chunk; how many bytes came.
    fn fill(&mut self) -> std::io::Result<usize> {
        let start = self.buf.len();
        self.buf.resize(start + CHUNK, 0);
        let read = loop {
            match self.file.read(&mut self.buf[start..]) {
                Ok(read) => break read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.buf.truncate(start);
                    return Err(err);
                }
            }
        };
        self.buf.truncate(start + read);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn reader(content: &[u8], max_line: usize) -> LineReader {
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(content).expect("write");
        LineReader::open(file, 0, max_line).expect("open")
    }

    fn texts(batch: &Batch) -> Vec<(u64, String, u64, bool)> {
        batch
            .lines
            .iter()
            .map(|l| (l.offset, String::from_utf8_lossy(&l.bytes).into_owned(), l.len, l.truncated))
            .collect()
    }

    #[test]
    fn lines_come_with_their_offsets_and_lengths() {
        let mut reader = reader(b"a\nbb\r\n\nccc", 1024);
        let batch = reader.read_batch(10, false).expect("read");
        assert!(batch.at_end);
        assert_eq!(
            texts(&batch),
            [(0, "a".into(), 2, false), (2, "bb".into(), 4, false), (6, "".into(), 1, false)]
        );
        assert_eq!(reader.position(), 7, "the unfinished line is not handed out");
        let batch = reader.read_batch(10, true).expect("read");
        assert_eq!(texts(&batch), [(7, "ccc".into(), 3, false)]);
        assert_eq!(reader.position(), 10);
    }

    #[test]
    fn a_batch_stops_at_its_size_and_the_next_goes_on() {
        let mut reader = reader(b"1\n2\n3\n", 1024);
        let first = reader.read_batch(2, false).expect("read");
        assert!(!first.at_end);
        assert_eq!(first.lines.len(), 2);
        let rest = reader.read_batch(2, false).expect("read");
        assert_eq!(texts(&rest), [(4, "3".into(), 2, false)]);
    }

    #[test]
    fn an_overlong_line_across_chunks_keeps_its_first_bytes_and_reading_goes_on() {
        let long = "x".repeat(3 * CHUNK + 17);
        let content = format!("ok\n{long}\nafter\n");
        let mut reader = reader(content.as_bytes(), 1024);
        let batch = reader.read_batch(10, false).expect("read");
        let lines = texts(&batch);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], (3, "x".repeat(1024), long.len() as u64 + 1, true));
        assert_eq!(lines[2], (3 + long.len() as u64 + 1, "after".into(), 6, false));
        assert_eq!(reader.position(), content.len() as u64);
    }

    #[test]
    fn a_line_just_over_the_limit_within_one_chunk_is_truncated() {
        let long = "y".repeat(1500);
        let mut reader = reader(format!("{long}\n").as_bytes(), 1024);
        let batch = reader.read_batch(10, false).expect("read");
        assert_eq!(texts(&batch), [(0, "y".repeat(1024), 1501, true)]);
    }

    #[test]
    fn seek_starts_over_from_an_offset() {
        let mut reader = reader(b"1\n2\n3\n", 1024);
        reader.read_batch(10, false).expect("read");
        reader.seek(2).expect("seek");
        let batch = reader.read_batch(10, false).expect("read");
        assert_eq!(texts(&batch), [(2, "2".into(), 2, false), (4, "3".into(), 2, false)]);
    }
}
