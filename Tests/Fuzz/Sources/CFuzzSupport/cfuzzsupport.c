#define _GNU_SOURCE
#include <sched.h>
#include "cfuzzsupport.h"

int sixgate_fuzz_unshare_network(void) { return unshare(CLONE_NEWNET); }
