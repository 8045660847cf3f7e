//! End-to-end tests: they run the `sluice` binary as a user would.
//! They drive processes synchronously, so blocking sleeps are fine here.
#![allow(clippy::disallowed_methods)]

mod e2e {
    pub mod util;

    mod accounts;
    mod crash_recovery;
    mod data_dir;
    mod delivery;
    mod elasticsearch;
    mod forward;
    mod latency;
    mod metrics_health;
    mod onepassword;
    mod operations;
    mod operator;
    mod reload;
    mod replay;
    mod sharding;
    mod sim;
    mod splunk;
    mod users;
    mod validate;
    mod vrl;
}
