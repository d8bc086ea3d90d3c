// Counts calls to malloc and friends in this process, by interposing them over glibc's.
#ifndef SIXGATE_MALLOC_COUNTER_H
#define SIXGATE_MALLOC_COUNTER_H
/// Number of allocation calls (malloc, calloc, realloc, memalign, posix_memalign, aligned_alloc) so far.
unsigned long sixgate_malloc_count(void);
#endif
