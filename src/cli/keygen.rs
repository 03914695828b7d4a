//! `mosha keygen`: a new cluster key for `DIR/authkey`.

use std::process::ExitCode;

/// `mosha keygen`: prints a new key; a regular file on standard output is made private.
pub(super) fn keygen() -> ExitCode {
    use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let key = match crate::daemon::keys::generate() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("mosha keygen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    if let Ok(st) = fstat(stdout.as_raw_fd()) {
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG {
            if let Err(e) = fchmod(stdout.as_raw_fd(), Mode::from_bits_truncate(0o600)) {
                eprintln!("mosha keygen: cannot make the key file private: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut out = stdout.lock();
    if writeln!(out, "{key}").and_then(|()| out.flush()).is_err() {
        eprintln!("mosha keygen: cannot write the key");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
