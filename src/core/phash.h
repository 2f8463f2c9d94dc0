/*
 * phash.h — a minimal perfect hash from byte strings to 64-bit values, built once and
 * then read-only.
 *
 * Design (after PTHash / "hash and displace"): keys are hashed to 64 bits; the low half
 * picks a bucket, and each bucket stores a 16-bit pilot chosen at build time so that
 * position(h ^ pilot) of all its keys land on distinct free positions in a table of
 * m = n / 0.99 slots. Building with 1% slack keeps the pilot search short for the last
 * buckets; minimality is restored PTHash-style: the ~1% of keys that land at positions >= n
 * are remapped to the free positions below n, so the value table has exactly n entries.
 *
 * A lookup is one hash, one pilot load, one value load (plus one remap load for ~1% of
 * keys). The table cannot tell a key from a stranger: a non-key yields some stored value,
 * so callers verify the bytes (tok__rank_lookup in internal.h does).
 */
#ifndef TOK_PHASH_H
#define TOK_PHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A slot holds a key's value and its first 8 bytes (little-endian, zero-padded), so that
 * a lookup of a short key reads one 16-byte slot and never the key's own bytes. */
typedef struct tok__phash_slot {
  uint64_t value;
  uint64_t head;
} tok__phash_slot;

typedef struct tok__phash {
  uint64_t seed;
  uint32_t n;       /* keys == value slots */
  uint32_t m;       /* positions before remapping (>= n) */
  uint32_t n_buckets;
  uint16_t *pilot;  /* n_buckets */
  tok__phash_slot *slot; /* n */
  uint32_t *remap;  /* m - n: position p >= n lives at remap[p - n] */
} tok__phash;

typedef struct tok__phash_key {
  const uint8_t *bytes;
  uint32_t len;
  uint64_t value;
} tok__phash_key;

/* Builds the table; returns 0 on success, -1 when out of memory. Keys must be distinct
 * (the build would never finish otherwise, so duplicates are detected and reported as
 * -2). */
int tok__phash_build(tok__phash *ph, const tok__phash_key *keys, uint32_t n);
void tok__phash_free(tok__phash *ph);

/* Zeroed memory for the large tables of the encoder, mapped apart (resident only where
 * written) and, from 2 MiB up, aligned to 2 MiB with its whole 2 MiB pages advised as huge
 * pages (MADV_HUGEPAGE: transparent huge pages in "madvise" mode, as Debian ships), so that
 * random lookups in them do not also miss the TLB. Freed with tok__table_free. */
void *tok__table_calloc(size_t count, size_t size);
void tok__table_free(void *table);

static inline uint64_t tok__load64(const uint8_t *p)
{
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint64_t tok__load32(const uint8_t *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline uint64_t tok__mix(uint64_t a, uint64_t b)
{
  __uint128_t r = (__uint128_t)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Hashes bytes[0..len). Reads each byte exactly once through overlapping loads (wyhash's
 * trick), so different strings of the same length always give different (a, b) inputs. */
static inline uint64_t tok__hash_bytes(const uint8_t *p, size_t len, uint64_t seed)
{
  const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull;
  uint64_t a, b;
  if (len <= 16) {
    if (len >= 4) {
      a = (tok__load32(p) << 32) | tok__load32(p + ((len >> 3) << 2));
      b = (tok__load32(p + len - 4) << 32) | tok__load32(p + len - 4 - ((len >> 3) << 2));
    } else if (len > 0) {
      a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    size_t i = len;
    while (i > 16) {
      seed = tok__mix(tok__load64(p) ^ k1, tok__load64(p + 8) ^ seed);
      p += 16;
      i -= 16;
    }
    a = tok__load64(p + i - 16);
    b = tok__load64(p + i - 8);
  }
  return tok__mix(k1 ^ len, tok__mix(a ^ k1, b ^ seed ^ k0));
}

static inline uint32_t tok__phash_position(const tok__phash *ph, uint64_t h, uint16_t pilot)
{
  uint64_t x = (h ^ ((uint64_t)(pilot + 1) * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
  x ^= x >> 31;
  return (uint32_t)(((__uint128_t)x * ph->m) >> 64);
}

static inline uint32_t tok__phash_bucket(const tok__phash *ph, uint64_t h)
{
  return (uint32_t)(((uint64_t)(uint32_t)h * ph->n_buckets) >> 32);
}

/* The first min(len, 8) bytes of p as a little-endian number (zero above), read without
 * touching p[len] or beyond: overlapping loads, as the hash does. len >= 1. */
static inline uint64_t tok__head8(const uint8_t *p, size_t len)
{
  if (len >= 8) return tok__load64(p);
  if (len >= 4) return tok__load32(p) | tok__load32(p + len - 4) << (8 * (len - 4));
  return (uint64_t)p[0] | (uint64_t)p[len >> 1] << (8 * (len >> 1)) | (uint64_t)p[len - 1] << (8 * (len - 1));
}

/* The slot bytes would be stored in, or an arbitrary slot when bytes is not a key; NULL
 * for an empty table. */
static inline const tok__phash_slot *tok__phash_get(const tok__phash *ph, const uint8_t *bytes,
                                                    size_t len)
{
  if (ph->n == 0) return NULL;
  uint64_t h = tok__hash_bytes(bytes, len, ph->seed);
  uint32_t pos = tok__phash_position(ph, h, ph->pilot[tok__phash_bucket(ph, h)]);
  if (pos >= ph->n) pos = ph->remap[pos - ph->n];
  return &ph->slot[pos];
}

#endif
