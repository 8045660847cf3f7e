//! `--shard <index>/<replicas>`: many 1Password accounts shared by the
//! replicas of one StatefulSet. Every replica loads the same config (every
//! account's source) and runs only the `onepassword` and
//! `onepassword_users` sources that rendezvous hashing of their ids assigns
//! to its index; other components run everywhere. Going from R to R+1
//! replicas moves only the sources the new replica wins, about 1/(R+1) of
//! them. `auto/<replicas>` takes the index from the pod's hostname
//! (`sluice-accounts-2` → 2), as a StatefulSet names its pods.

use std::sync::OnceLock;

use sluice_topology::config::{ComponentKind, Diagnostic, RawComponent, RawConfig};

/// The source types that are spread over the replicas (one per account).
const SHARDED_TYPES: [&str; 2] = ["onepassword", "onepassword_users"];

/// This process's part of the accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which replica, from 0.
    pub index: u32,
    /// How many there are.
    pub replicas: u32,
}

static SHARD: OnceLock<Shard> = OnceLock::new();

/// `<index>/<replicas>` or `auto/<replicas>`.
pub fn parse(text: &str) -> Result<Shard, String> {
    let usage =
        || format!("--shard `{text}`: expected <index>/<replicas> (0/3) or auto/<replicas>");
    let (index, replicas) = text.split_once('/').ok_or_else(usage)?;
    let replicas: u32 = replicas.trim().parse().map_err(|_| usage())?;
    let index = match index.trim() {
        "auto" => ordinal_of(&hostname()).ok_or_else(|| {
            format!("--shard auto/{replicas}: the hostname `{}` does not end in -<ordinal> as a StatefulSet's pods do; give the index", hostname())
        })?,
        index => index.parse().map_err(|_| usage())?,
    };
    if replicas == 0 || index >= replicas {
        return Err(format!(
            "--shard {index}/{replicas}: the index must be below the replicas (from 0)"
        ));
    }
    Ok(Shard { index, replicas })
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The ordinal a StatefulSet gives a pod: the number after the last `-`.
fn ordinal_of(hostname: &str) -> Option<u32> {
    hostname.rsplit_once('-')?.1.parse().ok()
}

/// Run only this shard's sources from now on (once, at start).
pub fn set(shard: Option<Shard>) {
    if let Some(shard) = shard {
        let _ = SHARD.set(shard);
    }
}

/// The replica that runs source `id` of `replicas`: the highest score.
pub fn owner(id: &str, replicas: u32) -> u32 {
    (0..replicas).max_by_key(|replica| score(id, *replica)).unwrap_or(0)
}

/// A stable 64-bit score of (id, replica): FNV-1a, then splitmix64's
/// finalizer so that nearby inputs spread.
fn score(id: &str, replica: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes().chain(replica.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// `raw` with only this shard's account sources; inputs that name the
/// others are removed, and so are transforms and sinks left without any
/// input. Unchanged without `--shard`. A shard that holds none of the
/// account sources is a config error: fewer replicas than accounts.
pub fn apply(mut raw: RawConfig) -> RawConfig {
    let Some(shard) = SHARD.get().copied() else { return raw };
    let sharded = |c: &RawComponent| {
        c.kind == ComponentKind::Source
            && c.type_name.as_deref().is_some_and(|t| SHARDED_TYPES.contains(&t))
    };
    let total = raw.components.iter().filter(|c| sharded(c)).count();
    let mut gone: Vec<String> = raw
        .components
        .iter()
        .filter(|c| sharded(c) && owner(&c.id, shard.replicas) != shard.index)
        .map(|c| c.id.clone())
        .collect();
    let runs_here = total - gone.len();
    // Remove what is gone, then what only read from it, until nothing changes.
    while !gone.is_empty() {
        raw.components.retain(|c| !gone.contains(&c.id));
        let mut orphans = Vec::new();
        for component in &mut raw.components {
            let before = component.inputs.len();
            component.inputs.retain(|input| {
                let upstream = input.name.split_once('.').map_or(input.name.as_str(), |(id, _)| id);
                !gone.iter().any(|g| g == upstream)
            });
            if before > 0 && component.inputs.is_empty() {
                orphans.push(component.id.clone());
            }
        }
        gone = orphans;
    }
    let name = format!("{}/{}", shard.index, shard.replicas);
    if total > 0 && runs_here == 0 {
        raw.errors.push(Diagnostic::global(format!(
            "--shard {name}: this replica holds none of the {total} account sources; run fewer replicas than accounts"
        )));
    } else {
        tracing::info!(shard = %name, runs_here, of = total, "this replica runs its share of the account sources");
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("op-account-{i:03}")).collect()
    }

    #[test]
    fn each_account_runs_on_one_replica_and_the_replicas_share_them_evenly() {
        let ids = accounts(500);
        let mut counts = [0usize; 3];
        for id in &ids {
            let owner = owner(id, 3);
            counts[owner as usize] += 1;
            assert_eq!(owner, owner_again(id, 3), "stable");
        }
        assert!(counts.iter().all(|c| (130..=203).contains(c)), "{counts:?}");
    }

    fn owner_again(id: &str, replicas: u32) -> u32 {
        owner(id, replicas)
    }

    #[test]
    fn a_fourth_replica_takes_about_a_quarter_and_nothing_else_moves() {
        let ids = accounts(500);
        let moved: Vec<&String> = ids.iter().filter(|id| owner(id, 3) != owner(id, 4)).collect();
        assert!(moved.iter().all(|id| owner(id, 4) == 3), "moves go to the new replica only");
        let share = moved.len() as f64 / ids.len() as f64;
        assert!((0.18..=0.30).contains(&share), "{share}");
    }

    #[test]
    fn the_index_comes_from_the_flag_or_the_pods_ordinal() {
        assert_eq!(parse("1/3"), Ok(Shard { index: 1, replicas: 3 }));
        assert!(parse("3/3").is_err() && parse("x/3").is_err() && parse("1").is_err());
        assert_eq!(ordinal_of("sluice-accounts-2"), Some(2));
        assert_eq!(ordinal_of("laptop"), None);
    }
}
