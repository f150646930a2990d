// The debug_new runtime (C++ part): the placement forms of operator new that
// `new(__FILE__, __LINE__)` calls, and the replaced global operator delete,
// which must recognise those blocks. Built WITHOUT debug_new.h.
//
// The plain `operator new(size_t)` is NOT replaced: what calls it without a
// file and line (std::string's and std::vector's buffers, make_shared, code
// that was not recompiled) stays with libstdc++'s, which takes it from
// malloc; the replaced operator delete hands such blocks back to free().
#include <cstdlib>
#include <new>

#include "debug_new_runtime.h"

namespace {

void *allocate(std::size_t size, std::size_t align, dn_api api, const char *file, int line, const char *func)
{
    // new never returns NULL: it retries through the new-handler, then throws.
    for (;;) {
        if (void *p = leaklab_dn_alloc(size == 0 ? 1 : size, align, api, api == DN_NEW_ARRAY, file, line, func))
            return p;
        std::new_handler handler = std::get_new_handler();
        if (handler == nullptr)
            throw std::bad_alloc();
        handler();
    }
}

void release(void *ptr, dn_release how) noexcept
{
    if (ptr != nullptr && !leaklab_dn_release(ptr, how))
        std::free(ptr);  // libstdc++'s operator new took it from malloc
}

}  // namespace

void *operator new(std::size_t size, const char *file, int line, const char *func)
{
    return allocate(size, 0, DN_NEW, file, line, func);
}

void *operator new[](std::size_t size, const char *file, int line, const char *func)
{
    return allocate(size, 0, DN_NEW_ARRAY, file, line, func);
}

void *operator new(std::size_t size, std::align_val_t align, const char *file, int line, const char *func)
{
    return allocate(size, static_cast<std::size_t>(align), DN_NEW, file, line, func);
}

void *operator new[](std::size_t size, std::align_val_t align, const char *file, int line, const char *func)
{
    return allocate(size, static_cast<std::size_t>(align), DN_NEW_ARRAY, file, line, func);
}

void operator delete(void *ptr, const char *, int, const char *) noexcept { release(ptr, DN_BY_DELETE); }
void operator delete[](void *ptr, const char *, int, const char *) noexcept { release(ptr, DN_BY_DELETE_ARRAY); }
void operator delete(void *ptr, std::align_val_t, const char *, int, const char *) noexcept { release(ptr, DN_BY_DELETE); }
void operator delete[](void *ptr, std::align_val_t, const char *, int, const char *) noexcept { release(ptr, DN_BY_DELETE_ARRAY); }

// Every replaceable form of the global delete: a delete-expression picks
// one by type and alignment, and each may receive one of our blocks.
void operator delete(void *ptr) noexcept { release(ptr, DN_BY_DELETE); }
void operator delete[](void *ptr) noexcept { release(ptr, DN_BY_DELETE_ARRAY); }
void operator delete(void *ptr, std::size_t) noexcept { release(ptr, DN_BY_DELETE); }
void operator delete[](void *ptr, std::size_t) noexcept { release(ptr, DN_BY_DELETE_ARRAY); }
void operator delete(void *ptr, const std::nothrow_t &) noexcept { release(ptr, DN_BY_DELETE); }
void operator delete[](void *ptr, const std::nothrow_t &) noexcept { release(ptr, DN_BY_DELETE_ARRAY); }
void operator delete(void *ptr, std::align_val_t) noexcept { release(ptr, DN_BY_DELETE); }
void operator delete[](void *ptr, std::align_val_t) noexcept { release(ptr, DN_BY_DELETE_ARRAY); }
void operator delete(void *ptr, std::size_t, std::align_val_t) noexcept { release(ptr, DN_BY_DELETE); }
void operator delete[](void *ptr, std::size_t, std::align_val_t) noexcept { release(ptr, DN_BY_DELETE_ARRAY); }
void operator delete(void *ptr, std::align_val_t, const std::nothrow_t &) noexcept { release(ptr, DN_BY_DELETE); }
void operator delete[](void *ptr, std::align_val_t, const std::nothrow_t &) noexcept { release(ptr, DN_BY_DELETE_ARRAY); }
