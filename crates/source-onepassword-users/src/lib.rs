//! sluice-source-onepassword-users: the `onepassword_users` source, which
//! reads the people of a 1Password account from the Users API (public
//! preview) and sends an inventory: everyone on the first poll and every
//! `snapshot_interval`, and in between only who was added, changed or
//! removed. It is read-only: it never calls the API's write actions.
//!
//! It sits between the Users API and sluice's topology, and depends on
//! `sluice-core` only (its polling kit does the loop):
//!
//! - [`config`]: settings, validated without I/O into [`Settings`];
//! - `client`: the OAuth token (client credentials), the paged listing, the
//!   token's revocation; errors classified, no secret in any of them;
//! - [`inventory`]: users, the changes between two listings, their documents;
//! - `target`: the inventory on the polling kit, committed after delivery,
//!   and published as the lookup table `1password.users` (user id → state,
//!   email, name) for `get_lookup` in VRL;
//! - [`source`]: preflight and run.
#![deny(missing_docs)]

mod client;
pub mod config;
pub mod inventory;
pub mod source;
mod target;

pub use config::{Settings, UsersSourceConfig};
pub use source::UsersSource;
pub use target::{DATASET, LOOKUP_TABLE, UsersCheckpoint};
