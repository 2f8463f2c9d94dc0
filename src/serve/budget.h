/*
 * budget.h — the server's memory budget (--max-memory): one counter of the bytes that
 * requests may hold at once. A request reserves its share before its body is read (an
 * upper bound of everything it will allocate: the body, the parse, the work arrays, the
 * response) and gives it back when its response has been sent; one that would not fit is
 * answered 503 with Retry-After instead of being read. Lock-free (a compare-and-swap).
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

void tokd_budget_init(tokd_budget *b, size_t limit);
/* Takes n bytes if they fit; false (and counts a rejection) if not. */
bool tokd_budget_take(tokd_budget *b, size_t n);
void tokd_budget_give(tokd_budget *b, size_t n);
size_t tokd_budget_free(const tokd_budget *b);

#endif
