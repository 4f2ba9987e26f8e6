//! `FsBlobStore`: blobs as files under one root directory.
//!
//! Layout: the blob under key `k` is the file `<root>/<k>` (e.g. `<root>/orig/<sha256>`,
//! `<root>/out/<hash>`); writers stage data in `<root>/.tmp/`. Keys map to paths one to one, with no
//! hash fan-out, so the mapping stays injective and a directory listing reads as keys; ext4 and XFS
//! index large directories, so one directory per key prefix scales. Key segments may not start
//! with '.', which keeps `.tmp` (and anything else the store needs later) out of the key space.
//!
//! A commit is fsync(file), rename into place, fsync(directory): after `commit` returns the blob
//! survives a crash, and before it nothing is visible under the key. `open` clears `.tmp`, so one
//! root must be used by one process at a time.

use crate::{BlobError, BlobMeta, BlobRead, BlobResult, BlobStore, BlobWriter};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use pixelmill_core::BlobKey;
use std::{
    fmt::Display,
    fs, io,
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};
use tempfile::TempPath;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

const STAGING_DIR: &str = ".tmp";
/// Bytes a streamed read takes from the file at a time.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Clone)]
pub struct FsBlobStore {
    root: Arc<PathBuf>,
}

impl FsBlobStore {
    /// Opens (creating if needed) the store rooted at `root` and removes staging files a crash left
    /// behind. Blocking; call it at startup.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        let staging = root.join(STAGING_DIR);
        fs::create_dir_all(&staging).map_err(|e| {
            io_err(
                e,
                format_args!(
                    "creating {}; check that the blob directory is writable",
                    staging.display()
                ),
            )
        })?;
        let stale = fs::read_dir(&staging)
            .map_err(|e| io_err(e, format_args!("listing {}", staging.display())))?;
        for entry in stale {
            let path = entry
                .map_err(|e| io_err(e, format_args!("listing {}", staging.display())))?
                .path();
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(|e| {
                io_err(
                    e,
                    format_args!("removing stale staging file {}", path.display()),
                )
            })?;
        }
        Ok(Self {
            root: Arc::new(root.to_owned()),
        })
    }
}

/// The file holding `key` under `root`; `InvalidKey` unless `crate::checked_key` accepts it.
fn key_path(root: &Path, key: &BlobKey) -> BlobResult<PathBuf> {
    Ok(root.join(crate::checked_key(key)?))
}

/// An I/O error with what the store was doing, so the message names the path involved.
fn io_err(err: io::Error, doing: impl Display) -> BlobError {
    BlobError::Io(io::Error::new(err.kind(), format!("{doing}: {err}")))
}

/// Whether `err` means "no blob at this path" (a missing file, or a key prefix that is a
/// directory or file instead).
fn is_absent(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory
    )
}

fn read_err(err: io::Error, key: &BlobKey, path: &Path) -> BlobError {
    if is_absent(&err) {
        BlobError::NotFound(key.to_string())
    } else {
        io_err(err, format_args!("reading {}", path.display()))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Moves the staged file to `dest` and makes the new directory entries durable: the parent's, and
/// those of any directories created on the way from `root`.
fn publish(temp: TempPath, root: &Path, dest: &Path) -> io::Result<()> {
    let parent = dest.parent().unwrap_or(root);
    let created = !parent.is_dir();
    fs::create_dir_all(parent)?;
    temp.persist(dest).map_err(|e| e.error)?;
    sync_dir(parent)?;
    if created {
        for dir in parent.ancestors().skip(1) {
            sync_dir(dir)?;
            if dir == root {
                break;
            }
        }
    }
    Ok(())
}

struct FsBlobWriter {
    root: Arc<PathBuf>,
    file: tokio::fs::File,
    /// Deletes the staged file when dropped, which is what makes a dropped writer leave nothing.
    temp: TempPath,
    len: u64,
}

#[async_trait]
impl BlobWriter for FsBlobWriter {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()> {
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| io_err(e, format_args!("writing {}", self.temp.display())))?;
        self.len += chunk.len() as u64;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    async fn commit(self: Box<Self>, key: &BlobKey) -> BlobResult<()> {
        let Self {
            root,
            mut file,
            temp,
            ..
        } = *self;
        let dest = key_path(&root, key)?;
        let staged = temp.display().to_string();
        let synced = async {
            file.flush().await?;
            file.sync_all().await
        };
        synced
            .await
            .map_err(|e| io_err(e, format_args!("syncing {staged}")))?;
        drop(file);
        let published = dest.clone();
        tokio::task::spawn_blocking(move || publish(temp, &root, &published))
            .await
            .map_err(|e| {
                BlobError::Io(io::Error::other(format!(
                    "commit task did not complete: {e}"
                )))
            })?
            .map_err(|e| io_err(e, format_args!("moving {staged} to {}", dest.display())))
    }

    async fn abort(self: Box<Self>) -> BlobResult<()> {
        let Self { file, temp, .. } = *self;
        drop(file);
        let staged = temp.display().to_string();
        tokio::task::spawn_blocking(move || temp.close())
            .await
            .map_err(|e| {
                BlobError::Io(io::Error::other(format!(
                    "abort task did not complete: {e}"
                )))
            })?
            .map_err(|e| io_err(e, format_args!("removing {staged}")))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn writer(&self) -> BlobResult<Box<dyn BlobWriter>> {
        let staging = self.root.join(STAGING_DIR);
        let temp = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix("blob-")
                .tempfile_in(&staging)
                .map_err(|e| {
                    io_err(
                        e,
                        format_args!("creating a staging file in {}", staging.display()),
                    )
                })
        })
        .await
        .map_err(|e| {
            BlobError::Io(io::Error::other(format!(
                "writer task did not complete: {e}"
            )))
        })??;
        let (file, temp) = temp.into_parts();
        Ok(Box::new(FsBlobWriter {
            root: Arc::clone(&self.root),
            file: tokio::fs::File::from_std(file),
            temp,
            len: 0,
        }))
    }

    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()> {
        key_path(&self.root, key)?;
        let mut writer = self.writer().await?;
        writer.write(&data).await?;
        writer.commit(key).await
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes> {
        let path = key_path(&self.root, key)?;
        let data = tokio::fs::read(&path)
            .await
            .map_err(|e| read_err(e, key, &path))?;
        Ok(data.into())
    }

    async fn read(&self, key: &BlobKey, range: Option<Range<u64>>) -> BlobResult<BlobRead> {
        let path = key_path(&self.root, key)?;
        let open = async {
            let mut file = tokio::fs::File::open(&path).await?;
            let len = file.metadata().await?.len();
            let range = range.unwrap_or(0..len);
            let start = range.start.min(len);
            let end = range.end.clamp(start, len);
            file.seek(io::SeekFrom::Start(start)).await?;
            Ok((file.take(end - start), end - start))
        };
        let (file, len) = open.await.map_err(|e| read_err(e, key, &path))?;
        let key = key.clone();
        let body = ReaderStream::with_capacity(file, READ_CHUNK)
            .map_err(move |e| read_err(e, &key, &path))
            .boxed();
        Ok(BlobRead { len, body })
    }

    async fn head(&self, key: &BlobKey) -> BlobResult<Option<BlobMeta>> {
        let path = key_path(&self.root, key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(BlobMeta { len: meta.len() })),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_err(e, format_args!("reading {}", path.display()))),
        }
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        let path = key_path(&self.root, key)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if !is_absent(&e) => Err(io_err(e, format_args!("deleting {}", path.display()))),
            _ => Ok(()),
        }
    }

    async fn written_before(
        &self,
        prefix: &str,
        before_ms: i64,
        limit: usize,
    ) -> BlobResult<Vec<BlobKey>> {
        let dir = key_path(
            &self.root,
            &BlobKey::from_string(prefix.trim_end_matches('/')),
        )?;
        let what = format!("listing {}", dir.display());
        let prefix = prefix.to_owned();
        let scan = move || -> io::Result<Vec<BlobKey>> {
            let mut found = Vec::new();
            let entries = match fs::read_dir(&dir) {
                Err(e) if is_absent(&e) => return Ok(found),
                entries => entries?,
            };
            for entry in entries {
                let entry = entry?;
                let meta = entry.metadata()?;
                let written = meta.modified()?.duration_since(std::time::UNIX_EPOCH);
                let written_ms = written.map_or(0, |d| d.as_millis() as i64);
                if let (true, Some(name)) = (meta.is_file(), entry.file_name().to_str()) {
                    if written_ms < before_ms {
                        found.push(BlobKey::from_string(format!("{prefix}{name}")));
                        if found.len() >= limit {
                            break;
                        }
                    }
                }
            }
            Ok(found)
        };
        tokio::task::spawn_blocking(scan)
            .await
            .map_err(|e| BlobError::Io(io::Error::other(format!("{what} did not complete: {e}"))))?
            .map_err(|e| io_err(e, what))
    }

    async fn ping(&self) -> BlobResult<()> {
        let staging = self.root.join(STAGING_DIR);
        tokio::fs::metadata(&staging)
            .await
            .map(drop)
            .map_err(|e| io_err(e, format_args!("checking {}", staging.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite;

    fn staged_files(root: &Path) -> usize {
        fs::read_dir(root.join(STAGING_DIR)).unwrap().count()
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        suite::run_all(&FsBlobStore::open(dir.path()).unwrap()).await;
        assert_eq!(staged_files(dir.path()), 0, "commits leave nothing staged");
    }

    #[tokio::test]
    async fn aborted_and_dropped_writers_leave_nothing_staged() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut writer = store.writer().await.unwrap();
        writer.write(b"discarded").await.unwrap();
        assert_eq!(staged_files(dir.path()), 1);
        writer.abort().await.unwrap();
        assert_eq!(staged_files(dir.path()), 0);

        let mut writer = store.writer().await.unwrap();
        writer.write(b"dropped").await.unwrap();
        drop(writer);
        assert_eq!(staged_files(dir.path()), 0);
    }

    #[tokio::test]
    async fn open_clears_staging_left_by_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut writer = store.writer().await.unwrap();
        writer.write(b"half a blob").await.unwrap();
        // A crash: the writer's destructor never runs.
        std::mem::forget(writer);
        fs::create_dir(dir.path().join(STAGING_DIR).join("stray")).unwrap();
        assert_eq!(staged_files(dir.path()), 2);

        FsBlobStore::open(dir.path()).unwrap();
        assert_eq!(staged_files(dir.path()), 0);
    }

    #[tokio::test]
    async fn keys_are_paths_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let key = BlobKey::original(&pixelmill_core::sha256_hex(b"x"));
        store.put(&key, Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(fs::read(dir.path().join(key.as_str())).unwrap(), b"x");

        for reserved in [".tmp/x", "orig/.hidden", "out/./x"] {
            let err = store
                .head(&BlobKey::from_string(reserved))
                .await
                .unwrap_err();
            assert!(matches!(err, BlobError::InvalidKey(_)), "{reserved}: {err}");
        }
    }
}
