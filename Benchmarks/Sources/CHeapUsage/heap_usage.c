#include <malloc.h>
#include "heap_usage.h"

size_t sixgate_heap_in_use(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}
