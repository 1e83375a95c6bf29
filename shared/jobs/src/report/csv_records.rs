//! The CSV reader of a report: records parsed from a stream of chunks,
//! bounded in length, with errors that name the line.

use bytes::Bytes;

use longrun_core::record::{codes, shorten, JobError};

use super::*;

/// Error code: the CSV is not readable as CSV (not UTF-8 where it must
/// be, or a record with another number of fields than the header).
pub(super) const INVALID_CSV: &str = "invalid_csv";

/// Reads CSV records one at a time, with `csv_core`, straight from the
/// chunks of the input (no buffer between them and the parser), and holds
/// at most `max_record_bytes` of one record: a record is its cells' bytes
/// plus the commas between them (what the parser keeps of it; the quotes
/// around quoted cells and the line break ending it do not count), and one
/// running past the limit fails the read (`csv_record_too_long`) as soon
/// as the parser has that much of it, before it reads further. The syntax
/// is RFC 4180 as the `csv` crate reads it (`,`, `"` quoting with doubled
/// quotes, `\r`/`\n`/`\r\n` ending records, blank lines skipped, a UTF-8
/// byte order mark at the start dropped).
pub(super) struct CsvRecords<C> {
    /// The input, in order; an error is the input failing at that point.
    pub(super) chunks: C,
    /// What is left of the chunk being parsed.
    pub(super) current: Bytes,
    /// Set once `chunks` has ended: the parser is then told so.
    pub(super) input_ended: bool,
    pub(super) parser: csv_core::Reader,
    pub(super) max_record_bytes: usize,
    /// The current record's cells, one after the other.
    pub(super) cells: Vec<u8>,
    /// Where each cell of the current record ends in `cells`.
    pub(super) ends: Vec<usize>,
    /// How many cells the current record has.
    pub(super) len: usize,
    /// The line the current record starts on (1 is the first; blank lines
    /// before a record count as its start, as the `csv` crate counts them).
    pub(super) line: u64,
    /// Bytes of the input the parser has taken, from the object's start.
    consumed: u64,
}

impl<C: Iterator<Item = std::io::Result<Bytes>>> CsvRecords<C> {
    pub(super) fn new(chunks: C, max_record_bytes: usize) -> Self {
        CsvRecords {
            chunks,
            current: Bytes::new(),
            input_ended: false,
            parser: csv_core::Reader::new(),
            max_record_bytes,
            cells: vec![0; 1024.min(max_record_bytes + 1)],
            ends: vec![0; 64.min(max_record_bytes + 1)],
            len: 0,
            line: 1,
            consumed: 0,
        }
    }

    /// A reader of an input whose chunks start at byte `offset`, where a
    /// reader of the whole input stood between two records
    /// ([`position`](Self::position)), on line `line`: it reads what that
    /// reader would have read from there, with the same line numbers.
    pub(super) fn resume(chunks: C, max_record_bytes: usize, offset: u64, line: u64) -> Self {
        let mut reader = Self::new(chunks, max_record_bytes);
        // A blank line, which the parser skips, so it has read something
        // (no byte order mark is looked for past the start) and has counted
        // up to `line`; a `\n` left of a `\r\n` is the same blank line.
        reader.parser.set_line(line.saturating_sub(1));
        let (_, read, _, _) = reader.parser.read_record(b"\n", &mut reader.cells, &mut reader.ends);
        debug_assert_eq!(read, 1);
        reader.consumed = offset;
        reader
    }

    /// Where the reader stands between records: the byte offset of what
    /// it has not read yet, and the line it is on. A reader
    /// [`resume`](Self::resume)d there reads the records that follow.
    pub(super) fn position(&self) -> (u64, u64) {
        (self.consumed, self.parser.line())
    }

    /// Reads the next record: false at the end of the input. A reading
    /// error is retryable (`storage`); a record past the limit is not.
    pub(super) fn next_record(&mut self) -> Result<bool, JobError> {
        use csv_core::ReadRecordResult;
        self.line = self.parser.line();
        self.len = 0;
        let (mut cell_bytes, mut cells) = (0, 0);
        loop {
            // An empty input tells the parser the input has ended, so it
            // gets one only then.
            while self.current.is_empty() && !self.input_ended {
                match self.chunks.next() {
                    Some(Ok(chunk)) => self.current = chunk,
                    Some(Err(err)) => return Err(read_error(err)),
                    None => self.input_ended = true,
                }
            }
            // Room for at most one byte (or cell) past the limit, so a
            // record is found too long having held no more than that.
            let room = self.max_record_bytes + 1 - (cell_bytes + cells).min(self.max_record_bytes + 1);
            let cells_end = self.cells.len().min(cell_bytes + room);
            let ends_end = self.ends.len().min(cells + room);
            let (result, read, written, ended) = self.parser.read_record(
                &self.current,
                &mut self.cells[cell_bytes..cells_end],
                &mut self.ends[cells..ends_end],
            );
            bytes::Buf::advance(&mut self.current, read);
            self.consumed += read as u64;
            cell_bytes += written;
            cells += ended;
            // Mid-record, each cell ended so far was followed by a comma;
            // a whole record has one comma fewer than cells.
            let held = cell_bytes + cells - usize::from(result == ReadRecordResult::Record);
            if held > self.max_record_bytes {
                return Err(JobError::permanent(
                    CSV_RECORD_TOO_LONG,
                    format!(
                        "the CSV record starting at line {} is longer than {} bytes (MAX_CSV_RECORD_BYTES)",
                        self.line, self.max_record_bytes
                    ),
                ));
            }
            match result {
                ReadRecordResult::Record => {
                    self.len = cells;
                    return Ok(true);
                }
                ReadRecordResult::End => return Ok(false),
                ReadRecordResult::InputEmpty => {}
                // Full below the limit (above it is an error, just above).
                ReadRecordResult::OutputFull => grow(&mut self.cells, self.max_record_bytes + 1),
                ReadRecordResult::OutputEndsFull => grow(&mut self.ends, self.max_record_bytes + 1),
            }
        }
    }

    /// How many cells the current record has.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Cell `i` of the current record (empty past its end).
    pub(super) fn cell(&self, i: usize) -> &[u8] {
        if i >= self.len {
            return b"";
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.cells[start..self.ends[i]]
    }
}

/// Doubles `buffer`, to at most `max` items.
pub(super) fn grow<T: Default + Clone>(buffer: &mut Vec<T>, max: usize) {
    let len = (buffer.len() * 2).clamp(1, max.max(1));
    buffer.resize(len, T::default());
}

/// An error reading the input as a job error: worth another attempt (a
/// broken connection to S3).
pub(super) fn read_error(err: std::io::Error) -> JobError {
    JobError::retryable(codes::STORAGE, format!("reading the input failed: {err}"))
}

/// A short, quoted excerpt of a cell or column name for an error message.
pub(super) fn excerpt(text: &str) -> String {
    format!("{:?}", shorten(text, MAX_EXCERPT_BYTES))
}

/// A cell the report uses, as text trimmed of whitespace (Unicode's, as a
/// no-break space from a spreadsheet export); a cell that is not UTF-8 is
/// invalid CSV.
pub(super) fn utf8_cell<'a>(cell: &'a [u8], column: &str, line: u64) -> Result<&'a str, JobError> {
    std::str::from_utf8(cell).map(str::trim).map_err(|_| {
        JobError::permanent(
            INVALID_CSV,
            format!("line {line}, column {}: the cell is not UTF-8", excerpt(column)),
        )
    })
}

pub(super) fn column_index(headers: &[String], name: &str) -> Result<usize, JobError> {
    headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
        let mut listed: Vec<String> = headers.iter().take(MAX_LISTED_COLUMNS).map(|h| excerpt(h)).collect();
        if headers.len() > MAX_LISTED_COLUMNS {
            listed.push(format!("and {} more", headers.len() - MAX_LISTED_COLUMNS));
        }
        JobError::permanent(
            "missing_column",
            format!(
                "the CSV has no column {} (columns: {})",
                excerpt(name),
                listed.join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// The chunks of `text`, cut at random lengths from 1 to 64 bytes.
    fn random_chunks(text: &[u8], next: &mut impl FnMut() -> u64) -> Vec<std::io::Result<Bytes>> {
        let mut chunks = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let take = (1 + (next() % 64) as usize).min(rest.len());
            let (chunk, tail) = rest.split_at(take);
            chunks.push(Ok(Bytes::copy_from_slice(chunk)));
            rest = tail;
        }
        chunks
    }

    #[test]
    fn the_reader_reads_what_the_csv_crate_reads_and_bounds_records() {
        // Random text over the bytes that matter, fed in random chunks: the
        // records must be the `csv` crate's (cells and starting lines), up to
        // the first whose cells and commas are longer than the cap, which
        // must fail with its line.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"ab,\"\n\r ";
        let mut failures = 0;
        for case in 0..3_000 {
            let len = (next() % 300) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let cap = 1 + (next() % 40) as usize;
            let mut reference = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_slice());
            let mut expected = Vec::new();
            let mut record = csv::ByteRecord::new();
            while reference.read_byte_record(&mut record).unwrap() {
                let cells: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
                let held = cells.iter().map(Vec::len).sum::<usize>() + cells.len() - 1;
                expected.push((record.position().unwrap().line(), cells, held));
            }
            let mut reader = CsvRecords::new(random_chunks(&text, &mut next).into_iter(), cap);
            for (line, cells, held) in &expected {
                let what = format!("case {case}, line {line}: {:?}", String::from_utf8_lossy(&text));
                match reader.next_record() {
                    Ok(true) => {
                        assert!(*held <= cap, "{what}: {held} bytes passed a cap of {cap}");
                        assert_eq!(reader.line, *line, "{what}");
                        let read: Vec<Vec<u8>> = (0..reader.len()).map(|i| reader.cell(i).to_vec()).collect();
                        assert_eq!(&read, cells, "{what}");
                    }
                    Ok(false) => panic!("{what}: ended early"),
                    Err(err) => {
                        assert!(
                            *held > cap,
                            "{what}: {held} bytes failed a cap of {cap}: {}",
                            err.message
                        );
                        assert_eq!(err.code, "csv_record_too_long", "{what}");
                        assert!(
                            err.message.contains(&format!("line {line} ")),
                            "{what}: {}",
                            err.message
                        );
                        failures += 1;
                        break;
                    }
                }
            }
            if expected.iter().all(|(_, _, held)| *held <= cap) {
                assert!(!reader.next_record().unwrap(), "case {case}: a record too many");
            }
        }
        assert!(failures > 100, "the cases must exercise the cap: {failures} failed");
    }

    #[test]
    fn a_reader_resumed_at_any_record_boundary_reads_what_the_whole_reader_reads() {
        // Random CSV (quotes, CR, LF, CRLF, blank lines, a byte order mark at
        // the start and further on), stopped after every record in turn:
        // resumed from its position with only the bytes from there on, the
        // reader reads the same records on the same lines.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces: [&[u8]; 9] = [
            b"a",
            b"b",
            b",",
            b"\"",
            b"\n",
            b"\r",
            b"\r\n",
            b" ",
            "\u{feff}".as_bytes(),
        ];
        let mut resumed_records = 0;
        for case in 0..400 {
            let mut text = Vec::new();
            if next() % 4 == 0 {
                text.extend_from_slice("\u{feff}".as_bytes());
            }
            for _ in 0..(next() % 120) {
                text.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let read_all = |mut reader: CsvRecords<std::vec::IntoIter<std::io::Result<Bytes>>>| {
                let mut records = Vec::new();
                while reader.next_record().unwrap() {
                    let cells: Vec<Vec<u8>> = (0..reader.len()).map(|i| reader.cell(i).to_vec()).collect();
                    records.push((reader.line, cells, reader.position()));
                }
                records
            };
            let whole = read_all(CsvRecords::new(random_chunks(&text, &mut next).into_iter(), 10_000));
            for (i, (_, _, (offset, line))) in whole.iter().enumerate() {
                let rest = &text[*offset as usize..];
                let reader = CsvRecords::resume(random_chunks(rest, &mut next).into_iter(), 10_000, *offset, *line);
                let again = read_all(reader);
                assert_eq!(
                    again,
                    whole[i + 1..],
                    "case {case}, after record {i}: {:?}",
                    String::from_utf8_lossy(&text)
                );
                resumed_records += again.len();
            }
        }
        assert!(
            resumed_records > 10_000,
            "the cases must resume mid-file: {resumed_records}"
        );
    }

    #[test]
    fn the_record_bound_stops_reading_at_the_cap() {
        // An endless record in 64 KiB chunks: the reader fails having taken
        // only the chunks that hold the cap's bytes, and holds no more.
        let pulled = std::cell::Cell::new(0);
        let endless = std::iter::from_fn(|| {
            pulled.set(pulled.get() + 1);
            Some(Ok(Bytes::from(vec![b'x'; 64 * 1024])))
        });
        let cap = 200_000;
        let mut reader = CsvRecords::new(endless, cap);
        let err = reader.next_record().unwrap_err();
        assert_eq!(err.code, "csv_record_too_long");
        assert!(err.message.contains("line 1"), "{}", err.message);
        assert!(pulled.get() <= cap / (64 * 1024) + 1, "{} chunks pulled", pulled.get());
        assert!(reader.cells.len() <= cap + 1, "{} bytes held", reader.cells.len());

        // A reading error is retryable, after the records before it.
        let chunks = vec![
            Ok(Bytes::from_static(b"g,v\na,1\n")),
            Err(std::io::Error::other("connection reset")),
        ];
        let mut reader = CsvRecords::new(chunks.into_iter(), cap);
        assert!(reader.next_record().unwrap());
        assert!(reader.next_record().unwrap());
        assert_eq!(reader.cell(0), b"a");
        let err = reader.next_record().unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), (codes::STORAGE, true));
    }
}
