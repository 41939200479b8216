//! A test-only FUSE layer that can "cut the power" (LazyFS, used by Jepsen, is the model).
//!
//! [`PowerFs::mount`] serves `backing` at `mountpoint`. Every operation goes through to the backing
//! folder at once (so the programs under test see a normal file system), and the layer remembers
//! what a power cut would keep:
//! - a file's content as of its last `fsync`/`fdatasync` (a file never synced keeps the content it
//!   had when the layer was mounted, or nothing);
//! - a folder's entries as of its last `fsync` of the folder (a created, renamed or removed name is
//!   not durable before that).
//!
//! [`PowerFs::cut_power`] unmounts (the programs using it must be killed first) and replaces the
//! backing folder by that durable state; [`PowerFs::remount`] serves it again. Page cache and
//! `kill -9` never lose a write; this layer does, exactly where a real power cut may.

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, MountOption,
    OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyWrite, Request, WriteFlags,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

const TTL: Duration = Duration::ZERO;

/// Counters of what the programs under test asked the layer to make durable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    pub file_syncs: u64,
    pub dir_syncs: u64,
}

#[derive(Default)]
struct State {
    /// Path relative to the backing folder ("" = root) of every live inode.
    paths: HashMap<u64, PathBuf>,
    by_path: HashMap<PathBuf, u64>,
    is_dir: HashMap<u64, bool>,
    next_ino: u64,
    handles: HashMap<u64, Arc<File>>,
    next_fh: u64,
    /// File content as of the last fsync (or the mount).
    synced: HashMap<u64, Vec<u8>>,
    /// Folder entries as of the last fsync of the folder (or the mount).
    durable_dir: HashMap<u64, BTreeMap<OsString, u64>>,
    stats: SyncStats,
}

impl State {
    fn ino_for(&mut self, rel: &Path, is_dir: bool) -> u64 {
        if let Some(&ino) = self.by_path.get(rel) {
            self.is_dir.insert(ino, is_dir);
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.paths.insert(ino, rel.to_path_buf());
        self.by_path.insert(rel.to_path_buf(), ino);
        self.is_dir.insert(ino, is_dir);
        ino
    }

    fn forget_path(&mut self, rel: &Path) {
        if let Some(ino) = self.by_path.remove(rel) {
            self.paths.remove(&ino);
        }
    }

    /// Current entries of the folder `rel` (name → inode), registering unseen names.
    fn list(&mut self, backing: &Path, rel: &Path) -> std::io::Result<BTreeMap<OsString, u64>> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(backing.join(rel))? {
            let e = e?;
            let is_dir = e.file_type()?.is_dir();
            let ino = self.ino_for(&rel.join(e.file_name()), is_dir);
            out.insert(e.file_name(), ino);
        }
        Ok(out)
    }

    /// Register the whole backing tree as durable (what a mount after a power cut finds).
    fn scan(&mut self, backing: &Path, rel: &Path) -> std::io::Result<()> {
        let ino = self.ino_for(rel, true);
        let entries = self.list(backing, rel)?;
        for (name, child) in &entries {
            let child_rel = rel.join(name);
            if self.is_dir[child] {
                self.scan(backing, &child_rel)?;
            } else {
                self.synced.insert(*child, std::fs::read(backing.join(&child_rel))?);
            }
        }
        self.durable_dir.insert(ino, entries);
        Ok(())
    }

    /// Write the durable state of folder `ino` into `dest`.
    fn restore(&self, ino: u64, dest: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dest)?;
        for (name, child) in self.durable_dir.get(&ino).into_iter().flatten() {
            if self.is_dir.get(child).copied().unwrap_or(false) {
                self.restore(*child, &dest.join(name))?;
            } else {
                let empty = Vec::new();
                std::fs::write(dest.join(name), self.synced.get(child).unwrap_or(&empty))?;
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Layer {
    backing: PathBuf,
    state: Arc<Mutex<State>>,
}

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc_eio()))
}

fn libc_eio() -> i32 {
    5
}

fn attr(ino: u64, m: &std::fs::Metadata) -> FileAttr {
    let t = |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns as u32);
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: t(m.atime(), m.atime_nsec()),
        mtime: t(m.mtime(), m.mtime_nsec()),
        ctime: t(m.ctime(), m.ctime_nsec()),
        crtime: t(m.mtime(), m.mtime_nsec()),
        kind: FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Layer {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rel(&self, ino: INodeNo) -> Option<PathBuf> {
        self.st().paths.get(&ino.0).cloned()
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Option<PathBuf> {
        self.rel(parent).map(|p| p.join(name))
    }

    fn entry_of(&self, rel: &Path, reply: ReplyEntry) {
        match std::fs::symlink_metadata(self.backing.join(rel)) {
            Ok(m) => {
                let ino = self.st().ino_for(rel, m.is_dir());
                reply.entry(&TTL, &attr(ino, &m), Generation(0));
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn handle(&self, fh: FileHandle) -> Option<Arc<File>> {
        self.st().handles.get(&fh.0).cloned()
    }

    fn add_handle(&self, f: File) -> u64 {
        let mut st = self.st();
        st.next_fh += 1;
        let fh = st.next_fh;
        st.handles.insert(fh, Arc::new(f));
        fh
    }
}

impl Filesystem for Layer {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name) {
            Some(rel) => self.entry_of(&rel, reply),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = match (fh.and_then(|h| self.handle(h)), self.rel(ino)) {
            (Some(f), _) => f.metadata(),
            (None, Some(rel)) => std::fs::symlink_metadata(self.backing.join(rel)),
            (None, None) => return reply.error(Errno::ENOENT),
        };
        match m {
            Ok(m) => reply.attr(&TTL, &attr(ino.0, &m)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = (|| -> std::io::Result<std::fs::Metadata> {
            let f = match fh.and_then(|h| self.handle(h)) {
                Some(f) => f,
                None => {
                    let rel = self.rel(ino).ok_or_else(|| std::io::Error::from_raw_os_error(2))?;
                    let p = self.backing.join(rel);
                    if size.is_some() {
                        Arc::new(OpenOptions::new().write(true).open(p)?)
                    } else {
                        Arc::new(File::open(p)?)
                    }
                }
            };
            if let Some(s) = size {
                f.set_len(s)?;
            }
            if let Some(m) = mode {
                f.set_permissions(std::fs::Permissions::from_mode(m & 0o7777))?;
            }
            f.metadata()
        })();
        match res {
            Ok(m) => reply.attr(&TTL, &attr(ino.0, &m)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let Some(rel) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let p = self.backing.join(&rel);
        match std::fs::create_dir(&p)
            .and_then(|_| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & !umask & 0o7777)))
        {
            Ok(()) => self.entry_of(&rel, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(rel) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        match std::fs::remove_file(self.backing.join(&rel)) {
            Ok(()) => {
                self.st().forget_path(&rel);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(rel) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        match std::fs::remove_dir(self.backing.join(&rel)) {
            Ok(()) => {
                self.st().forget_path(&rel);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (Some(from), Some(to)) = (self.child(parent, name), self.child(newparent, newname)) else {
            return reply.error(Errno::ENOENT);
        };
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return reply.error(Errno::EINVAL);
        }
        let to_abs = self.backing.join(&to);
        if flags.contains(RenameFlags::RENAME_NOREPLACE) && std::fs::symlink_metadata(&to_abs).is_ok() {
            return reply.error(Errno::EEXIST);
        }
        if let Err(e) = std::fs::rename(self.backing.join(&from), &to_abs) {
            return reply.error(errno(&e));
        }
        let mut st = self.st();
        st.forget_path(&to);
        // move the inode (and, for a folder, everything below it) to the new name
        let moved: Vec<(PathBuf, u64)> = st
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(&from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, i) in moved {
            let below = p.strip_prefix(&from).unwrap();
            // (joining an empty path would add a trailing slash)
            let np = if below.as_os_str().is_empty() {
                to.clone()
            } else {
                to.join(below)
            };
            st.by_path.remove(&p);
            st.by_path.insert(np.clone(), i);
            st.paths.insert(i, np);
        }
        reply.ok()
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(rel) = self.rel(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let write = !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY);
        match OpenOptions::new().read(true).write(write).open(self.backing.join(rel)) {
            Ok(f) => reply.opened(FileHandle(self.add_handle(f)), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(f) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return reply.error(errno(&e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(f) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        match f.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.st().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let Some(f) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let res = f.metadata().and_then(|m| {
            let mut buf = vec![0u8; m.len() as usize];
            f.read_exact_at(&mut buf, 0).map(|_| buf)
        });
        match res {
            Ok(content) => {
                let mut st = self.st();
                st.synced.insert(ino.0, content);
                st.stats.file_syncs += 1;
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(rel) = self.rel(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let listed = {
            let mut st = self.st();
            st.list(&self.backing, &rel).map(|l| {
                l.into_iter()
                    .map(|(n, i)| {
                        let kind = if st.is_dir[&i] {
                            FileType::Directory
                        } else {
                            FileType::RegularFile
                        };
                        (n, i, kind)
                    })
                    .collect::<Vec<_>>()
            })
        };
        let mut all = vec![
            (OsString::from("."), ino.0, FileType::Directory),
            (OsString::from(".."), ino.0, FileType::Directory),
        ];
        match listed {
            Ok(l) => all.extend(l),
            Err(e) => return reply.error(errno(&e)),
        }
        for (i, (name, child, kind)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let Some(rel) = self.rel(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let mut st = self.st();
        match st.list(&self.backing, &rel) {
            Ok(entries) => {
                st.durable_dir.insert(ino.0, entries);
                st.stats.dir_syncs += 1;
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(rel) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let excl = flags & 0o200 != 0; // O_EXCL
        let mut oo = OpenOptions::new();
        oo.read(true).write(true).mode(mode & !umask & 0o7777);
        if excl {
            oo.create_new(true);
        } else {
            oo.create(true);
        }
        let res = oo
            .open(self.backing.join(&rel))
            .and_then(|f| f.metadata().map(|m| (f, m)));
        match res {
            Ok((f, m)) => {
                let ino = self.st().ino_for(&rel, false);
                let fh = self.add_handle(f);
                reply.created(&TTL, &attr(ino, &m), Generation(0), FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

/// A mounted layer; see the module text.
pub struct PowerFs {
    pub mountpoint: PathBuf,
    pub backing: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
}

impl PowerFs {
    /// Serve `backing` (created if missing; its current content counts as durable) at `mountpoint`.
    pub fn mount(backing: &Path, mountpoint: &Path) -> std::io::Result<PowerFs> {
        std::fs::create_dir_all(backing)?;
        std::fs::create_dir_all(mountpoint)?;
        let mut fs = PowerFs {
            mountpoint: mountpoint.to_path_buf(),
            backing: backing.to_path_buf(),
            state: Arc::default(),
            session: None,
        };
        fs.remount()?;
        Ok(fs)
    }

    /// Serve the backing folder again (after [`PowerFs::cut_power`]).
    pub fn remount(&mut self) -> std::io::Result<()> {
        assert!(self.session.is_none(), "already mounted");
        let mut st = State {
            next_ino: 1,
            ..State::default()
        };
        st.scan(&self.backing, Path::new(""))?;
        assert_eq!(st.by_path[Path::new("")], 1, "the root is inode 1");
        self.state = Arc::new(Mutex::new(st));
        let layer = Layer {
            backing: self.backing.clone(),
            state: self.state.clone(),
        };
        let mut cfg = Config::default();
        cfg.mount_options = vec![MountOption::FSName("powerfs".into()), MountOption::RW];
        // Twice in CI, right after a power cut, mounting failed with ECONNABORTED (cause not
        // found: not a dead mount left behind, fuser unmounts that). Try again for up to 5 s; the
        // error then says how often it failed.
        let mut tries = 0;
        loop {
            match fuser::spawn_mount(layer.clone(), &self.mountpoint, &cfg) {
                Ok(session) => {
                    self.session = Some(session);
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::NotConnected
                    ) && tries < 50 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("mounting {} ({} tries): {e}", self.mountpoint.display(), tries + 1),
                    ))
                }
            }
        }
    }

    pub fn stats(&self) -> SyncStats {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).stats
    }

    /// Unmount and throw away everything not made durable. Kill the programs using the folder first.
    pub fn cut_power(&mut self) -> std::io::Result<()> {
        if let Some(s) = self.session.take() {
            s.umount_and_join()?;
        }
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let next = self.backing.with_extension("restored");
        let _ = std::fs::remove_dir_all(&next);
        st.restore(1, &next)?;
        std::fs::remove_dir_all(&self.backing)?;
        std::fs::rename(&next, &self.backing)?;
        Ok(())
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

/// Whether this machine can mount FUSE file systems (`/dev/fuse`); like [`crate::need_tools`], a
/// missing device fails the test when `CI` is set and skips it with a message otherwise.
#[must_use]
pub fn need_fuse() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("this test").to_string();
    let msg = format!("{test}: /dev/fuse is missing (a FUSE-capable kernel is needed)");
    if crate::in_ci() {
        panic!("{msg}; CI is set, so a missing tool fails the test");
    }
    eprintln!("SKIPPED {msg}");
    false
}
