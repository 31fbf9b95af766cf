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

/// What a layer must be: its stored digest and size where the source gives them (an OCI
/// descriptor does, a `docker save` archive does not), and its uncompressed digest, which the
/// image config gives always.
#[derive(Debug, Clone)]
pub struct ExpectedLayer {
    pub digest: Option<String>,
    pub size: Option<u64>,
    pub diff_id: String,
}

impl ExpectedLayer {
    /// How messages name the layer: its stored digest, else its diff_id.
    pub fn label(&self) -> &str {
        self.digest.as_deref().unwrap_or(&self.diff_id)
    }
}

/// Whether the stream starts with gzip's magic number (nothing is consumed).
pub fn is_gzip(stream: &mut impl BufRead) -> io::Result<bool> {
    Ok(stream.fill_buf()?.starts_with(&[0x1f, 0x8b]))
}

/// Unpacks `stream` into `dest` (an empty directory) and checks the digests, hashing each byte
/// once. On any error the caller discards `dest`.
pub fn unpack(stream: impl Read, expected: &ExpectedLayer, dest: &Path) -> Result<(), ImageError> {
    let label = expected.label();
    let corrupt = |reason: String| ImageError::CorruptLayer { digest: label.to_owned(), reason };
    let unreadable = |e: io::Error| corrupt(format!("corrupt or truncated: {}", chain(&e)));
    let mut stored = BufReader::new(Hashing::new(stream));
    let gzip = is_gzip(&mut stored).map_err(unreadable)?;
    // The uncompressed stream's digest, when it differs from the stored one.
    let gunzipped = if gzip {
        let mut tar = Hashing::new(flate2::read::GzDecoder::new(&mut stored));
        extract(&mut tar, dest).map_err(unreadable)?;
        Some(tar.finish().map_err(unreadable)?.0)
    } else {
        extract(&mut stored, dest).map_err(unreadable)?;
        None
    };
    // Bytes the BufReader held were hashed when read; finish hashes whatever is left.
    let (stored_digest, stored_size) = stored.into_inner().finish().map_err(unreadable)?;
    if let Some(size) = expected.size
        && stored_size != size
    {
        let digest = label.to_owned();
        return Err(ImageError::SizeMismatch { what: "layer", digest, expected: size, actual: stored_size });
    }
    if let Some(digest) = &expected.digest
        && stored_digest != *digest
    {
        let actual = stored_digest.trim_start_matches("sha256:").to_owned();
        return Err(ImageError::DigestMismatch { what: "layer", digest: digest.clone(), actual });
    }
    let uncompressed = gunzipped.unwrap_or(stored_digest);
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
        ExpectedLayer { digest: Some(digest), size: Some(stored.len() as u64), diff_id }
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
        assert!(err.to_string().starts_with(&format!("layer {}", want.label())), "{err}");
        let truncated = &gz[..gz.len() - 10];
        let dir = tempfile::tempdir().expect("temp dir");
        let err = unpack(truncated, &want, dir.path()).expect_err("truncated");
        assert!(err.to_string().contains(want.label()), "{err}");
    }

    #[test]
    fn without_a_stored_digest_the_diff_id_catches_corruption() {
        // A `docker save` layer: only the diff_id from the config vouches for it.
        let tar = layer(&[("etc/motd", b"hello\n")]);
        let diff_id = digest_of(&tar[..]).expect("digest").0;
        let want = ExpectedLayer { digest: None, size: None, diff_id: diff_id.clone() };
        let dir = tempfile::tempdir().expect("temp dir");
        unpack(&tar[..], &want, dir.path()).expect("the intact layer unpacks");
        let mut changed = tar.clone();
        let at = tar.windows(5).position(|w| w == b"hello").expect("content in the tar");
        changed[at] = b'j';
        let dir = tempfile::tempdir().expect("temp dir");
        let err = unpack(&changed[..], &want, dir.path()).expect_err("changed content");
        assert!(
            err.to_string().starts_with(&format!("layer {diff_id}: uncompressed content is sha256:")),
            "{err}"
        );
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
