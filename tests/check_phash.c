/* check_phash.c — the minimal perfect hash: every key found, strangers rejected. */
#include "core/internal.h"
#include "testutil.h"

/* Protects: each of many random keys maps to its own value (no collisions, minimal). */
START_TEST(test_random_keys)
{
  /* distinct by construction: all 256 one-byte keys, all 65,536 two-byte keys, and keys
   * of 4-12 bytes that start with their own index */
  enum { N_LONG = 60000, N = 256 + 65536 + N_LONG };
  uint8_t *bytes = malloc((size_t)N * 12);
  tok__phash_key *keys = malloc(N * sizeof *keys);
  uint32_t n = 0, x = 12345;
  for (uint32_t b = 0; b < 256; b++, n++) {
    bytes[n * 12] = (uint8_t)b;
    keys[n] = (tok__phash_key){bytes + n * 12, 1, n};
  }
  for (uint32_t b = 0; b < 65536; b++, n++) {
    memcpy(bytes + n * 12, &b, 2);
    keys[n] = (tok__phash_key){bytes + n * 12, 2, n};
  }
  for (uint32_t i = 0; i < N_LONG; i++, n++) {
    uint32_t len = 4 + i % 9;
    memcpy(bytes + n * 12, &i, 4);
    for (uint32_t k = 4; k < len; k++) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      bytes[n * 12 + k] = (uint8_t)x;
    }
    keys[n] = (tok__phash_key){bytes + n * 12, len, n};
  }
  tok__phash ph;
  ck_assert_int_eq(tok__phash_build(&ph, keys, n), 0);
  uint8_t *hit = calloc(n, 1);
  for (uint32_t i = 0; i < n; i++) {
    const tok__phash_slot *slot = tok__phash_get(&ph, keys[i].bytes, keys[i].len);
    uint32_t v = (uint32_t)slot->value;
    ck_assert_uint_eq(v, keys[i].value);
    /* the slot keeps the key's first bytes, which lookups compare instead of the key */
    ck_assert_uint_eq(slot->head, tok__head8(keys[i].bytes, keys[i].len));
    ck_assert(!hit[v]); /* minimal and collision-free: each slot used once */
    hit[v] = 1;
  }
  tok__phash_free(&ph);
  free(hit);
  free(keys);
  free(bytes);
}
END_TEST

/* Protects: duplicate keys are reported instead of looping forever. */
START_TEST(test_duplicates)
{
  tok__phash_key keys[3] = {{(const uint8_t *)"ab", 2, 0},
                            {(const uint8_t *)"cd", 2, 1},
                            {(const uint8_t *)"ab", 2, 2}};
  tok__phash ph;
  ck_assert_int_eq(tok__phash_build(&ph, keys, 3), -2);
}
END_TEST

/* Protects: tok__head8 packs 1..8+ bytes exactly, without reading past the key. */
START_TEST(test_head8)
{
  const uint8_t s[] = "abcdefghij";
  for (size_t len = 1; len <= 10; len++) {
    uint64_t want = 0;
    for (size_t k = 0; k < len && k < 8; k++) want |= (uint64_t)s[k] << (8 * k);
    uint8_t *copy = malloc(len); /* exactly len bytes: ASan catches a read beyond */
    memcpy(copy, s, len);
    ck_assert_uint_eq(tok__head8(copy, len), want);
    free(copy);
  }
}
END_TEST

/* Protects: lookups verify bytes, so non-tokens are never given a rank. */
START_TEST(test_strangers)
{
  const tok_encoding *enc = tu_encoding("cl100k_base");
  uint32_t rank;
  ck_assert(tok_rank_of(enc, "hello", 5, &rank));
  ck_assert_uint_eq(rank, 15339);
  ck_assert(!tok_rank_of(enc, "hellohellohello", 15, &rank));
  ck_assert(!tok_rank_of(enc, "\xff\xfe\xfd", 3, &rank));
  ck_assert(!tok_rank_of(enc, "", 0, &rank));
  /* every rank of every vocabulary maps back to itself */
  for (size_t e = 0; e < 5; e++) {
    const tok_encoding *en = tu_encoding(TU_ENCODINGS[e]);
    const tok_encoding_info *info = tok_encoding_get_info(en);
    uint32_t found = 0;
    for (uint32_t r = 0; r < info->n_vocab; r++) {
      size_t len;
      const char *b = tok_token_bytes(en, r, &len);
      uint32_t back;
      if (!b || !tok_rank_of(en, b, len, &back)) continue;
      ck_assert_uint_eq(back, r);
      found++;
    }
    ck_assert_uint_eq(found, info->n_ranks);
  }
}
END_TEST

#define PHASH_TESTS(T, L) T(test_random_keys) T(test_duplicates) T(test_head8) T(test_strangers)
TU_SUITE(phash, "core", 60, PHASH_TESTS)
