//! PNG files in and out, values scaled to `[0, 1]` in memory: any PNG read as gray levels (and
//! its transparency, if it has one), 8-bit grayscale written.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::files::atomic::write_atomic;
use crate::files::regular::open_regular;

/// A grayscale image, row-major, values in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    /// Pixel rows.
    pub rows: usize,
    /// Pixel columns.
    pub cols: usize,
    /// `rows · cols` values.
    pub pixels: Vec<f32>,
}

/// Why an image could not be read.
#[derive(Debug, Error)]
#[error("{}: {message}", path.display())]
pub struct PngError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub message: String,
}

/// The bytes a PNG's chunks other than its pixels may take when it is read. Its text and colour
/// profile, which the pixels never use, are skipped ([`decoder`]); what is left (EXIF, say) is
/// small.
const METADATA_BYTES: usize = 64 << 20;

/// The `(rows, cols)` of the PNG at `path`, from its header alone.
pub fn size(path: &Path) -> Result<(usize, usize), PngError> {
    let (file, error) = open(path)?;
    match decoder(file, METADATA_BYTES).read_info() {
        Ok(reader) => Ok((reader.info().height as usize, reader.info().width as usize)),
        // A row too long for the decoder to allocate (70,000,000 pixels wide, say): the size the
        // header states is what the caller refuses it for, not its chunks.
        Err(png::DecodingError::LimitsExceeded) if let Some(size) = stated_size(path) => Ok(size),
        Err(e) => Err(error(header_problem(e))),
    }
}

/// The eight bytes every PNG file starts with.
const SIGNATURE: [u8; 8] = [137, 80, 78, 71, 13, 10, 26, 10];

/// The `(rows, cols)` the header chunk (`IHDR`) at the start of the PNG at `path` states,
/// read off its bytes; `None` if it does not start so.
fn stated_size(path: &Path) -> Option<(usize, usize)> {
    const IHDR: [u8; 8] = [0, 0, 0, 13, b'I', b'H', b'D', b'R'];
    let mut head = [0; 24];
    open_regular(path).ok()?.0.read_exact(&mut head).ok()?;
    let word = |at: usize| u32::from_be_bytes(head[at..at + 4].try_into().expect("4 bytes")) as usize;
    (head[..8] == SIGNATURE && head[8..16] == IHDR).then(|| (word(20), word(16)))
}

/// What every PNG this program writes says in its `Software` text chunk: how `denoise` tells its
/// own earlier results, which it replaces, from a user's images, which it never does.
pub const SOFTWARE: &str = "dae";

/// Whether `path` holds something other than a PNG this program wrote ([`SOFTWARE`]; an older
/// dae did not mark its PNGs): `false` where there is nothing to lose (nothing there, an empty
/// file) or no regular file (a folder, a FIFO: the caller refuses those itself); `true` for a
/// file there that cannot be read.
pub fn holds_what_dae_did_not_write(path: &Path) -> bool {
    let file = match open_regular(path) {
        Ok((_, 0)) => return false,
        Ok((file, _)) => file,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => return false,
        Err(_) => return std::fs::symlink_metadata(path).is_ok(),
    };
    // A PNG's text chunks before its pixels are read with its header; ours is a few bytes.
    let mut decoder = png::Decoder::new_with_limits(BufReader::new(file), png::Limits { bytes: 1 << 20 });
    decoder.set_ignore_iccp_chunk(true);
    match decoder.read_info() {
        Ok(reader) => {
            let texts = &reader.info().uncompressed_latin1_text;
            !texts.iter().any(|t| t.keyword == "Software" && t.text == SOFTWARE)
        }
        Err(_) => true,
    }
}

/// The regular file `path` ([`open_regular`]: a FIFO would block for ever) and a maker of
/// errors naming it.
fn open(path: &Path) -> Result<(File, impl Fn(String) -> PngError), PngError> {
    let error = |message: String| PngError { path: path.to_path_buf(), message };
    let (file, _) = open_regular(path).map_err(|e| error(format!("cannot read: {e}")))?;
    Ok((file, error))
}

/// A decoder of `file` that may allocate `bytes`, and skips the text and colour profile chunks.
fn decoder(file: File, bytes: usize) -> png::Decoder<BufReader<File>> {
    let mut decoder = png::Decoder::new_with_limits(BufReader::new(file), png::Limits { bytes });
    decoder.set_ignore_text_chunk(true);
    decoder.set_ignore_iccp_chunk(true);
    decoder
}

/// What was wrong with a PNG's header and the chunks before its pixels.
fn header_problem(e: png::DecodingError) -> String {
    match e {
        png::DecodingError::LimitsExceeded => {
            format!("its chunks besides the pixels need more than the {} MiB allowed", METADATA_BYTES >> 20)
        }
        e => format!("not a PNG image: {}", named_chunks(e)),
    }
}

/// Any PNG as gray levels: luma by Rec. 601's weights for colour, and the opacity kept apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// The gray levels, row-major, in `[0, 1]`.
    pub gray: Gray,
    /// Each pixel's opacity in `[0, 1]`, for an image with transparency.
    pub alpha: Option<Vec<f32>>,
    /// What the file held, e.g. "RGBA at 8 bits".
    pub kind: String,
}

/// Reads any PNG of at most `max_pixels` pixels — grayscale or colour, with or without
/// transparency, a palette, 1 to 16 bits — as gray levels `Y = 0.299·R + 0.587·G + 0.114·B`
/// (Rec. 601) and its opacity: [`open_picture`], then [`Opened::read`].
pub fn read_picture(path: &Path, max_pixels: usize) -> Result<Picture, PngError> {
    open_picture(path, max_pixels)?.read()
}

/// A PNG whose header has been read, and none of its pixels: what reading it will take is known
/// ([`Opened::bytes`]) before anything is decoded.
pub struct Opened {
    reader: png::Reader<BufReader<File>>,
    path: PathBuf,
}

/// The PNG at `path`, opened, if it has at most `max_pixels` pixels. The size is checked in the
/// header, and the decoder may not allocate more than the image needs: a small file that claims
/// a huge image (a decompression bomb) costs nothing.
pub fn open_picture(path: &Path, max_pixels: usize) -> Result<Opened, PngError> {
    let (file, error) = open(path)?;
    let mut decoder = decoder(file, max_pixels.saturating_mul(8).saturating_add(METADATA_BYTES));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let reader = decoder.read_info().map_err(|e| error(header_problem(e)))?;
    let (cols, rows) = (reader.info().width as usize, reader.info().height as usize);
    if cols.saturating_mul(rows) > max_pixels {
        return Err(error(format!(
            "the image is {cols}×{rows} (width×height); at most {max_pixels} pixels are read"
        )));
    }
    Ok(Opened { reader, path: path.to_path_buf() })
}

impl Opened {
    /// The bytes [`Opened::read`] holds at its peak: the decoded samples (8 bits each, as many a
    /// pixel as the colour type has), and either the decoder's two rows of the file's own
    /// samples (up to 16 bits each) or, once they are gone, the gray levels and the opacity as
    /// `f32`. `denoise`, which counts 15.3 MiB besides for the notebook's model, peaked at 87.8,
    /// 119.9 and 199.6 MiB of RSS on 4096×4096 images in grayscale, RGB and RGBA at 16 bits
    /// (counted 95.3, 127.3, 207.3), and at 200.1 MiB on a row of 2²⁴ RGBA pixels (counted 335.3:
    /// the decoder kept less than its two rows). Intel Xeon model 207, 2026-12-05.
    pub fn bytes(&self) -> u64 {
        let info = self.reader.info();
        let pixels = info.width as u64 * info.height as u64;
        let (color, _) = self.reader.output_color_type();
        let decoded = pixels * color.samples() as u64;
        let rows = 2 * info.raw_row_length() as u64;
        let levels = 4 * pixels * if has_alpha(color) { 2 } else { 1 };
        decoded + rows.max(levels)
    }

    /// Decodes the pixels as gray levels, and the opacity if any pixel is not opaque.
    pub fn read(self) -> Result<Picture, PngError> {
        let Opened { mut reader, path } = self;
        let error = |message: String| PngError { path: path.clone(), message };
        let info = reader.info();
        let (cols, rows) = (info.width as usize, info.height as usize);
        let bits = info.bit_depth as u8;
        let kind =
            format!("{} at {bits} bit{}", color_name(info.color_type), if bits == 1 { "" } else { "s" });
        let mut bytes = vec![0; reader.output_buffer_size().ok_or_else(|| error("too large".into()))?];
        let frame =
            reader.next_frame(&mut bytes).map_err(|e| error(format!("corrupt PNG: {}", named_chunks(e))))?;
        // The decoder's rows go before the gray levels come.
        drop(reader);
        let channels = frame.color_type.samples();
        let pixels = || bytes[..frame.buffer_size()].chunks_exact(channels);
        let level = |b: u8| f32::from(b) / 255.0;
        let gray = pixels().map(|p| match p {
            [y] | [y, _] => level(*y),
            [r, g, b] | [r, g, b, _] => 0.299 * level(*r) + 0.587 * level(*g) + 0.114 * level(*b),
            _ => unreachable!("a PNG pixel has 1 to 4 samples"),
        });
        let gray = gray.collect();
        let opaque = pixels().all(|p| !has_alpha(frame.color_type) || p[channels - 1] == u8::MAX);
        let alpha = (!opaque).then(|| pixels().map(|p| level(p[channels - 1])).collect());
        Ok(Picture { gray: Gray { rows, cols, pixels: gray }, alpha, kind })
    }
}

/// The decoder's message, with a chunk it names by its four letters: the `png` crate prints the
/// debug form of its chunk type ("while decoding ChunkType { type: IDAT, critical: true, … } chunk").
fn named_chunks(e: png::DecodingError) -> String {
    let text = e.to_string();
    const OPEN: &str = "ChunkType { type: ";
    let Some(start) = text.find(OPEN) else { return text };
    let rest = &text[start + OPEN.len()..];
    match (rest.find(','), rest.find('}')) {
        (Some(name), Some(close)) if name < close => {
            format!("{}{}{}", &text[..start], &rest[..name], &rest[close + 1..])
        }
        _ => text,
    }
}

/// Whether pixels of `color` carry an opacity.
fn has_alpha(color: png::ColorType) -> bool {
    matches!(color, png::ColorType::GrayscaleAlpha | png::ColorType::Rgba)
}

/// A PNG colour type as people call it.
fn color_name(color: png::ColorType) -> &'static str {
    match color {
        png::ColorType::Grayscale => "grayscale",
        png::ColorType::GrayscaleAlpha => "grayscale with alpha",
        png::ColorType::Rgb => "RGB",
        png::ColorType::Rgba => "RGBA",
        png::ColorType::Indexed => "a palette",
    }
}

/// Writes `pixels` (values in `[0, 1]`, clamped) as an 8-bit grayscale PNG of `rows × cols`.
pub fn write_gray(path: &Path, (rows, cols): (usize, usize), pixels: &[f32]) -> io::Result<()> {
    let png = encode_gray((rows, cols), pixels)?;
    write_atomic(path, |w| w.write_all(&png))
}

/// [`write_gray`]'s file, as bytes in memory.
pub fn encode_gray((rows, cols): (usize, usize), pixels: &[f32]) -> io::Result<Vec<u8>> {
    let bytes: Vec<u8> = pixels.iter().map(|&v| gray_level(v)).collect();
    encode((rows, cols), &bytes)
}

/// The 8-bit gray level of `v` in `[0, 1]` (clamped), to the nearest level.
pub fn gray_level(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Writes 8-bit grayscale `bytes` as a PNG of `rows × cols`.
pub fn write_bytes(path: &Path, (rows, cols): (usize, usize), bytes: &[u8]) -> io::Result<()> {
    let png = encode((rows, cols), bytes)?;
    write_atomic(path, |w| w.write_all(&png))
}

/// 8-bit grayscale `bytes` of `rows × cols` as the bytes of a PNG file.
pub fn encode((rows, cols): (usize, usize), bytes: &[u8]) -> io::Result<Vec<u8>> {
    assert_eq!(bytes.len(), rows * cols, "one byte a pixel");
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, cols as u32, rows as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.add_text_chunk("Software".into(), SOFTWARE.into()).map_err(io::Error::other)?;
    let mut writer = encoder.write_header().map_err(io::Error::other)?;
    writer.write_image_data(bytes).map_err(io::Error::other)?;
    writer.finish().map_err(io::Error::other)?;
    Ok(png)
}
