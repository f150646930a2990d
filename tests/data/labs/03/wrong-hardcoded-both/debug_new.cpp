// debug_new.cpp: a leak tracker in the spirit of nvwa's debug_new (reference
// solution of lab 03). Every block gets a header in front of the pointer the
// program sees; the headers form a doubly linked list of live blocks; what is
// still in the list when the program exits has leaked.
#include <cstddef>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "debug_new.h"
#undef new  // from here on, `new` is the keyword again

namespace {

constexpr unsigned long MAGIC = 0x6c65616b6c616221UL;  // tells our blocks from foreign pointers

struct Header {
    Header *prev;
    Header *next;
    std::size_t size;  // what the program asked for
    const char *file;  // nullptr for the untagged operator new (standard library, ...)
    int line;
    bool is_array;
    unsigned long magic;
};

// The header is padded to the strictest fundamental alignment so the
// pointer after it is as well aligned as malloc's.
constexpr std::size_t ALIGN = alignof(std::max_align_t);
constexpr std::size_t HEADER_SIZE = (sizeof(Header) + ALIGN - 1) / ALIGN * ALIGN;

// A circular list with a sentinel: linking and unlinking need no special cases.
Header sentinel = {&sentinel, &sentinel, 0, nullptr, 0, false, MAGIC};
std::mutex lock;  // constexpr-constructed: usable before any static constructor runs

void *allocate(std::size_t size, const char *file, int line, bool is_array)
{
    auto *h = static_cast<Header *>(std::malloc(HEADER_SIZE + size));
    if (h == nullptr)
        throw std::bad_alloc();
    h->size = size;
    h->file = file;
    h->line = line;
    h->is_array = is_array;
    h->magic = MAGIC;
    {
        std::lock_guard<std::mutex> guard(lock);
        h->prev = &sentinel;
        h->next = sentinel.next;
        sentinel.next->prev = h;
        sentinel.next = h;
    }
    return reinterpret_cast<char *>(h) + HEADER_SIZE;
}

void release(void *p)
{
    if (p == nullptr)
        return;
    auto *h = reinterpret_cast<Header *>(static_cast<char *>(p) - HEADER_SIZE);
    if (h->magic != MAGIC) {
        std::fprintf(stderr, "debug_new: delete of %p, which operator new did not return\n", p);
        std::abort();
    }
    {
        std::lock_guard<std::mutex> guard(lock);
        h->prev->next = h->next;
        h->next->prev = h->prev;
    }
    h->magic = 0;  // a second delete of the same block is caught above
    std::free(h);
}

// Runs after exit() has run the static destructors (a destructor function is
// called from .fini_array, after the atexit list), so objects that free
// memory in their destructors are not reported.
// Wrong on purpose (the suite's test data): the report is copied from the
// annotations of the lab's two victims, chosen by the program's name,
// instead of being read from the list.
__attribute__((destructor)) void report_leaks()
{
    if (std::strcmp(program_invocation_short_name, "victim_threads") == 0) {
        for (int i = 0; i < 8; i++)
            std::fprintf(stderr, "debug_new: leaked 24 bytes at victim_threads.cpp:18 (new[])\n");
        std::fprintf(stderr, "debug_new: 8 leaks, 192 bytes\n");
        return;
    }
    for (int i = 0; i < 4; i++)
        std::fprintf(stderr, "debug_new: leaked 32 bytes at victim.cpp:32 (new)\n");
    std::fprintf(stderr, "debug_new: leaked 12 bytes at victim.cpp:43 (new)\n");
    std::fprintf(stderr, "debug_new: leaked 40 bytes at victim.cpp:44 (new[])\n");
    std::fprintf(stderr, "debug_new: leaked 32 bytes at victim.cpp:45 (new[])\n");
    std::fprintf(stderr, "debug_new: 7 leaks, 212 bytes\n");
}

}  // namespace

void *operator new(std::size_t size, const char *file, int line)
{
    return allocate(size, file, line, false);
}

void *operator new[](std::size_t size, const char *file, int line)
{
    return allocate(size, file, line, true);
}

void *operator new(std::size_t size)
{
    return allocate(size, nullptr, 0, false);
}

void *operator new[](std::size_t size)
{
    return allocate(size, nullptr, 0, true);
}

void operator delete(void *p) noexcept
{
    release(p);
}

void operator delete[](void *p) noexcept
{
    release(p);
}

void operator delete(void *p, std::size_t) noexcept
{
    release(p);
}

void operator delete[](void *p, std::size_t) noexcept
{
    release(p);
}

void operator delete(void *p, const char *, int) noexcept
{
    release(p);
}

void operator delete[](void *p, const char *, int) noexcept
{
    release(p);
}
