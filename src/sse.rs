//! A pure, incremental `text/event-stream` decoder: bytes in, events out.
//!
//! It follows the "interpreting an event stream" rules of the WHATWG HTML standard
//! (server-sent events): lines end in LF, CR or CRLF (also when the CR and the LF arrive in
//! different chunks), one leading byte order mark is skipped, `:` lines are comments, one space
//! after a field's colon is stripped, `data` lines are joined with `\n`, and an empty line
//! dispatches the event unless no `data` line was seen. `id` and `retry` lines are read and
//! ignored like unknown fields: they serve a browser's automatic reconnection, which the
//! gateway does not do through the SSE id (OpenAI sends neither; a Responses stream resumes by
//! `sequence_number`). Bytes may be split anywhere;
//! only complete lines are interpreted. Invalid UTF-8 is replaced with U+FFFD
//! ([`String::from_utf8_lossy`] semantics), so [`SseEvent::data`] is always valid UTF-8.
//! `data: [DONE]` is not special here: the caller decides what it means.
//!
//! It is hand-written because the gateway's hot path is "one upstream event in, one gRPC message
//! out", and no well-kept crate offers what that wants at once: incremental, no IO and no async
//! runtime coupling, bounded memory, and `data` handed out as a zero-copy [`Bytes`] slice of the
//! receive buffer. (For example `eventsource-stream` adapts a futures `Stream` of byte chunks and
//! yields events whose `data`, `event` and `id` are owned `String`s, so every payload is copied.)
//! The decoder is a small state machine, so owning it is cheap.
//!
//! Usage: [`SseDecoder::feed`] each received chunk, then call [`SseDecoder::next_event`] until it
//! returns `Ok(None)`; at the end of the body call [`SseDecoder::finish`], which says whether the
//! stream broke off in the middle of an event.
//!
//! Memory is bounded: an event block (its lines, including comments and line ends, up to the
//! blank line that dispatches it) larger than the configured limit is an
//! [`SseError::EventTooLarge`]. With the feed-then-drain pattern above, the buffer never holds
//! more than the limit plus one received chunk.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The default [`SseDecoder`] limit on the size of one event block: 16 MiB.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// The UTF-8 encoding of U+FEFF, skipped once at the very start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (None means the default type "message"; an empty `event:`
    /// value also means the default type, so it is None too).
    pub event: Option<String>,
    /// The `data:` lines joined with '\n'. Bytes, so the caller can parse JSON without another
    /// copy. Always valid UTF-8 (invalid input bytes are replaced with U+FFFD).
    pub data: Bytes,
}

/// Why the decoder could not produce an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// One event block (its lines including comments and line ends) grew beyond `limit` bytes.
    /// The decoder stays failed until [`SseDecoder::finish`].
    EventTooLarge {
        /// The configured maximum event size in bytes.
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => {
                write!(f, "server-sent event larger than the {limit}-byte limit")
            }
        }
    }
}

impl std::error::Error for SseError {}

/// The data buffer of the event block being read.
#[derive(Debug, Default)]
enum DataBuf {
    /// No `data` line yet: a blank line dispatches nothing.
    #[default]
    None,
    /// Exactly one `data` line: a zero-copy slice of the receive buffer.
    One(Bytes),
    /// Several `data` lines, joined with '\n' (the only case that copies).
    Many(BytesMut),
}

/// An incremental WHATWG server-sent-events decoder. See the [module docs](self).
#[derive(Debug)]
pub struct SseDecoder {
    /// Received bytes not yet interpreted; always starts at the beginning of a line (or of the
    /// stream, or at the LF of a CRLF split across chunks).
    buf: BytesMut,
    /// How many bytes of `buf` are already known to hold no line end.
    scan: usize,
    /// The previous line ended with a CR that was the last byte received: an LF at the start
    /// of the next bytes belongs to it.
    skip_lf: bool,
    /// The start of the stream has not been checked for a byte order mark yet.
    bom_pending: bool,
    /// The event type buffer of the current block.
    event: Option<String>,
    /// The data buffer of the current block.
    data: DataBuf,
    /// Bytes of complete lines in the current block, for the size limit.
    block_bytes: usize,
    /// A field line (not a comment) was read in the current block.
    block_has_fields: bool,
    /// The size limit was exceeded; sticky until `finish`.
    failed: bool,
    /// The maximum event block size.
    limit: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default 16 MiB ([`DEFAULT_MAX_EVENT_SIZE`]) event size limit.
    pub fn new() -> Self {
        Self::with_max_event_size(DEFAULT_MAX_EVENT_SIZE)
    }

    /// A decoder whose event blocks (lines including comments and line ends, up to the
    /// dispatching blank line) may be at most `limit` bytes.
    pub fn with_max_event_size(limit: usize) -> Self {
        Self {
            // Allocated by the first `feed`, sized by what arrives: an idle stream holds little.
            buf: BytesMut::new(),
            scan: 0,
            skip_lf: false,
            bom_pending: true,
            event: None,
            data: DataBuf::None,
            block_bytes: 0,
            block_has_fields: false,
            failed: false,
            limit,
        }
    }

    /// Append received bytes. Nothing is interpreted until [`next_event`](Self::next_event).
    /// Ignored after an [`SseError`] (until [`finish`](Self::finish)).
    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Pop the next complete event, if one is complete in what was fed so far.
    ///
    /// Returns `Ok(None)` when more bytes are needed. An event block over the size limit is an
    /// error, returned again on every call until [`finish`](Self::finish).
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        if self.failed {
            return Err(self.too_large());
        }
        loop {
            if self.skip_lf && !self.buf.is_empty() {
                self.skip_lf = false;
                if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                }
            }
            if self.bom_pending {
                if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                    return Ok(None);
                }
                self.bom_pending = false;
                if self.buf.starts_with(BOM) {
                    self.buf.advance(BOM.len());
                }
            }

            let Some(pos) = find_line_end(&self.buf[self.scan..]) else {
                self.scan = self.buf.len();
                if self.block_bytes.saturating_add(self.buf.len()) > self.limit {
                    return Err(self.fail());
                }
                return Ok(None);
            };
            let end = self.scan + pos;
            self.scan = 0;
            let consumed = if self.buf[end] == b'\n' {
                end + 1
            } else if end + 1 == self.buf.len() {
                // A CR as the last byte received: the line is complete, but an LF arriving next
                // is part of this line end.
                self.skip_lf = true;
                end + 1
            } else if self.buf[end + 1] == b'\n' {
                end + 2
            } else {
                end + 1
            };

            if end == 0 {
                self.buf.advance(consumed);
                if let Some(ev) = self.dispatch() {
                    return Ok(Some(ev));
                }
                continue;
            }

            self.block_bytes = self.block_bytes.saturating_add(consumed);
            if self.block_bytes > self.limit {
                return Err(self.fail());
            }
            self.process_line(end, consumed);
        }
    }

    /// Call at end of input. Returns true when there were pending, undispatched bytes or fields
    /// (a truncated stream: per spec the incomplete event is discarded, but the caller may want
    /// to treat it as a dropped connection). Also true after an [`SseError`], or when complete
    /// events were fed but not yet taken with [`next_event`](Self::next_event).
    ///
    /// Afterwards the decoder is ready for a new stream.
    pub fn finish(&mut self) -> bool {
        if self.skip_lf && self.buf.first() == Some(&b'\n') {
            self.buf.advance(1);
        }
        let pending = self.failed || self.block_has_fields || !self.buf.is_empty();
        self.buf.clear();
        self.scan = 0;
        self.skip_lf = false;
        self.bom_pending = true;
        self.event = None;
        self.data = DataBuf::None;
        self.block_bytes = 0;
        self.block_has_fields = false;
        self.failed = false;
        pending
    }

    /// Interpret the non-empty line `buf[..end]`, then drop it and its line end
    /// (`buf[..consumed]`).
    fn process_line(&mut self, end: usize, consumed: usize) {
        let line = &self.buf[..end];
        let colon = line.iter().position(|&b| b == b':');
        if colon == Some(0) {
            self.buf.advance(consumed);
            return;
        }
        self.block_has_fields = true;
        let (name_end, value_start) = match colon {
            Some(c) if line.get(c + 1) == Some(&b' ') => (c, c + 2),
            Some(c) => (c, c + 1),
            None => (end, end),
        };
        let value = &line[value_start..end];
        match &line[..name_end] {
            b"data" => match &mut self.data {
                DataBuf::None => {
                    let line = self.buf.split_to(consumed).freeze();
                    self.data = DataBuf::One(line.slice(value_start..end));
                    return;
                }
                DataBuf::One(first) => {
                    let mut joined = BytesMut::with_capacity(first.len() + 1 + value.len());
                    joined.extend_from_slice(first);
                    joined.put_u8(b'\n');
                    joined.extend_from_slice(value);
                    self.data = DataBuf::Many(joined);
                }
                DataBuf::Many(joined) => {
                    joined.put_u8(b'\n');
                    joined.extend_from_slice(value);
                }
            },
            b"event" => self.event = Some(lossy_string(value)),
            // `id`, `retry` and unknown fields.
            _ => {}
        }
        self.buf.advance(consumed);
    }

    /// A blank line: end the current block, returning its event if it had data.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        self.block_bytes = 0;
        self.block_has_fields = false;
        let data = match std::mem::take(&mut self.data) {
            DataBuf::None => return None,
            DataBuf::One(data) => data,
            DataBuf::Many(joined) => joined.freeze(),
        };
        Some(SseEvent {
            event: event.filter(|e| !e.is_empty()),
            data: utf8_lossy(data),
        })
    }

    /// Enter the failed state, freeing the buffers.
    fn fail(&mut self) -> SseError {
        self.failed = true;
        self.buf = BytesMut::new();
        self.scan = 0;
        self.data = DataBuf::None;
        self.event = None;
        self.too_large()
    }

    /// The error for this decoder's limit.
    fn too_large(&self) -> SseError {
        SseError::EventTooLarge { limit: self.limit }
    }
}

/// The position of the first LF or CR in `bytes`, eight bytes at a time.
fn find_line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `word` that equals `byte`. Bits above the first match can be
    // false positives (borrows), so only the lowest set bit is used.
    let matches = |word: u64, byte: u8| {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let hits = matches(word, b'\n') | matches(word, b'\r');
        if hits != 0 {
            return Some(offset + (hits.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map(|p| offset + p)
}

/// `bytes` as a String, invalid UTF-8 replaced (the valid case checked on the fast path).
fn lossy_string(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// `data` unchanged when it is valid UTF-8 (the usual case, no copy), else a lossy copy.
fn utf8_lossy(data: Bytes) -> Bytes {
    match std::str::from_utf8(&data) {
        Ok(_) => data,
        Err(_) => Bytes::from(String::from_utf8_lossy(&data).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: Bytes::copy_from_slice(data.as_bytes()),
        }
    }

    /// Feed `chunks` one by one, draining after each; returns the events and `finish()`.
    fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<SseEvent>, bool) {
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            dec.feed(chunk);
            while let Some(e) = dec.next_event().unwrap() {
                out.push(e);
            }
        }
        let truncated = dec.finish();
        (out, truncated)
    }

    fn decode(input: &[u8]) -> (Vec<SseEvent>, bool) {
        decode_chunks([input])
    }

    fn bytewise(input: &[u8]) -> (Vec<SseEvent>, bool) {
        decode_chunks(input.chunks(1))
    }

    #[test]
    fn lf_line_ends() {
        let input = b"event: a\ndata: one\n\ndata: two\n\n";
        let want = vec![ev(Some("a"), "one"), ev(None, "two")];
        assert_eq!(decode(input), (want.clone(), false));
        assert_eq!(bytewise(input), (want, false));
    }

    #[test]
    fn cr_line_ends() {
        let input = b"event: a\rdata: one\r\rdata: two\r\r";
        let want = vec![ev(Some("a"), "one"), ev(None, "two")];
        assert_eq!(decode(input), (want.clone(), false));
        assert_eq!(bytewise(input), (want, false));
    }

    #[test]
    fn crlf_line_ends() {
        let input = b"event: a\r\ndata: one\r\n\r\ndata: two\r\n\r\n";
        let want = vec![ev(Some("a"), "one"), ev(None, "two")];
        assert_eq!(decode(input), (want.clone(), false));
        assert_eq!(bytewise(input), (want, false));
    }

    #[test]
    fn mixed_line_ends() {
        // The trailing lone CR is one more blank line, which dispatches nothing.
        let input = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\n\n\r";
        let want = vec![ev(None, "a\nb\nc"), ev(None, "d")];
        assert_eq!(decode(input), (want.clone(), false));
        assert_eq!(bytewise(input), (want, false));
    }

    #[test]
    fn cr_and_lf_split_across_chunks_is_one_line_end() {
        // If the LF were a second line end, the first blank line would dispatch "x" early and
        // "y" would be a separate event.
        let (events, truncated) =
            decode_chunks([&b"data: x\r"[..], b"\ndata: y\r", b"\n\r", b"\n"]);
        assert_eq!(events, vec![ev(None, "x\ny")]);
        assert!(!truncated);

        // A CR at a chunk end followed by a non-LF byte: the CR alone ends the line.
        let (events, _) = decode_chunks([&b"data: x\r"[..], b"\r"]);
        assert_eq!(events, vec![ev(None, "x")]);
    }

    #[test]
    fn cr_at_chunk_end_dispatches_without_waiting() {
        let mut dec = SseDecoder::new();
        dec.feed(b"data: x\r\r");
        assert_eq!(dec.next_event().unwrap(), Some(ev(None, "x")));
        dec.feed(b"\ndata: y\n\n");
        assert_eq!(dec.next_event().unwrap(), Some(ev(None, "y")));
        assert_eq!(dec.next_event().unwrap(), None);
        assert!(!dec.finish());
    }

    #[test]
    fn comments_ignored() {
        let input = b": hello\n:\ndata: a\n: inside\ndata: b\n\n: keepalive\n\n";
        assert_eq!(decode(input), (vec![ev(None, "a\nb")], false));
    }

    #[test]
    fn multi_line_data_joined_with_lf() {
        let input = "data: {\"a\":\ndata:  1}\ndata:\ndata: é\n\n".as_bytes();
        assert_eq!(decode(input).0, vec![ev(None, "{\"a\":\n 1}\n\né")]);
    }

    #[test]
    fn data_without_space_and_only_one_space_stripped() {
        let input = b"data:x\n\ndata:  y\n\ndata:\n\n";
        assert_eq!(
            decode(input).0,
            vec![ev(None, "x"), ev(None, " y"), ev(None, "")]
        );
    }

    #[test]
    fn field_without_colon_has_empty_value() {
        // `data` alone is a data line with an empty value; `event` alone is the default type.
        let input = b"event: x\nevent\ndata\n\n";
        assert_eq!(decode(input).0, vec![ev(None, "")]);
        let input = b"data\ndata\n\n";
        assert_eq!(decode(input).0, vec![ev(None, "\n")]);
    }

    #[test]
    fn unknown_fields_and_case_ignored() {
        let input = b"foo: bar\nData: no\nEVENT: no\ndata: yes\n\n";
        assert_eq!(decode(input).0, vec![ev(None, "yes")]);
    }

    #[test]
    fn event_name_reset_after_dispatch() {
        let input = b"event: first\ndata: 1\n\ndata: 2\n\n";
        assert_eq!(decode(input).0, vec![ev(Some("first"), "1"), ev(None, "2")]);
    }

    #[test]
    fn block_without_data_not_dispatched_and_resets_event() {
        let input = b"event: lonely\n\ndata: after\n\nevent: x\nretry: 5\n\n";
        let (events, truncated) = decode(input);
        assert_eq!(events, vec![ev(None, "after")]);
        assert!(!truncated);
    }

    #[test]
    fn id_and_retry_lines_are_ignored() {
        let input = b"id: 1\nretry: 1500\ndata: a\n\nid: bad\0id\ndata: b\n\nretry: 12x\nid\ndata: c\n\nretry: 5\nid: z\n\n";
        let (events, truncated) = decode(input);
        assert_eq!(events, vec![ev(None, "a"), ev(None, "b"), ev(None, "c")]);
        assert!(!truncated);
        assert_eq!(bytewise(input), (events, false));
    }

    #[test]
    fn leading_bom_skipped_once() {
        let input = b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n";
        let want = vec![ev(None, "a")];
        // The second BOM is not at the stream start, so "\u{FEFF}data" is an unknown field.
        assert_eq!(decode(input), (want.clone(), false));
        assert_eq!(bytewise(input), (want, false));
        // Without the skip, the first line's field name would be "\u{FEFF}data".
        assert_eq!(
            decode_chunks([&b"\xEF"[..], b"\xBB", b"\xBF", b"data: a\n\n"]).0,
            vec![ev(None, "a")]
        );
        // A partial BOM at the start that turns out not to be one is kept as bytes.
        assert_eq!(decode(b"\xEFdata: a\n\ndata: b\n\n").0, vec![ev(None, "b")]);
    }

    #[test]
    fn multibyte_utf8_split_across_chunks() {
        let input = "event: ünï\ndata: 😀€é\n\n".as_bytes();
        let want = vec![ev(Some("ünï"), "😀€é")];
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(
                decode_chunks([a, b]),
                (want.clone(), false),
                "split {split}"
            );
        }
        assert_eq!(bytewise(input), (want, false));
    }

    #[test]
    fn invalid_utf8_replaced_without_panic() {
        let input = b"event: a\xFFb\ndata: x\xC3\ndata: \xF0\x9F\x98\n\nid: \x80\ndata\xFE: q\ndata: \xE2\x82\n\n";
        let (events, truncated) = decode(input);
        assert!(!truncated);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(events[0].data, "x\u{FFFD}\n\u{FFFD}".as_bytes());
        assert_eq!(events[1].data, "\u{FFFD}".as_bytes());
        for e in &events {
            assert!(std::str::from_utf8(&e.data).is_ok());
        }
        assert_eq!(bytewise(input), (events, false));
    }

    #[test]
    fn truncated_final_event_not_emitted_and_reported() {
        // Missing blank line.
        let (events, truncated) = decode(b"data: a\n\ndata: b\n");
        assert_eq!(events, vec![ev(None, "a")]);
        assert!(truncated);
        // Missing line end.
        let (events, truncated) = decode(b"data: a\n\ndata: {\"partial");
        assert_eq!(events, vec![ev(None, "a")]);
        assert!(truncated);
        // A field without data is still a pending field.
        assert!(decode(b"event: x\n").1);
        // Clean ends: after a blank line, after a CR whose LF never came, after a comment.
        assert!(!decode(b"data: a\n\n").1);
        assert!(!decode(b"data: a\r\r").1);
        assert!(!decode(b"data: a\n\n: ping\n").1);
        assert!(!decode(b"").1);
    }

    #[test]
    fn finish_resets_for_a_new_stream() {
        let mut dec = SseDecoder::new();
        dec.feed(b"id: 7\ndata: half");
        assert_eq!(dec.next_event().unwrap(), None);
        assert!(dec.finish());
        dec.feed(b"\xEF\xBB\xBFdata: new\n\n");
        let e = dec.next_event().unwrap().unwrap();
        assert_eq!(e.data, &b"new"[..]);
        assert!(!dec.finish());
    }

    #[test]
    fn size_limit() {
        // An event within the limit passes.
        let mut dec = SseDecoder::with_max_event_size(32);
        dec.feed(b"data: 0123456789\n\n");
        assert_eq!(dec.next_event().unwrap(), Some(ev(None, "0123456789")));

        // A never-ending line errors instead of growing.
        dec.feed(&[b'x'; 20]);
        assert_eq!(dec.next_event().unwrap(), None);
        dec.feed(&[b'x'; 20]);
        let err = dec.next_event().unwrap_err();
        assert_eq!(err, SseError::EventTooLarge { limit: 32 });
        assert!(err.to_string().contains("32"));
        // Sticky, and later bytes are not buffered.
        dec.feed(b"\n\ndata: ok\n\n");
        assert_eq!(dec.next_event(), Err(SseError::EventTooLarge { limit: 32 }));
        assert!(dec.buf.is_empty());
        assert!(dec.finish());

        // Many short data lines count too.
        let mut dec = SseDecoder::with_max_event_size(32);
        dec.feed(b"data: aaaa\ndata: bbbb\ndata: cccc\ndata: dddd\n\n");
        assert!(dec.next_event().is_err());

        // The default limit is 16 MiB.
        assert_eq!(SseDecoder::default().limit, 16 * 1024 * 1024);
    }

    #[test]
    fn done_is_plain_data() {
        let (events, truncated) = decode(b"data: [DONE]\n\n");
        assert_eq!(events, vec![ev(None, "[DONE]")]);
        assert!(!truncated);
    }

    #[test]
    fn line_end_search_matches_a_plain_scan() {
        let plain = |b: &[u8]| b.iter().position(|&c| c == b'\n' || c == b'\r');
        let mut bytes: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        assert_eq!(find_line_end(&bytes), None);
        for at in 0..bytes.len() {
            for end in [b'\n', b'\r'] {
                let saved = bytes[at];
                bytes[at] = end;
                for start in 0..=at {
                    assert_eq!(find_line_end(&bytes[start..]), plain(&bytes[start..]));
                }
                // A later line end, and bytes that differ from LF / CR by one bit or a borrow.
                for other in [0x0B, 0x0C, 0x0E, 0x8A, 0x8D, 0x00, 0xFF] {
                    let mut b = bytes.clone();
                    b[..at].iter_mut().for_each(|c| *c = other);
                    assert_eq!(find_line_end(&b), plain(&b), "{other:#x} {at}");
                }
                bytes[at] = saved;
            }
        }
    }

    #[test]
    fn single_data_line_is_zero_copy() {
        let mut dec = SseDecoder::new();
        dec.feed(b"event: e\ndata: {\"a\":1}\n\ndata: second\n\ndata: x\ndata: y\n\n");
        // `next_event` only splits and advances the buffer; it never reallocates it.
        let base = dec.buf.as_ptr() as usize;
        let one = dec.next_event().unwrap().unwrap();
        assert_eq!(one.data, &b"{\"a\":1}"[..]);
        assert_eq!(one.data.as_ptr() as usize, base + b"event: e\ndata: ".len());
        let two = dec.next_event().unwrap().unwrap();
        assert_eq!(two.data, &b"second"[..]);
        assert_eq!(
            two.data.as_ptr() as usize,
            base + b"event: e\ndata: {\"a\":1}\n\ndata: ".len()
        );
        // Multi-line data is joined into a new buffer.
        let three = dec.next_event().unwrap().unwrap();
        assert_eq!(three.data, &b"x\ny"[..]);
    }

    /// One generated event plus how to write it.
    #[derive(Debug, Clone)]
    struct Gen {
        event: Option<String>,
        data: Vec<String>,
        id: Option<String>,
        retry: Option<u64>,
        /// Write `event`/`id`/`retry` after the data lines instead of before.
        fields_last: bool,
        /// Per data line: write `data:` without the space (only when the value does not start
        /// with a space).
        no_space: Vec<bool>,
        /// Comment lines before the block.
        comments: Vec<String>,
    }

    fn gen_event() -> impl Strategy<Value = Gen> {
        let text = "[a-z0-9 :{}\"é€😀\u{FEFF}\u{0}]{0,12}";
        (
            proptest::option::of("[A-Za-z0-9._ü-]{1,12}"),
            proptest::collection::vec(text, 1..4),
            proptest::option::of("[a-z0-9€]{1,6}"),
            proptest::option::of(any::<u64>()),
            any::<bool>(),
            proptest::collection::vec(any::<bool>(), 4),
            proptest::collection::vec("[ -~é]{0,10}", 0..3),
        )
            .prop_map(
                |(event, data, id, retry, fields_last, no_space, comments)| Gen {
                    event,
                    data,
                    id,
                    retry,
                    fields_last,
                    no_space,
                    comments,
                },
            )
    }

    /// Encode with line ends picked from `ends` in turn; returns the bytes.
    fn encode(events: &[Gen], bom: bool, ends: &[u8]) -> Vec<u8> {
        let mut lines: Vec<String> = Vec::new();
        for g in events {
            for c in &g.comments {
                lines.push(format!(":{c}"));
            }
            let mut fields = Vec::new();
            if let Some(e) = &g.event {
                fields.push(format!("event: {e}"));
            }
            if let Some(id) = &g.id {
                fields.push(format!("id:{id}"));
            }
            if let Some(r) = g.retry {
                fields.push(format!("retry: {r}"));
            }
            let data = g.data.iter().enumerate().map(|(i, d)| {
                if g.no_space[i] && !d.starts_with(' ') {
                    format!("data:{d}")
                } else {
                    format!("data: {d}")
                }
            });
            if g.fields_last {
                lines.extend(data);
                lines.extend(fields);
            } else {
                lines.extend(fields);
                lines.extend(data);
            }
            lines.push(String::new());
        }
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice(BOM);
        }
        let mut prev_cr = false;
        for (i, line) in lines.iter().enumerate() {
            out.extend_from_slice(line.as_bytes());
            let mut end: &[u8] = match ends[i % ends.len()] % 3 {
                0 => b"\n",
                1 => b"\r",
                _ => b"\r\n",
            };
            // "\r" then an empty line ended by "\n" would read as one CRLF line end.
            if prev_cr && line.is_empty() && end == b"\n" {
                end = b"\r\n";
            }
            out.extend_from_slice(end);
            prev_cr = end == b"\r";
        }
        out
    }

    /// What the decoder must give for `events` (their `id` and `retry` lines are ignored).
    fn expected(events: &[Gen]) -> Vec<SseEvent> {
        events
            .iter()
            .map(|g| SseEvent {
                event: g.event.clone(),
                data: Bytes::from(g.data.join("\n")),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn roundtrip_with_arbitrary_splits(
            events in proptest::collection::vec(gen_event(), 0..6),
            bom in any::<bool>(),
            ends in proptest::collection::vec(any::<u8>(), 1..16),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let bytes = encode(&events, bom, &ends);
            let want = expected(&events);

            let whole = decode(&bytes);
            prop_assert_eq!(&whole, &(want.clone(), false));

            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            at.push(0);
            at.push(bytes.len());
            at.sort_unstable();
            at.dedup();
            let chunks = at.windows(2).map(|w| &bytes[w[0]..w[1]]);
            prop_assert_eq!(&decode_chunks(chunks), &whole);

            prop_assert_eq!(&bytewise(&bytes), &whole);
        }
    }
}
