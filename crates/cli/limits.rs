//! The open-file limit: raised to the hard limit at start, since every
//! source holds connections and writes checkpoints (about three files per
//! 1Password account over HTTP/1.1), and said in the log when even the
//! hard limit is short for the configured sources.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Files a source may hold open at once (connections, a checkpoint being
/// written), and what the process needs besides its sources.
const FILES_PER_SOURCE: u64 = 3;
const FILES_BESIDES: u64 = 64;

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; warn when it is below
/// what `sources` need. Returns the limit now in force (`None`: unlimited).
pub fn raise_open_files(sources: usize) -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    let mut current = limit.current;
    if current != limit.maximum {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!(from = ?current, to = ?limit.maximum, "raised the open-file limit to its hard limit");
                current = limit.maximum;
            }
            Err(err) => tracing::debug!(error = %err, "the open-file limit could not be raised"),
        }
    }
    let needed = FILES_BESIDES + FILES_PER_SOURCE * sources as u64;
    if let Some(limit) = current
        && limit < needed
    {
        tracing::warn!(
            limit,
            needed,
            sources,
            "the open-file limit is low for this many sources; raise it (ulimit -n, LimitNOFILE= in systemd) or requests and checkpoint writes fail with \"Too many open files\""
        );
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = raise_open_files(1);
        let limit = getrlimit(Resource::Nofile);
        assert_eq!((now, limit.current), (limit.maximum, limit.maximum));
    }
}
