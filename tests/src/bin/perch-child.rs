//! The `perch` binary itself, built again as this crate's: its `main` is the
//! same one line. Cargo hands integration tests the path of their own
//! crate's binaries only (`CARGO_BIN_EXE_perch-child`), and the fault
//! suites run `perch serve` as a real child process they can kill.

fn main() -> std::process::ExitCode {
    perch::cli::main()
}
