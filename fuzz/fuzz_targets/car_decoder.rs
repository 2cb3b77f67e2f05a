//! Fuzz target: `hydrant_car::CarDecoder` on arbitrary bytes pushed in arbitrary chunks.
//!
//! Input layout: byte 0 chooses the chunking (see [`Chunks`]), the rest is the CAR stream.
//! Checks:
//! - no panic in `push`, `next_event`, `finish`, `verify_block`;
//! - the first event is a header, later ones are sections, with increasing offsets and
//!   `data` within `Limits::max_block_size`;
//! - after an error, `next_event` and `finish` keep returning that same error, also after
//!   more input is pushed;
//! - the result does not depend on chunking: the same events and the same final result as
//!   when the whole stream is pushed at once.
#![no_main]

use hydrant_car::{CarDecoder, CarError, Event, Limits, verify_block};
use libfuzzer_sys::fuzz_target;

/// Chunk sizes derived from one seed byte: the low 4 bits give the largest chunk
/// (`1 << bits` bytes: 1 byte at a time up to 32 KiB) and the whole byte seeds a xorshift
/// generator. About one chunk in 16 is empty on purpose.
struct Chunks {
    state: u32,
    max: usize,
}

impl Chunks {
    fn new(seed: u8) -> Self {
        Chunks {
            state: 0x9E37_79B9 ^ (u32::from(seed) << 8 | u32::from(seed)),
            max: 1usize << (seed & 0x0f),
        }
    }

    fn next_len(&mut self) -> usize {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        if x % 16 == 0 {
            0
        } else {
            1 + (x as usize >> 4) % self.max
        }
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    /// The first error from `next_event` or `finish`, or `Ok` when `finish` succeeded.
    end: Result<(), CarError>,
}

/// Drains every event; returns the first error, if any.
fn drain(dec: &mut CarDecoder, events: &mut Vec<Event>) -> Result<(), CarError> {
    loop {
        match dec.next_event() {
            Ok(Some(ev)) => {
                check_event(events, &ev);
                if let Event::Section(s) = &ev {
                    let _ = verify_block(&s.cid, &s.data);
                }
                events.push(ev);
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn check_event(previous: &[Event], ev: &Event) {
    match (previous.last(), ev) {
        (None, Event::Header(_)) => {}
        (None, Event::Section(_)) => panic!("first event is a section"),
        (Some(_), Event::Header(_)) => panic!("second header event"),
        (Some(prev), Event::Section(s)) => {
            assert!(s.data.len() <= Limits::default().max_block_size);
            assert!(s.data_offset > s.section_offset, "data before section start");
            if let Event::Section(p) = prev {
                assert!(
                    s.section_offset >= p.data_offset + p.data.len() as u64,
                    "sections overlap"
                );
            }
        }
    }
}

/// The decoder is stuck after an error: every later call returns the same error.
fn check_stuck(dec: &mut CarDecoder, err: &CarError, rest: &[u8]) {
    assert_eq!(dec.next_event().as_ref().err(), Some(err), "next_event after error");
    dec.push(rest);
    dec.push(b"\x00\x01garbage");
    assert_eq!(dec.next_event().as_ref().err(), Some(err), "next_event after error+push");
    assert_eq!(dec.finish().as_ref().err(), Some(err), "finish after error");
    assert_eq!(dec.next_event().as_ref().err(), Some(err), "next_event after finish");
}

fn decode(car: &[u8], seed: Option<u8>) -> Outcome {
    let mut dec = CarDecoder::new(Limits::default());
    let mut events = Vec::new();
    let mut rest = car;
    let mut chunks = seed.map(Chunks::new);
    let mut consumed = 0u64;
    while !rest.is_empty() || chunks.is_none() {
        let n = match &mut chunks {
            Some(c) => c.next_len().min(rest.len()),
            None => rest.len(),
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        dec.push(chunk);
        let r = drain(&mut dec, &mut events);
        let now = dec.bytes_consumed();
        assert!(now >= consumed, "bytes_consumed went backwards");
        assert!(now <= (car.len() - rest.len()) as u64, "consumed more than pushed");
        consumed = now;
        if let Err(e) = r {
            check_stuck(&mut dec, &e, rest);
            return Outcome { events, end: Err(e) };
        }
        if chunks.is_none() {
            break;
        }
    }
    let end = dec.finish();
    match &end {
        Err(e) => check_stuck(&mut dec, e, &[]),
        Ok(()) => {
            // After a successful finish: no more events, finish is idempotent.
            assert_eq!(dec.next_event(), Ok(None), "event after finish");
            assert_eq!(dec.finish(), Ok(()), "second finish");
        }
    }
    Outcome { events, end }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, car)) = data.split_first() else {
        return;
    };
    let chunked = decode(car, Some(seed));
    let whole = decode(car, None);
    assert_eq!(chunked, whole, "result depends on chunking (seed {seed})");
});
