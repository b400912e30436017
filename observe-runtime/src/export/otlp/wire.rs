//! The protobuf wire format, written into a `Vec<u8>`.

const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const I32: u32 = 5;
/// The bytes reserved for a length written afterwards: a 5-byte varint holds 35 bits.
const RESERVED: usize = 5;

/// How many bytes `value` takes as a varint.
#[inline]
pub(super) const fn varint_len(value: u64) -> usize {
    // One byte per started group of seven bits.
    ((((value | 1).leading_zeros() ^ 63) * 9 + 73) / 64) as usize
}

/// How many bytes a length-delimited field `field` of `len` bytes takes.
#[inline]
pub(super) const fn field_len(field: u32, len: usize) -> usize {
    varint_len((field << 3) as u64) + varint_len(len as u64) + len
}

#[inline]
pub(super) fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[inline]
fn tag(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(out, u64::from(field << 3 | wire_type));
}

/// An `int32`, `int64`, `uint*` or `bool` field (negative numbers take ten bytes, as in
/// protobuf).
#[inline]
pub(super) fn uint(out: &mut Vec<u8>, field: u32, value: u64) {
    tag(out, field, VARINT);
    varint(out, value);
}

#[inline]
pub(super) fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    tag(out, field, I64);
    out.extend_from_slice(&value.to_le_bytes());
}

#[inline]
pub(super) fn fixed32(out: &mut Vec<u8>, field: u32, value: u32) {
    tag(out, field, I32);
    out.extend_from_slice(&value.to_le_bytes());
}

/// The tag and length of a length-delimited field; the caller writes exactly `len` bytes.
#[inline]
pub(super) fn header(out: &mut Vec<u8>, field: u32, len: usize) {
    tag(out, field, LEN);
    varint(out, len as u64);
}

#[inline]
pub(super) fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    header(out, field, value.len());
    out.extend_from_slice(value);
}

#[inline]
pub(super) fn string(out: &mut Vec<u8>, field: u32, value: &str) {
    bytes(out, field, value.as_bytes());
}

/// Starts a message field whose length is not known yet; [`close`] it with what this returns.
#[inline]
pub(super) fn open(out: &mut Vec<u8>, field: u32) -> usize {
    tag(out, field, LEN);
    out.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x00]);
    out.len()
}

/// Writes the length of the message [`open`]ed at `start` as a padded 5-byte varint.
#[inline]
pub(super) fn close(out: &mut [u8], start: usize) {
    let len = (out.len() - start) as u64;
    assert!(len < 1 << 35, "protobuf message of {len} bytes");
    let reserved = &mut out[start - RESERVED..start];
    for (i, byte) in reserved[..4].iter_mut().enumerate() {
        *byte = (len >> (7 * i)) as u8 | 0x80;
    }
    reserved[4] = (len >> 28) as u8;
}
