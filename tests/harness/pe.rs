//! A small reader of the Windows PE format (PE32+), enough to check what the build embedded:
//! the subsystem (GUI or console) and a resource's bytes (manifest, message table, version).
//! Facts from the PE/COFF specification: DOS header → `PE\0\0` at `e_lfanew` → COFF header →
//! optional header (its data directory 2 is the resource table) → section table (RVA → file
//! offset) → the resource tree type / name / language, with leaves pointing at the data by RVA.

/// `IMAGE_SUBSYSTEM_WINDOWS_GUI`
pub const SUBSYSTEM_GUI: u16 = 2;
/// `IMAGE_SUBSYSTEM_WINDOWS_CUI`
pub const SUBSYSTEM_CONSOLE: u16 = 3;
pub const RT_MESSAGETABLE: u32 = 11;
pub const RT_VERSION: u32 = 16;
pub const RT_MANIFEST: u32 = 24;

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("PE truncated at byte {at}"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("PE truncated at byte {at}"))
}

/// A parsed PE image's headers.
pub struct Pe<'a> {
    bytes: &'a [u8],
    optional: usize,
    /// (virtual address, virtual size, raw pointer, raw size) per section
    sections: Vec<(u32, u32, u32, u32)>,
}

impl<'a> Pe<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Pe<'a>, String> {
        if bytes.get(0..2) != Some(b"MZ") {
            return Err("no MZ header".into());
        }
        let pe = u32_at(bytes, 0x3c)? as usize;
        if bytes.get(pe..pe + 4) != Some(b"PE\0\0") {
            return Err(format!("no PE signature at {pe:#x}"));
        }
        let coff = pe + 4;
        let n_sections = u16_at(bytes, coff + 2)? as usize;
        let optional_size = u16_at(bytes, coff + 16)? as usize;
        let optional = coff + 20;
        let magic = u16_at(bytes, optional)?;
        if magic != 0x20b {
            return Err(format!("optional header magic {magic:#x}, want 0x20b (PE32+)"));
        }
        let table = optional + optional_size;
        let sections = (0..n_sections)
            .map(|i| {
                let s = table + i * 40;
                Ok((
                    u32_at(bytes, s + 12)?,
                    u32_at(bytes, s + 8)?,
                    u32_at(bytes, s + 20)?,
                    u32_at(bytes, s + 16)?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Pe {
            bytes,
            optional,
            sections,
        })
    }

    /// The optional header's Subsystem field.
    pub fn subsystem(&self) -> Result<u16, String> {
        u16_at(self.bytes, self.optional + 68)
    }

    fn offset(&self, rva: u32) -> Result<usize, String> {
        self.sections
            .iter()
            .find(|(va, vsize, _, rsize)| rva >= *va && rva < va + (*vsize).max(*rsize))
            .map(|(va, _, raw, _)| (rva - va + raw) as usize)
            .ok_or_else(|| format!("RVA {rva:#x} is in no section"))
    }

    /// Entries (id or name offset, offset-with-high-bit) of the resource directory at `dir`.
    fn entries(&self, root: usize, dir: usize) -> Result<Vec<(u32, u32)>, String> {
        let at = root + dir;
        let n = u16_at(self.bytes, at + 12)? as usize + u16_at(self.bytes, at + 14)? as usize;
        (0..n)
            .map(|i| {
                Ok((
                    u32_at(self.bytes, at + 16 + i * 8)?,
                    u32_at(self.bytes, at + 20 + i * 8)?,
                ))
            })
            .collect()
    }

    /// The bytes of resource `type_id` / `name_id` (numeric ids; the first language present).
    pub fn resource(&self, type_id: u32, name_id: u32) -> Result<Option<&'a [u8]>, String> {
        let rva = u32_at(self.bytes, self.optional + 112 + 2 * 8)?;
        if rva == 0 {
            return Ok(None);
        }
        let root = self.offset(rva)?;
        let sub = |entries: Vec<(u32, u32)>, id: u32| -> Option<usize> {
            entries
                .into_iter()
                .find(|(e, off)| *e == id && off & 0x8000_0000 != 0)
                .map(|(_, off)| (off & 0x7fff_ffff) as usize)
        };
        let Some(types) = sub(self.entries(root, 0)?, type_id) else {
            return Ok(None);
        };
        let Some(names) = sub(self.entries(root, types)?, name_id) else {
            return Ok(None);
        };
        let Some((_, leaf)) = self.entries(root, names)?.into_iter().next() else {
            return Ok(None);
        };
        let leaf = root + (leaf & 0x7fff_ffff) as usize;
        let data = self.offset(u32_at(self.bytes, leaf)?)?;
        let size = u32_at(self.bytes, leaf + 4)? as usize;
        self.bytes
            .get(data..data + size)
            .map(Some)
            .ok_or_else(|| format!("resource {type_id}/{name_id} runs past the end of the file"))
    }
}

/// The messages of a MESSAGETABLE resource: (id, text) in id order.
pub fn message_table(data: &[u8]) -> Result<Vec<(u32, String)>, String> {
    let blocks = u32_at(data, 0)? as usize;
    let mut out = Vec::new();
    for b in 0..blocks {
        let (low, high, mut at) = (
            u32_at(data, 4 + b * 12)?,
            u32_at(data, 8 + b * 12)?,
            u32_at(data, 12 + b * 12)? as usize,
        );
        for id in low..=high {
            let len = u16_at(data, at)? as usize;
            let flags = u16_at(data, at + 2)?;
            let text = data.get(at + 4..at + len).ok_or("message entry runs past the end")?;
            let text = if flags & 1 == 1 {
                let units: Vec<u16> = text.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                String::from_utf16_lossy(&units)
            } else {
                String::from_utf8_lossy(text).into_owned()
            };
            out.push((id, text.trim_end_matches('\0').to_string()));
            if len == 0 {
                return Err(format!("message {id}: zero-length entry"));
            }
            at += len;
        }
    }
    Ok(out)
}
