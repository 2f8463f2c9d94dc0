/*
 * phash.c — builds the minimal perfect hash described in phash.h.
 *
 * Build: hash every key, group keys by bucket (counting sort), then place buckets from
 * the largest to the smallest: for each, try pilots 0, 1, 2, ... until every key of the
 * bucket lands on a distinct free position. Large buckets go first while the table is
 * empty. Two keys per bucket on average keeps the tries low even at the end: 12 ms for
 * 200,000 keys on one core, against ~30 ms with four keys per bucket. If a bucket exhausts
 * its 65,536 pilots the whole build restarts with another seed (never seen with the
 * shipped vocabularies, but it keeps the build total).
 */
#include "core/phash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Average keys per bucket. Larger means fewer pilots (less memory) but longer searches. */
#define KEYS_PER_BUCKET 2
/* Load factor before minimalization, in percent. */
#define LOAD_PERCENT 99
#define MAX_SEEDS 16

#define HUGE_PAGE ((size_t)2 << 20)
/* room for the mapping's start and length before the table: a page of its own, so that the
 * table's pages are resident only when the table is written (memory.c counts them) */
#define TABLE_HEAD 4096

void *tok__table_calloc(size_t count, size_t size)
{
  if (count && size > SIZE_MAX / count) return NULL;
  size_t bytes = count * size;
  /* whole huge pages only, inside this mapping: advice that reached past it would apply to
   * whatever mapping follows, which could then merge with this one and fault in a huge page
   * across both (seen: an untouched 1 MiB memo resident because a neighbour was written) */
  bool huge = bytes >= HUGE_PAGE;
  if (bytes > SIZE_MAX - 2 * HUGE_PAGE) return NULL;
  /* fresh anonymous memory: zero, and resident only where written (a memo fills slowly) */
  size_t len = bytes + TABLE_HEAD + (huge ? HUGE_PAGE : 0);
  uint8_t *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return NULL;
  uint8_t *p = base + TABLE_HEAD;
  if (huge) {
    p = (uint8_t *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes & ~(HUGE_PAGE - 1), MADV_HUGEPAGE); /* advice only */
#endif
  }
  size_t head[2] = {(size_t)(p - base), len};
  memcpy(p - sizeof head, head, sizeof head);
  return p;
}

void tok__table_free(void *table)
{
  if (!table) return;
  uint8_t *p = table;
  size_t head[2];
  memcpy(head, p - sizeof head, sizeof head);
  munmap(p - head[0], head[1]);
}

void tok__phash_free(tok__phash *ph)
{
  free(ph->pilot);
  tok__table_free(ph->slot);
  free(ph->remap);
  memset(ph, 0, sizeof *ph);
}

typedef struct build_state {
  uint64_t *hash;        /* n */
  uint32_t *order;       /* n: key indices grouped by bucket */
  uint32_t *bucket_start; /* n_buckets + 1 */
  uint32_t *by_size;     /* n_buckets: bucket ids, largest first */
  uint32_t *pos_of_key;  /* n */
  uint64_t *taken;       /* m bits */
} build_state;

static void build_state_free(build_state *b)
{
  free(b->hash);
  free(b->order);
  free(b->bucket_start);
  free(b->by_size);
  free(b->pos_of_key);
  free(b->taken);
}

static bool bit_get(const uint64_t *bits, uint32_t i) { return (bits[i >> 6] >> (i & 63)) & 1; }
static void bit_set(uint64_t *bits, uint32_t i) { bits[i >> 6] |= 1ull << (i & 63); }

/* Returns 1 when placed, 0 when no pilot fits (retry with another seed), -2 on a
 * duplicate key. */
static int place_buckets(tok__phash *ph, build_state *b, const tok__phash_key *keys)
{
  uint32_t positions[64];
  for (uint32_t bi = 0; bi < ph->n_buckets; bi++) {
    uint32_t bucket = b->by_size[bi];
    uint32_t first = b->bucket_start[bucket], size = b->bucket_start[bucket + 1] - first;
    if (size == 0) break; /* sorted by size: the rest are empty */
    if (size > 64) return 0;
    bool placed = false;
    for (uint32_t pilot = 0; pilot <= UINT16_MAX && !placed; pilot++) {
      uint32_t k;
      for (k = 0; k < size; k++) {
        uint32_t pos = tok__phash_position(ph, b->hash[b->order[first + k]], (uint16_t)pilot);
        if (bit_get(b->taken, pos)) break;
        uint32_t j;
        for (j = 0; j < k && positions[j] != pos; j++) {
        }
        if (j < k) break;
        positions[k] = pos;
      }
      if (k < size) continue;
      for (k = 0; k < size; k++) {
        bit_set(b->taken, positions[k]);
        b->pos_of_key[b->order[first + k]] = positions[k];
      }
      ph->pilot[bucket] = (uint16_t)pilot;
      placed = true;
    }
    if (!placed) {
      /* Two equal keys always collide: tell that apart from bad luck. */
      for (uint32_t x = 0; x < size; x++)
        for (uint32_t y = x + 1; y < size; y++) {
          const tok__phash_key *kx = &keys[b->order[first + x]], *ky = &keys[b->order[first + y]];
          if (kx->len == ky->len && memcmp(kx->bytes, ky->bytes, kx->len) == 0) return -2;
        }
      return 0;
    }
  }
  return 1;
}

int tok__phash_build(tok__phash *ph, const tok__phash_key *keys, uint32_t n)
{
  tok__phash t = {0};
  build_state b = {0};
  int result = -1;

  t.n = n;
  t.m = n == 0 ? 0 : (uint32_t)(((uint64_t)n * 100 + LOAD_PERCENT - 1) / LOAD_PERCENT);
  t.n_buckets = n / KEYS_PER_BUCKET + 1;
  t.pilot = calloc(t.n_buckets, sizeof *t.pilot);
  t.slot = tok__table_calloc(n + 1, sizeof *t.slot);
  t.remap = calloc(t.m - n + 1, sizeof *t.remap);
  b.hash = malloc((n + 1) * sizeof *b.hash);
  b.order = malloc((n + 1) * sizeof *b.order);
  b.bucket_start = malloc((t.n_buckets + 1) * sizeof *b.bucket_start);
  b.by_size = malloc(t.n_buckets * sizeof *b.by_size);
  b.pos_of_key = malloc((n + 1) * sizeof *b.pos_of_key);
  b.taken = malloc(((t.m >> 6) + 1) * sizeof *b.taken);
  if (!t.pilot || !t.slot || !t.remap || !b.hash || !b.order || !b.bucket_start ||
      !b.by_size || !b.pos_of_key || !b.taken)
    goto done;
  if (n == 0) {
    result = 0;
    goto done;
  }

  for (uint64_t attempt = 0; attempt < MAX_SEEDS; attempt++) {
    t.seed = 0x243f6a8885a308d3ull * (attempt + 1);
    /* counting sort of keys by bucket */
    memset(b.bucket_start, 0, (t.n_buckets + 1) * sizeof *b.bucket_start);
    for (uint32_t i = 0; i < n; i++) {
      b.hash[i] = tok__hash_bytes(keys[i].bytes, keys[i].len, t.seed);
      b.bucket_start[tok__phash_bucket(&t, b.hash[i]) + 1]++;
    }
    uint32_t max_size = 0;
    for (uint32_t i = 0; i < t.n_buckets; i++) {
      if (b.bucket_start[i + 1] > max_size) max_size = b.bucket_start[i + 1];
      b.bucket_start[i + 1] += b.bucket_start[i];
    }
    if (max_size > 64) continue;
    uint32_t *cursor = malloc(t.n_buckets * sizeof *cursor);
    if (!cursor) goto done;
    memcpy(cursor, b.bucket_start, t.n_buckets * sizeof *cursor);
    for (uint32_t i = 0; i < n; i++) b.order[cursor[tok__phash_bucket(&t, b.hash[i])]++] = i;
    free(cursor);
    uint32_t fill[65] = {0}, size_start[66] = {0};
    /* buckets by size, largest first (counting sort on size) */
    for (uint32_t i = 0; i < t.n_buckets; i++)
      size_start[max_size - (b.bucket_start[i + 1] - b.bucket_start[i]) + 1]++;
    for (uint32_t s = 0; s <= max_size; s++) size_start[s + 1] += size_start[s];
    for (uint32_t i = 0; i < t.n_buckets; i++) {
      uint32_t rank = max_size - (b.bucket_start[i + 1] - b.bucket_start[i]);
      b.by_size[size_start[rank] + fill[rank]++] = i;
    }

    memset(b.taken, 0, ((t.m >> 6) + 1) * sizeof *b.taken);
    int placed = place_buckets(&t, &b, keys);
    if (placed == -2) {
      result = -2;
      goto done;
    }
    if (placed == 0) continue;

    /* minimalize: positions >= n move to the free positions below n, in order */
    uint32_t free_pos = 0;
    for (uint32_t p = n; p < t.m; p++) {
      if (!bit_get(b.taken, p)) continue;
      while (bit_get(b.taken, free_pos)) free_pos++;
      t.remap[p - n] = free_pos++;
    }
    for (uint32_t i = 0; i < n; i++) {
      uint32_t pos = b.pos_of_key[i];
      if (pos >= n) pos = t.remap[pos - n];
      t.slot[pos].value = keys[i].value;
      t.slot[pos].head = keys[i].len ? tok__head8(keys[i].bytes, keys[i].len) : 0;
    }
    *ph = t;
    memset(&t, 0, sizeof t);
    result = 0;
    goto done;
  }
  result = -1; /* every seed failed: treat like an allocation failure */

done:
  tok__phash_free(&t);
  build_state_free(&b);
  return result;
}
