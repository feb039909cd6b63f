//! `viewer`: see `viewer --help` and docs/viewer.md.

fn main() -> std::process::ExitCode {
    viewer::cli::main()
}
