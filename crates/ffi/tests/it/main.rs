//! libshipshape from the outside: the committed header matches the code,
//! a C program uses every function under valgrind (no leaks, no invalid
//! accesses) linked against the shared library, and again linked
//! statically, the Python ctypes example in the docs runs, and every kind
//! of source goes through `shipshape_backup` against the real servers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod sources;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// Where cargo put libshipshape.so and libshipshape.a for this very
/// build: beside the test binary, `target/<profile>/deps/` (the copies
/// one level up are only refreshed by `cargo build`).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("target/<profile>/deps").to_path_buf();
    assert!(
        dir.join("libshipshape.so").exists() && dir.join("libshipshape.a").exists(),
        "no libshipshape.so/.a in {} (cargo builds them with the ffi crate)",
        dir.display()
    );
    dir
}

fn tool(name: &str) -> Option<PathBuf> {
    test_support::tools::require(name)
}

#[test]
fn the_committed_header_matches_the_code() {
    let config =
        cbindgen::Config::from_file(Path::new(CRATE).join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(CRATE)
        .with_config(config)
        .generate()
        .expect("generate the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = Path::new(CRATE).join("include/shipshape.h");
    if std::env::var_os("SHIPSHAPE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "crates/ffi/include/shipshape.h is stale: regenerate it with \
         SHIPSHAPE_BLESS=1 cargo test -p ffi --test it the_committed_header_matches_the_code"
    );
}

/// Compiles the C program against the header and the library (`static`:
/// libshipshape.a, else the shared library with an rpath).
fn compile(out_dir: &Path, static_link: bool) -> PathBuf {
    let lib = lib_dir();
    let exe = out_dir.join(if static_link {
        "exercise-static"
    } else {
        "exercise"
    });
    let mut cc = Command::new(tool("cc").unwrap_or_else(|| "cc".into()));
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(Path::new(CRATE).join("include"))
        .arg(Path::new(CRATE).join("tests/c/exercise.c"))
        .arg("-o")
        .arg(&exe);
    if static_link {
        cc.arg(lib.join("libshipshape.a"))
            .args(["-lpthread", "-ldl", "-lm"]);
    } else {
        cc.arg("-L")
            .arg(&lib)
            .arg("-lshipshape")
            .arg(format!("-Wl,-rpath,{}", lib.display()));
    }
    let out = cc.output().expect("run the C compiler");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// The DNS part of the C program's arguments: Knot, and a name it serves.
fn dns_args() -> Vec<String> {
    match test_support::services::knot() {
        Some(k) => vec![
            k.dns.to_string(),
            format!("ns1.{}", k.zones[0]),
            "127.0.0.1".into(),
        ],
        None => Vec::new(),
    }
}

#[test]
fn a_c_program_uses_every_function_under_valgrind_without_leaks() {
    let Some(valgrind) = tool("valgrind") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let exe = compile(work.path(), false);
    let run_dir = work.path().join("run");
    std::fs::create_dir(&run_dir).expect("mkdir");
    let out = Command::new(valgrind)
        .args([
            "--quiet",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99",
        ])
        .arg(&exe)
        .arg(&run_dir)
        .args(dns_args())
        // cargo's own library path would win over the program's rpath
        // and may hold an older copy of the library.
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .output()
        .expect("run valgrind");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("exercise: ok"),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(
        !stderr.contains("Invalid read") && !stderr.contains("Invalid write"),
        "{stderr}"
    );
}

#[test]
fn the_static_library_links_and_works() {
    let work = tempfile::tempdir().expect("tempdir");
    let exe = compile(work.path(), true);
    let run_dir = work.path().join("run");
    std::fs::create_dir(&run_dir).expect("mkdir");
    let out = Command::new(&exe)
        .arg(&run_dir)
        .args(dns_args())
        // The program backs up its standard input once: an empty one.
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_ctypes_example_runs() {
    let Some(python) = tool("python3") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let out = Command::new(python)
        .arg(Path::new(CRATE).join("python/example.py"))
        .arg(lib_dir().join("libshipshape.so"))
        .arg(work.path())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 backup(s)"), "{stdout}");
    assert!(
        stdout.contains("verified the passphrase backup"),
        "{stdout}"
    );
    assert!(stdout.contains("is encrypted to a passphrase"), "{stdout}");
    assert!(
        stdout.contains("rate limit decisions: [1, 1, 0]"),
        "{stdout}"
    );
    assert!(stdout.contains("error: repo is a null pointer"), "{stdout}");
}
