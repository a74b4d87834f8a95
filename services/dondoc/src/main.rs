//! `dondoc`: a thin entry point over the library.

#![forbid(unsafe_code)]

use clap::Parser;

/// mimalloc instead of the system allocator: a proxied call allocates and
/// frees a few dozen small buffers (headers, frames, futures) on whichever
/// worker thread runs it, and glibc's malloc spent 15 % of the gateway's CPU
/// on them (BENCHMARKS.md, round 3). linkerd2-proxy swaps its allocator for
/// the same reason.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = dondoc::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dondoc: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dondoc::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dondoc: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
