//! Host identities of sandboxes: when the gateway runs as root, each running sandbox gets an
//! unprivileged host uid of its own, leased from a [`UidPool`] for the life of the call (a lock
//! file per uid under `uid_lock_dir` keeps two gateways apart). The pool lives in
//! `switchboard-sandbox` ([`switchboard_sandbox::identity`]), shared with the LocalStack Lambda
//! host.

pub use switchboard_sandbox::identity::{IdentityError, Lease, UidPool, is_root};
