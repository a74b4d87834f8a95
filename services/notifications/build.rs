//! `sqlx::migrate!` embeds the migrations at compile time; cargo rebuilds
//! the crate when one is added or changed only if told so.

fn main() {
    println!("cargo:rerun-if-changed=src/storage/migrations");
}
