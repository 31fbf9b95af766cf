//! Unpacking one layer: a tar stream (gzip or not) into a directory that overlayfs can stack,
//! verifying both the stored digest and the uncompressed `diff_id` while streaming.
//!
//! OCI whiteouts become overlayfs whiteouts: `.wh.NAME` a 0:0 character device `NAME`, and
//! `.wh..wh..opq` the `trusted.overlay.opaque` attribute on its directory.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use sha2::{Digest, Sha256};

use super::error::ImageError;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Reads through to an inner reader, hashing and counting what passes.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Reads what is left, then gives the digest and size of everything read.
    fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((format!("sha256:{}", hex(&self.hasher.finalize())), self.bytes))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a layer must be: its stored digest and size, and its uncompressed digest.
#[derive(Debug, Clone)]
pub struct ExpectedLayer {
    pub digest: String,
    pub size: Option<u64>,
    pub diff_id: String,
}

/// Unpacks `stream` into `dest` (an empty directory) and checks the digests. On any error the
/// caller discards `dest`.
pub fn unpack(stream: impl Read, expected: &ExpectedLayer, dest: &Path) -> Result<(), ImageError> {
    let corrupt = |reason: String| ImageError::CorruptLayer { digest: expected.digest.clone(), reason };
    let mut outer = BufReader::new(Hashing::new(stream));
    let head = outer.fill_buf().map_err(|e| corrupt(format!("cannot read: {e}")))?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let (stored, uncompressed) = if gzip {
        let decoder = flate2::read::GzDecoder::new(outer);
        let mut inner = Hashing::new(decoder);
        extract(&mut inner, dest).map_err(|e| corrupt(format!("corrupt or truncated: {}", chain(&e))))?;
        let (diff_id, _) =
            take_finish(&mut inner).map_err(|e| corrupt(format!("truncated or corrupt gzip: {e}")))?;
        let outer = inner.inner.into_inner();
        let stored = outer.into_inner().finish().map_err(|e| corrupt(e.to_string()))?;
        (stored, diff_id)
    } else {
        let mut inner = Hashing::new(outer);
        extract(&mut inner, dest).map_err(|e| corrupt(format!("corrupt or truncated: {}", chain(&e))))?;
        let (digest, bytes) = take_finish(&mut inner).map_err(|e| corrupt(e.to_string()))?;
        ((digest.clone(), bytes), digest)
    };
    if let Some(size) = expected.size
        && stored.1 != size
    {
        return Err(ImageError::SizeMismatch {
            what: "layer",
            digest: expected.digest.clone(),
            expected: size,
            actual: stored.1,
        });
    }
    if stored.0 != expected.digest {
        let actual = stored.0.trim_start_matches("sha256:").to_owned();
        return Err(ImageError::DigestMismatch { what: "layer", digest: expected.digest.clone(), actual });
    }
    if uncompressed != expected.diff_id {
        return Err(corrupt(format!(
            "uncompressed content is {uncompressed}, the image config says {}",
            expected.diff_id
        )));
    }
    Ok(())
}

/// An error with its causes: tar's "failed to unpack `x`" says why only in its source.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Finishes a hashing reader in place (the reader is left empty).
fn take_finish<R: Read>(reader: &mut Hashing<R>) -> io::Result<(String, u64)> {
    io::copy(reader, &mut io::sink())?;
    let hasher = std::mem::take(&mut reader.hasher);
    Ok((format!("sha256:{}", hex(&hasher.finalize())), reader.bytes))
}

/// Writes the tar entries into `dest`, converting whiteouts.
fn extract(stream: &mut impl Read, dest: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if !path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsafe path {}", path.display()),
            ));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let parent = dest.join(path.parent().unwrap_or(Path::new("")));
        if name == OPAQUE_WHITEOUT {
            fs::create_dir_all(&parent)?;
            xattr::set(&parent, "trusted.overlay.opaque", b"y")?;
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            fs::create_dir_all(&parent)?;
            let target = parent.join(hidden);
            match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&target)?,
                Ok(_) => fs::remove_file(&target)?,
                Err(_) => {}
            }
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(io::Error::from)?;
        } else if !entry.unpack_in(dest)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unsafe path {}", path.display()),
            ));
        }
    }
    Ok(())
}

/// The sha256 digest of a whole stream, as `sha256:HEX`, and its size.
pub fn digest_of(stream: impl Read) -> io::Result<(String, u64)> {
    Hashing::new(stream).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, path, *content).expect("append");
        }
        builder.into_inner().expect("tar")
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("gzip");
        encoder.finish().expect("gzip")
    }

    fn expected(stored: &[u8], uncompressed: &[u8]) -> ExpectedLayer {
        let digest = digest_of(stored).expect("digest").0;
        let diff_id = digest_of(uncompressed).expect("digest").0;
        ExpectedLayer { digest, size: Some(stored.len() as u64), diff_id }
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn gzip_layers_unpack_and_verify() {
        let tar = layer(&[("etc/motd", b"hello\n")]);
        let gz = gzip(&tar);
        let dir = tempfile::tempdir().expect("temp dir");
        unpack(&gz[..], &expected(&gz, &tar), dir.path()).expect("unpacks");
        assert_eq!(fs::read(dir.path().join("etc/motd")).expect("file"), b"hello\n");
    }

    #[test]
    fn corrupt_and_truncated_layers_are_refused() {
        let tar = layer(&[("etc/motd", b"hello\n")]);
        let gz = gzip(&tar);
        let want = expected(&gz, &tar);
        let mut flipped = gz.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xff;
        let dir = tempfile::tempdir().expect("temp dir");
        let err = unpack(&flipped[..], &want, dir.path()).expect_err("corrupt");
        assert!(err.to_string().starts_with(&format!("layer {}", want.digest)), "{err}");
        let truncated = &gz[..gz.len() - 10];
        let dir = tempfile::tempdir().expect("temp dir");
        let err = unpack(truncated, &want, dir.path()).expect_err("truncated");
        assert!(err.to_string().contains(&want.digest), "{err}");
    }

    #[test]
    fn paths_outside_the_layer_are_refused() {
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        // Header::set_path refuses "..", so write the name bytes directly, as a hostile tool would.
        header.as_old_mut().name[..10].copy_from_slice(b"../escaped");
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &b"x"[..]).expect("append");
        let tar = builder.into_inner().expect("tar");
        let dir = tempfile::tempdir().expect("temp dir");
        let inside = dir.path().join("layer");
        fs::create_dir(&inside).expect("mkdir");
        let err = unpack(&tar[..], &expected(&tar, &tar), &inside).expect_err("escape");
        assert!(err.to_string().contains("unsafe path ../escaped"), "{err}");
        assert!(!dir.path().join("escaped").exists());
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        if !is_root() {
            panic!("this test makes device nodes and trusted xattrs: run it as root (CI does)");
        }
        let tar = layer(&[("etc/.wh.motd", b""), ("var/cache/.wh..wh..opq", b""), ("var/cache/new", b"x")]);
        let dir = tempfile::tempdir().expect("temp dir");
        unpack(&tar[..], &expected(&tar, &tar), dir.path()).expect("unpacks");
        let motd = fs::symlink_metadata(dir.path().join("etc/motd")).expect("whiteout exists");
        assert!(motd.file_type().is_char_device());
        let opaque = xattr::get(dir.path().join("var/cache"), "trusted.overlay.opaque").expect("xattr");
        assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
        assert!(dir.path().join("var/cache/new").exists());
    }
}
