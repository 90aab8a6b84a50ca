//! The memory a command may take, and the check every command makes against it before it
//! allocates anything large: a model, an image size or a batch that needs more than the machine
//! has is refused with both figures, rather than aborted by the allocator part way through.

use std::sync::OnceLock;

/// The memory a command may take, and where that figure comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Bytes.
    pub bytes: u64,
    /// Whether `DAE_MEMORY` set it, rather than the machine.
    pub from_env: bool,
}

static LIMIT: OnceLock<Option<Limit>> = OnceLock::new();

/// Takes the limit from `DAE_MEMORY` (`8GiB`, `512MiB`, `1.5GB`, or bytes) if it is set, else
/// from the machine; an error names a value that is no size. Called once, before any command.
pub fn set_limit() -> Result<(), String> {
    let limit = match std::env::var_os("DAE_MEMORY") {
        Some(value) => {
            let bytes = value.to_str().and_then(parse_size).ok_or_else(|| {
                let value = value.to_string_lossy().escape_debug().to_string();
                let expected = "a size of at least 1 byte and under 16 EiB, such as 8GiB or 512MiB";
                format!("DAE_MEMORY={value}: expected {expected}")
            })?;
            Some(Limit { bytes, from_env: true })
        }
        None => machine(),
    };
    LIMIT.set(limit).map_err(|_| "the memory limit is set once".to_string())
}

/// The limit [`set_limit`] took, or the machine's if it was not called.
pub fn limit() -> Option<Limit> {
    *LIMIT.get_or_init(machine)
}

/// The memory this machine has (`MemTotal` in `/proc/meminfo`), or its control group's limit if
/// that is lower; `None` where neither can be read.
fn machine() -> Option<Limit> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    });
    // cgroup v2, then v1; "max" (or v1's huge number) is no limit.
    let group = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok());
    let bytes = match (total, group) {
        (Some(t), Some(g)) => Some(t.min(g)),
        (t, g) => t.or(g),
    };
    bytes.map(|bytes| Limit { bytes, from_env: false })
}

/// `8GiB`, `512 MiB`, `1.5GB`, `4096`: bytes, with an optional binary (KiB…EiB) or decimal
/// (KB…EB) unit.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    // Whole bytes exactly, which an f64 would round near the top of the range.
    if let Ok(bytes @ 1..) = text[..split].parse::<u64>()
        && matches!(text[split..].trim(), "" | "b" | "B")
    {
        return Some(bytes);
    }
    let (number, unit) = (text[..split].parse::<f64>().ok()?, text[split..].trim());
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        "pib" => 1024f64.powi(5),
        "eib" => 1024f64.powi(6),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "pb" => 1e15,
        "eb" => 1e18,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// What the program takes besides the bytes a command counts: its code and its threads' stacks
/// (`dae --version` peaks at 3.4 MiB), and what the allocator keeps beyond the bytes in use
/// (training runs of the dense and conv models peaked 5.0–9.8 MiB of RSS above their count,
/// Intel Xeon model 207, 2026-12-05). A command adds it to what it counts.
pub const PROCESS: u64 = 12 << 20;

/// Ok if `need` bytes fit in the [`limit`]; otherwise a message that says `what` needs them and
/// how much there is, e.g. "… needs 1.1 TiB of memory; this machine has 23.5 GiB".
pub fn check(need: u64, what: impl FnOnce() -> String) -> Result<(), String> {
    match limit() {
        Some(limit) if need > limit.bytes => {
            let has = if limit.from_env { "DAE_MEMORY allows" } else { "this machine has" };
            Err(format!("{} needs {} of memory; {has} {}", what(), size(need), size(limit.bytes)))
        }
        _ => Ok(()),
    }
}

/// The largest number of rows, up to `most`, for which `bytes(rows)` (growing with the rows)
/// stays within `limit`, or 0 if not even one row does.
pub fn most_rows(bytes: impl Fn(usize) -> u64, limit: u64, most: usize) -> usize {
    let (mut fits, mut too_many) = (0, most + 1);
    while too_many - fits > 1 {
        let mid = fits + (too_many - fits) / 2;
        if bytes(mid) <= limit { fits = mid } else { too_many = mid }
    }
    fits
}

/// `bytes` in the largest binary unit that leaves a number of at least 1: "23.5 GiB".
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 if bytes == 1 => "1 byte".to_string(),
        0 => format!("{bytes} bytes"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_largest_unit() {
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(25_233_522_688), "23.5 GiB");
        assert_eq!(size(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn sizes_are_parsed_with_either_kind_of_unit() {
        assert_eq!(parse_size("8GiB"), Some(8 << 30));
        assert_eq!(parse_size("512 MiB"), Some(512 << 20));
        assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("15EiB"), Some(15 << 60));
        assert_eq!(parse_size("2 PiB"), Some(2 << 50));
        assert_eq!(parse_size("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_size("16EiB"), None);
        for bad in ["", "GiB", "8 parsecs", "-1GiB", "0", "1e400", "NaN"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_most_rows_that_fit_are_found() {
        let bytes = |rows: usize| 100 + 10 * rows as u64;
        assert_eq!(most_rows(bytes, 1000, 256), 90);
        assert_eq!(most_rows(bytes, 105, 256), 0);
        assert_eq!(most_rows(bytes, u64::MAX, 256), 256);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_machine_says_how_much_it_has() {
        let limit = machine().expect("/proc/meminfo");
        assert!(limit.bytes > 64 << 20 && !limit.from_env, "{limit:?}");
    }
}
