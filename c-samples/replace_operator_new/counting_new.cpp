// Replacements of the global operator new and delete. Defining them in the
// program is allowed by the standard ([replacement.functions]); the linker
// takes these strong definitions, and libstdc++'s are not used.
#include <atomic>
#include <cstdlib>
#include <new>

#include "counting_new.h"

static std::atomic<std::size_t> new_calls{0}, delete_calls{0};

std::size_t counting_new_calls() { return new_calls.load(); }
std::size_t counting_delete_calls() { return delete_calls.load(); }

static void *allocate(std::size_t size)
{
    new_calls++;
    void *p = std::malloc(size == 0 ? 1 : size); //~ LEAK definite size=24 count=1
    if (p == nullptr)
        throw std::bad_alloc();
    return p;
}

static void release(void *p) noexcept
{
    if (p != nullptr)
        delete_calls++;
    std::free(p);
}

void *operator new(std::size_t size) { return allocate(size); }
void *operator new[](std::size_t size) { return allocate(size); }
void operator delete(void *p) noexcept { release(p); }
void operator delete[](void *p) noexcept { release(p); }
void operator delete(void *p, std::size_t) noexcept { release(p); }
void operator delete[](void *p, std::size_t) noexcept { release(p); }
