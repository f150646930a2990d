//! LeakSanitizer (gcc's liblsan): the sample is rebuilt with
//! `-fsanitize=leak`, which replaces malloc and operator new with LSan's
//! allocator. At exit LSan stops every thread (with ptrace, from a helper
//! task), scans the stacks, registers, globals and TLS for pointers, and
//! reports each unreached block: "Direct" when nothing points to it,
//! "Indirect" when only other leaked blocks do. Reachable blocks are not
//! leaks to LSan, and an interior pointer counts as a reference, so it knows
//! neither valgrind's "possibly lost" nor "still reachable".
//!
//! A program the user brings runs unmodified with gcc's liblsan.so preloaded.
//!
//! `lsan-clang` is the same row with clang's LeakSanitizer (compiler-rt):
//! the catalogue's `lsan-clang` build, the same options, logs and parser.
//! clang links its runtime into the program statically, so it cannot be
//! preloaded: a program of the user's must have been built with
//! `clang -fsanitize=leak` (or `=address`), and one that was not is refused.
//! clang's runtime names frames through an `llvm-symbolizer` process it
//! starts; leaklab gives it the one beside the clang that built the
//! catalogue, and the preload leaves that process out of the run's.
//! With it (and into every sample) goes harness/native/lsan_preload.c: it
//! initialises LSan before main (liblsan initialises lazily, and its
//! `signal` interceptor jumps through a NULL pointer until then), checks
//! before a deadly signal kills the process, checks a live process for
//! `--after`, and writes one file of events per process (start, fork, exit,
//! signal), so that a process LSan never checked (`_exit`, a kill, an exec,
//! LSan's own error) is reported as not analysed rather than as clean.
//!
//! LSan's reports are read from `log_path` files, one per process, never
//! from the program's stderr, which stays the user's. `exitcode=0` keeps
//! the program's own exit status; the logs and the event files say what
//! LSan found.
//!
//! Catalogue samples run with `use_stacks=0`. LSan checks only at exit,
//! after main has returned (every sample's threads are joined by then), so
//! the stacks hold no live roots, only stale copies of pointers in dead
//! frames; which of those survive depends on the stack's random offset
//! (ASLR), and scanning them made lost_tree, shallow_free and vector_of_raw
//! lose one to three blocks at random from run to run. A program the user
//! brings keeps LSan's default: it may exit from deep inside live frames.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::backend::{Availability, Backend, RunConfig, Target};
use crate::backends::valgrind::{api_name, dealloc_name};
use crate::error::Error;
use crate::process::{self, Spec};
use crate::report::{BadFree, BadFreeKind, End, Frame, Kind, Leak, MemoryError, Process, Report, Stats, Suppressed};
use crate::suppressions::Suppressions;

/// One LeakSanitizer row: gcc's runtime (`lsan`) or clang's (`lsan-clang`).
pub struct Lsan {
    /// The backend's name, which is also the catalogue's build variant.
    name: &'static str,
    summary: &'static str,
    compiler: Compiler,
}

/// Whose sanitizer runtimes a row runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiler {
    /// gcc's libsanitizer, a shared library (liblsan.so, libasan.so).
    Gcc,
    /// clang's compiler-rt, linked into each program.
    Clang,
}

impl Lsan {
    pub const GCC: Lsan = Lsan {
        name: "lsan",
        summary: "LeakSanitizer: the program is built with -fsanitize=leak; at exit it stops the world and scans for pointers to every block",
        compiler: Compiler::Gcc,
    };
    pub const CLANG: Lsan = Lsan {
        name: "lsan-clang",
        summary: "LeakSanitizer of clang (compiler-rt, linked in): built with clang -fsanitize=leak; the same scan at exit",
        compiler: Compiler::Clang,
    };
}

/// The Debian packages of clang's sanitizer rows: the compiler, its
/// sanitizer runtimes (which `--no-install-recommends` leaves out) and the
/// llvm-symbolizer those runtimes name frames with.
pub(crate) const CLANG_PACKAGES: &[&str] = &["clang", "libclang-rt-14-dev", "llvm-14"];

/// The fix when clang's rows are not built: build.rs finds clang only when it runs.
pub(crate) const CLANG_FIX: &str = "apt-get install -y clang libclang-rt-14-dev llvm-14 && touch build.rs && cargo build --release";

/// The clang build.rs found (empty when none).
const CLANG: &str = env!("LEAKLAB_CLANG");

/// The llvm-symbolizer of the clang that built the catalogue (beside it in
/// its LLVM's bin/), else the one in PATH: clang's runtimes start it to
/// name the frames of their stacks (gcc's symbolize inside).
pub(crate) fn symbolizer() -> Option<PathBuf> {
    let beside = Path::new(CLANG).parent().map(|d| d.join("llvm-symbolizer")).filter(|p| !CLANG.is_empty() && p.is_file());
    beside.or_else(|| which::which("llvm-symbolizer").ok()).map(|p| p.canonicalize().unwrap_or(p))
}

/// Why a clang row cannot run (`flag`: the sanitizer's; `probe`: its probe
/// as build.rs exposed it), or None.
pub(crate) fn clang_unavailable(backend: &str, flag: &str, probe: &str) -> Option<Availability> {
    if CLANG.is_empty() {
        return Some(Availability::Unavailable {
            reason: format!("clang was not found when leaklab was built: the catalogue has no {backend} build"),
            fix: CLANG_FIX.into(),
        });
    }
    if probe.is_empty() {
        return Some(Availability::Unavailable {
            reason: format!("{CLANG} could not link a `{flag}` program when leaklab was built (its sanitizer runtimes missing)"),
            fix: CLANG_FIX.into(),
        });
    }
    if symbolizer().is_none() {
        return Some(Availability::Unavailable {
            reason: format!("llvm-symbolizer is not installed: clang's runtime could not name a frame, and no leak would have a site"),
            fix: "apt-get install -y llvm-14".into(),
        });
    }
    None
}

/// The preload built from harness/native/lsan_preload.c (the unpacked copy
/// for an installed binary).
pub(crate) fn preload_library() -> Result<PathBuf, Error> {
    crate::artifacts::resolve(env!("LEAKLAB_LSAN_PRELOAD"))
}

/// Which sanitizer runtime a run has: LeakSanitizer alone (`lsan`), or
/// AddressSanitizer with its LeakSanitizer inside (`asan`, `asan-clang`).
/// Both write the same reports; only where their options go, and the name
/// the reports carry, differ.
#[derive(Debug, Clone, Copy)]
pub struct Sanitizer {
    /// The backend whose reports these are.
    pub backend: &'static str,
    /// The runtime's own name, in notes: `LeakSanitizer`, `AddressSanitizer`.
    pub tool: &'static str,
    /// Whether ASan's runtime is in the program: its options then go to
    /// ASAN_OPTIONS (LSan inside ASan reads only its own flags from LSAN_OPTIONS).
    pub asan: bool,
}

/// LeakSanitizer alone, the `lsan` backend.
pub const LSAN: Sanitizer = Sanitizer { backend: "lsan", tool: "LeakSanitizer", asan: false };

/// Runtime options. `exitcode=0`: the program keeps its own exit status
/// (the logs say what LSan found). `fast_unwind_on_malloc=0`: the
/// frame-pointer unwinder stops inside glibc (built without frame pointers)
/// and loses the caller of strdup; the DWARF unwinder keeps it.
/// `report_objects=0`: addresses of leaked objects are not wanted. The stack
/// format is the default one plus the module of every frame, so that runtime
/// frames can be recognised.
struct Options<'a> {
    log_path: &'a Path,
    scan_stacks: bool,
    suppressions: Option<&'a Path>,
    symbolizer: Option<&'a Path>,
}

impl Options<'_> {
    /// The options common to every sanitizer runtime, and LSan's own.
    fn render(&self) -> (String, String) {
        let mut common = format!(
            "fast_unwind_on_malloc=0:malloc_context_size=64:exitcode=0:symbolize=1:\
             detect_leaks=1:log_path={}:stack_trace_format=\"    #%n %p in %f %S (%m+%o)\"",
            self.log_path.display()
        );
        if let Some(file) = self.suppressions {
            common.push_str(&format!(":suppressions={}:print_suppressions=1", file.display()));
        }
        if let Some(path) = self.symbolizer {
            common.push_str(&format!(":external_symbolizer_path={}", path.display()));
        }
        let leak = format!("report_objects=0:use_stacks={}", u8::from(self.scan_stacks));
        (common, leak)
    }

    /// The environment of a run under `sanitizer`. ASan goes on after an
    /// error (`halt_on_error=0`, with builds made with
    /// `-fsanitize-recover=address`), so that the leak check at exit still
    /// runs, and lets leaklab's preload come before its runtime in the list
    /// of libraries (`verify_asan_link_order=0`: the preload intercepts nothing).
    fn env(&self, sanitizer: &Sanitizer) -> Vec<(&'static str, String)> {
        let (common, leak) = self.render();
        if sanitizer.asan {
            vec![
                ("ASAN_OPTIONS", format!("{common}:halt_on_error=0:verify_asan_link_order=0:detect_odr_violation=0")),
                ("LSAN_OPTIONS", leak),
            ]
        } else {
            vec![("LSAN_OPTIONS", format!("{common}:{leak}"))]
        }
    }
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "gcc".to_string())
}

/// gcc's liblsan.so, for preloading into a program that was not rebuilt.
fn liblsan() -> Option<PathBuf> {
    let out = std::process::Command::new(cc()).arg("-print-file-name=liblsan.so").output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Without the library gcc echoes the bare name back.
    (path.is_absolute() && path.exists()).then(|| path.canonicalize().unwrap_or(path))
}

/// The probe build.rs made: it leaks one block, so a working LSan must stop
/// the world, scan and report it.
fn probe_program() -> &'static Path {
    crate::artifacts::resolve_static(env!("LEAKLAB_LSAN_PROBE")).unwrap_or(Path::new(env!("LEAKLAB_LSAN_PROBE")))
}

/// Whether LSan can stop the world here, found once per leaklab process by running the probe.
fn probe() -> &'static Availability {
    static RESULT: OnceLock<Availability> = OnceLock::new();
    RESULT.get_or_init(|| {
        let program = probe_program();
        if !program.exists() {
            return Availability::Unavailable {
                reason: "gcc could not link a `-fsanitize=leak` program when leaklab was built (liblsan missing)".into(),
                fix: "apt-get install -y liblsan0 && cargo build".into(),
            };
        }
        probe_with(&LSAN, program)
    })
}

/// clang's probe, run once per leaklab process (after [`clang_unavailable`]).
fn clang_probe() -> &'static Availability {
    static RESULT: OnceLock<Availability> = OnceLock::new();
    RESULT.get_or_init(|| {
        let built = env!("LEAKLAB_LSAN_CLANG_PROBE");
        let program = crate::artifacts::resolve_static(built).unwrap_or(Path::new(built));
        probe_with(&Sanitizer { backend: "lsan-clang", tool: "LeakSanitizer", asan: false }, program)
    })
}

/// Runs a probe program (built with a sanitizer, leaking one 7-byte block
/// that no live frame points to) and says whether the sanitizer's leak
/// check works here. A failure can be transient (a busy machine, a
/// stop-the-world that timed out): only two in a row make it unavailable,
/// and the reason is the second failure's own.
pub fn probe_with(sanitizer: &Sanitizer, program: &Path) -> Availability {
    let target = Target { name: format!("{}-probe", sanitizer.backend), program: program.to_path_buf(), args: Vec::new(), sample: None };
    // clang's runtime names the probe's frames through llvm-symbolizer.
    let symbolizer = needs_symbolizer(program).then(symbolizer).flatten();
    let mut result = run_probe(sanitizer, &target, symbolizer.as_deref());
    if !result.as_ref().is_ok_and(|leaks| probe_found(leaks)) {
        result = run_probe(sanitizer, &target, symbolizer.as_deref());
    }
    let tool = sanitizer.tool;
    match result {
        Ok(leaks) if probe_found(&leaks) => Availability::Ready,
        Ok(leaks) => Availability::Unavailable {
            reason: format!(
                "{tool} ran twice but did not report the probe's 7-byte leak (found {})",
                if leaks.is_empty() { "nothing".to_string() } else { format!("{leaks:?}") }
            ),
            fix: format!("run `leaklab run --backend {} control_clean --raw` and read {tool}'s messages", sanitizer.backend),
        },
        Err(Error::TargetFailed { how, .. }) => Availability::Unavailable {
            reason: format!("{tool} cannot stop the world here: {}{}", how.trim_start_matches(&format!("stopped {tool}: ")), traced_note()),
            fix: "run outside a debugger or tracer (LSan stops the world with ptrace: no strace/gdb, and a container needs \
                  `--cap-add SYS_PTRACE` or a seccomp profile that allows ptrace; check /proc/sys/kernel/yama/ptrace_scope ≤ 2)"
                .into(),
        },
        // Not the machine's fault: leaklab could not run the probe or read its log.
        Err(e) => Availability::Unavailable {
            reason: format!("the run of {tool}'s probe failed: {e}"),
            fix: format!("run `leaklab run --backend {} control_clean --raw` and read what it says", sanitizer.backend),
        },
    }
}

fn probe_found(leaks: &[Leak]) -> bool {
    leaks.iter().any(|l| l.kind == Kind::Definite && l.bytes == 7)
}

impl Backend for Lsan {
    fn name(&self) -> &'static str {
        self.name
    }

    fn summary(&self) -> &'static str {
        self.summary
    }

    fn availability(&self) -> Availability {
        if self.compiler == Compiler::Clang {
            return clang_unavailable(self.name, "-fsanitize=leak", env!("LEAKLAB_LSAN_CLANG_PROBE")).unwrap_or_else(|| clang_probe().clone());
        }
        if liblsan().is_none() {
            return Availability::Unavailable {
                reason: format!("gcc's LeakSanitizer runtime (liblsan.so) is not installed (`{} -print-file-name=liblsan.so`)", cc()),
                fix: "apt-get install -y liblsan0".into(),
            };
        }
        probe().clone()
    }

    fn debian_packages(&self) -> &'static [&'static str] {
        match self.compiler {
            Compiler::Gcc => &["liblsan0"],
            Compiler::Clang => CLANG_PACKAGES,
        }
    }

    fn run(&self, target: &Target, config: &RunConfig) -> Result<Report, Error> {
        let started = std::time::Instant::now();
        let (program, runtime) = match target.sample {
            Some(s) => (s.executable(self.name)?.to_path_buf(), None),
            None => match (linkage(&target.program)?, self.compiler) {
                // Already built with a sanitizer: its own LSan runs at exit.
                (Linkage::Sanitized { .. }, Compiler::Gcc) | (Linkage::Sanitized { shared: false }, Compiler::Clang) => {
                    (target.program.clone(), None)
                }
                (Linkage::Sanitized { shared: true }, Compiler::Clang) => {
                    return Err(Error::Usage(format!(
                        "{} loads gcc's sanitizer runtime (liblsan.so or libasan.so): it was built by gcc, and its row is \
                         `--backend lsan` (or `asan`); `lsan-clang` runs clang's runtime, which a program built with \
                         `clang -fsanitize=leak` carries inside",
                        target.program.display()
                    )))
                }
                (Linkage::Dynamic, Compiler::Clang) => {
                    return Err(Error::Usage(format!(
                        "{} was not built with clang's LeakSanitizer: clang links its runtime into the program, so it \
                         cannot be preloaded into one built without it; rebuild it with `clang -g -fsanitize=leak`, or use \
                         `--backend lsan`, which preloads gcc's liblsan.so",
                        target.program.display()
                    )))
                }
                (Linkage::Dynamic, Compiler::Gcc) => {
                    let lib = liblsan().ok_or_else(|| Error::Unavailable {
                        backend: "lsan".into(),
                        reason: "liblsan.so not found".into(),
                        fix: "apt-get install -y liblsan0".into(),
                    })?;
                    (target.program.clone(), Some(lib))
                }
            },
        };
        let suppressions = load_suppressions(&config.suppressions)?;
        let run_target = Target { program, ..target.clone() };
        // A program built with ASan carries LSan inside ASan, which reads
        // its common options (log_path above all) from ASAN_OPTIONS.
        let sanitizer = if runtime.is_none() && needs_asan(&run_target.program) {
            Sanitizer { backend: self.name, tool: "AddressSanitizer", asan: true }
        } else {
            Sanitizer { backend: self.name, tool: "LeakSanitizer", asan: false }
        };
        let symbolizer = (runtime.is_none() && needs_symbolizer(&run_target.program)).then(symbolizer).flatten();
        let how = HowToRun::for_target(target, runtime.as_deref(), &suppressions).with_symbolizer(symbolizer.as_deref());
        let run = run_sanitized(&sanitizer, &run_target, config, &how)?;
        let mut report = run.report(target, &suppressions);
        report.stats = Some(Stats {
            wall_ms: started.elapsed().as_millis() as u64,
            peak_rss_kib: Some(run.finished.peak_rss_kib),
            pause_ms: None,
        });
        Ok(report)
    }
}

/// Whether a program is linked with ASan's runtime (gcc's libasan.so, or
/// clang's, linked in statically).
pub(crate) fn needs_asan(program: &Path) -> bool {
    use object::{Object, ObjectSection, ObjectSymbol};
    let Ok(data) = std::fs::read(program) else { return false };
    let Ok(file) = object::File::parse(&*data) else { return false };
    let dynstr = file.section_by_name(".dynstr").and_then(|s| s.data().ok()).unwrap_or_default();
    dynstr.windows(b"libasan.so".len()).any(|w| w == b"libasan.so")
        || file.symbols().chain(file.dynamic_symbols()).any(|s| s.name() == Ok("__asan_init") && !s.is_undefined())
}

/// Whether a program carries a sanitizer runtime linked into it (clang's
/// way) rather than loading gcc's shared one: such a runtime starts
/// llvm-symbolizer to name frames.
pub(crate) fn needs_symbolizer(program: &Path) -> bool {
    matches!(linkage(program), Ok(Linkage::Sanitized { shared: false }))
}

/// How a user's program can get LeakSanitizer.
#[derive(Debug, PartialEq, Eq)]
enum Linkage {
    /// Dynamically linked, no sanitizer: liblsan.so is preloaded.
    Dynamic,
    /// Built with -fsanitize=leak or =address: nothing to add. `shared`:
    /// gcc's way, the runtime a library the program loads; else clang's,
    /// linked into the program.
    Sanitized { shared: bool },
}

/// Reads the program's ELF headers. A statically linked program ignores
/// LD_PRELOAD: LSan would silently never run, and a clean report would lie.
fn linkage(program: &Path) -> Result<Linkage, Error> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let data = std::fs::read(program).map_err(|e| Error::io(program, e))?;
    let file = object::File::parse(&*data)
        .map_err(|e| Error::Usage(format!("{} is not an ELF program LeakSanitizer can run: {e}", program.display())))?;
    let dynstr = file.section_by_name(".dynstr").and_then(|s| s.data().ok()).unwrap_or_default();
    let needs = |lib: &[u8]| dynstr.windows(lib.len()).any(|w| w == lib);
    let has_symbol = |name: &str| file.symbols().chain(file.dynamic_symbols()).any(|s| s.name() == Ok(name) && !s.is_undefined());
    if needs(b"liblsan.so") || needs(b"libasan.so") {
        return Ok(Linkage::Sanitized { shared: true });
    }
    if has_symbol("__lsan_do_leak_check") {
        return Ok(Linkage::Sanitized { shared: false });
    }
    if file.section_by_name(".interp").is_none() {
        return Err(Error::Usage(format!(
            "{} is statically linked: LD_PRELOAD cannot bring LeakSanitizer into it; rebuild it with `-fsanitize=leak`",
            program.display()
        )));
    }
    Ok(Linkage::Dynamic)
}

/// The user's suppression files, checked before the run (a malformed file
/// is refused, never half applied), as LeakSanitizer reads them.
pub(crate) fn load_suppressions(files: &[PathBuf]) -> Result<Suppressions, Error> {
    let mut all = Suppressions::default();
    for file in files {
        all.extend(Suppressions::load(file)?);
    }
    Ok(all)
}

/// How [`run_sanitized`] runs a program.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HowToRun<'a> {
    /// A runtime to preload first (liblsan into a program not rebuilt).
    pub runtime: Option<&'a Path>,
    pub suppressions: &'a Suppressions,
    /// Whether LSan scans the threads' stacks (`use_stacks`): only for a
    /// program the user brings, which may exit from deep inside live frames;
    /// a catalogue sample (or the probe) has returned from main, and its
    /// stack holds only stale copies of pointers (see the module's doc).
    pub scan_stacks: bool,
    /// The llvm-symbolizer a runtime linked into the program (clang's)
    /// starts, whose process is not one of the run's.
    pub symbolizer: Option<&'a Path>,
}

impl<'a> HowToRun<'a> {
    pub(crate) fn for_target(target: &Target, runtime: Option<&'a Path>, suppressions: &'a Suppressions) -> HowToRun<'a> {
        HowToRun { runtime, suppressions, scan_stacks: target.sample.is_none(), symbolizer: None }
    }

    pub(crate) fn with_symbolizer(self, symbolizer: Option<&'a Path>) -> HowToRun<'a> {
        HowToRun { symbolizer, ..self }
    }
}

/// What one run under LSan left: how the program ended, and per process its
/// LSan log and its event file.
pub(crate) struct SanitizedRun {
    sanitizer: Sanitizer,
    pub finished: process::Finished,
    /// The program's pid.
    pid: u32,
    /// Whether leaklab stopped the program itself, after `--after`'s check.
    stopped_after_check: bool,
    /// Every process of the run, by pid.
    processes: BTreeMap<u32, ProcessFiles>,
}

#[derive(Default)]
struct ProcessFiles {
    log: Option<LsanLog>,
    events: Vec<ProcEvent>,
}

/// One line of a process's event file (harness/native/lsan_preload.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProcEvent {
    Start { parent: u32, program: String },
    Fork { parent: u32 },
    Exit { status: i32 },
    Signal { signal: i32 },
    After,
}

pub(crate) fn parse_events(text: &str) -> Vec<ProcEvent> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.splitn(3, ' ');
            let (word, a, b) = (words.next()?, words.next(), words.next());
            Some(match word {
                "start" => ProcEvent::Start { parent: a?.parse().ok()?, program: unescape(b.unwrap_or("")) },
                "fork" => ProcEvent::Fork { parent: a?.parse().ok()? },
                "exit" => ProcEvent::Exit { status: a?.parse().ok()? },
                "signal" => ProcEvent::Signal { signal: a?.parse().ok()? },
                "after" => ProcEvent::After,
                // A line cut short by a kill mid-write.
                _ => return None,
            })
        })
        .collect()
}

/// The preload's `\xNN` escapes of a file name, undone.
fn unescape(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let raw = text.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'x') {
            if let Some(b) = text.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                bytes.push(b);
                i += 4;
                continue;
            }
        }
        bytes.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs a program with a sanitizer active (and the preload); reads every
/// process's log and events. `runtime` is a library to preload first (LSan
/// into a program that was not rebuilt).
pub(crate) fn run_sanitized(sanitizer: &Sanitizer, target: &Target, config: &RunConfig, how: &HowToRun) -> Result<SanitizedRun, Error> {
    let HowToRun { runtime, suppressions, scan_stacks, symbolizer } = *how;
    let dir = crate::process::scratch()?;
    // LSan appends `.PID` to log_path, and the preload to its event files.
    let log_path = dir.path().join("lsan");
    let procs_path = dir.path().join("proc");
    let supp_path = (!suppressions.rules.is_empty()).then(|| dir.path().join("suppressions.supp"));
    if let Some(path) = &supp_path {
        // One file for LSan, whatever the number of the user's: the rules as parsed.
        let text: String = suppressions.rules.iter().map(|r| format!("leak:{}\n", r.pattern)).collect();
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    }
    let mut preload: Vec<String> = runtime.map(|r| r.display().to_string()).into_iter().collect();
    preload.push(preload_library()?.display().to_string());
    if let Ok(existing) = std::env::var("LD_PRELOAD") {
        preload.extend(existing.split([':', ' ']).filter(|s| !s.is_empty()).map(str::to_string));
    }
    let options = Options { log_path: &log_path, scan_stacks, suppressions: supp_path.as_deref(), symbolizer };
    let mut spec = Spec::new(&target.program, config.timeout)
        .args(&target.args)
        .io(config.io)
        .env_remove("ASAN_OPTIONS")
        .env_remove("LSAN_OPTIONS")
        .env("LD_PRELOAD", preload.join(":"))
        .env("LEAKLAB_LSAN_PROCS", &procs_path)
        // LSan reports only at exit: a checkpoint stop would gain nothing.
        .env_remove("LEAKLAB_CHECKPOINT")
        .env_remove("LEAKLAB_LSAN_AFTER_MS")
        .env_remove("LEAKLAB_LSAN_SYMBOLIZER")
        .env_remove("DEBUGINFOD_URLS");
    if let Some(path) = symbolizer {
        // The preload does nothing in the runtime's symbolizer process.
        spec = spec.env("LEAKLAB_LSAN_SYMBOLIZER", path);
    }
    for (name, value) in options.env(sanitizer) {
        spec = spec.env(name, value);
    }
    if let Some(after) = config.after {
        spec = spec.env("LEAKLAB_LSAN_AFTER_MS", after.as_millis().to_string());
    }
    let mut child = process::Child::spawn(&spec)?;
    let deadline = Instant::now() + config.timeout;
    let pid = child.pid() as u32;
    let mut stopped_after_check = false;
    if config.after.is_some() {
        // The preload checks from inside after the delay and says so in the
        // program's event file; then the program is stopped. One that exits
        // first is checked at exit as usual. The deadline is the child's own.
        let events = procs_path.with_extension(pid.to_string());
        loop {
            if child.has_exited() {
                break;
            }
            let text = std::fs::read_to_string(&events).unwrap_or_default();
            if parse_events(&text).contains(&ProcEvent::After) {
                child.signal(libc::SIGKILL);
                stopped_after_check = true;
                break;
            }
            if Instant::now() >= deadline {
                // finish() below reports the timeout and kills the group.
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let finished = child.finish()?;
    let mut processes: BTreeMap<u32, ProcessFiles> = BTreeMap::new();
    processes.entry(pid).or_default();
    for entry in std::fs::read_dir(dir.path()).map_err(|e| Error::io(dir.path(), e))? {
        let path = entry.map_err(|e| Error::io(dir.path(), e))?.path();
        let Some((stem, pid)) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.split_once('.')) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let text = String::from_utf8_lossy(&text);
        match stem {
            "lsan" => {
                if let Some(why) = fatal_error(&text) {
                    return Err(Error::TargetFailed {
                        program: target.name.clone(),
                        how: format!("stopped {}: {why}", sanitizer.tool),
                        stderr: text.into_owned(),
                    });
                }
                processes.entry(pid).or_default().log = Some(parse_log(&text)?);
            }
            "proc" => processes.entry(pid).or_default().events = parse_events(&text),
            _ => {}
        }
    }
    Ok(SanitizedRun { sanitizer: *sanitizer, finished, pid, stopped_after_check, processes })
}

impl SanitizedRun {
    /// The report: every process's leaks (with its pid when there are
    /// several), LSan's own errors, what the suppressions took, and the
    /// processes when the run was more than one program that simply exited.
    pub(crate) fn report(&self, target: &Target, suppressions: &Suppressions) -> Report {
        let tool = self.sanitizer.tool;
        let mut report = Report::new(&target.name, self.sanitizer.backend);
        let several = self.processes.len() > 1;
        let mut listed = Vec::new();
        let mut simple = !several;
        // (program, why) of each process LSan never checked; said once per kind, without pids.
        let mut unchecked: Vec<(String, String)> = Vec::new();
        for (&pid, files) in &self.processes {
            let log = files.log.clone().unwrap_or_default();
            for mut leak in log.leaks {
                leak.site = target.site_of(&leak.stack);
                leak.pid = several.then_some(pid);
                report.leaks.push(leak);
            }
            for e in log.errors {
                report.notes.push(format!("{tool}: {}", e.what));
                if let Some(bad) = bad_free(target, &e) {
                    report.bad_frees.push(bad);
                    continue;
                }
                report.errors.push(MemoryError {
                    kind: e.kind,
                    what: e.what,
                    site: target.site_of(&e.stack),
                    stack: e.stack,
                    pid: several.then_some(pid),
                });
            }
            for (count, bytes, template) in log.suppressed {
                let rule = suppressions
                    .rules
                    .iter()
                    .find(|r| r.pattern == template)
                    .map_or_else(|| format!("leak:{template}"), |r| format!("leak:{} ({})", r.pattern, r.origin));
                report.count_suppressed(Suppressed { rule, leaks: count, bytes });
            }
            let stopped_by_lsan = files.log.as_ref().is_some_and(|l| !l.errors.is_empty() && !l.checked);
            for p in self.images(target, pid, files) {
                if !p.analysed {
                    let why = if stopped_by_lsan && matches!(p.end, End::Exited { .. }) {
                        format!("stopped by {tool}'s own error, before any leak check")
                    } else {
                        why_unchecked(&p.end)
                    };
                    unchecked.push((p.program.clone(), why));
                }
                simple &= p.analysed && matches!(p.end, End::Exited { .. });
                listed.push(p);
            }
        }
        let mut said: Vec<&(String, String)> = Vec::new();
        for entry in &unchecked {
            if said.contains(&entry) {
                continue;
            }
            said.push(entry);
            let n = unchecked.iter().filter(|e| *e == entry).count();
            let (program, why) = entry;
            let who = if n == 1 { format!("a process of {program} was") } else { format!("{n} processes of {program} were") };
            report.notes.push(format!("{who} not checked by {tool}: {why}"));
        }
        if !simple {
            report.processes = listed;
        }
        report
    }

    /// One process entry per program image the pid ran (an exec starts a new one).
    fn images(&self, target: &Target, pid: u32, files: &ProcessFiles) -> Vec<Process> {
        let is_main = pid == self.pid;
        let mut images: Vec<Process> = Vec::new();
        let mut parent = None;
        let inherited = || if is_main { target.name.clone() } else { String::new() };
        let mut current = Process { pid, parent: None, program: inherited(), end: End::Running, analysed: false };
        let mut begun = false;
        for event in &files.events {
            match event {
                ProcEvent::Start { parent: p, program } => {
                    if begun {
                        // The previous image exec'd this one: LSan never checks at an exec.
                        let mut old = std::mem::replace(&mut current, Process { pid, parent: None, program: program.clone(), end: End::Running, analysed: false });
                        old.end = End::Exec { program: program.clone() };
                        images.push(old);
                    } else if !program.is_empty() {
                        current.program = program.clone();
                    }
                    parent = parent.or(Some(*p));
                    begun = true;
                }
                ProcEvent::Fork { parent: p } => {
                    parent = Some(*p);
                    begun = true;
                }
                ProcEvent::Exit { status } => {
                    current.end = End::Exited { code: *status };
                    current.analysed = true;
                }
                ProcEvent::Signal { signal } => {
                    current.end = End::Killed { signal: process::signal_name(*signal) };
                    current.analysed = true;
                }
                ProcEvent::After => current.analysed = true,
            }
        }
        if current.program.is_empty() {
            // A forked child runs its parent's program.
            current.program = parent
                .and_then(|p| self.processes.get(&p))
                .and_then(|f| f.events.iter().rev().find_map(|e| match e { ProcEvent::Start { program, .. } => Some(program.clone()), _ => None }))
                .unwrap_or_else(|| target.name.clone());
        }
        if is_main && !self.stopped_after_check {
            // The kernel's word on how the program ended, unless a deadly
            // signal was handled (LSan's handler then exits with a status).
            let handled = matches!(current.end, End::Killed { .. });
            match self.finished.exit {
                process::Exit::Signal(sig) if !handled => current.end = End::Killed { signal: process::signal_name(sig) },
                process::Exit::Code(code) if !handled => current.end = End::Exited { code },
                _ => {}
            }
        }
        // A leak report is proof of a check, whatever else was recorded.
        if files.log.as_ref().is_some_and(|l| l.checked) {
            current.analysed = true;
        }
        // The runtime's own fatal report (LSan rejecting an aligned_alloc,
        // ASan halting) stops the program before any leak check; after an
        // error ASan recovered from, exit() and its check still ran.
        let exited = files.events.iter().any(|e| matches!(e, ProcEvent::Exit { .. }));
        if files.log.as_ref().is_some_and(|l| !l.errors.is_empty() && !l.checked)
            && !matches!(current.end, End::Killed { .. })
            && !exited
        {
            current.analysed = false;
        }
        current.parent = parent.filter(|p| self.processes.contains_key(p));
        images.push(current);
        for image in &mut images {
            image.parent = parent.filter(|p| self.processes.contains_key(p));
        }
        images
    }
}

/// A sanitizer's report of a wrong free as a bad free (ASan checks every
/// free; LSan's allocator alone reports none): `double-free`,
/// `alloc-dealloc-mismatch (operator new [] vs operator delete)`, and
/// `bad-free` (`attempting free on address which was not malloc()-ed`).
/// The other end is the allocation of a mismatched block, the first free
/// of a double one.
fn bad_free(target: &Target, e: &LsanError) -> Option<BadFree> {
    let kind = match e.kind.as_str() {
        "double-free" => BadFreeKind::Double,
        "alloc-dealloc-mismatch" => BadFreeKind::Mismatched,
        "bad-free" => BadFreeKind::Invalid,
        _ => return None,
    };
    let dealloc = e.stack.first().and_then(|f| f.function.as_deref()).map_or_else(|| "free".to_string(), |f| {
        dealloc_name(f.trim_start_matches("___interceptor_").trim_start_matches("__interceptor_"))
    });
    let other_stack = match kind {
        BadFreeKind::Double => e.other_stacks.first().cloned().unwrap_or_default(),
        BadFreeKind::Mismatched => e.other_stacks.last().cloned().unwrap_or_default(),
        BadFreeKind::Invalid => Vec::new(),
    };
    let allocation = match kind {
        BadFreeKind::Invalid => None,
        _ => e.other_stacks.last(),
    };
    let api = allocation.and_then(|s| s.first()).and_then(|f| f.function.as_deref()).map(allocator_name);
    Some(BadFree {
        kind,
        dealloc,
        api,
        site: target.site_of(&e.stack),
        stack: e.stack.clone(),
        other_site: target.site_of(&other_stack),
        other_stack,
    })
}

/// Why LSan never looked at a process that ended this way.
fn why_unchecked(end: &End) -> String {
    match end {
        End::Exec { program } => format!("exec'd {program} (LSan checks only in exit())"),
        End::Killed { signal } => format!("killed by {signal} before exit()"),
        End::Exited { code } => format!("ended (status {code}) without LSan's check"),
        End::Finished => "ended without LSan's check".into(),
        End::Running => "no exit() was seen (left through _exit(), or still running when the run ended, then killed)".into(),
    }
}

/// The probe's run: its leaks, or why LSan did not work.
fn run_probe(sanitizer: &Sanitizer, target: &Target, symbolizer: Option<&Path>) -> Result<Vec<Leak>, Error> {
    // Without the stacks: the probe's block is lost when main returns, but
    // a stale copy of its address may survive in a dead frame below the
    // live ones at exit, depending on where ASLR put the stack; scanned, it
    // made LSan miss the leak about once in 3,000 runs, and the backend
    // then said LSan could not work here.
    let suppressions = Suppressions::default();
    let how = HowToRun { runtime: None, suppressions: &suppressions, scan_stacks: false, symbolizer };
    let run = run_sanitized(sanitizer, target, &RunConfig::default(), &how)?;
    Ok(run.processes.into_values().filter_map(|p| p.log).flat_map(|l| l.leaks).collect())
}

fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedOutput { tool: "LeakSanitizer".into(), message: message.into() }
}

/// " (leaklab itself is traced ...)" when it is: its children are then traced too.
fn traced_note() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find_map(|l| l.strip_prefix("TracerPid:")).map(str::trim) {
        Some(pid) if pid != "0" => format!(" (leaklab itself runs under a tracer, pid {pid})"),
        _ => String::new(),
    }
}

/// LSan's "fatal error" (it could not stop the world), with its hint.
fn fatal_error(text: &str) -> Option<String> {
    if !text.contains("LeakSanitizer has encountered a fatal error") {
        return None;
    }
    let hints: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("HINT: ").map(|(_, h)| h.trim()))
        .filter(|h| !h.starts_with("For debugging"))
        .collect();
    Some(if hints.is_empty() { "it encountered a fatal error".to_string() } else { hints.join("; ") })
}

static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\) allocated from:$").unwrap()
});
// `(?s)`: a module's path may hold a newline (see `logical_lines`).
static FRAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)^#(\d+) 0x[0-9a-fA-F]+(?: in (.*))?$").unwrap());
static SUMMARY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^SUMMARY: (?:Leak|Address)Sanitizer: (\d+) byte\(s\) leaked in (\d+) allocation\(s\)\.$").unwrap());
static MODULE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(.*?) ?\(([^()]*?)\+0x[0-9a-fA-F]+\)$").unwrap());
// `FILE:LINE`, or `FILE:LINE:COLUMN` (clang's llvm-symbolizer gives columns,
// gcc's libbacktrace does not): the file ends at the first `:N` that ends
// the word or is followed by one more.
static SOURCE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(.*?):(\d+)(?::\d+)?$").unwrap());
/// The first line of any report of a sanitizer runtime: `==PID==ERROR: LeakSanitizer: WHAT`.
static ERROR_LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^==\d+==ERROR: (\w+Sanitizer): (.*)$").unwrap());
/// The last line of an error report: `SUMMARY: LeakSanitizer: KIND ...`.
static ERROR_SUMMARY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^SUMMARY: \w+Sanitizer: (\S+)").unwrap());
static SUPPRESSION_ROW: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(\d+)\s+(\d+)\s+(.+)$").unwrap());

/// One process's LSan log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LsanLog {
    /// Whether it holds the result of a leak check (leaks, or suppressed
    /// ones); a check that finds nothing prints nothing.
    pub checked: bool,
    pub leaks: Vec<Leak>,
    /// The `Suppressions used:` table: (blocks, bytes, pattern) per rule that matched.
    pub suppressed: Vec<(u64, u64, String)>,
    /// LSan's own error reports: a deadly signal, a call it rejected.
    pub errors: Vec<LsanError>,
}

/// A report of LSan's other than leaks.
#[derive(Debug, Clone, PartialEq)]
pub struct LsanError {
    /// The word of its SUMMARY line: `SEGV`, `invalid-aligned-alloc-alignment`.
    pub kind: String,
    /// Its ERROR line, without the registers (`SEGV on unknown address 0x000000000000`).
    pub what: String,
    pub stack: Vec<Frame>,
    /// The report's later stacks, in its order: ASan's "freed by" and
    /// "previously allocated by".
    pub other_stacks: Vec<Vec<Frame>>,
}

/// The log's lines, with a stack frame whose module path holds a newline
/// put back together: with `(%m+%o)` at its end, a frame line is complete
/// once its last ` (` is closed.
fn logical_lines(text: &str) -> Vec<String> {
    let open = |line: &str| line.rfind(" (").is_some_and(|i| !line[i..].contains(')'));
    let mut out: Vec<String> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let mut line = line.to_string();
        let is_frame = line.trim_start().starts_with('#') && line.contains(" 0x");
        let mut joined = 0;
        while is_frame && open(&line) && joined < 8 {
            let Some(next) = lines.next() else { break };
            line.push('\n');
            line.push_str(next);
            joined += 1;
        }
        out.push(line);
    }
    out
}

/// Parses one LSan log: the leak report, the suppressions that matched,
/// and LSan's other reports (a deadly signal, a rejected call). Text around
/// them (a program's own output, in a stderr) is ignored; inside a leak
/// report, every line must be a leak header, a frame, blank, or the
/// summary, whose totals must equal the sum of the leaks. Sites are left unset.
pub fn parse_log(text: &str) -> Result<LsanLog, Error> {
    let lines = logical_lines(text);
    let mut log = LsanLog::default();
    let starts: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| ERROR_LINE.is_match(l.trim())).map(|(i, _)| i).collect();
    let mut leak_report = false;
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(lines.len());
        let header = lines[start].trim();
        let what = ERROR_LINE.captures(header).map(|c| c[2].to_string()).unwrap_or_default();
        if what.starts_with("detected memory leaks") {
            leak_report = true;
            log.leaks.extend(parse_leaks(&lines[start + 1..end])?);
        } else {
            log.errors.push(parse_error(&what, &lines[start + 1..end]));
        }
    }
    if !leak_report && lines.iter().any(|l| HEADER.is_match(l.trim())) {
        return Err(malformed("leak records without the `ERROR: LeakSanitizer: detected memory leaks` line"));
    }
    log.suppressed = parse_suppressions(&lines)?;
    log.checked = leak_report || !log.suppressed.is_empty();
    Ok(log)
}

/// The leaks of one report (one process's log, or its stderr); see [`parse_log`].
pub fn parse_report(text: &str) -> Result<Vec<Leak>, Error> {
    parse_log(text).map(|l| l.leaks)
}

/// `SEGV on unknown address 0x0 (pc 0x… bp 0x… sp 0x… T0)` → without the registers.
fn parse_error(what: &str, body: &[String]) -> LsanError {
    let what = match what.find(" (pc ") {
        Some(i) => what[..i].to_string(),
        None => what.to_string(),
    };
    let mut stacks: Vec<Vec<Frame>> = Vec::new();
    let mut kind = None;
    for line in body.iter().map(|l| l.trim()) {
        if let Some(c) = FRAME.captures(line) {
            // The first stack is the error's; later ones (where a block was
            // allocated, freed) start again at #0 after a title.
            let index = c[1].parse::<usize>().unwrap_or(usize::MAX);
            if index == 0 {
                stacks.push(Vec::new());
            }
            if let Some(stack) = stacks.last_mut().filter(|s| s.len() == index) {
                stack.push(parse_frame(c.get(2).map_or("", |m| m.as_str())));
            }
        } else if let Some(c) = ERROR_SUMMARY.captures(line) {
            kind = Some(c[1].to_string());
            break;
        }
    }
    let kind = kind.unwrap_or_else(|| what.split_whitespace().next().unwrap_or("error").to_string());
    let mut stacks = stacks.into_iter();
    let stack = stacks.next().unwrap_or_default();
    LsanError { kind, what, stack, other_stacks: stacks.collect() }
}

/// The `Suppressions used:` table: a `count bytes template` header, then rows.
fn parse_suppressions(lines: &[String]) -> Result<Vec<(u64, u64, String)>, Error> {
    let mut rows = Vec::new();
    let mut iter = lines.iter().map(|l| l.trim());
    while let Some(line) = iter.by_ref().find(|l| *l == "Suppressions used:") {
        let _ = line;
        for row in iter.by_ref() {
            if row.starts_with("count") {
                continue;
            }
            let Some(c) = SUPPRESSION_ROW.captures(row) else { break };
            let count = c[1].parse().map_err(|_| malformed(format!("bad suppression count in `{row}`")))?;
            let bytes = c[2].parse().map_err(|_| malformed(format!("bad suppression bytes in `{row}`")))?;
            rows.push((count, bytes, c[3].trim().to_string()));
        }
    }
    Ok(rows)
}

/// The body of a `detected memory leaks` report, after its ERROR line.
fn parse_leaks(body: &[String]) -> Result<Vec<Leak>, Error> {
    let mut leaks: Vec<Leak> = Vec::new();
    let mut summary = None;
    let mut in_suppressions = false;
    for (n, raw) in body.iter().enumerate() {
        let line = raw.trim();
        let at = |what: &str| malformed(format!("report line {}: {what}: `{line}`", n + 2));
        if line.is_empty() || line.starts_with("-----") {
            continue;
        }
        if let Some(c) = HEADER.captures(line) {
            let kind = if &c[1] == "Direct" { Kind::Definite } else { Kind::Indirect };
            let bytes = c[2].parse().map_err(|_| at("byte count out of range"))?;
            let blocks = c[3].parse().map_err(|_| at("object count out of range"))?;
            leaks.push(Leak::new(kind, bytes, blocks));
        } else if let Some(c) = FRAME.captures(line) {
            let leak = leaks.last_mut().ok_or_else(|| at("a stack frame before any leak header"))?;
            if summary.is_some() {
                return Err(at("a stack frame after the summary"));
            }
            let index: usize = c[1].parse().map_err(|_| at("bad frame number"))?;
            if index != leak.stack.len() {
                return Err(at(&format!("frame #{index} where #{} was due", leak.stack.len())));
            }
            leak.stack.push(parse_frame(c.get(2).map_or("", |m| m.as_str())));
        } else if let Some(c) = SUMMARY.captures(line) {
            summary = Some((c[1].parse::<u64>().map_err(|_| at("bad total"))?, c[2].parse::<u64>().map_err(|_| at("bad total"))?));
        } else if line.starts_with("Suppressions used:") {
            // The table of suppressions that matched, read by `parse_suppressions`.
            in_suppressions = true;
        } else if in_suppressions || summary.is_some() || line.starts_with("==") {
            // The suppressions table; after the summary, the program's own
            // output; `==PID==` lines are LSan's own notes.
            continue;
        } else {
            return Err(at("not a leak header, a stack frame or the summary"));
        }
    }
    let Some((total_bytes, total_blocks)) = summary else {
        return Err(malformed("no `SUMMARY: LeakSanitizer:` line: the report was cut short"));
    };
    if let Some(l) = leaks.iter().find(|l| l.stack.is_empty()) {
        return Err(malformed(format!("a {} leak of {} byte(s) without a stack", l.kind, l.bytes)));
    }
    let (bytes, blocks) = leaks.iter().fold((0, 0), |(b, n), l| (b + l.bytes, n + l.blocks));
    if (bytes, blocks) != (total_bytes, total_blocks) {
        return Err(malformed(format!(
            "the summary says {total_bytes} byte(s) in {total_blocks} allocation(s), the leaks add up to {bytes} in {blocks}"
        )));
    }
    for leak in &mut leaks {
        leak.api = leak.stack.first().and_then(|f| f.function.as_deref()).map(allocator_name);
    }
    Ok(leaks)
}

/// One frame after `#N 0xADDR in `: `FUNCTION [FILE:LINE[:COL] | <null>] [(MODULE+0xOFF)]`.
fn parse_frame(rest: &str) -> Frame {
    let mut frame = Frame::default();
    let mut rest = rest.trim();
    if let Some(c) = MODULE.captures(rest) {
        frame.object = Some(c[2].to_string()).filter(|m| !m.starts_with('<'));
        rest = c.get(1).map_or("", |m| m.as_str()).trim();
    }
    // The location is the last word when it looks like one; a function name
    // (`operator new(unsigned long)`) may itself contain spaces.
    if let Some((func, last)) = rest.rsplit_once(' ') {
        if last == "<null>" {
            rest = func;
        } else if let Some(c) = SOURCE.captures(last) {
            frame.file = Some(c[1].to_string());
            frame.line = c[2].parse().ok();
            rest = func;
        }
    }
    let func = rest.trim();
    if !func.is_empty() && func != "<null>" {
        frame.function = Some(func.to_string());
    }
    frame
}

/// `__interceptor_malloc` → `malloc`, `operator new[](unsigned long)` → `new[]`.
fn allocator_name(function: &str) -> String {
    let f = function.trim_start_matches("___interceptor_").trim_start_matches("__interceptor_");
    api_name(f)
}
