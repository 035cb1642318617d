//! gzip-compressed payloads (CloudWatch Logs subscriptions, producers that compress).

use std::io::Read;

use flate2::read::MultiGzDecoder;

use super::DecodeError;

/// The two bytes every gzip member starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// Cap on the decompressed size of one payload. A Kinesis record is at most 1 MiB (10 MiB on
/// newer streams); gzip can inflate that over a thousandfold, so without a cap one hostile record
/// could take all memory.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// Whether `data` starts with the gzip magic.
pub(super) fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&GZIP_MAGIC)
}

/// Inflates `data` (one or more concatenated gzip members), refusing to produce more than `limit`
/// bytes.
pub(super) fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(size_hint(data, limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(data)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(DecodeError::Gzip)?;
    if out.len() > limit {
        return Err(DecodeError::GzipTooLarge { limit });
    }
    Ok(out)
}

/// The last member's ISIZE trailer (size mod 2^32) as a first allocation, never above `limit` and
/// never trusted for anything else.
fn size_hint(data: &[u8], limit: usize) -> usize {
    let Some(trailer) = data
        .len()
        .checked_sub(4)
        .and_then(|start| data.get(start..))
    else {
        return 0;
    };
    let isize = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    usize::try_from(isize)
        .unwrap_or(0)
        .min(limit)
        .min(data.len().saturating_mul(64))
}

#[cfg(test)]
pub(super) fn compress(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let plain = br#"{"a":1}"#.repeat(100);
        let packed = compress(&plain);
        assert!(is_gzip(&packed));
        assert_eq!(decompress(&packed, 1 << 20).unwrap(), plain);
    }

    #[test]
    fn concatenated_members_are_all_read() {
        let mut packed = compress(b"{\"a\":1}\n");
        packed.extend(compress(b"{\"a\":2}\n"));
        assert_eq!(
            decompress(&packed, 1 << 20).unwrap(),
            b"{\"a\":1}\n{\"a\":2}\n"
        );
    }

    #[test]
    fn bomb_is_refused_at_the_limit() {
        let packed = compress(&vec![b' '; 10_000]);
        assert_eq!(decompress(&packed, 10_000).unwrap().len(), 10_000);
        let error = decompress(&packed, 9_999).unwrap_err();
        assert!(matches!(error, DecodeError::GzipTooLarge { limit: 9_999 }));
        assert_eq!(
            error.to_string(),
            "gzip: decompressed size exceeds the limit of 9999 bytes"
        );
    }

    #[test]
    fn corrupt_stream_has_a_reason() {
        let mut packed = compress(br#"{"a":1}"#);
        let middle = packed.len() / 2;
        packed.truncate(middle);
        let error = decompress(&packed, 1 << 20).unwrap_err();
        assert!(
            error.to_string().starts_with("gzip: corrupt stream: "),
            "{error}"
        );
    }
}
