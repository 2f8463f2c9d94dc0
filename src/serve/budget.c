/*
 * budget.c — see budget.h.
 */
#include "serve/budget.h"

#include <stdlib.h>

tokd_budget *tokd_budget_new(size_t limit)
{
  tokd_budget *b = malloc(sizeof *b);
  if (!b) return NULL;
  b->limit = limit;
  atomic_init(&b->used, 0);
  atomic_init(&b->peak, 0);
  atomic_init(&b->rejected, 0);
  return b;
}

void tokd_budget_free(tokd_budget *b)
{
  free(b);
}

bool tokd_budget_take(tokd_budget *b, size_t n)
{
  size_t used = atomic_load_explicit(&b->used, memory_order_relaxed);
  do {
    if (n > b->limit || used > b->limit - n) {
      atomic_fetch_add_explicit(&b->rejected, 1, memory_order_relaxed);
      return false;
    }
  } while (!atomic_compare_exchange_weak_explicit(&b->used, &used, used + n, memory_order_relaxed,
                                                  memory_order_relaxed));
  size_t peak = atomic_load_explicit(&b->peak, memory_order_relaxed);
  while (used + n > peak &&
         !atomic_compare_exchange_weak_explicit(&b->peak, &peak, used + n, memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
  return true;
}

void tokd_budget_give(tokd_budget *b, size_t n)
{
  atomic_fetch_sub_explicit(&b->used, n, memory_order_relaxed);
}

size_t tokd_budget_available(const tokd_budget *b)
{
  size_t used = atomic_load_explicit(&b->used, memory_order_relaxed);
  return used >= b->limit ? 0 : b->limit - used;
}
