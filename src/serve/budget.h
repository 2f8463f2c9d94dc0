/*
 * budget.h — the server's memory budget (--max-memory): one counter of the bytes that
 * requests may hold at once. A request reserves its share before its body is read (an
 * upper bound of everything it will allocate: the body, the parse, the work arrays, the
 * response) and gives it back when its response has been sent; one that would not fit is
 * answered 503 with Retry-After instead of being read. Lock-free (a compare-and-swap).
 *
 * The server owns one (tokd_server.budget) and reaches it through a pointer, so handlers,
 * which see the server as const, take and give without casting; the lingering-close
 * thread holds the same pointer.
 */
#ifndef TOKD_BUDGET_H
#define TOKD_BUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct tokd_budget {
  size_t limit;
  atomic_size_t used;
  atomic_size_t peak;
  atomic_ullong rejected; /* reservations refused */
} tokd_budget;

/* A budget of limit bytes, none used. NULL when out of memory. */
tokd_budget *tokd_budget_new(size_t limit);
void tokd_budget_free(tokd_budget *b);
/* Takes n bytes if they fit; false (and counts a rejection) if not. Thread-safe. */
bool tokd_budget_take(tokd_budget *b, size_t n);
void tokd_budget_give(tokd_budget *b, size_t n);
/* Bytes not taken now. */
size_t tokd_budget_available(const tokd_budget *b);

#endif
