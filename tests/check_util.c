/*
 * check_util.c — the helpers the server and the command line share (src/common/util.c)
 * that the other suites do not reach through libtokd.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "testutil.h"

static void expect_decimal(uint32_t n)
{
  char got[16], want[16];
  memset(got, '#', sizeof got);
  size_t len = tokd_format_u32(got, n);
  int k = snprintf(want, sizeof want, "%u", n);
  ck_assert_msg(len == (size_t)k && memcmp(got, want, len) == 0, "%u: got \"%.*s\"", n, (int)len, got);
  ck_assert_msg(got[10] == '#', "%u: wrote past 10 bytes", n); /* the documented room */
}

/* Protects: ids are written in decimal exactly as printf writes them, for every id below
 * two million (every vocabulary), at each power of ten's edges, and across 32 bits —
 * the four-digit table's three paths (below 10^4, below 10^8, above). */
START_TEST(test_format_u32)
{
  for (uint32_t n = 0; n < 2000000; n++) expect_decimal(n);
  for (uint64_t p = 10; p <= 1000000000ull; p *= 10)
    for (int d = -2; d <= 2; d++) expect_decimal((uint32_t)(p + (uint64_t)(int64_t)d));
  expect_decimal(UINT32_MAX);
  expect_decimal(UINT32_MAX - 1);
  uint32_t x = 2463534242u;
  for (int i = 0; i < 1000000; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    expect_decimal(x);
  }
}
END_TEST

#define UTIL_TESTS(T, L) T(test_format_u32)
TU_SUITE(util, "common", 120, UTIL_TESTS)
