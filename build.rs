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
}

const VARIANTS: &[Variant] = &[Variant { name: "plain", extra_flags: &[] }];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let samples_dir = root.join("c-samples");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=c-samples");
    println!("cargo:rerun-if-changed=harness/settings.rs");

    let samples = discover(&samples_dir);
    let cc = cc::Build::new().cargo_metadata(false).get_compiler().path().to_path_buf();
    let cxx = cc::Build::new().cpp(true).cargo_metadata(false).get_compiler().path().to_path_buf();
    export_compilers(&cc, &cxx);

    // (sample index, variant) jobs, compiled on as many threads as cargo allows.
    let jobs: Vec<(usize, &Variant)> =
        (0..samples.len()).flat_map(|i| VARIANTS.iter().map(move |v| (i, v))).collect();
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
                let compiler = if s.cpp { &cxx } else { &cc };
                if let Err(msg) = compile(compiler, &samples_dir, &out, s, variant) {
                    failures.lock().unwrap().push(msg);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        panic!("{} sample build(s) failed:\n{}", failures.len(), failures.join("\n"));
    }

    std::fs::write(out.join("catalogue.rs"), render_catalogue(&samples, &samples_dir, &out))
        .expect("write catalogue.rs");
}

/// The labs compile the students' C/C++ at check time with the compilers the
/// samples were built with (`env!("LEAKLAB_CC")`, `env!("LEAKLAB_CXX")`).
fn export_compilers(cc: &Path, cxx: &Path) {
    println!("cargo:rustc-env=LEAKLAB_CC={}", cc.display());
    println!("cargo:rustc-env=LEAKLAB_CXX={}", cxx.display());
}

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

fn setting_words<'a>(s: &'a Sample, key: &str) -> impl Iterator<Item = &'a str> + 'a {
    let key = key.to_string();
    s.settings.iter().filter(move |x| x.key == key).flat_map(|x| x.value.split_whitespace())
}

fn exe_path(out: &Path, sample: &str, variant: &str) -> PathBuf {
    out.join("samples").join(variant).join(sample)
}

fn compile(compiler: &Path, dir: &Path, out: &Path, s: &Sample, v: &Variant) -> Result<(), String> {
    let exe = exe_path(out, &s.name, v.name);
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let mut cmd = Command::new(compiler);
    cmd.args(BASE_FLAGS).arg("-I").arg(dir);
    if let Some(std) = s.settings.iter().find(|x| x.key == "std") {
        cmd.arg(format!("-std={}", std.value));
    }
    cmd.args(setting_words(s, "cflags")).args(v.extra_flags);
    cmd.args(s.sources.iter().map(|src| dir.join(src)));
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

fn render_catalogue(samples: &[Sample], dir: &Path, out: &Path) -> String {
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
        let builds: Vec<String> = VARIANTS
            .iter()
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
