//! The vmstate description (`QEMU_VM_VMDESCRIPTION`): the JSON that ends a stream and
//! lists its device sections in order, written for [`DeviceState`]s and checked against
//! the sections a reader delimited.
//!
//! QEMU writes it with its own JSON writer, every device as
//! `{"name": IDSTR, "instance_id": N, "vmsd_name": ..., "version": V, "fields": [...]}`
//! in the order of the FULL sections; QEMU's loader skips it, and tools such as
//! `scripts/analyze-migration.py` use it to parse the device bodies.

use core::fmt::Write as _;

use super::device::{DeviceSection, DeviceState};

/// The description of `devices` (in the order they are sent), as QEMU formats it.
///
/// ```
/// use ram_list::stream::{vmdesc_json, DeviceField, DeviceState};
///
/// let gs = DeviceState {
///     idstr: "globalstate".into(),
///     instance_id: 0,
///     version_id: 1,
///     fields: vec![DeviceField::new("size", "uint32", 8u32.to_be_bytes())],
/// };
/// assert_eq!(
///     vmdesc_json(4096, &[gs]),
///     r#"{"page_size": 4096, "devices": [{"name": "globalstate", "instance_id": 0, "vmsd_name": "globalstate", "version": 1, "fields": [{"name": "size", "type": "uint32", "size": 4}]}]}"#
/// );
/// ```
pub fn vmdesc_json(page_size: u64, devices: &[DeviceState]) -> String {
    let mut s = format!("{{\"page_size\": {page_size}, \"devices\": [");
    for (i, d) in devices.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str("{\"name\": ");
        string(&mut s, &d.idstr);
        let _ = write!(s, ", \"instance_id\": {}, \"vmsd_name\": ", d.instance_id);
        string(&mut s, &d.idstr);
        let _ = write!(s, ", \"version\": {}, \"fields\": [", d.version_id);
        for (j, f) in d.fields.iter().enumerate() {
            if j > 0 {
                s.push_str(", ");
            }
            s.push_str("{\"name\": ");
            string(&mut s, &f.name);
            s.push_str(", \"type\": ");
            string(&mut s, &f.kind);
            let _ = write!(s, ", \"size\": {}}}", f.data.len());
        }
        s.push_str("]}");
    }
    s.push_str("]}");
    s
}

/// Append `v` as a JSON string.
fn string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether `json` lists `sections` in order: each one's `"name": IDSTR, "instance_id": N`
/// found after the previous one's. Returns the index of the first section it does not
/// list there.
pub(super) fn first_unlisted(json: &str, sections: &[DeviceSection]) -> Option<usize> {
    let mut from = 0;
    for (i, s) in sections.iter().enumerate() {
        let mut key = String::from("\"name\": ");
        string(&mut key, &s.header.idstr);
        let _ = write!(key, ", \"instance_id\": {}", s.header.instance_id);
        match json[from..].find(&key) {
            Some(at) => from += at + key.len(),
            None => return Some(i),
        }
    }
    None
}
