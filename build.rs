//! Compiles every program of c-samples/ into a standalone executable under
//! OUT_DIR and writes the catalogue (`catalogue.rs`) the library includes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[path = "harness/settings.rs"]
mod settings;

/// Flags every sample is built with: debug info and frame pointers so that
/// every backend can walk and symbolize stacks, no optimisation so that the
/// annotated lines are the lines that allocate.
const BASE_FLAGS: &[&str] = &["-g", "-O0", "-fno-omit-frame-pointer", "-Wall", "-Wextra"];

struct Sample {
    name: String,
    /// Source files, relative to c-samples/.
    sources: Vec<String>,
    cpp: bool,
    settings: Vec<settings::Setting>,
}

/// One way of building every sample; the harness picks the executable of
/// the variant a backend needs.
struct Variant {
    name: &'static str,
    extra_flags: &'static [&'static str],
    /// Compile with the debug_new forced include and link its runtime.
    debug_new: bool,
    /// Which compiler builds it: the sanitizer rows of clang run clang's own runtimes.
    compiler: Toolchain,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Toolchain {
    /// The C and C++ compilers of the `cc` crate (gcc on Debian).
    Native,
    /// clang and clang++, when found (and their sanitizer runtimes link).
    Clang,
}

/// The compilers a variant is built with.
struct Compilers {
    cc: PathBuf,
    cxx: PathBuf,
}

const LSAN_FLAGS: &[&str] = &["-fsanitize=leak"];
const ASAN_FLAGS: &[&str] = &["-fsanitize=address", "-fsanitize-recover=address"];

const VARIANTS: &[Variant] = &[
    Variant { name: "plain", extra_flags: &[], debug_new: false, compiler: Toolchain::Native },
    // LeakSanitizer alone (gcc's liblsan), without AddressSanitizer's checks.
    Variant { name: "lsan", extra_flags: LSAN_FLAGS, debug_new: false, compiler: Toolchain::Native },
    // AddressSanitizer, going on after an error (with `halt_on_error=0` at
    // run time) so that the leak check at exit still runs.
    Variant { name: "asan", extra_flags: ASAN_FLAGS, debug_new: false, compiler: Toolchain::Native },
    // The source article's debug_new: every allocation of the sample's own
    // code carries its __FILE__ and __LINE__ (harness/debug_new/).
    Variant { name: "debug-new", extra_flags: &[], debug_new: true, compiler: Toolchain::Native },
    // The same sanitizer builds by clang, whose runtimes (compiler-rt) are
    // linked into the program statically: the `lsan-clang`, `asan-clang` rows.
    Variant { name: "lsan-clang", extra_flags: LSAN_FLAGS, debug_new: false, compiler: Toolchain::Clang },
    Variant { name: "asan-clang", extra_flags: ASAN_FLAGS, debug_new: false, compiler: Toolchain::Clang },
];

/// The debug_new runtime, compiled once and linked into every `debug-new` build.
struct DebugNew {
    header: PathBuf,
    /// The C part (every sample) and the C++ part (C++ samples).
    c_object: PathBuf,
    cxx_object: PathBuf,
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let samples_dir = root.join("c-samples");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=c-samples");
    println!("cargo:rerun-if-changed=harness/settings.rs");

    let samples = discover(&samples_dir);
    let cc = cc::Build::new().cargo_metadata(false).get_compiler().path().to_path_buf();
    let cxx = cc::Build::new().cpp(true).cargo_metadata(false).get_compiler().path().to_path_buf();
    let debug_new = build_debug_new(&root, &out, &cc, &cxx);
    let lsan_ok = build_sanitizer_probe(&out, &cc, "lsan", "-fsanitize=leak");
    let asan_ok = build_sanitizer_probe(&out, &cc, "asan", "-fsanitize=address");
    let clang = find_clang();
    let clang_lsan_ok = build_clang_probe(&out, clang.as_ref(), "lsan-clang", "-fsanitize=leak");
    let clang_asan_ok = build_clang_probe(&out, clang.as_ref(), "asan-clang", "-fsanitize=address");
    // A sanitizer variant whose runtime does not link (liblsan, libasan,
    // clang or its compiler-rt missing) is not built; the backend then says why.
    let linked = |v: &Variant| match v.name {
        "lsan" => lsan_ok,
        "asan" => asan_ok,
        "lsan-clang" => clang_lsan_ok,
        "asan-clang" => clang_asan_ok,
        _ => true,
    };
    let variants: Vec<&Variant> = VARIANTS.iter().filter(|v| linked(v)).collect();
    let native = Compilers { cc: cc.clone(), cxx: cxx.clone() };
    // `leaklab symbols` compiles a demo's files one by one at run time, with
    // the compilers and flags the catalogue was built with.
    println!("cargo:rustc-env=LEAKLAB_CC={}", cc.display());
    println!("cargo:rustc-env=LEAKLAB_CXX={}", cxx.display());
    println!("cargo:rustc-env=LEAKLAB_BASE_CFLAGS={}", BASE_FLAGS.join(" "));

    // (sample index, variant) jobs, compiled on as many threads as cargo allows.
    let jobs: Vec<(usize, &Variant)> = (0..samples.len())
        .flat_map(|i| variants.iter().map(move |&v| (i, v)))
        .filter(|&(i, v)| wanted(&samples[i], v))
        .collect();
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::new());
    let threads = std::env::var("NUM_JOBS").ok().and_then(|n| n.parse().ok()).unwrap_or(2usize).max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let job = {
                    let mut n = next.lock().unwrap();
                    let j = *n;
                    *n += 1;
                    j
                };
                let Some(&(i, variant)) = jobs.get(job) else { break };
                let s = &samples[i];
                let compilers = match variant.compiler {
                    Toolchain::Native => &native,
                    Toolchain::Clang => clang.as_ref().expect("clang variants are built only when clang was found"),
                };
                let compiler = if s.cpp { &compilers.cxx } else { &compilers.cc };
                if let Err(msg) = compile(compiler, &samples_dir, &out, s, variant, &debug_new) {
                    failures.lock().unwrap().push(msg);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        panic!("{} sample build(s) failed:\n{}", failures.len(), failures.join("\n"));
    }

    std::fs::write(out.join("catalogue.rs"), render_catalogue(&samples, &variants, &samples_dir, &out))
        .expect("write catalogue.rs");

    build_hook(&root, &out, &cc, &cxx, asan_ok);
    build_clang_storms(&root, &out, clang.as_ref().filter(|_| clang_lsan_ok), clang.as_ref().filter(|_| clang_asan_ok));
    build_stop_exec(&root, &cc, &out);
    build_vg_exec(&root, &cc, &out);
    build_lsan_preload(&root, &cc, &out);
    build_preload(&root, &cc, &out, "mtrace_start", "LEAKLAB_MTRACE_PRELOAD");
    build_preload(&root, &cc, &out, "crash_stack", "LEAKLAB_CRASH_STACK_PRELOAD");
    std::fs::write(out.join("artifacts.rs"), render_artifacts(&out)).expect("write artifacts.rs");
}

/// Every file the library runs from OUT_DIR (samples, shim, stop_exec, the
/// bench program, the lsan probe, the debug_new objects), embedded with
/// `include_bytes!` so an installed binary can unpack them when its OUT_DIR
/// is gone (harness/artifacts.rs), and a hash of their contents (FNV-1a),
/// which names the unpacked copy.
fn render_artifacts(out: &Path) -> String {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, files);
            } else if p.extension().is_none_or(|x| x != "rs") {
                files.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(out, &mut files);
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut code = String::from("/// (path relative to OUT_DIR, contents, executable)\npub(crate) static EMBEDDED: &[(&str, &[u8], bool)] = &[\n");
    for f in &files {
        use std::os::unix::fs::PermissionsExt;
        let rel = f.strip_prefix(out).unwrap().to_str().unwrap();
        let data = std::fs::read(f).expect("read a built artifact");
        for b in rel.bytes().chain(data.iter().copied()) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let exec = std::fs::metadata(f).map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false);
        let _ = writeln!(code, "    ({rel:?}, include_bytes!({:?}), {exec}),", f.to_str().unwrap());
    }
    code.push_str("];\n");
    let _ = writeln!(code, "pub(crate) const CONTENT_HASH: &str = \"{hash:016x}\";");
    let _ = writeln!(code, "pub(crate) const OUT_DIR: &str = {:?};", out.to_str().unwrap());
    code
}

/// The valgrind backend's exec shim (harness/native/vg_exec.c), exposed as
/// LEAKLAB_VG_EXEC_SO; it needs valgrind's headers, so without them it is
/// not built and the backend runs without it.
fn build_vg_exec(root: &Path, cc: &Path, out: &Path) {
    let src = root.join("harness/native/vg_exec.c");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed=/usr/include/valgrind/memcheck.h");
    if !Path::new("/usr/include/valgrind/memcheck.h").is_file() {
        return;
    }
    let so = out.join("libleaklab_vg_exec.so");
    let status = Command::new(cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("run the C compiler for vg_exec");
    assert!(status.success(), "harness/native/vg_exec.c failed to compile");
    println!("cargo:rustc-env=LEAKLAB_VG_EXEC_SO={}", so.display());
}

/// The `hook` backend's LD_PRELOAD shim and the `leaklab bench` program,
/// exposed to the library as LEAKLAB_HOOK_SO and LEAKLAB_ALLOC_STORM.
fn build_hook(root: &Path, out: &Path, cc: &Path, cxx: &Path, asan_ok: bool) {
    let shim_src = root.join("harness/hook/leaklab_hook.c");
    let storm_src = root.join("harness/bench/alloc_storm.cpp");
    println!("cargo:rerun-if-changed={}", shim_src.display());
    println!("cargo:rerun-if-changed={}", storm_src.display());
    let shim = out.join("libleaklab_hook.so");
    // Frame pointers and no sibling calls: each hook's own frame must stay
    // in place while it walks the caller's stack. -fexceptions lets a
    // std::bad_alloc from the real operator new unwind through the shim.
    run_compiler(
        Command::new(cc)
            .args(["-shared", "-fPIC", "-O2", "-g", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls", "-fexceptions"])
            .args(["-Wall", "-Wextra", "-fvisibility=hidden"])
            .arg(&shim_src)
            .arg("-o")
            .arg(&shim)
            .args(["-ldl", "-pthread"]),
        "the hook shim",
    );
    let storm = out.join("alloc_storm");
    run_compiler(
        Command::new(cxx)
            .args(["-O2", "-g", "-fno-omit-frame-pointer", "-pthread", "-Wall", "-Wextra"])
            .arg(&storm_src)
            .arg("-o")
            .arg(&storm),
        "the bench program",
    );
    // The bench's asan contender runs a build of its own: ASan's checks are compiled in.
    let storm_asan = out.join("alloc_storm_asan");
    if asan_ok {
        run_compiler(
            Command::new(cxx)
                .args(["-O2", "-g", "-fno-omit-frame-pointer", "-pthread", "-fsanitize=address", "-Wall", "-Wextra"])
                .arg(&storm_src)
                .arg("-o")
                .arg(&storm_asan),
            "the bench program with ASan",
        );
    }
    println!("cargo:rustc-env=LEAKLAB_HOOK_SO={}", shim.display());
    println!("cargo:rustc-env=LEAKLAB_ALLOC_STORM={}", storm.display());
    println!("cargo:rustc-env=LEAKLAB_ALLOC_STORM_ASAN={}", if asan_ok { storm_asan.display().to_string() } else { String::new() });
}

fn run_compiler(cmd: &mut Command, what: &str) {
    let output = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run the compiler: {e}"));
    if !output.status.success() {
        panic!("{what} failed to compile:\n$ {cmd:?}\n{}", String::from_utf8_lossy(&output.stderr));
    }
}

/// The labs compile the students' C/C++ at check time with the compilers the
/// samples were built with (`env!("LEAKLAB_CC")`, `env!("LEAKLAB_CXX")`).
fn discover(dir: &Path) -> Vec<Sample> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("read c-samples/").map(|e| e.unwrap().path()).collect();
    entries.sort();
    let mut samples = Vec::new();
    for path in entries {
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let sources: Vec<String> = if path.is_dir() {
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| is_source(f))
                .map(|f| format!("{file_name}/{f}"))
                .collect();
            files.sort();
            files
        } else if is_source(&file_name) {
            vec![file_name.clone()]
        } else {
            continue;
        };
        if sources.is_empty() {
            continue;
        }
        let name = match path.is_dir() {
            true => file_name.clone(),
            false => path.file_stem().unwrap().to_string_lossy().into_owned(),
        };
        let mut all_settings = Vec::new();
        for src in &sources {
            let text = std::fs::read_to_string(dir.join(src)).expect("read sample");
            match settings::parse_settings(&text) {
                Ok(s) => {
                    for setting in &s {
                        if !settings::KNOWN_SETTINGS.contains(&setting.key.as_str()) {
                            panic!(
                                "c-samples/{src}:{}: unknown setting `{}` (known: {})",
                                setting.line,
                                setting.key,
                                settings::KNOWN_SETTINGS.join(", ")
                            );
                        }
                    }
                    all_settings.extend(s);
                }
                Err((line, msg)) => panic!("c-samples/{src}:{line}: {msg}"),
            }
        }
        if !all_settings.iter().any(|s| s.key == "title") {
            panic!("c-samples/{}: missing `//@ title:`", sources[0]);
        }
        let cpp = sources.iter().any(|s| s.ends_with(".cpp") || s.ends_with(".cc"));
        samples.push(Sample { name, sources, cpp, settings: all_settings });
    }
    samples
}

fn is_source(file: &str) -> bool {
    file.ends_with(".c") || file.ends_with(".cpp") || file.ends_with(".cc")
}

/// Whether a sample is built in a variant: always in `plain`; in a backend's
/// own variant only when `//@ backends:` lets that backend run it (a program
/// that replaces operator new itself cannot take debug_new's).
fn wanted(s: &Sample, v: &Variant) -> bool {
    v.name == "plain"
        || s.settings.iter().filter(|x| x.key == "backends").all(|x| x.value.split(',').any(|b| b.trim() == v.name))
}

fn setting_words<'a>(s: &'a Sample, key: &str) -> impl Iterator<Item = &'a str> + 'a {
    let key = key.to_string();
    s.settings.iter().filter(move |x| x.key == key).flat_map(|x| x.value.split_whitespace())
}

fn exe_path(out: &Path, sample: &str, variant: &str) -> PathBuf {
    out.join("samples").join(variant).join(sample)
}

/// Compiles the debug_new runtime's two objects (without the forced include).
fn build_debug_new(root: &Path, out: &Path, cc: &Path, cxx: &Path) -> DebugNew {
    let src = root.join("harness/debug_new");
    println!("cargo:rerun-if-changed=harness/debug_new");
    let dir = out.join("debug_new");
    std::fs::create_dir_all(&dir).unwrap();
    let dn = DebugNew { header: src.join("debug_new.h"), c_object: dir.join("debug_new.o"), cxx_object: dir.join("debug_new_cxx.o") };
    for (compiler, source, object, std) in
        [(cc, "debug_new.c", &dn.c_object, "-std=gnu11"), (cxx, "debug_new_cxx.cpp", &dn.cxx_object, "-std=gnu++17")]
    {
        let mut cmd = Command::new(compiler);
        cmd.args(BASE_FLAGS).arg(std).arg("-c").arg(src.join(source)).arg("-o").arg(object);
        let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", compiler.display()));
        if !output.status.success() {
            panic!("the debug_new runtime failed to compile:\n$ {cmd:?}\n{}", String::from_utf8_lossy(&output.stderr));
        }
    }
    // The runtime's own trial (tests/compiled.rs) builds a test program with them.
    println!("cargo:rustc-env=LEAKLAB_DEBUG_NEW_HEADER={}", dn.header.display());
    println!("cargo:rustc-env=LEAKLAB_DEBUG_NEW_C_OBJECT={}", dn.c_object.display());
    println!("cargo:rustc-env=LEAKLAB_DEBUG_NEW_CXX_OBJECT={}", dn.cxx_object.display());
    dn
}

/// A program that leaks one 7-byte block, built with a sanitizer (`name`:
/// `lsan` with `-fsanitize=leak`, `asan` with `-fsanitize=address`): the
/// backend runs it once to learn whether the leak check works here (it
/// cannot under ptrace, nor in some containers). Exposed as
/// LEAKLAB_LSAN_PROBE / LEAKLAB_ASAN_PROBE; returns whether it linked.
fn build_sanitizer_probe(out: &Path, cc: &Path, name: &str, flag: &str) -> bool {
    let ok = sanitizer_probe(out, cc, name, flag);
    if !ok {
        println!("cargo:warning=gcc cannot link {flag}: the {name} backend will be unavailable");
    }
    // The lsan backend names its probe even when it failed to link (it then says why).
    let exposed = if ok || name == "lsan" { probe_path(out, name).display().to_string() } else { String::new() };
    println!("cargo:rustc-env={}={exposed}", probe_var(name));
    ok
}

/// clang's probe of a sanitizer (`lsan-clang`, `asan-clang`), exposed as
/// LEAKLAB_LSAN_CLANG_PROBE / LEAKLAB_ASAN_CLANG_PROBE (empty when clang is
/// missing or could not link it); returns whether it linked.
fn build_clang_probe(out: &Path, clang: Option<&Compilers>, name: &str, flag: &str) -> bool {
    let ok = clang.is_some_and(|c| sanitizer_probe(out, &c.cc, name, flag));
    if clang.is_some() && !ok {
        println!("cargo:warning=clang cannot link {flag} (is libclang-rt-14-dev installed?): the {name} backend will be unavailable");
    }
    let exposed = if ok { probe_path(out, name).display().to_string() } else { String::new() };
    println!("cargo:rustc-env={}={exposed}", probe_var(name));
    ok
}

fn probe_path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}_probe")).join("probe")
}

/// `lsan-clang` → `LEAKLAB_LSAN_CLANG_PROBE`.
fn probe_var(name: &str) -> String {
    format!("LEAKLAB_{}_PROBE", name.to_uppercase().replace('-', "_"))
}

/// Writes and links the probe; whether it linked.
fn sanitizer_probe(out: &Path, cc: &Path, name: &str, flag: &str) -> bool {
    let exe = probe_path(out, name);
    let dir = exe.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join("probe.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\n\
         void *volatile sink;\n\
         static void leak(void) { sink = malloc(7); sink = NULL; }\n\
         int main(void) { leak(); return 0; }\n",
    )
    .unwrap();
    let _ = std::fs::remove_file(&exe);
    Command::new(cc).args(["-g", "-O0", flag]).arg(&src).arg("-o").arg(&exe).status().is_ok_and(|s| s.success())
}

/// clang and clang++ from PATH (Debian's `clang` package; `clang-14` without
/// it), resolved to their real files, exposed as LEAKLAB_CLANG and
/// LEAKLAB_CLANGXX (empty when not found). A clang installed or upgraded
/// later reruns this script through its resource directory, where its
/// sanitizer runtimes go; a machine without any clang must touch build.rs.
fn find_clang() -> Option<Compilers> {
    let find = |names: &[&str]| {
        let path = std::env::var_os("PATH")?;
        names.iter().find_map(|n| std::env::split_paths(&path).map(|d| d.join(n)).find(|p| p.is_file()))
    };
    let found = find(&["clang", "clang-14"]).zip(find(&["clang++", "clang++-14"]));
    let clang = found.map(|(cc, cxx)| Compilers { cc: cc.canonicalize().unwrap_or(cc), cxx });
    if let Some(c) = &clang {
        println!("cargo:rerun-if-changed={}", c.cc.display());
        let resource = Command::new(&c.cc).arg("-print-resource-dir").output().ok();
        if let Some(dir) = resource.filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()) {
            if Path::new(&dir).is_dir() {
                println!("cargo:rerun-if-changed={dir}");
            }
        }
    } else {
        println!("cargo:warning=clang not found: the lsan-clang and asan-clang backends will be unavailable");
    }
    println!("cargo:rustc-env=LEAKLAB_CLANG={}", clang.as_ref().map(|c| c.cc.display().to_string()).unwrap_or_default());
    println!("cargo:rustc-env=LEAKLAB_CLANGXX={}", clang.as_ref().map(|c| c.cxx.display().to_string()).unwrap_or_default());
    clang
}

/// The bench program built by clang with each sanitizer whose probe linked,
/// for the bench's `lsan-clang` and `asan-clang` contenders (clang's
/// runtimes cannot be preloaded): LEAKLAB_ALLOC_STORM_LSAN_CLANG and
/// LEAKLAB_ALLOC_STORM_ASAN_CLANG, empty when not built.
fn build_clang_storms(root: &Path, out: &Path, lsan: Option<&Compilers>, asan: Option<&Compilers>) {
    let src = root.join("harness/bench/alloc_storm.cpp");
    for (clang, flag, name) in [(lsan, "-fsanitize=leak", "lsan_clang"), (asan, "-fsanitize=address", "asan_clang")] {
        let exe = out.join(format!("alloc_storm_{name}"));
        if let Some(c) = clang {
            run_compiler(
                Command::new(&c.cxx)
                    .args(["-O2", "-g", "-fno-omit-frame-pointer", "-pthread", flag, "-Wall", "-Wextra"])
                    .arg(&src)
                    .arg("-o")
                    .arg(&exe),
                "the bench program with clang's sanitizer",
            );
        }
        let exposed = if clang.is_some() { exe.display().to_string() } else { String::new() };
        println!("cargo:rustc-env=LEAKLAB_ALLOC_STORM_{}={exposed}", name.to_uppercase());
    }
}

fn compile(compiler: &Path, dir: &Path, out: &Path, s: &Sample, v: &Variant, dn: &DebugNew) -> Result<(), String> {
    let exe = exe_path(out, &s.name, v.name);
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let mut cmd = Command::new(compiler);
    cmd.args(BASE_FLAGS).arg("-I").arg(dir);
    if let Some(std) = s.settings.iter().find(|x| x.key == "std") {
        cmd.arg(format!("-std={}", std.value));
    }
    cmd.args(setting_words(s, "cflags")).args(v.extra_flags);
    if v.debug_new {
        cmd.arg("-include").arg(&dn.header);
    }
    cmd.args(s.sources.iter().map(|src| dir.join(src)));
    if v.debug_new {
        cmd.arg(&dn.c_object);
        if s.cpp {
            cmd.arg(&dn.cxx_object);
        }
    }
    cmd.arg("-o").arg(&exe).args(setting_words(s, "ldflags"));
    let output = cmd.output().map_err(|e| format!("{}: cannot run {}: {e}", s.name, compiler.display()))?;
    if !output.status.success() {
        return Err(format!(
            "sample `{}` ({} build) failed to compile:\n$ {:?}\n{}",
            s.name,
            v.name,
            cmd,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

fn render_catalogue(samples: &[Sample], variants: &[&Variant], dir: &Path, out: &Path) -> String {
    let mut code = String::from("// Generated by build.rs from c-samples/.\npub static SAMPLES: &[SampleInfo] = &[\n");
    for s in samples {
        let _ = writeln!(code, "    SampleInfo {{\n        name: {:?},", s.name);
        let _ = writeln!(code, "        language: Language::{},", if s.cpp { "Cpp" } else { "C" });
        let sources: Vec<String> = s.sources.iter().map(|x| format!("{x:?}")).collect();
        let _ = writeln!(code, "        sources: &[{}],", sources.join(", "));
        let _ = writeln!(code, "        samples_dir: {:?},", dir.to_str().unwrap());
        let texts: Vec<String> = s
            .sources
            .iter()
            .map(|x| format!("include_str!({:?})", dir.join(x).to_str().unwrap()))
            .collect();
        let _ = writeln!(code, "        texts: &[{}],", texts.join(", "));
        let builds: Vec<String> = variants
            .iter()
            .filter(|v| wanted(s, v))
            .map(|v| format!("({:?}, {:?})", v.name, exe_path(out, &s.name, v.name).to_str().unwrap()))
            .collect();
        let _ = writeln!(code, "        builds: &[{}],", builds.join(", "));
        let settings: Vec<String> =
            s.settings.iter().map(|x| format!("({:?}, {:?})", x.key, x.value)).collect();
        let _ = writeln!(code, "        settings: &[{}],\n    }},", settings.join(", "));
    }
    code.push_str("];\n");
    code
}

/// The lsan backend's preload (harness/native/lsan_preload.c), exposed as LEAKLAB_LSAN_PRELOAD.
fn build_lsan_preload(root: &Path, cc: &Path, out: &Path) {
    let src = root.join("harness/native/lsan_preload.c");
    println!("cargo:rerun-if-changed={}", src.display());
    let so = out.join("libleaklab_lsan.so");
    let status = Command::new(cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-pthread", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .expect("run the C compiler for lsan_preload");
    assert!(status.success(), "harness/native/lsan_preload.c failed to compile");
    println!("cargo:rustc-env=LEAKLAB_LSAN_PRELOAD={}", so.display());
}

/// A preload of a backend's, harness/native/NAME.c, as libleaklab_NAME.so, exposed as VAR.
fn build_preload(root: &Path, cc: &Path, out: &Path, name: &str, var: &str) {
    let src = root.join(format!("harness/native/{name}.c"));
    println!("cargo:rerun-if-changed={}", src.display());
    let so = out.join(format!("libleaklab_{name}.so"));
    let status = Command::new(cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-pthread", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .expect("run the C compiler for a preload");
    assert!(status.success(), "{} failed to compile", src.display());
    println!("cargo:rustc-env={var}={}", so.display());
}

/// The pre-exec stopper of `process::Spec::stop_before_exec` (harness/native/stop_exec.c).
fn build_stop_exec(root: &Path, cc: &Path, out: &Path) {
    let src = root.join("harness/native/stop_exec.c");
    println!("cargo:rerun-if-changed={}", src.display());
    let status = Command::new(cc)
        .args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(out.join("stop_exec"))
        .arg(&src)
        .status()
        .expect("run the C compiler for stop_exec");
    assert!(status.success(), "harness/native/stop_exec.c failed to compile");
}
