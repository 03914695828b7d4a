//! The `mosha` binary: parses the command line and hands over to [`mosha::cli`].

fn main() -> std::process::ExitCode {
    mosha::cli::main()
}
