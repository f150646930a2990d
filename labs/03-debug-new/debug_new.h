// debug_new.h: tag every `new` of a file with the file and line it is on.
// Include it after every standard header of the file (it redefines the
// keyword `new`, which the standard headers must not see).
#ifndef LAB_DEBUG_NEW_H
#define LAB_DEBUG_NEW_H

#include <cstddef>

// The placement forms `new (__FILE__, __LINE__) T` calls. debug_new.cpp
// defines them, together with the ordinary operator new and delete.
void *operator new(std::size_t size, const char *file, int line);
void *operator new[](std::size_t size, const char *file, int line);
// Called only when a constructor throws after the placement form allocated.
void operator delete(void *p, const char *file, int line) noexcept;
void operator delete[](void *p, const char *file, int line) noexcept;

#define DEBUG_NEW new (__FILE__, __LINE__)
#define new DEBUG_NEW

#endif
