//! [`QemuFileReader`]: walks the records of a stream, checks the section framing, and hands
//! section bodies to their parsers.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::configuration::Configuration;
use super::error::{StreamError, StreamErrorKind};
use super::input::CountingReader;
use super::record::{Record, SectionHeader, SectionKind};
use super::tail::{read_tail, DeviceTail};
use super::{
    MAX_VMDESC_LEN, MIG_CMD_PACKAGED, QEMU_VM_COMMAND, QEMU_VM_CONFIGURATION, QEMU_VM_EOF,
    QEMU_VM_FILE_MAGIC, QEMU_VM_FILE_VERSION, QEMU_VM_SECTION_FOOTER, QEMU_VM_VMDESCRIPTION,
};

/// Where the reader is in the record sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records: the next byte is a record type.
    Between,
    /// Inside the body of this section id.
    InSection(u32),
    /// The EOF record has been read.
    AfterEof,
    /// The vmstate description (or the end of the file) has been read.
    Done,
}

/// Streaming reader of the outer QEMU migration format.
///
/// Typical use: walk the sections, parse the bodies you know, stop at one you do not
/// (bodies have no length prefix, so an unknown one cannot be skipped):
///
/// ```
/// use ram_list::stream::{QemuFileReader, StreamError};
///
/// # fn main() -> Result<(), StreamError> {
/// // A minimal stream: header, then a "ram" START section whose body is a lone EOS.
/// let mut s = Vec::new();
/// s.extend_from_slice(b"QEVM\0\0\0\x03");
/// s.push(0x01); // SECTION_START
/// s.extend_from_slice(&2u32.to_be_bytes());
/// s.extend_from_slice(b"\x03ram");
/// s.extend_from_slice(&0u32.to_be_bytes()); // instance id
/// s.extend_from_slice(&4u32.to_be_bytes()); // version id
/// s.extend_from_slice(&0x10u64.to_be_bytes()); // body: EOS
/// s.extend_from_slice(b"\x7e\0\0\0\x02"); // footer
/// s.push(0x00); // EOF
///
/// let mut qf = QemuFileReader::new(&s[..])?;
/// while let Some(h) = qf.next_section()? {
///     match h.idstr.as_str() {
///         "ram" => assert_eq!(qf.payload().read_be64()?, 0x10),
///         _ => break, // unknown bodies cannot be skipped: no length prefix
///     }
///     qf.finish_section(&h)?;
/// }
/// assert_eq!(qf.read_vmdesc()?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct QemuFileReader<R> {
    reader: CountingReader<R>,
    configuration: Option<Configuration>,
    /// section id -> (idstr, instance id, version id)
    sections: HashMap<u32, (String, u32, u32)>,
    state: State,
}

impl<R: Read> QemuFileReader<R> {
    /// Reads and checks the file header (magic, version 3) and, if present, the
    /// configuration record. The reader issues many small reads, so wrap files and
    /// sockets in a [`std::io::BufReader`].
    pub fn new(r: R) -> Result<Self, StreamError> {
        let mut reader = CountingReader::new(r);
        let magic = reader.read_be32()?;
        if magic != QEMU_VM_FILE_MAGIC {
            return Err(StreamError::new(
                0,
                StreamErrorKind::BadMagic { found: magic },
            ));
        }
        let version = reader.read_be32()?;
        if version != QEMU_VM_FILE_VERSION {
            return Err(StreamError::new(
                4,
                StreamErrorKind::UnsupportedVersion { found: version },
            ));
        }
        let configuration = if reader.peek_u8()? == Some(QEMU_VM_CONFIGURATION) {
            reader.read_u8()?;
            Some(Configuration::read(&mut reader)?)
        } else {
            None
        };
        Ok(QemuFileReader {
            reader,
            configuration,
            sections: HashMap::new(),
            state: State::Between,
        })
    }

    /// The configuration record, if the stream had one (QEMU omits it only for very old
    /// machine types).
    pub fn configuration(&self) -> Option<&Configuration> {
        self.configuration.as_ref()
    }

    /// Number of bytes consumed from the stream so far.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// The underlying reader positioned inside the current section body; the caller parses
    /// the body with it (it implements [`Read`] and has big-endian field helpers).
    pub fn payload(&mut self) -> &mut CountingReader<R> {
        &mut self.reader
    }

    /// Idstr, instance id and version id bound to `section_id` by an earlier START or FULL
    /// record.
    pub fn section_info(&self, section_id: u32) -> Option<(&str, u32, u32)> {
        self.sections
            .get(&section_id)
            .map(|(n, i, v)| (n.as_str(), *i, *v))
    }

    /// Reads the next top-level record. Returns [`Record::Eof`] at the EOF record, and
    /// again on every later call.
    pub fn next_record(&mut self) -> Result<Record, StreamError> {
        match self.state {
            State::Between => {}
            State::InSection(section_id) => {
                return Err(StreamError::new(
                    self.reader.offset(),
                    StreamErrorKind::SectionNotFinished { section_id },
                ))
            }
            State::AfterEof | State::Done => return Ok(Record::Eof),
        }
        let offset = self.reader.offset();
        let byte = self.reader.read_u8()?;
        if byte == QEMU_VM_EOF {
            self.state = State::AfterEof;
            return Ok(Record::Eof);
        }
        if byte == QEMU_VM_COMMAND {
            let cmd = self.reader.read_be16()?;
            let len = self.reader.read_be16()?;
            let data = self.reader.read_vec(usize::from(len))?;
            return Ok(Record::Command { cmd, data, offset });
        }
        let Some(kind) = SectionKind::from_record_type(byte) else {
            return Err(StreamError::new(
                offset,
                StreamErrorKind::UnknownRecordType { byte },
            ));
        };
        let section_id = self.reader.read_be32()?;
        let (idstr, instance_id, version_id) = if kind.has_full_header() {
            self.bind_section(offset, section_id)?
        } else {
            match self.sections.get(&section_id) {
                Some((n, i, v)) => (n.clone(), *i, *v),
                None => {
                    return Err(StreamError::new(
                        offset,
                        StreamErrorKind::UnknownSectionId { kind, section_id },
                    ))
                }
            }
        };
        self.state = State::InSection(section_id);
        Ok(Record::Section(SectionHeader {
            kind,
            section_id,
            idstr,
            instance_id,
            version_id,
            offset,
        }))
    }

    /// The rest of a START/FULL header: binds `section_id` to its idstr and instance.
    fn bind_section(
        &mut self,
        offset: u64,
        section_id: u32,
    ) -> Result<(String, u32, u32), StreamError> {
        let idstr = self.reader.read_idstr("section idstr")?;
        let instance_id = self.reader.read_be32()?;
        let version_id = self.reader.read_be32()?;
        if let Some((prev, prev_inst, _)) = self.sections.get(&section_id) {
            if *prev != idstr || *prev_inst != instance_id {
                return Err(StreamError::new(
                    offset,
                    StreamErrorKind::ConflictingSectionId {
                        section_id,
                        previous: prev.clone(),
                        idstr,
                    },
                ));
            }
        }
        self.sections
            .insert(section_id, (idstr.clone(), instance_id, version_id));
        Ok((idstr, instance_id, version_id))
    }

    /// Reads records up to the next section header; `None` at the EOF record.
    ///
    /// `QEMU_VM_COMMAND` records are stepped over, except `MIG_CMD_PACKAGED` (a nested
    /// stream follows it), which is [`StreamErrorKind::UnsupportedCommand`].
    pub fn next_section(&mut self) -> Result<Option<SectionHeader>, StreamError> {
        loop {
            match self.next_record()? {
                Record::Section(h) => return Ok(Some(h)),
                Record::Eof => return Ok(None),
                Record::Command { cmd, offset, .. } => {
                    if cmd == MIG_CMD_PACKAGED {
                        return Err(StreamError::new(
                            offset,
                            StreamErrorKind::UnsupportedCommand { cmd },
                        ));
                    }
                }
            }
        }
    }

    /// Reads and checks the footer (0x7e, be32 section id) that ends the body of
    /// `header`'s section; call it once the body has been consumed.
    pub fn finish_section(&mut self, header: &SectionHeader) -> Result<(), StreamError> {
        let section_id = header.section_id;
        if self.state != State::InSection(section_id) {
            return Err(StreamError::new(
                self.reader.offset(),
                StreamErrorKind::NotOpen { section_id },
            ));
        }
        let offset = self.reader.offset();
        let found = self.reader.read_u8()?;
        if found != QEMU_VM_SECTION_FOOTER {
            return Err(StreamError::new(
                offset,
                StreamErrorKind::MissingFooter { section_id, found },
            ));
        }
        let id_offset = self.reader.offset();
        let found = self.reader.read_be32()?;
        if found != section_id {
            return Err(StreamError::new(
                id_offset,
                StreamErrorKind::FooterMismatch {
                    expected: section_id,
                    found,
                },
            ));
        }
        self.state = State::Between;
        Ok(())
    }

    /// After the EOF record, reads the optional `QEMU_VM_VMDESCRIPTION` record (a JSON
    /// description of the device sections) and checks that nothing else follows it.
    /// Returns `None` if the file ends right after EOF (e.g. `-machine
    /// suppress-vmdesc=on`), and `None` on later calls.
    ///
    /// # Blocking
    ///
    /// Waits for the end of the stream after the description: on a connection, use
    /// [`QemuFileReader::read_final_vmdesc`], which does not.
    pub fn read_vmdesc(&mut self) -> Result<Option<String>, StreamError> {
        let desc = self.read_final_vmdesc()?;
        let end = self.reader.offset();
        if let Some(byte) = self.reader.peek_u8()? {
            return Err(StreamError::new(
                end,
                StreamErrorKind::TrailingData { byte },
            ));
        }
        Ok(desc)
    }

    /// Like [`QemuFileReader::read_vmdesc`], without checking what follows the
    /// description: a live source may keep the connection open after its stream (QEMU
    /// with a return path waits for the destination's `SHUT`), so nothing after it is
    /// waited for.
    ///
    /// # Blocking
    ///
    /// Reads one byte after the EOF record to learn whether a description follows: a
    /// source that sends none must close the connection.
    pub fn read_final_vmdesc(&mut self) -> Result<Option<String>, StreamError> {
        match self.state {
            State::AfterEof => {}
            State::Done => return Ok(None),
            State::Between | State::InSection(_) => {
                return Err(StreamError::new(
                    self.reader.offset(),
                    StreamErrorKind::NotAtEof,
                ))
            }
        }
        let offset = self.reader.offset();
        let desc = match self.reader.peek_u8()? {
            None => None,
            Some(QEMU_VM_VMDESCRIPTION) => Some(self.read_vmdesc_record()?),
            Some(byte) => {
                return Err(StreamError::new(
                    offset,
                    StreamErrorKind::TrailingData { byte },
                ))
            }
        };
        self.state = State::Done;
        Ok(desc)
    }

    /// Reads the device sections that end the stream, the first of which, `first`, has
    /// just been opened by [`QemuFileReader::next_section`]: delimits each body by its
    /// footer (see [`DeviceTail`] for how), then reads the EOF record and the vmstate
    /// description, and checks that the description lists the sections in order. At most
    /// `limit` bytes are read ([`MAX_DEVICE_STATE`](super::MAX_DEVICE_STATE) is a good
    /// bound). The reader is done afterwards.
    ///
    /// ```
    /// use ram_list::stream::{vmdesc_json, DeviceField, DeviceState, QemuFileReader};
    ///
    /// let timer = DeviceState {
    ///     idstr: "timer".into(),
    ///     instance_id: 0,
    ///     version_id: 2,
    ///     // A body that looks like its own footer followed by EOF: not the end.
    ///     fields: vec![DeviceField::new("x", "buffer", *b"\x7e\0\0\0\0\0\x01")],
    /// };
    /// let mut s = b"QEVM\0\0\0\x03".to_vec();
    /// timer.encode(0, &mut s);
    /// s.push(0x00); // EOF
    /// let desc = vmdesc_json(4096, &[timer]);
    /// s.push(0x06);
    /// s.extend_from_slice(&(desc.len() as u32).to_be_bytes());
    /// s.extend_from_slice(desc.as_bytes());
    ///
    /// let mut qf = QemuFileReader::new(&s[..]).unwrap();
    /// let first = qf.next_section().unwrap().unwrap();
    /// let tail = qf.read_device_sections(&first, 1 << 20).unwrap();
    /// assert_eq!(tail.sections[0].header.idstr, "timer");
    /// assert_eq!(tail.sections[0].body.len(), 7);
    /// assert_eq!(tail.vmdesc.as_deref(), Some(desc.as_str()));
    /// ```
    ///
    /// # Blocking
    ///
    /// Reads only the bytes it needs (never waits for the end of the connection), except
    /// after the EOF record: see [`QemuFileReader::read_final_vmdesc`].
    pub fn read_device_sections(
        &mut self,
        first: &SectionHeader,
        limit: usize,
    ) -> Result<DeviceTail, StreamError> {
        if first.kind != SectionKind::Full || self.state != State::InSection(first.section_id) {
            return Err(StreamError::new(
                self.reader.offset(),
                StreamErrorKind::NotOpen {
                    section_id: first.section_id,
                },
            ));
        }
        let used: HashSet<u32> = self.sections.keys().copied().collect();
        let tail = read_tail(&mut self.reader, first.clone(), &used, limit)?;
        for s in &tail.sections {
            let h = &s.header;
            self.sections
                .insert(h.section_id, (h.idstr.clone(), h.instance_id, h.version_id));
        }
        self.state = State::Done;
        Ok(tail)
    }

    fn read_vmdesc_record(&mut self) -> Result<String, StreamError> {
        self.reader.read_u8()?;
        let len_offset = self.reader.offset();
        let len = self.reader.read_be32()?;
        if len > MAX_VMDESC_LEN {
            return Err(StreamError::new(
                len_offset,
                StreamErrorKind::VmdescTooLong { len },
            ));
        }
        let start = self.reader.offset();
        let bytes = self.reader.read_vec(len as usize)?;
        String::from_utf8(bytes).map_err(|_| {
            StreamError::new(
                start,
                StreamErrorKind::InvalidUtf8 {
                    what: "vmstate description",
                },
            )
        })
    }

    /// Returns the underlying reader (see [`CountingReader::into_inner`]).
    pub fn into_inner(self) -> R {
        self.reader.into_inner()
    }
}
