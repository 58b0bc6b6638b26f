//! Tiny, dependency-free media encoders for the fake upstream: a valid PNG (stored-deflate zlib
//! stream, hand-rolled CRC-32 and Adler-32) and a valid WAV (RIFF, PCM 16-bit mono) sine tone.
//!
//! The PNG is an 8-bit palette image (colour type 3) holding a diagonal gradient, so a 1024x1024
//! image is about 1 MiB: big enough to look like a real image payload, cheap enough to build.
//! Its zlib stream uses stored (uncompressed) deflate blocks, which every decoder must accept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;

/// The eight bytes every PNG file starts with.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Sample rate of the fake speech audio (OpenAI's TTS output rate): 24 kHz.
pub const SAMPLE_RATE: u32 = 24_000;

/// Largest side the fake accepts for an image (gpt-image-2 tops out at 3840x2160).
pub const MAX_IMAGE_SIDE: u32 = 3840;

const fn make_crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = make_crc_table();

/// CRC-32 (ISO-HDLC, the polynomial PNG and zip use) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// Adler-32 checksum (the zlib trailer) of `data`.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 is the largest n for which the sums cannot overflow u32 before reducing.
    for block in data.chunks(5552) {
        for &x in block {
            a += x as u32;
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Wraps `raw` in a zlib stream made of stored (uncompressed) deflate blocks.
pub fn zlib_stored(raw: &[u8]) -> Vec<u8> {
    let blocks = raw.len().div_ceil(65_535).max(1);
    let mut out = Vec::with_capacity(raw.len() + blocks * 5 + 6);
    out.extend_from_slice(&[0x78, 0x01]); // deflate, 32 KiB window, no dictionary, check bits ok
    if raw.is_empty() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF]);
    }
    let mut chunks = raw.chunks(65_535).peekable();
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        out.push(u8::from(last)); // BFINAL bit, BTYPE = 00 (stored)
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&adler32(raw).to_be_bytes());
    out
}

fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A valid `width` x `height` PNG: 8-bit palette image with a diagonal gradient (teal to
/// orange). With `transparent`, a `tRNS` chunk fades the alpha across the gradient.
/// Both sides must be at least 1.
pub fn png_gradient(width: u32, height: u32, transparent: bool) -> Vec<u8> {
    let (w, h) = (width.max(1), height.max(1));
    let mut out = Vec::new();
    out.extend_from_slice(&PNG_SIGNATURE);

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]); // depth 8, palette, deflate, filter 0, no interlace
    push_chunk(&mut out, b"IHDR", &ihdr);

    let (from, to) = ([0x1Fu8, 0x8A, 0x8C], [0xF2u8, 0x8E, 0x2B]);
    let mut plte = Vec::with_capacity(768);
    for i in 0..256u32 {
        for c in 0..3 {
            let v = (from[c] as u32 * (255 - i) + to[c] as u32 * i) / 255;
            plte.push(v as u8);
        }
    }
    push_chunk(&mut out, b"PLTE", &plte);
    if transparent {
        let alpha: Vec<u8> = (0..=255u8).map(|i| 255 - i / 2).collect();
        push_chunk(&mut out, b"tRNS", &alpha);
    }

    let span = (w as u64 + h as u64).saturating_sub(2).max(1);
    let mut raw = Vec::with_capacity((w as usize + 1) * h as usize);
    for y in 0..h as u64 {
        raw.push(0); // filter type None
        raw.extend((0..w as u64).map(|x| ((x + y) * 255 / span) as u8));
    }
    push_chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    push_chunk(&mut out, b"IEND", &[]);
    out
}

type PngCache = Mutex<HashMap<(u32, u32, bool), Arc<str>>>;

/// [`png_gradient`] encoded as standard base64, cached per (width, height, transparent) so
/// repeated requests cost nothing.
pub fn png_base64(width: u32, height: u32, transparent: bool) -> Arc<str> {
    static CACHE: OnceLock<PngCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (width.max(1), height.max(1), transparent);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hit.clone();
    }
    let encoded: Arc<str> = base64::engine::general_purpose::STANDARD
        .encode(png_gradient(key.0, key.1, transparent))
        .into();
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, encoded.clone());
    encoded
}

/// `samples` samples of a 440 Hz sine tone (with 10 ms fade in/out) as 16-bit signed
/// little-endian mono PCM at [`SAMPLE_RATE`].
pub fn sine_pcm(samples: usize) -> Vec<u8> {
    let fade = (SAMPLE_RATE / 100) as usize;
    let mut out = Vec::with_capacity(samples * 2);
    for i in 0..samples {
        let t = i as f64 / SAMPLE_RATE as f64;
        let edge = i.min(samples - 1 - i).min(fade) as f64 / fade.max(1) as f64;
        let v = (t * 440.0 * std::f64::consts::TAU).sin() * 0.3 * edge * i16::MAX as f64;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

/// A 44-byte canonical RIFF/WAVE header for `data_len` bytes of 16-bit mono PCM at
/// [`SAMPLE_RATE`].
pub fn wav_header(data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * 2).to_le_bytes()); // byte rate
    h[32..34].copy_from_slice(&2u16.to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// A complete WAV file: [`wav_header`] followed by [`sine_pcm`] of `samples` samples.
pub fn wav_sine(samples: usize) -> Vec<u8> {
    let pcm = sine_pcm(samples);
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(&wav_header(pcm.len() as u32));
    out.extend_from_slice(&pcm);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Walks the chunks of a PNG, checking every CRC; returns (type, data) pairs.
    pub(crate) fn png_chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        assert_eq!(&png[..8], &PNG_SIGNATURE, "signature");
        let mut at = 8;
        let mut chunks = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = png[at + 4..at + 8].try_into().unwrap();
            let data = png[at + 8..at + 8 + len].to_vec();
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32(&png[at + 4..at + 8 + len]), "CRC of {kind:?}");
            chunks.push((kind, data));
            at += 12 + len;
        }
        assert_eq!(at, png.len());
        chunks
    }

    /// Inflates a zlib stream made of stored blocks only, checking the Adler-32 trailer.
    fn inflate_stored(z: &[u8]) -> Vec<u8> {
        assert_eq!(z[0], 0x78);
        assert_eq!(
            ((z[0] as u16) << 8 | z[1] as u16) % 31,
            0,
            "zlib header check"
        );
        let mut at = 2;
        let mut out = Vec::new();
        loop {
            let hdr = z[at];
            assert_eq!(hdr & 0b110, 0, "stored block");
            let len = u16::from_le_bytes([z[at + 1], z[at + 2]]);
            let nlen = u16::from_le_bytes([z[at + 3], z[at + 4]]);
            assert_eq!(len, !nlen);
            out.extend_from_slice(&z[at + 5..at + 5 + len as usize]);
            at += 5 + len as usize;
            if hdr & 1 == 1 {
                break;
            }
        }
        assert_eq!(
            u32::from_be_bytes(z[at..at + 4].try_into().unwrap()),
            adler32(&out)
        );
        assert_eq!(at + 4, z.len());
        out
    }

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(&[]), 1);
    }

    #[test]
    fn png_is_valid() {
        for (w, h, t) in [(1, 1, false), (300, 200, true), (64, 1100, false)] {
            let png = png_gradient(w, h, t);
            let chunks = png_chunks(&png);
            let kinds: Vec<&[u8; 4]> = chunks.iter().map(|(k, _)| k).collect();
            assert_eq!(kinds.first(), Some(&b"IHDR"));
            assert_eq!(kinds.last(), Some(&b"IEND"));
            assert_eq!(kinds.contains(&b"tRNS"), t);
            let ihdr = &chunks[0].1;
            assert_eq!(u32::from_be_bytes(ihdr[0..4].try_into().unwrap()), w);
            assert_eq!(u32::from_be_bytes(ihdr[4..8].try_into().unwrap()), h);
            let idat = &chunks.iter().find(|(k, _)| k == b"IDAT").unwrap().1;
            let raw = inflate_stored(idat);
            assert_eq!(raw.len(), (w as usize + 1) * h as usize);
        }
    }

    #[test]
    fn wav_header_is_valid() {
        let wav = wav_sine(12_000);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(
            u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize,
            wav.len() - 8
        );
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24_000);
        assert_eq!(u16::from_le_bytes(wav[34..36].try_into().unwrap()), 16);
        assert_eq!(
            u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize,
            24_000
        );
    }
}
