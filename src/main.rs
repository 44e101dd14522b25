//! The `authgate` command: parses the command line and hands it to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    authgate::cli::run(authgate::cli::Cli::parse())
}
