//! /proc/PID/maps, parsed: the one parser that the scan, the watch, the bcc
//! backend and the labs share. The format is one line per mapping and we need
//! exactly its six fields.

use crate::error::Error;

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// `rw-p`, as the kernel prints it.
    pub perms: String,
    pub offset: u64,
    pub inode: u64,
    /// The backing file, or a pseudo-name such as `[heap]`; None when anonymous.
    pub path: Option<String>,
}

impl Mapping {
    #[must_use]
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    #[must_use]
    pub fn readable(&self) -> bool {
        self.perms.as_bytes().first() == Some(&b'r')
    }
    #[must_use]
    pub fn writable(&self) -> bool {
        self.perms.as_bytes().get(1) == Some(&b'w')
    }
    #[must_use]
    pub fn executable(&self) -> bool {
        self.perms.as_bytes().get(2) == Some(&b'x')
    }
    #[must_use]
    pub fn shared(&self) -> bool {
        self.perms.as_bytes().get(3) == Some(&b's')
    }
    #[must_use]
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
    /// `[heap]`, `[stack]`, `[vdso]`...
    #[must_use]
    pub fn pseudo(&self) -> Option<&str> {
        self.path.as_deref().filter(|p| p.starts_with('['))
    }
    /// Anonymous memory, shared or not: no path, `/dev/zero (deleted)` and
    /// SysV segments (what MAP_SHARED|MAP_ANONYMOUS shows as), or a named anon.
    #[must_use]
    pub fn anonymous(&self) -> bool {
        match self.path.as_deref() {
            None => true,
            Some(p) => {
                p.starts_with("/dev/zero")
                    || p.starts_with("/SYSV")
                    || p.starts_with("/memfd:")
                    || p.starts_with("[anon:")
                    || p.starts_with("[anon_shmem:")
            }
        }
    }
    /// The article's four kinds of memory; None for the kernel's own
    /// mappings (`[heap]`, `[stack]`, `[vdso]`...).
    #[must_use]
    pub fn region_kind(&self) -> Option<crate::report::RegionKind> {
        use crate::report::RegionKind;
        if self.pseudo().is_some() && !self.anonymous() {
            return None;
        }
        Some(match (self.anonymous(), self.shared()) {
            (true, false) => RegionKind::PrivateAnon,
            (true, true) => RegionKind::SharedAnon,
            (false, false) => RegionKind::PrivateFile,
            (false, true) => RegionKind::SharedFile,
        })
    }
    /// The path column, empty for anonymous memory.
    #[must_use]
    pub fn path_text(&self) -> &str {
        self.path.as_deref().unwrap_or("")
    }
    /// A real file behind the mapping.
    #[must_use]
    pub fn file(&self) -> Option<&str> {
        self.path.as_deref().filter(|_| !self.anonymous() && self.pseudo().is_none())
    }
}

/// Reads and parses /proc/PID/maps.
pub fn read(pid: i32) -> Result<Vec<Mapping>, Error> {
    let path = format!("/proc/{pid}/maps");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(std::path::Path::new(&path), e))?;
    parse(&text)
}

/// Parses the text of a maps file.
pub fn parse(text: &str) -> Result<Vec<Mapping>, Error> {
    text.lines().filter(|l| !l.trim().is_empty()).map(parse_line).collect()
}

fn parse_line(line: &str) -> Result<Mapping, Error> {
    let bad = || Error::MalformedOutput { tool: "/proc/PID/maps".into(), message: format!("unexpected line: {line}") };
    let mut rest = line;
    let mut field = || -> Option<&str> {
        let t = rest.trim_start();
        let end = t.find(' ').unwrap_or(t.len());
        let (f, r) = t.split_at(end);
        rest = r;
        (!f.is_empty()).then_some(f)
    };
    let range = field().ok_or_else(bad)?;
    let perms = field().ok_or_else(bad)?.to_string();
    let offset = field().ok_or_else(bad)?;
    let _dev = field().ok_or_else(bad)?;
    let inode = field().ok_or_else(bad)?;
    let path = rest.trim_start();
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| bad());
    let (start, end) = (hex(start)?, hex(end)?);
    if end < start || perms.len() != 4 {
        return Err(bad());
    }
    Ok(Mapping {
        start,
        end,
        perms,
        offset: hex(offset)?,
        inode: inode.parse().map_err(|_| bad())?,
        path: (!path.is_empty()).then(|| path.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let m = parse(
            "55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]\n\
             7f1c2e600000-7f1c2e628000 r--p 00000000 08:01 1311 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
             7f1c2e800000-7f1c2e840000 rw-s 00000000 00:01 2048 /dev/zero (deleted)\n\
             7f1c2e900000-7f1c2e940000 rw-p 00000000 00:00 0\n",
        )
        .unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].pseudo(), Some("[heap]"));
        assert_eq!(m[1].file(), Some("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(m[2].anonymous() && m[2].shared());
        assert!(m[3].anonymous() && m[3].writable() && !m[3].shared());
        assert!(parse("garbage\n").is_err());
        assert!(parse("2000-1000 rw-p 0 00:00 0\n").is_err());
    }
}
