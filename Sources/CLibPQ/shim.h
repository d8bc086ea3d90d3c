// CLibPQ: PostgreSQL's client library (Debian libpq-dev) for SixgatePostgres. Headers only.
#ifndef SIXGATE_CLIBPQ_SHIM_H
#define SIXGATE_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
