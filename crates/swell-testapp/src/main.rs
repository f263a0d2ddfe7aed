//! The `swell-testapp` binary: see the library for the images it plays.

fn main() -> std::process::ExitCode {
    swell_testapp::main_with(std::env::args().collect())
}
