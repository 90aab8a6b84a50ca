//! `data-fetch.sh` against local mirrors: corrupt files, missing ones, leftovers and bad arguments.

use std::path::Path;
use std::process::{Command, Output};

/// `data-fetch.sh TARGET` with `mirror` as its only source.
fn fetch_offline(target: &Path, mirror: &Path) -> Output {
    fetch_offline_in("bash", target, mirror)
}

/// [`fetch_offline`], run by `shell`.
fn fetch_offline_in(shell: &str, target: &Path, mirror: &Path) -> Output {
    let mut fetch = Command::new(shell);
    fetch.arg("data-fetch.sh").arg(target).env("MNIST_MIRROR", mirror).env("MNIST_OFFLINE", "1");
    fetch.output().unwrap()
}

/// The four files, without `.gz`.
const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The line that ends a fetch which found `paths` in the way of the files.
fn in_the_way(paths: &[&Path]) -> String {
    let paths: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    format!("data-fetch: in the way (above): {}\n", paths.join(" "))
}

/// The content of `data/NAME.gz`, decompressed (real MNIST: the tests that need it are ignored).
fn decompressed(name: &str) -> Vec<u8> {
    let plain = Command::new("gzip").arg("-dc").arg(format!("data/{name}.gz")).output().unwrap();
    assert!(plain.status.success(), "data/{name}.gz");
    plain.stdout
}

#[test]
fn a_corrupt_file_on_the_mirror_is_rejected_and_never_kept() {
    let mirror = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    for name in NAMES {
        let gz = Command::new("gzip").arg("-c").arg("Cargo.toml").output().unwrap().stdout;
        std::fs::write(mirror.path().join(format!("{name}.gz")), gz).unwrap();
    }
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("train-images-idx3-ubyte.gz") && stderr.contains("rejected"), "{stderr}");
    assert!(stderr.contains("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(target.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "nothing may be left behind: {left:?}");
}

/// `MNIST_OFFLINE=0` is not offline (any value was), and a value that is neither is refused.
#[test]
fn mnist_offline_takes_1_or_0() {
    let target = tempfile::tempdir().unwrap();
    let run = |value: &str| {
        let mut fetch = Command::new("bash");
        fetch.arg("data-fetch.sh").arg(target.path()).env("MNIST_OFFLINE", value).env_remove("MNIST_MIRROR");
        // The public mirrors through a proxy that refuses at once: no network is used.
        for proxy in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
            fetch.env(proxy, "http://127.0.0.1:9");
        }
        fetch.output().unwrap()
    };
    let on = run("1");
    assert_eq!(on.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&on.stderr).contains("MNIST_OFFLINE is set but MNIST_MIRROR is not"));
    let off = run("0");
    let stderr = String::from_utf8_lossy(&off.stderr);
    assert_eq!(off.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("train-images-idx3-ubyte.gz from https://ossci-datasets"), "{stderr}");
    let maybe = run("maybe");
    assert_eq!(maybe.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&maybe.stderr);
    assert!(stderr.contains("MNIST_OFFLINE=maybe: expected 1 (the mirror alone) or 0"), "{stderr}");
}

#[test]
fn offline_without_a_mirror_is_one_clear_message() {
    let target = tempfile::tempdir().unwrap();
    let mut fetch = Command::new("bash");
    fetch.arg("data-fetch.sh").arg(target.path()).env("MNIST_OFFLINE", "1").env_remove("MNIST_MIRROR");
    let out = fetch.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("MNIST_MIRROR"), "{stderr}");
}

/// A mirror that lacks files: every missing one is named, not only the first; one that does
/// not exist is named as such (MNIST_MIRROR is set, it only points nowhere).
#[test]
fn every_missing_file_is_listed_and_a_missing_mirror_is_named() {
    let mirror = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let run = |mirror: &std::path::Path| {
        let out = fetch_offline(target.path(), mirror);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run(mirror.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("4 of 4 files missing: train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"), "{stderr}");
    // Why each failed, and not "offline?" where a mirror was given (the reason was thrown away).
    assert!(
        stderr.contains("t10k-labels-idx1-ubyte.gz from ") && stderr.contains(": not in that folder"),
        "{stderr}"
    );
    assert!(stderr.contains("why each source failed is above") && !stderr.contains("offline?"), "{stderr}");
    // A file the mirror has but that cannot be read: cp's reason. (A folder stands in for an
    // unreadable file, which root reads all the same.)
    std::fs::create_dir(mirror.path().join("train-images-idx3-ubyte.gz")).unwrap();
    let (_, stderr) = run(mirror.path());
    assert!(stderr.contains("train-images-idx3-ubyte.gz from ") && stderr.contains("cp: "), "{stderr}");
    let nowhere = mirror.path().join("nowhere");
    let (code, stderr) = run(&nowhere);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.trim_end(), format!("data-fetch: MNIST_MIRROR={}: no such folder", nowhere.display()));
}

/// A mirror's file that is a device or a FIFO (read forever, or until the disk is full) or far
/// larger than MNIST's is refused before it is copied; a cut gzip is named as one.
#[test]
fn a_mirror_file_that_is_no_mnist_file_is_refused_before_it_is_copied() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = |name: &str| mirror.path().join(format!("{name}.gz"));
    std::os::unix::fs::symlink("/dev/zero", m("train-images-idx3-ubyte")).unwrap();
    let fifo = Command::new("mkfifo").arg(m("train-labels-idx1-ubyte")).status().unwrap();
    assert!(fifo.success());
    std::fs::File::create(m("t10k-images-idx3-ubyte")).unwrap().set_len(65 << 20).unwrap();
    let gz = Command::new("gzip").arg("-c").arg("Cargo.toml").output().unwrap().stdout;
    std::fs::write(m("t10k-labels-idx1-ubyte"), &gz[..gz.len() / 2]).unwrap();
    let mut fetch = Command::new("timeout");
    fetch.args(["60", "bash", "data-fetch.sh"]).arg(target.path());
    let out = fetch.env("MNIST_MIRROR", mirror.path()).env("MNIST_OFFLINE", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for said in [
        "train-images-idx3-ubyte.gz from ",
        ": not a regular file",
        "train-labels-idx1-ubyte.gz from ",
        "68157440 bytes, far more than MNIST's",
        "t10k-labels-idx1-ubyte.gz from ",
        "rejected, a corrupt or cut gzip, not MNIST's",
    ] {
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
    assert_eq!(stderr.matches(": not a regular file").count(), 2, "{stderr}");
    let left: Vec<_> = std::fs::read_dir(target.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "nothing may be left behind: {left:?}");
}

/// A mirror folder that is not there is one source fewer when others remain (files already
/// present need no source at all); an empty folder name is refused.
#[test]
fn a_missing_mirror_folder_leaves_the_public_mirrors_and_an_empty_name_is_refused() {
    let target = tempfile::tempdir().unwrap();
    let nowhere = target.path().join("nowhere");
    let mut fetch = Command::new("bash");
    fetch.arg("data-fetch.sh").arg(target.path()).env("MNIST_MIRROR", &nowhere).env_remove("MNIST_OFFLINE");
    // The public mirrors through a proxy that refuses at once: no network is used.
    for proxy in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        fetch.env(proxy, "http://127.0.0.1:9");
    }
    let out = fetch.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let said = format!("MNIST_MIRROR={}: no such folder; trying the public mirrors", nowhere.display());
    assert!(stderr.contains(&said), "{stderr}");
    assert!(stderr.contains("train-images-idx3-ubyte.gz from https://ossci-datasets"), "{stderr}");
    let empty = Command::new("bash").args(["data-fetch.sh", ""]).output().unwrap();
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("an empty folder name"));
}

/// A folder where a data file goes is named, and nothing is put inside it (`mv` into a folder
/// would have called the file fetched and verified).
#[test]
fn a_folder_in_a_data_files_place_is_named() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let folder = target.path().join("train-images-idx3-ubyte.gz");
    std::fs::create_dir(&folder).unwrap();
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let said = format!("{}: exists and is not a file", folder.display());
    assert!(stderr.contains(&said) && !stderr.contains("missing"), "{stderr}");
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 0, "nothing went into the folder");
}

/// A fetch killed with SIGKILL leaves its temporary file: the next fetch removes one untouched
/// for over an hour, and leaves a fresh one (a fetch writing it now, perhaps from another PID
/// namespace) and files of other names, however old.
#[test]
fn a_killed_fetchs_old_temporary_file_is_removed_a_fresh_ones_kept() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old = target.path().join(".train-images-idx3-ubyte.gz.Ab12Cd");
    let fresh = target.path().join(".t10k-labels-idx1-ubyte.gz.Ef34Gh");
    let not_ours =
        [".train-labels-idx1-ubyte.gz.2024.bak", ".train-labels-idx1-ubyte.gz.Ab12C", ".notes.gz.Ab12Cd"];
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for path in [&old, &fresh].into_iter().cloned().chain(not_ours.iter().map(|n| target.path().join(n))) {
        let file = std::fs::File::create(&path).unwrap();
        if path != fresh {
            file.set_modified(two_hours_ago).unwrap();
        }
    }
    let out = fetch_offline(target.path(), mirror.path());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!old.exists(), "the killed fetch's old temporary file is removed");
    assert!(fresh.exists(), "a fresh temporary file stays");
    for name in not_ours {
        assert!(target.path().join(name).exists(), "{name}: not a temporary file of ours");
    }
}

/// `--help` says how to call it; an unknown option, or a second folder, is one line and exit
/// 2, and makes nothing (`--help` was taken for a folder: mkdir's help, then mktemp's error).
#[test]
fn options_and_extra_arguments_are_refused_in_one_line() {
    let help = Command::new("bash").args(["data-fetch.sh", "--help"]).output().unwrap();
    let said = String::from_utf8_lossy(&help.stdout);
    assert_eq!(help.status.code(), Some(0));
    assert!(said.starts_with("usage: ./data-fetch.sh [DIR]") && said.contains("MNIST_MIRROR"), "{said}");
    for args in [&["-x"][..], &["a", "b"]] {
        let out = Command::new("bash").arg("data-fetch.sh").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("data-fetch: ") && stderr.contains("usage:"), "{args:?}: {stderr}");
    }
    assert!(!Path::new("-x").exists() && !Path::new("a").exists(), "no folder was made");
    // After `--`, a folder whose name starts with '-' is a folder (one already there, which a
    // failed fetch leaves).
    let mirror = tempfile::tempdir().unwrap();
    let parent = tempfile::tempdir().unwrap();
    std::fs::create_dir(parent.path().join("-x")).unwrap();
    let script = std::fs::canonicalize("data-fetch.sh").unwrap();
    let out = Command::new("bash")
        .arg(script)
        .args(["--", "-x"])
        .current_dir(parent.path())
        .env("MNIST_MIRROR", mirror.path())
        .env("MNIST_OFFLINE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("4 of 4 files missing"), "{stderr}");
    assert!(parent.path().join("-x").is_dir(), "{stderr}");
}

/// Under `sh` (dash on Debian, where `set -o pipefail` was an illegal option), the script runs
/// in bash: its help, and a fetch from an empty mirror that lists what is missing.
#[test]
fn sh_hands_the_script_to_bash() {
    let sh_is_bash = Command::new("sh").args(["-c", "echo ${BASH_VERSION-}"]).output().unwrap().stdout;
    if !String::from_utf8_lossy(&sh_is_bash).trim().is_empty() {
        eprintln!("sh is bash here: nothing to hand over");
        return;
    }
    let help = Command::new("sh").args(["data-fetch.sh", "--help"]).output().unwrap();
    assert_eq!(help.status.code(), Some(0), "{}", String::from_utf8_lossy(&help.stderr));
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: ./data-fetch.sh [DIR]"));
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = fetch_offline_in("sh", target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("4 of 4 files missing"), "{stderr}");
    let piped = Command::new("sh")
        .stdin(std::fs::File::open("data-fetch.sh").unwrap())
        .env("MNIST_MIRROR", mirror.path())
        .env("MNIST_OFFLINE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert_eq!(piped.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "data-fetch: read from standard input by a shell that is not bash; run bash data-fetch.sh\n"
    );
}

/// `MNIST_MIRROR=file:///folder` is the folder (it was "no such folder"); a file URL naming
/// another host is refused in one line.
#[test]
fn a_file_url_mirror_is_its_folder() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spaced = mirror.path().join("My MNIST");
    std::fs::create_dir(&spaced).unwrap();
    for url in [
        format!("file://{}", mirror.path().display()),
        format!("file://localhost{}/My%20MNIST", mirror.path().display()),
    ] {
        let out = fetch_offline(target.path(), Path::new(&url));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {stderr}");
        assert!(
            stderr.contains("4 of 4 files missing") && !stderr.contains("no such folder"),
            "{url}: {stderr}"
        );
    }
    let out = fetch_offline(target.path(), Path::new("file://elsewhere/mnist"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a file URL on another host"), "{stderr}");
}

/// A fetch that fails takes away the folder it made, empty, and leaves one that was there.
#[test]
fn a_failed_fetch_leaves_no_folder_of_its_own() {
    let (mirror, parent) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let new = parent.path().join("new");
    let out = fetch_offline(&new, mirror.path());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!new.exists(), "the folder it made is gone");
    let out = fetch_offline(parent.path(), mirror.path());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(parent.path().is_dir(), "a folder that was there stays");
    // Nor when it ends earlier, on a mirror folder that is not there.
    let out = fetch_offline(&new, &parent.path().join("no-mirror"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such folder") && !new.exists());
}

/// A file under a data file's name that is not MNIST's is named as such, not as missing.
#[test]
fn a_wrong_file_already_there_is_named() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wrong = target.path().join("train-labels-idx1-ubyte.gz");
    std::fs::write(&wrong, "not gzip").unwrap();
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let said = format!("{} is there but is not MNIST's train-labels-idx1-ubyte", wrong.display());
    assert!(stderr.contains(&said) && stderr.contains("(not gzip)"), "{stderr}");
}

/// `dae` refuses a folder holding both `NAME.gz` and `NAME`, so the fetch names such a pair, and a
/// plain `NAME` that is not MNIST's (a fetched `NAME.gz` beside it would make the pair), and
/// changes neither.
#[test]
fn a_plain_file_beside_its_gz_or_in_its_way_is_named_and_left() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let at = |name: &str| target.path().join(name);
    std::fs::write(at("t10k-labels-idx1-ubyte.gz"), "one").unwrap();
    std::fs::write(at("t10k-labels-idx1-ubyte"), "two").unwrap();
    std::fs::write(at("train-labels-idx1-ubyte"), "not MNIST").unwrap();
    std::fs::create_dir(at("train-images-idx3-ubyte")).unwrap();
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (plain, gz) = (at("t10k-labels-idx1-ubyte"), at("t10k-labels-idx1-ubyte.gz"));
    let pair = format!(
        "{} and {} are both there, and dae reads neither while both are, and neither is MNIST's \
         t10k-labels-idx1-ubyte: remove both",
        plain.display(),
        gz.display()
    );
    let wrong = format!(
        "{} is there and is not MNIST's train-labels-idx1-ubyte (not gzip); remove it",
        at("train-labels-idx1-ubyte").display()
    );
    let folder = format!("{} is there and is not a file; remove it", at("train-images-idx3-ubyte").display());
    let listed = in_the_way(&[&at("train-images-idx3-ubyte"), &at("train-labels-idx1-ubyte"), &plain, &gz]);
    for said in [&pair, &wrong, &folder, &listed, &"1 of 4 files missing".to_string()] {
        assert!(stderr.contains(said.as_str()), "{said}: {stderr}");
    }
    assert_eq!(std::fs::read(&gz).unwrap(), b"one");
    assert_eq!(std::fs::read(&plain).unwrap(), b"two");
    assert_eq!(std::fs::read(at("train-labels-idx1-ubyte")).unwrap(), b"not MNIST");
    assert!(!at("train-labels-idx1-ubyte.gz").exists() && !at("train-images-idx3-ubyte.gz").exists());
}

/// Links: one that cannot be followed is named, as `dae` names it (`[ -e ]` took it for no file);
/// a plain `NAME` linked to `NAME.gz` is one file under two names, and the link is the one to
/// remove, whichever way it points.
#[test]
fn links_that_cannot_be_followed_or_name_one_file_twice_are_named() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let at = |name: &str| target.path().join(name);
    std::fs::write(at("train-images-idx3-ubyte.gz"), "any").unwrap();
    std::os::unix::fs::symlink(at("train-images-idx3-ubyte"), at("train-images-idx3-ubyte")).unwrap();
    std::fs::write(at("train-labels-idx1-ubyte.gz"), "any").unwrap();
    std::os::unix::fs::symlink("train-labels-idx1-ubyte.gz", at("train-labels-idx1-ubyte")).unwrap();
    std::fs::write(at("t10k-labels-idx1-ubyte"), "any").unwrap();
    std::os::unix::fs::symlink("t10k-labels-idx1-ubyte", at("t10k-labels-idx1-ubyte.gz")).unwrap();
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let looped = format!(
        "{} is a link whose target cannot be reached; remove it",
        at("train-images-idx3-ubyte").display()
    );
    let one = |name: &str, drop: &str| {
        format!(
            "are both there, and dae reads neither while both are (they are one file): remove {}",
            at(&format!("{name}{drop}")).display()
        )
    };
    for said in [looped, one("train-labels-idx1-ubyte", ""), one("t10k-labels-idx1-ubyte", ".gz")] {
        assert!(stderr.contains(&said), "{said}: {stderr}");
    }

    // A chain NAME.gz -> NAME -> elsewhere: removing NAME would cut NAME.gz off, so NAME.gz goes.
    // A link whose target is missing is in the way too, as dae refuses it.
    let (elsewhere, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let at = |name: &str| target.path().join(name);
    std::fs::write(elsewhere.path().join("labels"), "any").unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("labels"), at("train-labels-idx1-ubyte")).unwrap();
    std::os::unix::fs::symlink("train-labels-idx1-ubyte", at("train-labels-idx1-ubyte.gz")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/images", at("t10k-images-idx3-ubyte")).unwrap();
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let chain = format!("(they are one file): remove {}\n", at("train-labels-idx1-ubyte.gz").display());
    assert!(stderr.contains(&chain), "{stderr}");
    let listed = in_the_way(&[&at("train-labels-idx1-ubyte.gz"), &at("t10k-images-idx3-ubyte")]);
    assert!(stderr.contains(&listed) && stderr.contains("2 of 4 files missing"), "{stderr}");
}

/// A newline in a folder's name is written `\n`, as `dae` writes it: one line a message.
#[test]
fn a_newline_in_a_name_keeps_each_message_on_one_line() {
    let (mirror, parent) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let target = parent.path().join("two\nlines");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("t10k-labels-idx1-ubyte"), "junk").unwrap();
    let out = fetch_offline(&target, mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().all(|line| line.starts_with("data-fetch: ")), "{stderr}");
    let escaped = format!("{}/two\\nlines/t10k-labels-idx1-ubyte is there", parent.path().display());
    assert!(stderr.contains(&escaped), "{stderr}");
}

/// With a mirror that has it, a correct `NAME.gz` is still not fetched beside a wrong plain `NAME`;
/// the other files are: real MNIST, from `data/` (run with `--ignored`).
#[test]
#[ignore = "needs MNIST in data/ (./data-fetch.sh)"]
fn a_wrong_plain_file_keeps_its_gz_from_being_fetched() {
    let target = tempfile::tempdir().unwrap();
    let wrong = target.path().join("train-labels-idx1-ubyte");
    std::fs::write(&wrong, "not MNIST").unwrap();
    let out = fetch_offline(target.path(), &std::fs::canonicalize("data").unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let listed = in_the_way(&[&wrong]);
    assert!(stderr.contains(&listed) && !stderr.contains("missing"), "{stderr}");
    assert!(!target.path().join("train-labels-idx1-ubyte.gz").exists(), "{stderr}");
    for name in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        assert!(target.path().join(format!("{name}.gz")).exists(), "{name}: {stderr}");
    }
}

/// Of a `NAME.gz` and `NAME` pair, the one that is MNIST's is named to keep (the `.gz` if both
/// are), and MNIST gzipped under the plain name counts as present, as `dae` reads it: real MNIST,
/// from `data/` (run with `--ignored`).
#[test]
#[ignore = "needs MNIST in data/ (./data-fetch.sh)"]
fn of_a_pair_the_one_that_is_mnists_is_named_and_a_gzipped_plain_name_is_taken() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let at = |name: &str| target.path().join(name);
    let gzipped = |name: &str| std::fs::read(format!("data/{name}.gz")).unwrap();
    std::fs::write(at("t10k-labels-idx1-ubyte.gz"), "junk").unwrap();
    std::fs::write(at("t10k-labels-idx1-ubyte"), decompressed("t10k-labels-idx1-ubyte")).unwrap();
    std::fs::write(at("train-labels-idx1-ubyte.gz"), gzipped("train-labels-idx1-ubyte")).unwrap();
    std::fs::write(at("train-labels-idx1-ubyte"), decompressed("train-labels-idx1-ubyte")).unwrap();
    std::fs::write(at("t10k-images-idx3-ubyte"), gzipped("t10k-images-idx3-ubyte")).unwrap();
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (p, g) = (at("t10k-labels-idx1-ubyte"), at("t10k-labels-idx1-ubyte.gz"));
    let keep_plain = format!("{} is MNIST's; remove {}", p.display(), g.display());
    let (p, g) = (at("train-labels-idx1-ubyte"), at("train-labels-idx1-ubyte.gz"));
    let keep_gz = format!("{} is MNIST's; remove {}", g.display(), p.display());
    let plain_gzipped = format!(
        "{}: already present (gzipped, though named without .gz) and correct",
        at("t10k-images-idx3-ubyte").display()
    );
    for said in [&keep_plain, &keep_gz, &plain_gzipped] {
        assert!(stderr.contains(said.as_str()), "{said}: {stderr}");
    }
    let listed = in_the_way(&[&at("train-labels-idx1-ubyte"), &at("t10k-labels-idx1-ubyte.gz")]);
    assert!(stderr.contains(&listed) && stderr.contains("1 of 4 files missing"), "{stderr}");
}

/// MNIST decompressed under the gzipped name is read by `dae` (which tells gzip from a file's
/// first bytes), so it counts as present: real MNIST, from `data/` (run with `--ignored`).
#[test]
#[ignore = "needs MNIST in data/ (./data-fetch.sh)"]
fn a_decompressed_file_under_the_gzipped_name_is_accepted() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plain = decompressed("t10k-labels-idx1-ubyte");
    std::fs::write(target.path().join("t10k-labels-idx1-ubyte.gz"), plain).unwrap();
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("t10k-labels-idx1-ubyte.gz: already present (not gzipped, though named .gz)"),
        "{stderr}"
    );
    assert!(stderr.contains("3 of 4 files missing"), "{stderr}");
}

/// The files already there decompressed (which `dae` reads as well) count as present: real
/// MNIST, from `data/` (`data-fetch.sh` first; run with `--ignored`).
#[test]
#[ignore = "needs MNIST in data/ (./data-fetch.sh)"]
fn files_already_there_decompressed_are_accepted() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for name in NAMES {
        std::fs::write(target.path().join(name), decompressed(name)).unwrap();
    }
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr.matches("already present (not gzipped) and correct").count(), 4, "{stderr}");
}

/// A mirror that keeps the files decompressed, as `NAME` or under `NAME.gz`, is taken: the
/// first gzipped on the way in, the second kept as it is (which `dae` reads as well). Real
/// MNIST, from `data/` (run with `--ignored`).
#[test]
#[ignore = "needs MNIST in data/ (./data-fetch.sh)"]
fn a_mirror_of_decompressed_files_is_taken() {
    let (mirror, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (i, name) in NAMES.into_iter().enumerate() {
        let kept_as = if i == 0 { format!("{name}.gz") } else { name.to_string() };
        std::fs::write(mirror.path().join(kept_as), decompressed(name)).unwrap();
    }
    let out = fetch_offline(target.path(), mirror.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr.matches("(not gzipped, though named .gz) and verified").count(), 1, "{stderr}");
    assert_eq!(stderr.matches(" and verified").count(), 4, "{stderr}");
    for name in &NAMES[1..] {
        let gz = std::fs::read(target.path().join(format!("{name}.gz"))).unwrap();
        assert_eq!(gz[..2], [0x1f, 0x8b], "{name}.gz is gzip");
    }
}
