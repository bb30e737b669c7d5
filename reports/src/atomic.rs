//! Atomic file writes: temp file in the same directory, fsync, rename, fsync
//! the directory. A crash leaves the old file or the new one, never half.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::ReportError;

pub fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| ReportError::io(&tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| ReportError::io(&tmp, e))?;
        file.sync_all().map_err(|e| ReportError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| ReportError::io(path, e))?;
        // The rename is durable only once the directory entry is synced.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.json");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_path() {
        let e = write(Path::new("/nonexistent-iq/dir/run.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("/nonexistent-iq/dir"), "{e}");
    }
}
