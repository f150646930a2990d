// The debug_new runtime's own test (tests/compiled.rs builds it with the
// forced include and runs it): what its replacements must get right beyond
// the catalogue. Its annotations say what must remain outstanding at exit.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>

struct alignas(64) Line {
    char bytes[64];
};

static void check(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "debug_new runtime check failed: %s\n", what);
        std::exit(1);
    }
}

int main()
{
    // Blocks that libc allocated (not ours) go back to libc's free and realloc.
    FILE *in = fmemopen((void *)"one line\n", 9, "r");
    char *line = nullptr;
    size_t cap = 0;
    check(getline(&line, &cap, in) == 9, "getline");
    line = static_cast<char *>(realloc(line, 4096));
    check(line != nullptr && std::strncmp(line, "one line", 8) == 0, "realloc of libc's block keeps its bytes");
    free(line);
    fclose(in);

    // Our realloc moves the block to its own line, keeping the bytes.
    char *grown = static_cast<char *>(malloc(8));
    std::strcpy(grown, "seven!!");
    grown = static_cast<char *>(realloc(grown, 100)); //~ LEAK definite size=100 count=1
    check(std::strcmp(grown, "seven!!") == 0, "realloc keeps the bytes");

    // Alignment is what was asked for, and freeing works.
    void *p64 = nullptr;
    check(posix_memalign(&p64, 64, 10) == 0 && reinterpret_cast<uintptr_t>(p64) % 64 == 0, "posix_memalign(64)");
    free(p64);
    void *page = aligned_alloc(4096, 4096); //~ LEAK definite size=4096 count=1
    check(reinterpret_cast<uintptr_t>(page) % 4096 == 0, "aligned_alloc(4096)");
    check(reinterpret_cast<uintptr_t>(malloc(1)) % 16 == 0, "malloc is 16-aligned"); //~ LEAK definite size=1 count=1

    // calloc zeroes; strndup stops at n.
    int *zeros = static_cast<int *>(calloc(4, sizeof(int)));
    check(zeros[0] == 0 && zeros[3] == 0, "calloc zeroes");
    free(zeros);
    char *part = strndup("abcdef", 3); //~ LEAK definite size=4 count=1
    check(std::strcmp(part, "abc") == 0, "strndup");

    // new and delete in every form, over-aligned types included.
    Line *l = new Line;
    check(reinterpret_cast<uintptr_t>(l) % 64 == 0, "new of an over-aligned type");
    delete l;
    Line *kept = new Line[3]; //~ LEAK definite size=192 count=1
    check(reinterpret_cast<uintptr_t>(kept) % 64 == 0, "new[] of an over-aligned type");
    int *one = new int(7);
    delete one;
    long *many = new long[5];
    delete[] many;
    double *lost = new double[2]; //~ LEAK definite size=16 count=1
    (void)lost;

    // Releases that do not match the allocation are freed all the same, and
    // noted. (Through opaque pointers: g++ would warn at the plain forms.)
    int *volatile array = new int[4];
    int *volatile single = new int(1);
    char *volatile raw = static_cast<char *>(malloc(3));
    delete (int *)array;                                     // expect: mismatched release: a block of new[] at runtime.cpp:69 (main) was released with delete
    free((int *)single);                                     // expect: mismatched release: a block of new at runtime.cpp:70 (main) was released with free
    delete[] (char *)raw;                                    // expect: mismatched release: a block of malloc at runtime.cpp:71 (main) was released with delete[]

    // munmap cuts any page range: the middle page of three leaves two mappings.
    long pg = sysconf(_SC_PAGESIZE);
    char *three = static_cast<char *>(mmap(nullptr, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)); //~ LEAK definite size=4096 count=2 region=private-anon
    check(three != MAP_FAILED, "mmap");
    check(munmap(three + pg, pg) == 0, "munmap of the middle page");
    char *gone = static_cast<char *>(mmap(nullptr, 2 * pg, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    munmap(gone, pg);
    munmap(gone + pg, pg);
    return 0;
}
