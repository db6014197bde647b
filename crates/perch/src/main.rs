//! The `perch` binary. Everything lives in the library so tests can run it in-process.

fn main() -> std::process::ExitCode {
    perch::cli::main()
}
