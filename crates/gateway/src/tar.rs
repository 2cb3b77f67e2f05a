//! A tar writer for UnixFS trees: ustar headers with PAX records where ustar cannot hold a
//! value, as Go's `archive/tar` writes them (so the bytes match Kubo's `get` and boxo's
//! `?format=tar`). Shared by the gateway's `?format=tar` (path-gateway.md § "Response
//! Payload", IPIP-0288) and the node's Kubo RPC `get`.
//!
//! Spec: POSIX.1-2001 `pax` (ustar header layout, extended header records).

use bytes::Bytes;

/// One block of a tar archive, bytes.
pub const TAR_BLOCK: usize = 512;

/// What a tar entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TarKind {
    /// A directory (type `5`).
    Directory,
    /// A regular file (type `0`) of this many bytes.
    File(u64),
    /// A symbolic link (type `2`) to this target.
    Symlink(Bytes),
}

/// Writes `value` as zero-padded octal filling `field` but its last byte, which is NUL (as
/// Go's `archive/tar`); `false` when it does not fit.
fn put_octal(field: &mut [u8], value: u64) -> bool {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    true
}

/// Go's `splitUSTARPath`: `name` as a ustar `prefix` (≤ 155 bytes) and `name` (≤ 100 bytes)
/// split at a `/`, when it is ASCII and does not fit in `name` alone.
fn split_ustar_path(name: &str) -> Option<(&str, &str)> {
    let mut length = name.len();
    if length <= 100 || !name.is_ascii() {
        return None;
    }
    if length > 156 {
        length = 156;
    } else if name.as_bytes()[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].rfind('/')?;
    let suffix = &name[i + 1..];
    if i == 0 || suffix.is_empty() || suffix.len() > 100 || i > 155 {
        return None;
    }
    Some((&name[..i], suffix))
}

/// One PAX record, `"<len> <key>=<value>\n"`, its length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// A ustar header block (POSIX.1-1988 as Go's `archive/tar` writes it: magic `ustar\0`,
/// version `00`, octal fields NUL-terminated, uid/gid 0, no user or group names).
fn ustar_block(
    name: &[u8],
    prefix: &[u8],
    mode: u32,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link: &[u8],
) -> [u8; TAR_BLOCK] {
    let mut h = [0u8; TAR_BLOCK];
    h[..name.len()].copy_from_slice(name);
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], 0);
    put_octal(&mut h[116..124], 0);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], mtime);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    put_octal(&mut h[329..337], 0);
    put_octal(&mut h[337..345], 0);
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    put_octal(&mut h[148..155], sum);
    h[155] = b' ';
    h
}

/// The tar header of one entry at `path` (no leading or trailing `/`): a ustar block, preceded
/// by a PAX extended header (type `x`, records `path`, `linkpath`, `size`, `mtime`) for what
/// ustar cannot hold (a non-ASCII or too long path, a link target over 100 bytes, a file of
/// 8 GiB or more, an mtime before 1970 or past 8^11 s), as Go's `archive/tar` does. `mode`:
/// permission bits; `mtime`: seconds since the Unix epoch.
///
/// Spec: POSIX.1-2001 `pax` (ustar header layout, extended header records).
pub fn tar_header(path: &str, kind: &TarKind, mode: u32, mtime: i64) -> Vec<u8> {
    const MAX_OCTAL_11: u64 = (1 << 33) - 1;
    let mut records = Vec::new();
    let (name, prefix): (&[u8], &[u8]) = if path.len() <= 100 && path.is_ascii() {
        (path.as_bytes(), b"")
    } else if let Some((prefix, name)) = split_ustar_path(path) {
        (name.as_bytes(), prefix.as_bytes())
    } else {
        records.extend(pax_record("path", path.as_bytes()));
        (truncate_ascii(path, 100), b"")
    };
    let (typeflag, size, link): (u8, u64, &[u8]) = match kind {
        TarKind::Directory => (b'5', 0, b""),
        TarKind::File(size) => (b'0', *size, b""),
        TarKind::Symlink(target) => (b'2', 0, target),
    };
    let link = if link.len() > 100 || !link.is_ascii() {
        records.extend(pax_record("linkpath", link));
        truncate_ascii_bytes(link, 100)
    } else {
        link
    };
    let header_size = if size > MAX_OCTAL_11 {
        records.extend(pax_record("size", size.to_string().as_bytes()));
        0
    } else {
        size
    };
    let header_mtime = match u64::try_from(mtime) {
        Ok(t) if t <= MAX_OCTAL_11 => t,
        _ => {
            records.extend(pax_record("mtime", mtime.to_string().as_bytes()));
            0
        }
    };
    let mut out = Vec::with_capacity(3 * TAR_BLOCK);
    if !records.is_empty() {
        let base = path.rsplit('/').next().unwrap_or(path);
        let dir = &path[..path.len() - base.len()];
        let pax_name = format!("{dir}PaxHeaders.0/{base}");
        let pax_name = truncate_ascii(&pax_name, 100);
        out.extend(ustar_block(
            pax_name,
            b"",
            0o644,
            records.len() as u64,
            header_mtime,
            b'x',
            b"",
        ));
        let padding = padding(records.len() as u64);
        out.extend(records);
        out.resize(out.len() + padding, 0);
    }
    out.extend(ustar_block(
        name,
        prefix,
        mode,
        header_size,
        header_mtime,
        typeflag,
        link,
    ));
    out
}

/// The first `max` bytes of `s`'s ASCII characters (others left out), for a ustar field
/// whose real value is in a PAX record.
fn truncate_ascii(s: &str, max: usize) -> &[u8] {
    truncate_ascii_bytes(s.as_bytes(), max)
}

fn truncate_ascii_bytes(s: &[u8], max: usize) -> &[u8] {
    let ascii = s.iter().take_while(|b| b.is_ascii()).count();
    &s[..ascii.min(max)]
}

/// Zero bytes after `size` bytes of content to end its tar block.
pub fn padding(size: u64) -> usize {
    let rest = (size % TAR_BLOCK as u64) as usize;
    if rest == 0 { 0 } else { TAR_BLOCK - rest }
}

/// boxo's `UnixPermsOrDefault`: the UnixFS mode's low 12 bits, or 0755 for a directory,
/// 0644 for a file, 0777 for a symlink.
pub fn tar_mode(mode: Option<u32>, kind: &TarKind) -> u32 {
    match mode.map(|m| m & 0o7777) {
        Some(m) if m != 0 => m,
        _ => match kind {
            TarKind::Directory => 0o755,
            TarKind::File(_) => 0o644,
            TarKind::Symlink(_) => 0o777,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &[u8]) -> tar::Header {
        let mut h = tar::Header::new_old();
        h.as_mut_bytes().copy_from_slice(&header[..TAR_BLOCK]);
        h
    }

    #[test]
    fn tar_header_is_ustar_with_checksum() {
        let header = tar_header("QmRoot/a/b.txt", &TarKind::File(1234), 0o644, 1_700_000_000);
        assert_eq!(header.len(), TAR_BLOCK);
        let h = parse(&header);
        assert!(h.as_ustar().is_some(), "ustar magic");
        assert_eq!(&*h.path_bytes(), b"QmRoot/a/b.txt");
        assert_eq!(h.size().unwrap(), 1234);
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(h.mtime().unwrap(), 1_700_000_000);
        assert_eq!(h.entry_type(), tar::EntryType::Regular);
        assert_eq!(h.cksum().unwrap(), {
            let mut copy = header.clone();
            copy[148..156].fill(b' ');
            copy.iter().map(|b| u32::from(*b)).sum::<u32>()
        });
        // Go's layout of the fields.
        assert_eq!(&header[100..108], b"0000644\0");
        assert_eq!(&header[124..136], b"00000002322\0");
        assert_eq!(header[155], b' ');
    }

    #[test]
    fn tar_symlink_and_directory() {
        let link = tar_header(
            "d/l",
            &TarKind::Symlink(Bytes::from_static(b"../t")),
            0o777,
            5,
        );
        let h = parse(&link);
        assert_eq!(h.entry_type(), tar::EntryType::Symlink);
        assert_eq!(&*h.link_name_bytes().unwrap(), b"../t");
        let dir = tar_header("d", &TarKind::Directory, 0o755, 5);
        assert_eq!(parse(&dir).entry_type(), tar::EntryType::Directory);
        assert_eq!(parse(&dir).size().unwrap(), 0);
    }

    #[test]
    fn tar_long_paths_use_prefix_then_pax() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        let header = tar_header(&long, &TarKind::File(1), 0o644, 0);
        assert_eq!(header.len(), TAR_BLOCK, "fits in prefix + name");
        assert_eq!(&*parse(&header).path_bytes(), long.as_bytes());

        let longer = format!("root/{}", "x".repeat(300));
        let unicode = "root/é".to_owned();
        for path in [longer, unicode] {
            let header = tar_header(&path, &TarKind::File(3), 0o644, 0);
            let mut archive = header.clone();
            archive.extend(b"abc");
            archive.resize(archive.len() + padding(3), 0);
            archive.extend([0; 1024]);
            let mut reader = tar::Archive::new(&archive[..]);
            let mut entries = reader.entries().unwrap();
            let mut entry = entries.next().unwrap().unwrap();
            assert_eq!(&*entry.path_bytes(), path.as_bytes());
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
            assert_eq!(body, "abc");
            assert!(entries.next().is_none());
        }
    }

    #[test]
    fn modes_default_as_go() {
        assert_eq!(tar_mode(None, &TarKind::Directory), 0o755);
        assert_eq!(tar_mode(Some(0o600), &TarKind::File(0)), 0o600);
    }

    #[test]
    fn kubo_pax_record_length_counts_itself() {
        assert_eq!(pax_record("path", b"a"), b"9 path=a\n");
        assert_eq!(pax_record("path", &[b'x'; 2]), b"11 path=xx\n");
        let r = pax_record("path", &[b'x'; 95]);
        assert_eq!(r.len().to_string(), String::from_utf8_lossy(&r[..3]));
    }
}
