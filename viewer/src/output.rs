//! Writing a command's result to a file, or to standard output for `-`.

use std::io::Write;
use std::path::Path;

use crate::error::Error;

pub fn is_stdout(path: &Path) -> bool {
    path == Path::new("-")
}

pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if is_stdout(path) {
        let mut out = std::io::stdout().lock();
        return match out.write_all(bytes).and_then(|_| out.flush()) {
            // A reader that stopped early (`| head`) wanted no more; that is not a failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(|e| Error::new("<stdout>", format!("cannot write: {e}"))),
        };
    }
    std::fs::write(path, bytes)
        .map_err(|e| Error::new(path.display().to_string(), format!("cannot write: {e}")))
}
