// glibc's count of heap bytes in use (mallinfo2), which Swift's Glibc module does not export.
#ifndef SIXGATE_HEAP_USAGE_H
#define SIXGATE_HEAP_USAGE_H
#include <stddef.h>
/// Bytes currently allocated with malloc (arena + mmapped chunks).
size_t sixgate_heap_in_use(void);
#endif
