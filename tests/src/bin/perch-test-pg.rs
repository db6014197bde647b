//! `perch-test-pg stop`: stops the test harness's throwaway Postgres
//! cluster (see `perch_tests::admin_url`) if it is running.
//! `scripts/test.sh` runs it when the tests end.

use std::process::ExitCode;

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    match command.as_str() {
        "stop" => match perch_tests::stop_throwaway() {
            Ok(true) => {
                eprintln!("perch-test-pg: stopped the throwaway Postgres cluster");
                ExitCode::SUCCESS
            }
            Ok(false) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("perch-test-pg: {error}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: perch-test-pg stop");
            ExitCode::from(2)
        }
    }
}
